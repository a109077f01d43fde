"""`muonlab reproduce`: listing, name errors, and one real quick reproduction."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from muonlab.cli import app
from muonlab.reproduce import EXPERIMENTS, QUICK, experiment_config, experiments_root, resolve_names

runner = CliRunner()


def test_list_names_every_experiment():
    result = runner.invoke(app, ["reproduce", "--list"])
    assert result.exit_code == 0, result.output
    for name in EXPERIMENTS:
        assert name in result.output


def test_unknown_name_is_one_line_exit_2(tmp_path):
    result = runner.invoke(app, ["reproduce", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "nope" in lines[0] and "p1_kappa_sweep" in lines[0] and "all" in lines[0]
    assert not any(tmp_path.iterdir())


def test_every_registered_config_validates_full_and_quick():
    for name, exp in EXPERIMENTS.items():
        assert (experiments_root() / exp.path).is_file()
        assert experiment_config(name).name == name
        assert experiment_config(name, quick=True).name == name
        assert name in QUICK


def test_quick_reproduction_of_one_experiment(tmp_path):
    out = tmp_path / "repro"
    extra = ["--set", "grid.problem.kappa=[1,100,10000]", "--set", "grid.problem.r=[4]",
             "--set", "grid.problem.init=[gaussian]"]
    result = runner.invoke(app, ["reproduce", "p1_geometric_thm1", "--quick", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    assert (out / "p1_geometric_thm1" / "runs.parquet").is_file()
    claims = json.loads((out / "claims.json").read_text())
    assert [c["name"] for c in claims] == ["geometric_schedule_converges"]
    claim = claims[0]
    assert claim["seed"] == "001" and claim["experiment"] == "p1_geometric_thm1"
    assert claim["passed"] is True, claim["detail"]
    assert "κ=10000" in claim["detail"]
    experiments = json.loads((out / "experiments.json").read_text())
    assert experiments[0]["name"] == "p1_geometric_thm1" and experiments[0]["quick"] is True
    assert "PASS" in result.output
    # resume: nothing is run again
    again = runner.invoke(app, ["reproduce", "p1_geometric_thm1", "--quick", "--out", str(out), *extra])
    assert again.exit_code == 0, again.output
    assert "0 runs executed" in again.output


def test_experiment_yamls_ship_inside_the_package():
    """`pip install .` (not editable) must carry every registered experiment's YAML."""
    from pathlib import Path

    import muonlab

    root = experiments_root()
    assert root.resolve().is_relative_to(Path(muonlab.__file__).resolve().parent)
    for name in resolve_names("all"):
        assert experiment_config(name) is not None
