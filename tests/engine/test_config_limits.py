"""Every number in a config is bounded at validation (issue 14, items 2 and 5).

Integers beyond int64 used to pass validation and crash with a traceback after
``meta.json`` was written (the store's int64 columns); ``momentum=1.5`` was accepted.
Each case here is refused by :func:`muonlab.config.load_config` /
``ExperimentConfig.model_validate`` in ONE line naming the field and its allowed
range, and by ``muonlab run`` with exit 2 before anything is written to ``--out``.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from muonlab.cli import app
from muonlab.config import ConfigError, ExperimentConfig, apply_overrides, load_config
from muonlab.config.limits import MAX_NS_STEPS, MAX_SEED, MAX_SIZE, MAX_STEPS

BASE = {
    "name": "limits",
    "problem": {"kind": "symmetric_mf", "n": 6, "r": 2},
    "optimizer": {"name": "gd", "lr": 0.1},
    "steps": 3,
}
HUGE = "99999999999999999999999"


def _refused(overrides: list[str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.model_validate(apply_overrides(BASE, overrides))
    message = str(info.value)
    assert "\n" not in message
    return info.value


# ----------------------------------------------------------------------------- integers (item 2)

INTEGER_CASES = [
    # (override, field named, the range in the message)
    (f"problem.n={HUGE}", "problem.n", f"<= {MAX_SIZE}"),
    ("problem.n=1e19", "problem.n", f"<= {MAX_SIZE}"),
    (f"problem.r={HUGE}", "problem.r", f"<= {MAX_SIZE}"),
    (f"problem.r_star={HUGE}", "problem.r_star", f"<= {MAX_SIZE}"),
    ("steps=1e19", "steps", f"<= {MAX_STEPS}"),
    (f"steps={HUGE}", "steps", f"<= {MAX_STEPS}"),
    (f"log_every={HUGE}", "log_every", f"<= {MAX_STEPS}"),
    ("log_every=1e30", "log_every", f"<= {MAX_STEPS}"),
    ("seeds=[99999999999999999999]", "seeds", f"<= {MAX_SEED}"),
    (f"seeds=[0, {2**63}]", "seeds", f"<= {MAX_SEED}"),
    ("schedule={name: plateau, patience: 1e30}", "schedule.patience", f"<= {MAX_STEPS}"),
    ("schedule={name: warmup_cosine, warmup: 0, total: 1e30}", "schedule.total", f"<= {MAX_STEPS}"),
    ("schedule={name: warmup_cosine, warmup: -1, total: 10}", "schedule.warmup", ">= 0"),
    ("optimizer={name: muon, lr: 0.1, ns_steps: 1e12}", "optimizer.ns_steps", f"<= {MAX_NS_STEPS}"),
    ("problem={kind: icl, d: 3, prompts: 1e30}", "problem.prompts", f"<= {MAX_SIZE}"),
    ("problem={kind: icl, d: 3, n_design: 1e30}", "problem.n_design", f"<= {MAX_SIZE}"),
    ("problem={kind: two_factor_mf, n_out: 1e30}", "problem.n_out", f"<= {MAX_SIZE}"),
    ("problem={kind: lora_mf, m: 1e30}", "problem.m", f"<= {MAX_SIZE}"),
    ("problem={kind: lora_mf, init: saddle, saddle_mode: 1e30}", "problem.saddle_mode", f"<= {MAX_SIZE}"),
    ("problem={kind: regression, n_samples: 1e30}", "problem.n_samples", f"<= {MAX_SIZE}"),
]


@pytest.mark.parametrize(("override", "field", "bound"), INTEGER_CASES)
def test_integers_beyond_their_range_are_refused_in_one_line(override: str, field: str, bound: str) -> None:
    error = _refused([override])
    assert error.field == field
    assert str(error).startswith(f"{field}: must be ")
    assert bound in str(error), str(error)
    assert re.search(r">=? -?\d+ and <=? \d+", str(error)), f"the message names the whole range: {error}"


def test_a_grid_with_one_huge_value_is_refused_as_a_whole() -> None:
    # The bug: grid.problem.n=[6, 1e20] committed the n = 6 part, then crashed on every rerun.
    error = _refused([f"grid.problem.n=[6, {HUGE}]"])
    assert error.field == "problem.n"
    assert str(error).startswith(f"grid[problem.n={HUGE}]: problem.n: must be >= 1 and <= {MAX_SIZE}")


def test_the_largest_allowed_values_are_accepted() -> None:
    cfg = ExperimentConfig.model_validate(apply_overrides(BASE, [
        f"seeds=[0, {MAX_SEED}]", f"log_every={MAX_STEPS}", f"steps={MAX_STEPS}",
    ]))
    runs = cfg.expand()
    assert [r.seed for r in runs] == [0, MAX_SEED]
    assert runs[0].flat()["max_steps"] == MAX_STEPS


def test_run_spec_bounds_its_seed() -> None:
    from muonlab.config import RunSpec

    run = ExperimentConfig.model_validate(BASE).expand()[0]
    data = run.model_dump() | {"seed": MAX_SEED + 1}
    with pytest.raises(ConfigError, match=rf"^seed: must be >= 0 and <= {MAX_SEED}, got"):
        RunSpec.model_validate(data)


# ----------------------------------------------------------------------------- optimizer numbers (item 5)

OPTIMIZER_CASES = [
    ("optimizer.lr=.inf", "optimizer.lr", "finite"),
    ("optimizer.lr=.nan", "optimizer.lr", "finite"),
    ("optimizer.lr=-0.1", "optimizer.lr", "> 0"),
    ("optimizer.lr=0", "optimizer.lr", "> 0"),
    ("optimizer.momentum=1.5", "optimizer.momentum", ">= 0 and < 1"),
    ("optimizer.momentum=1", "optimizer.momentum", ">= 0 and < 1"),
    ("optimizer.momentum=-0.5", "optimizer.momentum", ">= 0 and < 1"),
    ("optimizer.momentum=.nan", "optimizer.momentum", "finite"),
    ("optimizer.weight_decay=-1", "optimizer.weight_decay", ">= 0"),
    ("optimizer.weight_decay=.inf", "optimizer.weight_decay", "finite"),
    ("optimizer={name: muon, lr: 0.1, momentum: 1.5}", "optimizer.momentum", ">= 0 and < 1"),
    ("optimizer={name: specgd, lr: 0.1, momentum: 2}", "optimizer.momentum", ">= 0 and < 1"),
    ("optimizer={name: specgd_beta, lr: 0.1, beta: 0.1, momentum: 1}", "optimizer.momentum", ">= 0 and < 1"),
    ("optimizer={name: signgd, lr: 0.1, momentum: 1.0}", "optimizer.momentum", ">= 0 and < 1"),
    ("optimizer={name: adam, lr: 0.1, betas: [0.9, 1.0]}", "optimizer.betas[1]", ">= 0 and < 1"),
    ("optimizer={name: adam, lr: 0.1, betas: [-0.1, 0.9]}", "optimizer.betas[0]", ">= 0 and < 1"),
    ("optimizer={name: adam, lr: 0.1, betas: [.nan, 0.9]}", "optimizer.betas[0]", "finite"),
    ("optimizer={name: adam, lr: 0.1, eps: 0}", "optimizer.eps", "> 0"),
    ("optimizer={name: adam, lr: 0.1, eps: -1e-8}", "optimizer.eps", "> 0"),
    ("optimizer={name: adam, lr: .inf}", "optimizer.lr", "finite"),
    ("optimizer={name: specgf, dt: .inf}", "optimizer.dt", "finite"),
    ("optimizer={name: muon, lr: 0.1, beta: -1, method: beta}", "optimizer.beta", ">= 0"),
    (f"optimizer.lr={'9' * 400}", "optimizer.lr", "finite"),
    (f"problem.kappa={'9' * 400}", "problem.kappa", "finite"),
]


@pytest.mark.parametrize(("override", "field", "words"), OPTIMIZER_CASES)
def test_optimizer_numbers_out_of_range_are_refused_in_one_line(override: str, field: str, words: str) -> None:
    error = _refused([override])
    assert error.field == field
    assert str(error).startswith(f"{field}: must be ")
    assert words in str(error), str(error)


def test_momentum_just_below_one_is_accepted() -> None:
    for name in ("gd", "signgd", "muon", "specgd"):
        cfg = ExperimentConfig.model_validate(apply_overrides(BASE, [f"optimizer={{name: {name}, lr: 0.1}}",
                                                                     "optimizer.momentum=0.999"]))
        assert cfg.optimizer.momentum == 0.999  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- the CLI: exit 2, nothing written

CONFIG = textwrap.dedent(
    """
    name: limits
    problem: {kind: symmetric_mf, n: 6, r: 2}
    optimizer: {name: gd, lr: 0.1}
    steps: 3
    """
)


@pytest.mark.parametrize("override", [
    f"problem.n={HUGE}", "steps=1e19", "seeds=[99999999999999999999]", "log_every=1e30",
    f"grid.problem.n=[6,{HUGE}]", "optimizer.lr=.inf", "optimizer.momentum=1.5",
])
def test_cli_refuses_before_writing(tmp_path: Path, override: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(config), "--set", override, "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: Invalid value for 'CONFIG': "), result.output
    assert not out.exists()


def test_load_config_refuses_a_huge_seed_in_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG + "seeds: [1, 99999999999999999999]\n")
    with pytest.raises(ConfigError, match=rf"^seeds: must be a list of integers >= 0 and <= {MAX_SEED}, got 9+$"):
        load_config(config)
