"""`muonlab reproduce`: experiments declared once in their YAMLs, listing, name errors,
a new experiment in a temporary folder end to end, and one real quick reproduction."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from muonlab.claims import base
from muonlab.claims.base import Claim, claim
from muonlab.cli import app
from muonlab.config import ConfigError, batch_key, expand, load_config, load_yaml
from muonlab.reproduce import (
    SHIPPED_ROOT,
    UnknownExperimentError,
    discover,
    experiment_config,
    experiments_root,
    reproduce,
    resolve_names,
)

runner = CliRunner()

#: `reproduce all`, in the order it had when the registry was a dict in reproduce.py.
PAPER_ORDER = [
    "p1_kappa_sweep", "p1_rank_sweep", "p2_icl_kappa_sweep", "p2_icl_transformer", "p1_geometric_thm1",
    "p1_preconditioners", "p1_signgd_hard_instance", "p2_icl_signgd_hard_instance", "p1_scalar_recursions",
    "s002_mode_order", "s002_mode_lag", "s002_alignment_rate", "s002_balance", "s002_lr_stability", "s002_anneal_kappa",
    "s002_conservation", "s002_plateaus", "s002_two_step", "s000_equal_rate", "s000_rates", "s000_specgf",
    "s000_convergence", "s000_inits", "s000_stability",
]

#: The open questions (group: beyond): `reproduce beyond` runs them, `all` does not.
BEYOND_ORDER = [
    "beyond_practical_muon", "beyond_practical_muon_icl", "beyond_noise_floor", "beyond_noise_kappa",
    "beyond_noise_icl", "beyond_regression", "beyond_nonsymmetric_mf", "beyond_large_init", "beyond_large_init_mf",
    "beyond_scaledgd", "beyond_tuned_p1_kappa", "beyond_tuned_p2_icl", "beyond_tuned_p3_two_factor",
    "beyond_t_beta_p4", "beyond_t_beta_p1",
]

#: Fine-tuning experiments (kind: finetune): listed, run by name only, never in `all`.
FINETUNE = ["lora", "lora_roberta_sst2", "lora_llama_alpaca"]


def test_all_is_the_papers_experiments_in_a_stable_order():
    assert resolve_names("all") == PAPER_ORDER
    assert resolve_names("beyond") == BEYOND_ORDER
    assert "demo" in discover() and resolve_names("demo") == ["demo"]


def test_all_needs_a_paper_experiment():
    with pytest.raises(UnknownExperimentError, match="'all' has nothing to run") as e:
        resolve_names("all", discover(SHIPPED_ROOT / "examples"))
    assert e.value.field == "name" and "demo" in str(e.value)


def test_beyond_is_its_own_group(tmp_path, monkeypatch):
    """`reproduce beyond` runs the group: beyond experiments, which `all` leaves out."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    paper = NEW_EXPERIMENT.replace("claims: [tiny_gd_converges]", "claims: []")
    (folder / "tiny.yaml").write_text(paper, encoding="utf-8")
    (folder / "open.yaml").write_text(paper.replace("name: tiny_gd", "name: open_q")
                                      .replace('seed: "beyond"', 'seed: "beyond"\n  group: beyond'), encoding="utf-8")
    exps = discover(folder)
    assert exps["open_q"].spec.group == "beyond"
    assert resolve_names("all", exps) == ["tiny_gd"] and resolve_names("beyond", exps) == ["open_q"]
    with pytest.raises(UnknownExperimentError, match="'beyond' has nothing to run"):
        resolve_names("beyond", discover(SHIPPED_ROOT / "examples"))
    (folder / "bad.yaml").write_text(paper.replace("name: tiny_gd", "name: beyond"), encoding="utf-8")
    with pytest.raises(ConfigError, match="name: 'beyond' is reserved"):
        discover(folder)


