"""Gradient noise (issue 15 [beyond], item 2): the optional ``gradient_noise`` run field and
symmetric MF's mini-batch gradient (``problem.entry_fraction``)."""

import copy
import math

import pytest
import torch

from muonlab.config import ConfigError, ExperimentConfig, batch_key
from muonlab.engine.batch import build_batch
from muonlab.engine.noise import GradientNoise
from muonlab.engine.solvers import run_batch
from muonlab.problems.symmetric_mf import SymmetricMF

from helpers import tiny_sweep

# Recorded with the code before gradient noise existed (tests/helpers.tiny_sweep("t")).
OLD_HASH = "7c9b55a057baa5a5"
OLD_RUN_IDS = ["3826b94132ddd905", "60b6ba3bca908861", "4d12dd794fc2406b", "8ae3be51b7ac211c"]
OLD_BATCH_KEY = "31b840cbfb666442"


def _config(**extra):
    raw = tiny_sweep("t")
    raw.update(extra)
    return ExperimentConfig.model_validate(raw)


def _final(runs):
    res = run_batch(runs)
    traj = res.trajectories
    return res, traj.sort_values(["run_id", "step", "metric"]).reset_index(drop=True)


def test_unset_noise_keeps_hashes_and_run_ids():
    cfg = _config()
    assert cfg.config_hash == OLD_HASH
    runs = cfg.expand()
    assert [r.run_id for r in runs] == OLD_RUN_IDS
    assert batch_key(runs[0]) == OLD_BATCH_KEY
    assert "gradient_noise" not in runs[0].resolved()
    assert "entry_fraction" not in runs[0].resolved()["problem"]


def test_sigma_zero_is_bit_identical_to_no_noise():
    plain = _config().expand()
    zero = _config(gradient_noise={"kind": "additive", "sigma": 0.0}).expand()
    assert zero[0].run_id != plain[0].run_id  # a different config, the same numbers
    _, a = _final(plain[:2])
    _, b = _final(zero[:2])
    assert torch.equal(torch.tensor(a["value"].to_numpy()), torch.tensor(b["value"].to_numpy()))


@pytest.mark.parametrize("scale", ["absolute", "relative"])
def test_noise_is_independent_of_batching(scale):
    cfg = _config(gradient_noise={"kind": "additive", "sigma": 0.3, "scale": scale},
                  grid={"problem.kappa": [1.0, 10.0], "gradient_noise.sigma": [0.1, 0.5]})
    runs = cfg.expand()
    assert len({batch_key(r) for r in runs}) == 1  # σ is batchable: one batch
    _, together = _final(runs)
    for r in runs[:3]:
        _, alone = _final([r])
        mine = together[together["run_id"] == r.run_id].reset_index(drop=True)
        assert torch.equal(torch.tensor(mine["value"].to_numpy()), torch.tensor(alone["value"].to_numpy()))


def test_noise_changes_the_run_and_is_reproducible():
    runs = _config(gradient_noise={"kind": "additive", "sigma": 0.05}).expand()[:1]
    plain = _config().expand()[:1]
    _, a = _final(runs)
    _, b = _final(runs)
    _, c = _final(plain)
    assert a["value"].equals(b["value"])
    assert not a["value"].equals(c["value"])


def test_absolute_noise_statistics():
    noise = GradientNoise([0.5, 2.0], [0, 1], "absolute")
    g = torch.zeros(2, 200, 100, dtype=torch.float64)
    out = noise.apply([g])[0]
    for i, s in enumerate([0.5, 2.0]):
        x = out[i].flatten()
        n = x.numel()
        assert abs(float(x.mean())) < 4 * s / math.sqrt(n)  # mean zero
        assert abs(float(x.var()) / s**2 - 1) < 4 * math.sqrt(2 / n)  # variance σ²
    assert torch.equal(g, torch.zeros_like(g))  # input untouched


