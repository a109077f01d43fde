"""P5 options of issue 15 (rank, teacher_kappa, init_scale): defaults leave configs, run
ids and draws unchanged; closed-form gradients equal autograd in float64."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from muonlab.config.problems import RegressionConfig
from muonlab.problems import MatrixRegression


def test_defaults_leave_the_dump_and_the_draws_unchanged():
    assert RegressionConfig().model_dump() == {"kind": "regression", "d_out": 10, "d_in": 20, "n_samples": 100,
                                               "kappa": 1.0, "noise": 0.0}
    assert "rank" in RegressionConfig(rank=3).model_dump()
    a = MatrixRegression(3, 5, 12, seed=[0, 1], kappa=[1.0, 1e3], noise=0.1)
    b = MatrixRegression(3, 5, 12, seed=[0, 1], kappa=[1.0, 1e3], noise=0.1, rank=None, teacher_kappa=None,
                         init_scale=None)
    assert torch.equal(a.target(), b.target()) and torch.equal(a.init_params()[0], torch.zeros(2, 3, 5))


def test_options_set_the_teacher_spectrum_and_the_init():
    p = MatrixRegression(5, 4, 12, seed=[0, 1], kappa=10.0, rank=2, teacher_kappa=100.0, init_scale=0.5)
    sv = p.target_spectrum()
    assert torch.allclose(sv[:, :2], torch.tensor([1.0, 0.01], dtype=torch.float64).expand(2, 2))
    assert (sv[:, 2:] < 1e-12).all()
    (W0,) = p.init_params()
    assert W0.shape == (2, 5, 4) and 0.1 < float(W0.norm(dim=(-2, -1)).mean()) < 2.0
    assert torch.equal(W0, p.init_params()[0])  # reproducible


def test_config_validates_rank():
    with pytest.raises(ValueError, match="min"):
        RegressionConfig.model_validate({"d_out": 3, "d_in": 5, "rank": 4})
    with pytest.raises(ValueError):
        RegressionConfig.model_validate({"teacher_kappa": 0.5})


@settings(max_examples=15, deadline=None)
@given(d_out=st.integers(1, 5), d_in=st.integers(1, 5), extra=st.integers(0, 4), rank=st.integers(1, 5),
       tk=st.sampled_from([None, 1.0, 30.0]), init=st.sampled_from([None, 0.0, 0.3]), noise=st.sampled_from([0.0, 0.2]))
def test_gradient_matches_autograd_in_float64(d_out, d_in, extra, rank, tk, init, noise):
    rank = min(rank, d_out, d_in)
    p = MatrixRegression(d_out, d_in, d_in + extra, seed=[3, 4], kappa=[2.0, 50.0], noise=noise, rank=rank,
                         teacher_kappa=tk, init_scale=init)
    (W0,) = p.init_params()
    W = (W0 + 0.1 * torch.randn(W0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
         ).requires_grad_(True)
    p.data_loss([W]).sum().backward()
    (g,) = p.grad([W.detach()])
    assert torch.allclose(g, W.grad, atol=1e-10, rtol=1e-8)
    assert torch.allclose(p.loss([W.detach()]), p.data_loss([W.detach()]), atol=1e-10, rtol=1e-8)
