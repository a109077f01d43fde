"""`muonlab demo`: the shipped experiment `demo` through the engine, claims and report,
and the claim it illustrates actually holds in its store.

Seed 001 (Ma, Huang, Chi, Chen, arXiv 2601.13474), Theorem 1 vs GD: on symmetric matrix
factorization Muon's iterations to accuracy ε do not depend on κ; GD's grow ∝ κ.
"""

from __future__ import annotations

import html
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from muonlab.cli import app
from muonlab.demo import run_demo
from muonlab.engine.store import ResultStore
from muonlab.reproduce import resolve_names

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = runner.invoke(app, ["demo", "--out", str(out)])
    return out, result


def _best_steps(runs: pd.DataFrame, optimizer: str) -> dict[float, float | None]:
    """Per κ: the fewest steps to 1e-12 over the optimizer's schedules (None: never reached)."""
    sub = runs[runs["optimizer.name"] == optimizer]
    best = sub.groupby("problem.kappa")["steps_to_1e-12"].min()
    return {float(k): (None if pd.isna(v) else float(v)) for k, v in best.items()}


def test_cli_writes_store_claims_and_report(demo_out):
    out, result = demo_out
    assert result.exit_code == 0, result.output
    report = out / "report" / "index.html"
    assert f"report: {report.resolve()}" in result.output.replace("\n", "")
    page = html.unescape(report.read_text(encoding="utf-8"))
    assert "Muon's iteration count does not depend on κ" in page and "muon_kappa_free" in page
    assert sorted(p.name for p in out.iterdir()) == ["claims.json", "demo", "experiments.json", "report"]
    (entry,) = json.loads((out / "experiments.json").read_text(encoding="utf-8"))
    assert entry["name"] == "demo" and entry["quick"] is False and entry["overrides"] == []
    assert entry["scale"] == "paper" and len(entry["config_hash"]) == 16
    assert set(entry) == {"name", "title", "description", "curve_by", "panel_by", "best_of", "extra_figures",
                          "seed", "x", "y", "scale", "quick", "overrides", "config_hash"}


def test_claim_passes_and_the_store_shows_why(demo_out):
    out, _ = demo_out
    (claim,) = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    assert (claim["name"], claim["experiment"], claim["seed"]) == ("muon_kappa_free_ours", "demo", "001")
    assert claim["passed"] is True, claim["detail"]
    assert (claim["n_pass"], claim["n_total"], claim["unit"], claim["scale"]) == (5, 5, "seed", "paper")
    runs = ResultStore(out / "demo").runs()
    assert len(runs) == 60 and (runs["status"] == "ok").all()  # 3 κ × {muon, gd} × 2 schedules × 5 seeds
    muon, gd = _best_steps(runs, "muon"), _best_steps(runs, "gd")
    assert sorted(muon) == [1.0, 100.0, 10000.0]
    assert all(v is not None for v in muon.values()), muon
    assert max(muon.values()) < 1.2 * min(muon.values()), muon  # κ-free: 471–494 steps measured
    assert gd[1.0] is not None and gd[1.0] < min(muon.values())  # GD is fast when well conditioned …
    assert gd[100.0] is None and gd[10000.0] is None  # … and misses 1e-12 within 6000 steps beyond


def test_resume_runs_nothing_again(demo_out):
    out, _ = demo_out
    again = runner.invoke(app, ["demo", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "demo: 0 runs executed, 60 already in the store" in again.output


def test_kappas_map_onto_the_grid(tmp_path):
    result = run_demo(tmp_path, kappas="1,10,1e3", overrides=["steps=100"], report=False)
    runs = ResultStore(tmp_path / "demo").runs()
    assert sorted(runs["problem.kappa"].unique()) == [1.0, 10.0, 1000.0]
    assert (runs["max_steps"] == 100).all()
    (entry,) = json.loads((tmp_path / "experiments.json").read_text(encoding="utf-8"))
    assert entry["overrides"] == ["grid.problem.kappa=[1,10,1e3]", "steps=100"]
    assert result.claims[0]["name"] == "muon_kappa_free_ours"  # judged, whatever the verdict at 100 steps


@pytest.mark.parametrize("kappas", ["1,x", "0.5,10,100", ""])
def test_bad_kappas_are_one_line_naming_the_option(tmp_path, kappas):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "o"), "--kappas", kappas])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "'--kappas'" in lines[0] and "problem.kappa" in lines[0], result.output
    assert not (tmp_path / "o").exists()


def test_demo_is_an_example_not_a_paper_experiment():
    assert "demo" not in resolve_names("all")
    assert resolve_names("demo") == ["demo"]
