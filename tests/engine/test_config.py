"""Tests for muonlab.config: YAML → validated experiment → resolved runs."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from muonlab.config import (
    BATCHABLE,
    METRICS,
    OPTIMIZERS,
    PROBLEMS,
    SCHEDULE_CONFIGS,
    ConfigError,
    ExperimentConfig,
    RunSpec,
    apply_overrides,
    batch_key,
    expand,
    load_config,
)

FAST = settings(max_examples=30, deadline=None)

EXAMPLE = textwrap.dedent(
    """
    name: p1_kappa_sweep
    problem:
      kind: symmetric_mf
      n: 100
      r: 10
      r_star: 10
      kappa: 1.0
      alpha: 1e-3            # YAML 1.2 float (PyYAML alone reads it as a string)
      spectrum: logspace
      init: gaussian
    optimizer:
      name: muon
      lr: 0.5
      method: svd
    schedule: {name: plateau, factor: 0.5, patience: 10}
    steps: 100000
    stop: {target: 1.0e-12, blowup: 1.0e6}
    dtype: float64
    device: cpu
    seeds: 2
    grid:
      problem.kappa: [1, 10, 100]
      optimizer: [{name: muon, lr: 0.5, method: svd}, {name: gd, lr: 0.3}]
    metrics: [loss, rel_err]
    log_every: 1
    """
)


def base_raw() -> dict:
    """A small valid config as a plain dict."""
    return {
        "name": "t",
        "problem": {"kind": "symmetric_mf", "n": 20, "r": 4, "kappa": 10.0, "alpha": 1e-3},
        "optimizer": {"name": "muon", "lr": 0.5, "method": "svd"},
        "steps": 50,
    }


def set_path(raw: dict, path: str, value) -> dict:
    raw = copy.deepcopy(raw)
    node = raw
    parts = path.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return raw


def single_run(raw: dict) -> RunSpec:
    runs = expand(ExperimentConfig.model_validate(raw))
    assert len(runs) == 1
    return runs[0]


@pytest.fixture
def example_path(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(EXAMPLE)
    return path


# ----------------------------------------------------------------------------- loading


def test_load_example(example_path):
    cfg = load_config(example_path)
    assert cfg.name == "p1_kappa_sweep"
    assert cfg.problem.kind == "symmetric_mf" and cfg.problem.alpha == 1e-3
    assert isinstance(cfg.problem.alpha, float)
    assert cfg.optimizer.name == "muon" and cfg.optimizer.method == "svd"
    assert cfg.schedule.name == "plateau" and cfg.schedule.patience == 10
    assert cfg.stop.target == 1e-12 and cfg.stop.blowup == 1e6
    assert cfg.seeds == [0, 1]
    assert cfg.schedule.build().params() == {"factor": 0.5, "patience": 10, "min_lr": 0.0, "threshold": 0.0}


def test_yaml_round_trip(example_path, tmp_path):
    cfg = load_config(example_path)
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    again = load_config(dumped)
    assert again == cfg
    assert [r.run_id for r in expand(again)] == [r.run_id for r in expand(cfg)]
    # and through JSON / model_validate of the dump
    assert ExperimentConfig.model_validate(json.loads(cfg.model_dump_json())) == cfg


def test_defaults_and_shorthands():
    raw = base_raw()
    raw["schedule"] = "geometric"
    cfg = ExperimentConfig.model_validate(raw)
    assert cfg.schedule.name == "geometric" and cfg.schedule.q == 0.99
    assert cfg.stop.target is None and cfg.stop.blowup == 1e6
    assert (cfg.dtype, cfg.device, cfg.seeds, cfg.metrics, cfg.log_every) == (
        "float64", "cpu", [0], ["loss", "rel_err"], 1
    )
    assert cfg.optimizer.coefficients == "keller" and cfg.optimizer.momentum == 0.0


def test_integral_floats_are_ints_and_ints_are_floats():
    raw = set_path(set_path(base_raw(), "steps", 1e3), "problem.kappa", 100)
    cfg = ExperimentConfig.model_validate(raw)
    assert cfg.steps == 1000 and isinstance(cfg.steps, int)
    assert cfg.problem.kappa == 100.0 and isinstance(cfg.problem.kappa, float)


@pytest.mark.parametrize("kind", list(PROBLEMS))
def test_every_problem_kind_validates_with_defaults(kind):
    raw = base_raw()
    raw["problem"] = {"kind": kind}
    if kind == "two_factor_mf":
        raw["problem"].update(spectrum="planted", rank=4, snr=4.0)
    run = single_run(raw)
    assert run.flat()["problem.kind"] == kind


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_validates(name):
    raw = base_raw()
    clock = "dt" if OPTIMIZERS[name].solver == "flow" else "lr"  # a flow's Δτ is its own field
    raw["optimizer"] = {"name": name, clock: 0.1}
    if name == "specgd_beta":
        raw["optimizer"]["beta"] = 1e-4
    if name == "scaledgd":  # ScaledGD needs a factorized problem
        raw["problem"] = {"kind": "symmetric_mf", "n": 6, "r": 2}
    run = single_run(raw)
    assert run.optimizer.name == name and run.optimizer.params()[clock] == 0.1


@pytest.mark.parametrize("name", list(SCHEDULE_CONFIGS))
def test_every_schedule_validates_and_builds(name):
    required = {"spike_anneal": {"first": 1e-3}, "warmup_cosine": {"warmup": 5, "total": 50}}
    raw = base_raw()
    raw["schedule"] = {"name": name, **required.get(name, {})}
    run = single_run(raw)
    assert run.schedule.build().name == name
    assert run.flat()["schedule.name"] == name


def test_muon_coefficient_table_and_adam_betas():
    raw = set_path(base_raw(), "optimizer", {"name": "muon", "lr": 0.1, "coefficients": [3.4445, -4.775, 2.0315]})
    assert single_run(raw).optimizer.coefficients == [[3.4445, -4.775, 2.0315]]
    raw = set_path(base_raw(), "optimizer", {"name": "adam", "lr": 1e-3, "betas": [0.8, 0.9]})
    run = single_run(raw)
    assert run.optimizer.betas == (0.8, 0.9)
    assert run.flat()["optimizer.betas"] == "[0.8,0.9]"


# ----------------------------------------------------------------------------- grid


def test_grid_counts_and_values(example_path):
    runs = expand(load_config(example_path))
    assert len(runs) == 12  # 3 kappas × 2 optimizers × 2 seeds
    assert len({r.run_id for r in runs}) == 12
    combos = {(r.problem.kappa, r.optimizer.name, r.seed) for r in runs}
    assert combos == {(k, o, s) for k in (1.0, 10.0, 100.0) for o in ("muon", "gd") for s in (0, 1)}
    gd = next(r for r in runs if r.optimizer.name == "gd")
    assert gd.optimizer.lr == 0.3 and not hasattr(gd.optimizer, "method")
    assert all(isinstance(r.problem.kappa, float) for r in runs)
    assert all(r.experiment == "p1_kappa_sweep" for r in runs)


def test_dotted_axis_applies_inside_replaced_subconfig_whatever_the_order():
    for grid in (
        {"optimizer": [{"name": "muon", "lr": 1.0}, {"name": "gd", "lr": 1.0}], "optimizer.lr": [0.1, 0.2]},
        {"optimizer.lr": [0.1, 0.2], "optimizer": [{"name": "muon", "lr": 1.0}, {"name": "gd", "lr": 1.0}]},
    ):
        raw = {**base_raw(), "grid": grid}
        runs = expand(ExperimentConfig.model_validate(raw))
        assert sorted((r.optimizer.name, r.optimizer.lr) for r in runs) == [
            ("gd", 0.1), ("gd", 0.2), ("muon", 0.1), ("muon", 0.2)
        ]


def test_optimizer_may_come_from_grid_only():
    raw = base_raw()
    del raw["optimizer"]
    raw["grid"] = {"optimizer": [{"name": "gd", "lr": 0.1}, {"name": "signgd", "lr": 0.01}]}
    runs = expand(ExperimentConfig.model_validate(raw))
    assert [r.optimizer.name for r in runs] == ["gd", "signgd"]


def test_defaults_follow_grid_values():
    # r_star defaults to r: sweeping r moves r_star with it unless r_star is written.
    raw = {**base_raw(), "grid": {"problem.r": [4, 8]}}
    assert [(r.problem.r, r.problem.r_star) for r in expand(ExperimentConfig.model_validate(raw))] == [(4, 4), (8, 8)]
    raw = set_path(raw, "problem.r_star", 4)
    assert [(r.problem.r, r.problem.r_star) for r in expand(ExperimentConfig.model_validate(raw))] == [(4, 4), (8, 4)]


def test_duplicate_grid_points_collapse():
    raw = {**base_raw(), "grid": {"problem.kappa": [1, 1.0, 2]}}
    assert len(expand(ExperimentConfig.model_validate(raw))) == 2


def test_zipped_axis_sets_its_paths_together_and_crosses_the_other_axes():
    raw = {**base_raw(), "seeds": 2, "grid": {
        "problem.kappa": [1, 10],
        "problem.alpha, optimizer": [[1e-5, {"name": "muon", "lr": 2e-6}], [1e-3, {"name": "muon", "lr": 2e-4}],
                                     [1e-3, {"name": "gd", "lr": 0.05}]]}}
    cfg = ExperimentConfig.model_validate(raw)
    runs = expand(cfg)
    assert len(runs) == 2 * 3 * 2
    assert {(r.problem.kappa, r.problem.alpha, r.optimizer.name, r.optimizer.lr) for r in runs} == {
        (k, a, o, lr) for k in (1.0, 10.0) for a, o, lr in ((1e-5, "muon", 2e-6), (1e-3, "muon", 2e-4),
                                                            (1e-3, "gd", 0.05))}
    # one spelling of the key: an override without the space replaces the axis
    out = apply_overrides(raw, ["grid.problem.alpha,optimizer=[[1.0e-4, {name: gd, lr: 0.1}]]"])
    assert len(expand(ExperimentConfig.model_validate(out))) == 2 * 1 * 2


@pytest.mark.parametrize(("grid", "pattern"), [
    ({"problem.alpha, optimizer.lr": [[1e-3, 0.1], [1e-4]]}, "list of 2 values"),
    ({"problem.alpha, optimizer.lr": [0.1]}, "list of 2 values"),
    ({"problem.alpha, optimizer.lr": [[1e-3, 0.1]], "optimizer.lr": [0.1, 0.2]}, "set by two grid axes"),
    ({"problem.alpha, bogus.lr": [[1e-3, 0.1]]}, "cannot be a grid axis"),
])
def test_bad_zipped_axes_are_one_line_errors(grid, pattern):
    with pytest.raises(ConfigError, match=pattern) as e:
        ExperimentConfig.model_validate({**base_raw(), "grid": grid})
    assert "\n" not in str(e.value)


def test_plain_override_of_a_zipped_path_is_refused():
    raw = {**base_raw(), "grid": {"problem.alpha, optimizer.lr": [[1e-3, 0.1]]}}
    with pytest.raises(ConfigError, match="zipped grid axis"):
        apply_overrides(raw, ["optimizer.lr=0.5"])


def test_explicit_seed_list():
    raw = {**base_raw(), "seeds": [3, 7]}
    assert [r.seed for r in expand(ExperimentConfig.model_validate(raw))] == [3, 7]


@FAST
@given(
    kappas=st.lists(st.floats(1.0, 1e6), min_size=1, max_size=4, unique=True),
    lrs=st.lists(st.floats(1e-4, 10.0), min_size=1, max_size=3, unique=True),
    n_seeds=st.integers(1, 3),
)
def test_grid_size_is_the_product(kappas, lrs, n_seeds):
    raw = {**base_raw(), "seeds": n_seeds, "grid": {"problem.kappa": kappas, "optimizer.lr": lrs}}
    runs = expand(ExperimentConfig.model_validate(raw))
    assert len(runs) == len(kappas) * len(lrs) * n_seeds
    assert {(r.problem.kappa, r.optimizer.lr) for r in runs} == {(k, lr) for k in kappas for lr in lrs}
    # they differ only in batchable fields: one batch
    assert len({batch_key(r) for r in runs}) == 1


# ----------------------------------------------------------------------------- run ids


def test_run_id_format_and_experiment_name_excluded():
    run = single_run(base_raw())
    assert re.fullmatch(r"[0-9a-f]{16}", run.run_id), run.run_id  # 16 lowercase hex digits
    other = single_run({**base_raw(), "name": "another_experiment"})
    assert other.run_id == run.run_id and other.experiment != run.experiment


def test_run_id_resolves_defaults():
    implicit = single_run(base_raw())
    explicit = single_run(set_path(base_raw(), "problem.r_star", 4))
    assert implicit.problem.r_star == 4 and implicit.run_id == explicit.run_id
    written = set_path(set_path(base_raw(), "optimizer.weight_decay", 0), "problem.spectrum", "logspace")
    assert single_run(written).run_id == implicit.run_id


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("problem.n", 21),
        ("problem.r", 5),
        ("problem.r_star", 3),
        ("problem.kappa", 10.5),
        ("problem.alpha", 2e-3),
        ("problem.spectrum", "linspace"),
        ("problem.init", "orthonormal"),
        ("optimizer.lr", 0.25),
        ("optimizer.method", "newton_schulz"),
        ("optimizer.weight_decay", 1e-4),
        ("schedule", {"name": "plateau"}),
        ("steps", 51),
        ("stop.target", 1e-8),
        ("stop.blowup", 1e3),
        ("dtype", "float32"),
        ("device", "cuda"),
        ("seeds", [1]),
        ("metrics", ["loss"]),
        ("log_every", 2),
    ],
)
def test_run_id_changes_with_any_resolved_field(path, value):
    base = single_run(base_raw())
    changed = single_run(set_path(base_raw(), path, value))
    assert changed.run_id != base.run_id


def test_run_id_ignores_metric_order_and_negative_zero():
    a = single_run(set_path(base_raw(), "metrics", ["rel_err", "loss"]))
    b = single_run(set_path(base_raw(), "metrics", ["loss", "rel_err"]))
    assert a.run_id == b.run_id and a.metrics == ["loss", "rel_err"]
    c = single_run(set_path(base_raw(), "optimizer.weight_decay", -0.0))
    assert c.run_id == single_run(base_raw()).run_id


@FAST
@given(st.randoms(use_true_random=False))
def test_run_id_independent_of_key_order(rnd):
    raw = base_raw()
    raw["schedule"] = {"name": "plateau", "factor": 0.25, "patience": 3}

    def shuffled(d):
        items = list(d.items())
        rnd.shuffle(items)
        return {k: shuffled(v) if isinstance(v, dict) else v for k, v in items}

    assert single_run(shuffled(raw)).run_id == single_run(raw).run_id


def test_run_id_stable_across_processes(example_path):
    code = (
        "import sys; from muonlab.config import load_config, expand;"
        "print(' '.join(r.run_id for r in expand(load_config(sys.argv[1]))))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(example_path)], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONHASHSEED": hashseed})
        for hashseed in ("1", "2")
    ]
    ids = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert ids[0] == ids[1] == [r.run_id for r in expand(load_config(example_path))]


def test_runspec_round_trip_and_hash():
    run = single_run(base_raw())
    again = RunSpec.model_validate(json.loads(run.model_dump_json()))
    assert again == run and again.run_id == run.run_id and hash(again) == hash(run)
    with pytest.raises(ConfigError, match=r"^problem\.kappa: must be >= 1"):
        RunSpec.model_validate(set_path(json.loads(run.model_dump_json()), "problem.kappa", 0.5))


def test_flat_columns():
    run = single_run({**base_raw(), "schedule": {"name": "plateau", "factor": 0.25}})
    flat = run.flat()
    for key in ("problem.kind", "problem.kappa", "optimizer.name", "optimizer.lr", "schedule.name",
                "schedule.factor", "seed", "max_steps", "stop.target", "dtype", "device", "log_every", "experiment"):
        assert key in flat, key
    assert "steps" not in flat  # the results column of that name is the steps a run took
    assert flat["max_steps"] == 50 and flat["schedule.factor"] == 0.25
    assert json.loads(flat["metrics"]) == ["loss", "rel_err"]
    assert all(v is None or isinstance(v, (str, int, float, bool)) for v in flat.values())


# ----------------------------------------------------------------------------- batching


def test_batch_key_groups_only_batchable_differences():
    assert BATCHABLE == {"seed", "problem.kappa", "problem.alpha", "problem.gamma", "optimizer.lr",
                         "gradient_noise.sigma"}  # issue 15: per-run noise level
    base = single_run(base_raw())
    same = [
        single_run(set_path(set_path(set_path(base_raw(), "problem.kappa", 1e3), "problem.alpha", 0.1),
                            "optimizer.lr", 0.01)),
        single_run({**base_raw(), "seeds": [5], "name": "other"}),
    ]
    assert all(batch_key(r) == batch_key(base) for r in same)
    different = [
        single_run(set_path(base_raw(), "problem.n", 30)),
        single_run(set_path(base_raw(), "optimizer.method", "newton_schulz")),
        single_run(set_path(base_raw(), "steps", 10)),
        single_run(set_path(base_raw(), "schedule", {"name": "plateau"})),
        single_run(set_path(base_raw(), "dtype", "float32")),
    ]
    assert all(batch_key(r) != batch_key(base) for r in different)
    lora = {**base_raw(), "problem": {"kind": "lora_mf"}, "grid": {"problem.gamma": [1e-3, 1e-2]}}
    assert len({batch_key(r) for r in expand(ExperimentConfig.model_validate(lora))}) == 1


def test_example_groups_into_one_batch_per_optimizer(example_path):
    runs = expand(load_config(example_path))
    groups = {}
    for r in runs:
        groups.setdefault(batch_key(r), []).append(r)
    assert sorted(len(g) for g in groups.values()) == [6, 6]
    assert all(len({r.optimizer.name for r in g}) == 1 for g in groups.values())


# ----------------------------------------------------------------------------- overrides


def test_overrides():
    raw = {**base_raw(), "grid": {"problem.kappa": [1, 10], "optimizer.lr": [0.1, 0.2]}}
    before = copy.deepcopy(raw)
    out = apply_overrides(raw, ["problem.n=50", "steps=1e3", "stop.target=1e-8", "grid.problem.alpha=[1e-3, 1e-2]",
                                "optimizer.lr=0.3", "name=renamed", "problem.r_star="])
    assert raw == before  # not modified in place
    assert out["problem"]["n"] == 50 and out["steps"] == 1000.0 and out["stop"] == {"target": 1e-8}
    assert out["grid"] == {"problem.kappa": [1, 10], "problem.alpha": [1e-3, 1e-2]}  # optimizer.lr axis pinned
    assert out["optimizer"]["lr"] == 0.3 and out["problem"]["r_star"] is None and out["name"] == "renamed"
    runs = expand(ExperimentConfig.model_validate(out))
    assert len(runs) == 4 and {r.optimizer.lr for r in runs} == {0.3} and runs[0].steps == 1000


def test_override_grid_axis_removal_and_whole_subconfig_axis():
    raw = {**base_raw(), "grid": {"problem.kappa": [1, 10],
                                  "optimizer": [{"name": "muon", "lr": 1.0}, {"name": "gd", "lr": 1.0}]}}
    out = apply_overrides(raw, ["grid.problem.kappa=null", "optimizer.lr=0.05", "grid.problem.n=[10, 20]"])
    assert "problem.kappa" not in out["grid"]
    assert [o["lr"] for o in out["grid"]["optimizer"]] == [0.05, 0.05]
    runs = expand(ExperimentConfig.model_validate(out))
    assert {(r.optimizer.name, r.optimizer.lr, r.problem.n) for r in runs} == {
        (o, 0.05, n) for o in ("muon", "gd") for n in (10, 20)
    }
    out = apply_overrides(raw, ["problem.kappa=3"])
    assert "problem.kappa" not in out["grid"] and out["problem"]["kappa"] == 3


def test_load_config_with_overrides(example_path):
    cfg = load_config(example_path, ["grid.problem.kappa=[1, 1e4]", "seeds=1", "optimizer.momentum=0.9"])
    runs = expand(cfg)
    assert len(runs) == 4 and {r.problem.kappa for r in runs} == {1.0, 1e4}
    assert {r.optimizer.momentum for r in runs if r.optimizer.name == "muon"} == {0.9}


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["problem.kappa"], r"^override 'problem\.kappa': expected key=value"),
        (["=3"], r"expected key=value"),
        (["problem..n=3"], r"empty component"),
        (["problem.kappa=[1,"], r"^override 'problem\.kappa=\[1,': invalid YAML"),
        (["steps.max=3"], r"^steps\.max: cannot set a key inside steps"),
        (["problem.kapa=3"], r"^problem\.kapa: unknown key \(did you mean 'kappa'\?\); allowed: kind, n, r"),
        (["grid.problem.kappa=[0.5]"], r"^grid\[problem\.kappa=0\.5, optimizer=\{.*\}\]: problem\.kappa: must be >= 1"),
    ],
)
def test_bad_overrides(example_path, overrides, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(example_path, overrides)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- errors

INVALID = [
    # (path, value, expected field, fragments of the message)
    ("problem.foo", 1, "problem.foo", ["unknown key", "allowed: kind, n, r, r_star, kappa"]),
    ("bogus", 1, "bogus", ["unknown key", "allowed:", "problem", "grid"]),
    ("stop.patience", 3, "stop.patience", ["unknown key", "allowed: target, blowup"]),
    ("optimizer.momentun", 0.9, "optimizer.momentun", ["did you mean 'momentum'"]),
    ("problem.n", "abc", "problem.n", ["must be an integer", "'abc'"]),
    ("problem.n", True, "problem.n", ["must be an integer"]),
    ("problem.n", 10.5, "problem.n", ["must be an integer", "10.5"]),
    ("problem.kappa", "big", "problem.kappa", ["must be a number"]),
    ("problem.n", -3, "problem.n", ["must be >= 1", "-3"]),
    ("problem.n", 0, "problem.n", ["must be >= 1"]),
    ("steps", 0, "steps", ["must be >= 1"]),
    ("log_every", -1, "log_every", ["must be >= 1"]),
    ("problem.r", 30, "problem.r", ["must be <= n (20), got 30"]),
    ("problem.r_star", 21, "problem.r_star", ["must be <= n (20)"]),
    ("problem.kappa", 0.5, "problem.kappa", ["must be >= 1"]),
    ("problem.kappa", float("inf"), "problem.kappa", ["finite"]),
    ("problem.alpha", 0, "problem.alpha", ["must be > 0"]),
    ("problem.spectrum", "list", "problem.spectrum", ["unknown 'list'", "allowed: logspace, linspace"]),
    ("problem.kind", "matrix_completion", "problem.kind", ["unknown 'matrix_completion'", "symmetric_mf, icl"]),
    ("problem", {"n": 5}, "problem.kind", ["required", "allowed: symmetric_mf"]),
    ("problem", 5, "problem", ["must be a mapping"]),
    ("optimizer.name", "sgd", "optimizer.name",
     ["unknown 'sgd'; allowed: muon, specgd, specgd_beta, specgf, gd, signgd, adam, scaledgd"]),
    ("optimizer.lr", 0, "optimizer.lr", ["must be > 0"]),
    ("optimizer.lr", None, "optimizer.lr", ["must be a number"]),
    ("optimizer.method", "qr", "optimizer.method",
     ["allowed: svd, gram, symmetric, beta, newton_schulz, polar_express"]),
    ("optimizer.nesterov", True, "optimizer.nesterov", ["requires momentum > 0"]),
    ("optimizer.beta", 1e-3, "optimizer.beta", ["only used with method 'beta'"]),
    ("optimizer.coefficients", "fast", "optimizer.coefficients", ["unknown 'fast'", "keller, dion"]),
    ("optimizer.coefficients", [[1, 2]], "optimizer.coefficients", ["three numbers"]),
    ("optimizer.ns_dtype", "float16", "optimizer.ns_dtype", ["allowed: float64, float32, bfloat16"]),
    ("optimizer", {"name": "specgd_beta", "lr": 1.0}, "optimizer.beta", ["required"]),
    ("optimizer", {"name": "adam", "lr": 1.0, "betas": [0.9, 1.0]}, "optimizer.betas[1]", ["must be >= 0 and < 1"]),
    ("optimizer", {"name": "adam", "lr": 1.0, "eps": 0}, "optimizer.eps", ["must be > 0"]),
    ("optimizer", {"name": "gd", "lr": 1.0, "method": "svd"}, "optimizer.method", ["unknown key", "allowed: name, lr"]),
    ("schedule", {"name": "cosine"}, "schedule.name", ["unknown 'cosine'", "constant, geometric, plateau"]),
    ("schedule", {"name": "plateau", "factor": 2.0}, "schedule.factor", ["0 < factor < 1", "2.0"]),
    ("schedule", {"name": "plateau", "patience": 0}, "schedule.patience", ["must be >= 1", "got patience=0"]),
    ("schedule", {"name": "plateau", "rho": 0.5}, "schedule.rho", ["unknown key", "allowed: name, factor, patience"]),
    ("schedule", {"name": "warmup_cosine", "warmup": 10, "total": 5}, "schedule.total", ["must be > warmup"]),
    ("schedule", {"name": "spike_anneal"}, "schedule.first", ["required"]),
    ("stop.target", -1, "stop.target", ["must be >= 0"]),
    ("stop.blowup", 0.5, "stop.blowup", ["must be > 1"]),
    ("dtype", "float16", "dtype", ["allowed: float64, float32, bfloat16"]),
    ("device", "tpu", "device", ["cpu, cuda or cuda:N", "'tpu'"]),
    ("seeds", 0, "seeds", ["must be >= 1"]),
    ("seeds", [0, 0], "seeds", ["duplicate seed 0"]),
    ("seeds", [-1], "seeds", ["integers >= 0"]),
    ("metrics", ["loss", "grad_norm"], "metrics[1]", ["unknown 'grad_norm'", "allowed: loss, rel_err"]),
    ("metrics", [], "metrics", ["at least 1"]),
    ("name", "has space", "name", ["must match"]),
    ("grid", {"seeds": [1, 2]}, "grid.seeds", ["cannot be a grid axis"]),
    ("grid", {"problem.kappa": 3}, "grid.problem.kappa", ["non-empty list"]),
    ("grid", {"problem.kappa": []}, "grid.problem.kappa", ["non-empty list"]),
    ("grid", {"optimizer.lr": [0.1, -1]}, "optimizer.lr", ["grid[optimizer.lr=-1]: optimizer.lr: must be > 0"]),
    ("grid", {"problem.r": [4, 40]}, "problem.r", ["grid[problem.r=40]: problem.r: must be <= n (20), got 40"]),
    ("grid", {"optimizer": [{"name": "sgd", "lr": 1}]}, "optimizer.name",
     ['grid[optimizer={"name":"sgd"', "unknown 'sgd'"]),
    ("grid", {"problem.foo": [1]}, "problem.foo", ["grid[problem.foo=1]: problem.foo: unknown key"]),
]

PROBLEM_INVALID = [
    ({"kind": "icl", "d": 10, "n_design": 5}, "problem.n_design", ["must be >= d (10)"]),
    ({"kind": "icl", "covariance": "full"}, "problem.covariance", ["allowed: rotated, diagonal"]),
    ({"kind": "two_factor_mf", "n_out": 5, "n_in": 8, "rank": 6}, "problem.rank", ["<= min(n_out, n_in) (5), got 6"]),
    ({"kind": "two_factor_mf", "spectrum": "list"}, "problem.values", ["required with spectrum 'list'"]),
    ({"kind": "two_factor_mf", "spectrum": "diag", "rank": 2, "values": [1, 2, 3]}, "problem.values",
     ["must have rank (2) entries, got 3"]),
    ({"kind": "two_factor_mf", "spectrum": "list", "values": [1, -2]}, "problem.values[1]", ["must be > 0"]),
    ({"kind": "two_factor_mf", "values": [1.0]}, "problem.values", ["only used with spectrum list or diag"]),
    ({"kind": "two_factor_mf", "spectrum": "planted", "rank": 3}, "problem.snr", ["required"]),
    ({"kind": "two_factor_mf", "spectrum": "planted", "snr": 4}, "problem.rank", ["required"]),
    ({"kind": "two_factor_mf", "spectrum": "planted", "rank": 3, "snr": 4, "n_out": 5, "n_in": 6}, "problem.n_in",
     ["needs n_out == n_in"]),
    ({"kind": "two_factor_mf", "snr": 4.0}, "problem.snr", ["only used with spectrum planted"]),
    ({"kind": "two_factor_mf", "init": "orthonormal"}, "problem.init", ["allowed: gaussian, orthogonal"]),
    ({"kind": "lora_mf", "m": 4, "n": 6, "r": 5}, "problem.r", ["must be <= min(m, n) (4), got 5"]),
    ({"kind": "lora_mf", "m": 4, "n": 6, "r": 2, "r_star": 5}, "problem.r_star", ["must be <= min(m, n) (4)"]),
    ({"kind": "lora_mf", "spectrum": "list", "r_star": 2, "values": [1.0]}, "problem.values", ["r_star (2) entries"]),
    ({"kind": "lora_mf", "gamma": 0}, "problem.gamma", ["must be > 0"]),
    ({"kind": "lora_mf", "l2": -1}, "problem.l2", ["must be >= 0"]),
    ({"kind": "regression", "d_in": 50, "n_samples": 10}, "problem.n_samples", ["must be >= d_in (50)"]),
    ({"kind": "regression", "noise": -0.1}, "problem.noise", ["must be >= 0"]),
    ({"kind": "symmetric_mf", "d": 3}, "problem.d", ["unknown key", "allowed: kind, n, r"]),
]


def _check_error(raw, field, fragments):
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.model_validate(raw)
    message = str(info.value)
    assert "\n" not in message, message
    assert info.value.field == field, message
    assert message.startswith(field) or message.startswith("grid["), message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize(
    ("path", "value", "field", "fragments"), INVALID, ids=[f"{p}={v!r}"[:40] for p, v, *_ in INVALID]
)
def test_invalid_configs_give_one_line_naming_the_field(path, value, field, fragments):
    raw = base_raw()
    if path == "grid":
        raw["grid"] = value
    else:
        raw = set_path(raw, path, value)
    _check_error(raw, field, fragments)


@pytest.mark.parametrize(("problem", "field", "fragments"), PROBLEM_INVALID,
                         ids=[str(p)[:40] for p, *_ in PROBLEM_INVALID])
def test_invalid_problems(problem, field, fragments):
    _check_error({**base_raw(), "problem": problem}, field, fragments)


def test_missing_required_keys():
    for key, field in (("name", "name"), ("steps", "steps"), ("problem", "problem"), ("optimizer", "optimizer")):
        raw = base_raw()
        del raw[key]
        message = _check_error(raw, field, ["required"])
        assert message == f"{field}: required key is missing"


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ValueError):
        ExperimentConfig.model_validate(set_path(base_raw(), "problem.n", -1))


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("name: x\nproblem: {kind: symmetric_mf\n", r"invalid YAML at line \d+, column \d+"),
        ("name: x\nsteps: 1\nsteps: 2\n", r"invalid YAML at line 3, column 1: duplicate key 'steps'"),
        ("- a\n- b\n", r"expected a mapping of config keys at the top level, got list"),
        ("", r"empty config"),
        ("name: x\n\tsteps: 3\n", r"invalid YAML"),
    ],
)
def test_yaml_errors_are_one_line(tmp_path, text, pattern):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"no such file"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"is a directory"):
        load_config(tmp_path)


def test_metric_names_match_spec():
    """Every SPEC §5 metric is accepted, and the config accepts exactly what the engine logs."""
    from muonlab.engine.metrics import METRICS as REGISTRY
    from muonlab.engine.metrics import RUNNER_METRICS

    assert {"loss", "rel_err", "dist_to_opt", "singular_values", "effective_rank",
            "gf_invariant_norm", "muon_invariant_norm", "sharpness"} <= set(METRICS)
    assert set(METRICS) == set(REGISTRY) | set(RUNNER_METRICS)


# ----------------------------------------------------------------------------- rules across fields


@pytest.mark.parametrize(("change", "field", "start"), [
    ({"problem": {"kind": "regression"}, "optimizer": {"name": "scaledgd", "lr": 0.1}}, "optimizer.name",
     "optimizer.name: 'scaledgd' does not apply to problem kind 'regression' (layout 'matrix'); "
     "allowed kinds: symmetric_mf, two_factor_mf, lora_mf"),
    ({"problem": {"kind": "icl"}, "optimizer": {"name": "scaledgd", "lr": 0.1}}, "optimizer.name",
     "optimizer.name: 'scaledgd' does not apply to problem kind 'icl'"),
    ({"metrics": ["rel_err", "gf_invariant_norm"]}, "metrics",
     "metrics: 'gf_invariant_norm' does not apply to problem kind 'symmetric_mf'; allowed: loss, rel_err"),
    ({"optimizer": {"name": "scaledgd", "lr": 0.1, "weight_decay": 0.1}}, "optimizer.weight_decay",
     "optimizer.weight_decay: ScaledGD takes no weight decay; use 0"),
])
def test_rules_across_fields_are_refused_at_validation(change, field, start):
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.model_validate({**base_raw(), **change})
    assert str(info.value).startswith(start) and "\n" not in str(info.value)
    assert info.value.field == field


def test_rule_across_fields_in_one_grid_point_names_the_point():
    raw = {**base_raw(), "grid": {"problem": [{"kind": "symmetric_mf", "n": 6, "r": 2}, {"kind": "regression"}]},
           "optimizer": {"name": "scaledgd", "lr": 0.1}}
    raw.pop("problem")
    with pytest.raises(ConfigError, match=r"^grid\[problem=.*regression.*\]: optimizer.name: 'scaledgd' does not"):
        ExperimentConfig.model_validate(raw)


def test_allowed_combinations_pass_the_rules():
    for change in ({"problem": {"kind": "two_factor_mf", "n_out": 6, "n_in": 5, "d": 3},
                    "optimizer": {"name": "scaledgd", "lr": 0.1}, "metrics": ["gf_invariant_norm"]},
                   {"problem": {"kind": "regression"}, "optimizer": {"name": "muon", "lr": 0.1}}):
        assert ExperimentConfig.model_validate({**base_raw(), **change}).expand()


def test_cli_refuses_a_bad_combination_and_writes_nothing(tmp_path):
    from typer.testing import CliRunner

    from muonlab.cli import app

    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nproblem: {kind: regression}\noptimizer: {name: scaledgd, lr: 0.1}\nsteps: 5\n")
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "optimizer.name: 'scaledgd' does not apply" in lines[0]
    assert not (tmp_path / "out").exists()