def test_relative_noise_statistics():
    g = torch.randn(3, 50, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    g[1] *= 100.0
    noise = GradientNoise([0.3, 0.3, 0.0], [0, 1, 2], "relative")
    d = noise.apply([g])[0] - g
    for i in range(2):  # E‖G̃ − G‖² = σ²‖G‖²
        ratio = float(d[i].square().sum() / g[i].square().sum())
        assert abs(ratio / 0.09 - 1) < 4 * math.sqrt(2 / g[i].numel())
    assert torch.equal(d[2], torch.zeros_like(d[2]))


def test_streams_are_per_seed():
    a = GradientNoise([1.0, 1.0], [3, 4], "absolute").draw((5,))
    b = GradientNoise([1.0], [4], "absolute").draw((5,))
    assert torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])


@pytest.mark.parametrize("noise, message", [
    ({"kind": "additive", "sigma": -1.0}, "gradient_noise.sigma"),
    ({"kind": "additive", "sigma": 0.1, "scale": "huge"}, "gradient_noise.scale"),
    ({"kind": "multiplicative", "sigma": 0.1}, "gradient_noise.kind"),
    ({"kind": "additive"}, "gradient_noise.sigma"),
    ({"kind": "additive", "sigma": 0.1, "extra": 1}, "gradient_noise"),
])
def test_bad_noise_configs_are_one_line_errors(noise, message):
    with pytest.raises(ConfigError) as e:
        _config(gradient_noise=noise)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_flow_refuses_noise():
    raw = {"name": "f", "problem": {"kind": "lora_mf", "m": 6, "n": 5, "r": 2},
           "optimizer": {"name": "specgf", "dt": 0.1}, "steps": 3,
           "gradient_noise": {"kind": "additive", "sigma": 0.1}}
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.model_validate(raw)
    assert "gradient_noise" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("p", [0.0, 1.5, -0.2])
def test_bad_entry_fraction(p):
    raw = tiny_sweep("t")
    raw["problem"] = {**raw["problem"], "entry_fraction": p}
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.model_validate(raw)
    assert "problem.entry_fraction" in str(e.value) and "\n" not in str(e.value)


def _mf(p, seeds=(0, 1)):
    return SymmetricMF(8, 3, seed=list(seeds), kappa=10.0, alpha=0.3, entry_fraction=p)


def test_minibatch_mask_is_symmetric_with_rate_p():
    prob = _mf(0.3, seeds=(0,))
    masks = torch.stack([prob.entry_mask() for _ in range(150)])
    assert torch.equal(masks, masks.mT)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    rate = float(masks.mean())
    assert abs(rate - 0.3) < 4 * math.sqrt(0.3 * 0.7 / (150 * 36))  # 36 = independent pairs of 8×8


def test_minibatch_gradient_is_unbiased_and_exact_at_p1():
    prob = _mf(0.25)
    X = prob.init_params()
    full = prob.grad(X)[0]
    draws = torch.stack([prob.minibatch_grad(X, prob.entry_mask()) for _ in range(800)])
    se = draws.std(0) / math.sqrt(draws.shape[0])
    assert bool(((draws.mean(0) - full).abs() <= 5 * se + 1e-12).all())
    one = _mf(1.0)
    loss, (g,), rel = one.evaluate(X)
    assert torch.allclose(g, full, atol=1e-14, rtol=1e-12)
    # loss and error stay exact under mini-batching
    l2, _, r2 = prob.evaluate(X)
    assert torch.allclose(l2, loss) and torch.allclose(r2, rel)


def test_minibatch_gradient_matches_autograd_of_sampled_loss():
    prob = _mf(0.5)
    X = prob.init_params()[0].clone().requires_grad_(True)
    mask = prob.entry_mask()
    E = X @ X.mT - prob.target()
    (0.25 * (mask * E.square()).sum() / 0.5).backward()
    assert torch.allclose(X.grad, prob.minibatch_grad([X.detach()], mask), atol=1e-13)


def test_minibatch_runs_are_independent_of_batching():
    raw = copy.deepcopy(tiny_sweep("t"))
    raw["problem"] = {**raw["problem"], "entry_fraction": 0.4}
    runs = ExperimentConfig.model_validate(raw).expand()
    _, together = _final(runs)
    _, alone = _final([runs[2]])
    mine = together[together["run_id"] == runs[2].run_id].reset_index(drop=True)
    assert mine["value"].equals(alone["value"])
    assert build_batch(runs).problem.stochastic
