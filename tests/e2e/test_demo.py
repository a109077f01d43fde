"""The seed-001 demo: files written, and the claim it illustrates actually holds.

Seed 001 (Ma, Huang, Chi, Chen, arXiv 2601.13474), Theorem 1 vs GD: on symmetric
matrix factorization Muon's iterations to accuracy ε do not depend on κ; GD's grow ∝ κ.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from muonlab.cli import app
from muonlab.demo import (
    EPSILONS,
    DemoConfig,
    DemoConfigError,
    make_target,
    parse_kappas,
    parse_optimizers,
    run_demo,
    steps_to,
)

# Small enough for a few seconds, large enough that κ = 1000 separates GD from Muon:
# GD's slowest mode grows at rate ≈ η/κ, so it needs thousands of steps where Muon
# needs a few hundred for every κ (measured: ≤ ~750 over 40 seeds at these sizes).
TINY = dict(kappas=(1.0, 1000.0), n=12, rank=2, steps=1000, seed=0)
KEY = "1e-8"


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = run_demo(DemoConfig(**TINY, optimizers=("muon", "gd")), out)
    return out, result


def test_writes_json_png_html(tiny_demo):
    out, result = tiny_demo
    assert {p.name for p in out.iterdir()} == {"demo.json", "demo.png", "index.html"}  # no temp files left
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<table" in page and "data:image/png;base64," in page and "2601.13474" in page
    doc = json.loads((out / "demo.json").read_text(encoding="utf-8"))
    assert doc["config"]["kappas"] == [1.0, 1000.0]
    assert doc["config"]["n"] == 12 and doc["config"]["rank"] == 2
    assert len(doc["results"]) == 4
    for row in doc["results"]:
        assert row["optimizer"] in ("muon", "gd")
        for eps in ("1e-4", "1e-8", "1e-10"):
            v = row[f"steps_to_{eps}"]
            assert v is None or (isinstance(v, int) and 0 <= v <= TINY["steps"])
        assert row["status"] in ("reached", "not_reached", "diverged")
    # JSON agrees with the in-memory result.
    r = result.run("muon", 1000.0)
    row = next(x for x in doc["results"] if x["optimizer"] == "muon" and x["kappa"] == 1000.0)
    assert row[f"steps_to_{KEY}"] == r.steps_to[KEY]


def test_curves_are_consistent(tiny_demo):
    _, result = tiny_demo
    for r in result.runs:
        assert r.rel_err[0] == pytest.approx(1.0, abs=1e-3)  # X_0 ≈ 0, so rel err ≈ 1
        assert len(r.rel_err) == r.steps_run + 1
        assert r.final_rel_err == r.rel_err[-1]
        for i, eps in enumerate(EPSILONS):
            hit = r.steps_to[f"1e{round(math.log10(eps))}"]
            assert hit == steps_to(r.rel_err, eps)
            if i and hit is not None:  # smaller ε is reached no earlier
                prev = r.steps_to[f"1e{round(math.log10(EPSILONS[i - 1]))}"]
                assert prev is not None and prev <= hit


def test_muon_steps_do_not_depend_on_kappa(tiny_demo):
    _, result = tiny_demo
    a = result.run("muon", 1.0).steps_to[KEY]
    b = result.run("muon", 1000.0).steps_to[KEY]
    assert a is not None and b is not None, (a, b)
    assert max(a, b) < 2 * min(a, b), (a, b)


def test_gd_steps_grow_with_kappa(tiny_demo):
    _, result = tiny_demo
    a = result.run("gd", 1.0).steps_to[KEY]
    b = result.run("gd", 1000.0).steps_to[KEY]
    assert a is not None, "GD must solve the well-conditioned problem"
    assert b is None or b >= 5 * a, (a, b)


def test_target_spectrum():
    g = torch.Generator().manual_seed(0)
    M, lam = make_target(10, 3, 100.0, g)
    ev = torch.linalg.eigvalsh(M).flip(0)
    torch.testing.assert_close(ev[:3], torch.tensor([1.0, 0.1, 0.01], dtype=torch.float64))
    assert ev[3:].abs().max() < 1e-12
    torch.testing.assert_close(M, M.T)


def test_parsers_and_validation():
    assert parse_kappas("1, 100,1e4,100") == (1.0, 100.0, 10000.0)
    assert parse_optimizers("MUON,gd,muon") == ("muon", "gd")
    for bad in ("", "1,,2", "x", "0.9", "nan"):
        with pytest.raises(DemoConfigError) as e:
            parse_kappas(bad)
        assert e.value.field == "kappas"
    with pytest.raises(DemoConfigError, match="allowed: muon, gd, signgd, scaledgd"):
        parse_optimizers("adam")
    for kw, field in ((dict(steps=0), "steps"), (dict(n=4, rank=5), "rank"), (dict(seed=-1), "seed")):
        with pytest.raises(DemoConfigError) as e:
            DemoConfig(**kw)
        assert e.value.field == field


def test_cli_demo_end_to_end(tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        ["demo", "--out", str(out), "--n", "8", "--rank", "2", "--kappas", "1,10",
         "--steps", "60", "--optimizers", "muon,gd,signgd,scaledgd"],
    )
    assert result.exit_code == 0, result.output
    assert "index.html" in result.output
    doc = json.loads((out / "demo.json").read_text(encoding="utf-8"))
    assert [r["optimizer"] for r in doc["results"]] == ["muon"] * 2 + ["gd"] * 2 + ["signgd"] * 2 + ["scaledgd"] * 2
    assert (out / "demo.png").stat().st_size > 1000
