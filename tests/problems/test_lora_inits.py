"""P4's initializations (LoRAMF ``init``) and the dynamics metrics of
muonlab.engine.lora_dynamics_metrics, against direct computations (float64)."""

from __future__ import annotations

import pytest
import torch

from muonlab.config import ConfigError, ExperimentConfig
from muonlab.config.problems import LoRAMFConfig
from muonlab.engine.metrics import compute_metrics
from muonlab.errors import MuonlabError
from muonlab.problems import LoRAMF

VALUES = [2.0, 1.0, 0.5, 0.25]


def _p(init=None, gamma=1e-3, **kw):
    kw.setdefault("spectrum", "list")
    kw.setdefault("values", VALUES)
    return LoRAMF(9, 11, 4, seed=[0, 1], gamma=gamma, init=init, **kw)


def test_default_init_is_the_lora_init_unchanged():
    a, b = _p().init_params(), _p("zero_a").init_params()
    assert torch.equal(a[0], torch.zeros_like(a[0])) and torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])


def test_random_init_draws_both_factors_at_scale_gamma():
    A, B = _p("random", gamma=0.5).init_params()
    _, B0 = _p("zero_a", gamma=0.5).init_params()
    assert torch.equal(B, B0)  # B from the same stream as the LoRA init; A from its own
    assert 0.3 < float(A.std()) < 0.7 and not torch.equal(A[0], A[1])


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_saddle_is_a_critical_point_that_is_not_a_minimum(l2):
    for j in range(4):
        p = _p("saddle", gamma=1e-12, saddle_mode=j, l2=l2)
        params = p.init_params()
        grads = p.grad(params)
        assert max(float(g.abs().max()) for g in grads) < 1e-10
        gap = p.loss(params) - p.optimum_loss()
        s = VALUES[j]
        lost = 0.5 * s**2 - (l2 * s - 0.5 * l2**2 if s > l2 else 0.5 * s**2)  # mode j off instead of on
        assert torch.allclose(gap, torch.full_like(gap, lost), rtol=1e-8)


def test_minimum_perturbation_has_relative_size_gamma():
    for eps in (1e-3, 0.5):
        p = _p("minimum", gamma=eps)
        d = compute_metrics(p, p.init_params(), ["dist_to_minimizer"])["dist_to_minimizer"]
        assert torch.allclose(d, torch.full_like(d, eps), rtol=1e-12)
    p = _p("minimum", gamma=[1e-3, 1e-1])  # γ per run
    d = compute_metrics(p, p.init_params(), ["dist_to_minimizer"])["dist_to_minimizer"]
    assert torch.allclose(d, torch.tensor([1e-3, 1e-1], dtype=d.dtype), rtol=1e-12)


def test_gradients_at_the_new_inits_match_autograd():
    for init in ("random", "saddle", "minimum"):
        p = _p(init, gamma=0.3, l2=0.05)
        params = [x.clone().requires_grad_(True) for x in p.init_params()]
        auto = torch.autograd.grad(p.loss(params).sum(), params)
        for g, a in zip(p.grad([x.detach() for x in params]), auto):
            assert torch.allclose(g, a, atol=1e-12)


def test_metrics_against_direct_computation():
    p = _p("random", gamma=0.3)
    A, B = p.init_params()
    m = compute_metrics(p, [A, B], ["target_mode_values", "factor_norms", "dist_to_minimizer"])
    U, _, Vh = torch.linalg.svd(p.target())
    direct = torch.diagonal(U[..., :4].mT @ (A @ B) @ Vh[..., :4, :].mT, dim1=-2, dim2=-1)
    assert torch.allclose(m["target_mode_values"], direct, atol=1e-12)
    assert torch.allclose(m["factor_norms"], torch.stack([A.flatten(1).norm(dim=1), B.flatten(1).norm(dim=1)], -1))
    As, Bs = p.minimizer()
    num = ((A - As).flatten(1).square().sum(1) + (B - Bs).flatten(1).square().sum(1)).sqrt()
    den = (As.flatten(1).square().sum(1) + Bs.flatten(1).square().sum(1)).sqrt()
    assert torch.allclose(m["dist_to_minimizer"], num / den)
    at_min = compute_metrics(p, p.minimizer(), ["target_mode_values", "dist_to_minimizer"])
    assert torch.allclose(at_min["target_mode_values"], torch.tensor(VALUES, dtype=torch.float64).expand(2, 4))
    assert float(at_min["dist_to_minimizer"].abs().max()) == 0.0


def test_bad_init_arguments():
    with pytest.raises(MuonlabError, match="init"):
        _p("sideways")
    with pytest.raises(MuonlabError, match="saddle_mode: only used with init 'saddle'"):
        _p("minimum", saddle_mode=1)
    with pytest.raises(MuonlabError, match="saddle_mode: must be <="):
        _p("saddle", saddle_mode=4)


def test_config_fields_are_additive():
    # left out of the dump when unset: old configs keep their hashes and run ids
    assert "init" not in LoRAMFConfig().model_dump() and "saddle_mode" not in LoRAMFConfig().model_dump()
    assert LoRAMFConfig(init="saddle", saddle_mode=2).model_dump()["saddle_mode"] == 2
    base = {"name": "x", "problem": {"kind": "lora_mf"}, "optimizer": {"name": "specgd", "lr": 0.01}, "steps": 5}
    h0 = ExperimentConfig.model_validate(base).config_hash
    h1 = ExperimentConfig.model_validate({**base, "problem": {"kind": "lora_mf", "init": "zero_a"}}).config_hash
    assert h0 != h1  # naming the init makes it part of the configuration
    with pytest.raises(ConfigError, match="problem.saddle_mode"):
        ExperimentConfig.model_validate({**base, "problem": {"kind": "lora_mf", "init": "minimum", "saddle_mode": 0}})
    with pytest.raises(ConfigError, match="problem.saddle_mode"):
        ExperimentConfig.model_validate({**base, "problem": {"kind": "lora_mf", "init": "saddle", "saddle_mode": 5}})
    with pytest.raises(ConfigError, match="problem.init"):
        ExperimentConfig.model_validate({**base, "problem": {"kind": "lora_mf", "init": "other"}})