def test_list_prints_plain_names_when_piped_and_json_on_request():
    result = runner.invoke(app, ["reproduce", "--list"])  # CliRunner's stdout is not a terminal
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [*PAPER_ORDER, *FINETUNE, *BEYOND_ORDER, "demo"]
    result = runner.invoke(app, ["reproduce", "--list", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [e["name"] for e in listed] == [*PAPER_ORDER, *FINETUNE, *BEYOND_ORDER, "demo"]
    kappa = listed[0]
    assert kappa["claims"] == ["muon_kappa_free", "muon_kappa_free_ours", "signgd_kappa_dependent",
                               "signgd_kappa_dependent_ours", "iterations_log_eps",
                               "iterations_log_eps_ours"] and kappa["group"] == "paper"
    assert kappa["scales"]["quick"][:4] == ["problem.n=40", "problem.r=4", "steps=18000", "seeds=5"]
    assert listed[-1]["group"] == "example"
    bad = runner.invoke(app, ["reproduce", "all", "--json"])
    assert bad.exit_code == 2 and "'--json'" in bad.output


def test_unknown_name_is_one_line_exit_2(tmp_path):
    result = runner.invoke(app, ["reproduce", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "nope" in lines[0] and "p1_kappa_sweep" in lines[0] and "all" in lines[0]
    assert not any(tmp_path.iterdir())


def test_every_experiment_validates_at_both_scales():
    for name, exp in discover().items():
        assert exp.path.is_relative_to(experiments_root())
        assert experiment_config(name).name == name
        quick = experiment_config(name, "quick")
        assert quick.name == name and quick.reproduce == exp.spec


def test_the_reproduce_section_changes_no_run_id_batch_key_or_metadata(tmp_path):
    """RunSpec does not carry the section: ids, batch keys and meta.json's config are as
    they were without it."""
    path = SHIPPED_ROOT / "seed001" / "p1_kappa_sweep.yaml"
    bare = tmp_path / "bare.yaml"
    raw = load_yaml(path)
    del raw["reproduce"]
    bare.write_text(json.dumps(raw), encoding="utf-8")  # JSON is YAML
    sets = discover()["p1_kappa_sweep"].overrides("quick")
    with_section, without = load_config(path, sets), load_config(bare, sets)
    assert with_section.reproduce is not None and without.reproduce is None
    runs_a, runs_b = expand(with_section), expand(without)
    assert [r.run_id for r in runs_a] == [r.run_id for r in runs_b]
    assert [batch_key(r) for r in runs_a] == [batch_key(r) for r in runs_b]
    assert with_section.model_dump(mode="json") == without.model_dump(mode="json")  # what meta.json records


def test_an_unknown_claim_is_one_line_at_load_time(tmp_path):
    path = tmp_path / "x.yaml"
    raw = load_yaml(SHIPPED_ROOT / "examples" / "demo.yaml")
    raw["reproduce"]["claims"] = ["muon_kappa_free", "muon_kapa_free"]
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.field == "reproduce.claims"
    assert str(e.value).startswith("reproduce.claims: unknown claim 'muon_kapa_free'; known: ")
    assert "muon_kappa_free" in str(e.value) and "\n" not in str(e.value)
    # the CLI refuses the folder before running anything, naming the file and the field
    result = runner.invoke(app, ["reproduce", "all", "--experiments", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "'--experiments'" in lines[0] and "x.yaml: reproduce.claims" in lines[0]
    assert not (tmp_path / "o").exists()


NEW_EXPERIMENT = textwrap.dedent("""\
    name: tiny_gd
    problem: {kind: symmetric_mf, n: 6, r: 2, kappa: 2.0, alpha: 0.1}
    optimizer: {name: gd, lr: 0.3}
    steps: 400
    stop: {target: 0.0}  # no early stop: every run records every point
    dtype: float64
    seeds: 3
    metrics: [loss, rel_err]
    log_every: 10
    reproduce:
      seed: "beyond"
      title: "A new experiment"
      description: "GD on a tiny symmetric MF, declared in one file."
      figure: {curve_by: [seed], panel_by: null}
      claims: [tiny_gd_converges]
      scales:
        quick: ["steps=300", "seeds=2"]
        paper: []
""")


def test_a_new_experiment_is_one_yaml_and_one_claim(tmp_path, monkeypatch):
    """The whole declaration of an experiment: a YAML in a folder and a decorated claim."""
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # the claim vanishes after the test

    @claim(reads=("runs", "trajectories"))
    def tiny_gd_converges(runs, trajectories):
        ok = runs["status"].eq("ok").all() and runs["steps_to_1e-8"].notna().all()
        points = len(trajectories[trajectories["metric"] == "rel_err"])
        return Claim("tiny_gd_converges", "beyond", bool(ok), f"{len(runs)} runs, {points} rel_err points")

    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(NEW_EXPERIMENT, encoding="utf-8")
    monkeypatch.setenv("MUONLAB_EXPERIMENTS", str(folder))
    assert list(discover()) == ["tiny_gd"] and resolve_names("all") == ["tiny_gd"]

    out = tmp_path / "out"
    result = runner.invoke(app, ["reproduce", "all", "--quick", "--out", str(out), "--set", "log_every=5"])
    assert result.exit_code == 0, result.output
    assert (out / "tiny_gd" / "runs.parquet").is_file()
    claims = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    # a plain Claim counts as one replicate ("instance"); --set makes the scale "custom"
    assert claims == [{"name": "tiny_gd_converges", "seed": "beyond", "passed": True,
                       "detail": "2 runs, 122 rel_err points", "experiment": "tiny_gd",  # 2 × (300/5 + 1)
                       "n_pass": 1, "n_total": 1, "ci_low": 0.025, "ci_high": 1.0, "required": 1.0,
                       "unit": "instance", "failing_seeds": [], "seeds": ["instance"], "scale": "custom"}]
    (entry,) = json.loads((out / "experiments.json").read_text(encoding="utf-8"))
    config_hash = entry.pop("config_hash")
    assert config_hash == load_config(folder / "tiny.yaml", entry["overrides"]).config_hash
    assert entry == {"name": "tiny_gd", "title": "A new experiment",
                     "description": "GD on a tiny symmetric MF, declared in one file.", "curve_by": ["seed"],
                     "panel_by": None, "best_of": [], "extra_figures": [], "seed": "beyond", "x": "step",
                     "y": "rel_err", "scale": "custom", "quick": True,
                     "overrides": ["steps=300", "seeds=2", "log_every=5"]}
    # the same through the library, with the folder given explicitly and the paper scale
    monkeypatch.delenv("MUONLAB_EXPERIMENTS")
    res = reproduce("tiny_gd", tmp_path / "paper", root=folder, report=False)
    assert res.executed == {"tiny_gd": 3} and res.claims[0]["passed"]
    # the provenance the report's footer shows: an extra file beside the store
    prov = json.loads((tmp_path / "paper" / "tiny_gd" / "provenance.json").read_text(encoding="utf-8"))
    assert {"muonlab", "git_commit", "torch", "python", "machine", "wall_s", "finished_at"} <= set(prov)
    assert prov["machine"]["cpu"] and prov["machine"]["gpu"] is None
    assert 0 < prov["wall_s"] <= res.wall_s["tiny_gd"] + 0.01
    assert res.claims[0]["detail"] == "3 runs, 123 rel_err points"  # 3 × (400/10 + 1)


def test_quick_reproduction_of_one_experiment(tmp_path):
    out = tmp_path / "repro"
    extra = ["--set", "grid.problem.kappa=[1,100,10000]", "--set", "grid.problem.r=[4]",
             "--set", "grid.problem.init=[gaussian]"]
    result = runner.invoke(app, ["reproduce", "p1_geometric_thm1", "--quick", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    assert (out / "p1_geometric_thm1" / "runs.parquet").is_file()
    claims = json.loads((out / "claims.json").read_text())
    assert [c["name"] for c in claims] == ["geometric_schedule_converges"]
    claim_ = claims[0]
    assert claim_["seed"] == "001" and claim_["experiment"] == "p1_geometric_thm1"
    assert claim_["passed"] is True, claim_["detail"]
    assert "10000" in claim_["detail"] and (claim_["n_pass"], claim_["n_total"]) == (5, 5)
    assert claim_["seeds"] == ["0", "1", "2", "3", "4"] and claim_["failing_seeds"] == []
    experiments = json.loads((out / "experiments.json").read_text())
    assert experiments[0]["name"] == "p1_geometric_thm1" and experiments[0]["scale"] == "custom"
    assert experiments[0]["overrides"] == [
        "problem.n=40", "problem.r_star=4", "grid.problem.r=[4,8]", "steps=2000", "seeds=5",
        "grid.problem.kappa=[1,100,10000]", "grid.problem.r=[4]", "grid.problem.init=[gaussian]"]
    assert "PASS" in result.output
    # resume: nothing is run again
    again = runner.invoke(app, ["reproduce", "p1_geometric_thm1", "--quick", "--out", str(out), *extra])
    assert again.exit_code == 0, again.output
    assert "0 runs executed" in again.output


def test_experiment_yamls_ship_inside_the_package():
    """`pip install .` (not editable) must carry every experiment's YAML."""
    import muonlab

    assert SHIPPED_ROOT.resolve().is_relative_to(Path(muonlab.__file__).resolve().parent)
    assert set(discover(SHIPPED_ROOT)) == {*PAPER_ORDER, *FINETUNE, *BEYOND_ORDER, "demo"}


#: Experiments with nothing random in them (fixed init and target, deterministic schedule):
#: one seed is the whole distribution, and their claims count one "instance".
DETERMINISTIC = {"p1_signgd_hard_instance"}


def test_scales_give_every_per_seed_claim_enough_seeds():
    """Issue 11: quick keeps >= 5 seeds per grid point, paper >= 10 (the open questions too)."""
    for name in [*resolve_names("all"), *resolve_names("beyond")]:
        quick, paper = experiment_config(name, "quick"), experiment_config(name, "paper")
        if name in DETERMINISTIC:
            assert quick.seeds == paper.seeds == [0]
            continue
        assert len(quick.seeds) >= 5, name
        assert len(paper.seeds) >= 10, name
