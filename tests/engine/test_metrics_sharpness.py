"""The ``sharpness`` and ``product_det_sign`` metrics against dense autograd references."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from muonlab.engine.metrics import METRICS
from muonlab.problems import TwoFactorMF


def _hessian_top(problem: TwoFactorMF, params: list[torch.Tensor], r: int) -> float:
    """λ_max of run r's dense Hessian of ½‖W2W1 − M*‖² (torch.autograd.functional.hessian)."""
    W2, W1 = params[0][r], params[1][r]
    M = problem.target()[r]
    n2 = W2.numel()

    def f(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x[:n2].reshape(W2.shape) @ x[n2:].reshape(W1.shape) - M).square().sum()

    H = torch.autograd.functional.hessian(f, torch.cat([W2.reshape(-1), W1.reshape(-1)]))
    return float(torch.linalg.eigvalsh(H)[-1])


@settings(max_examples=8, deadline=None)
@given(n_out=st.integers(2, 5), n_in=st.integers(2, 5), d=st.integers(1, 6), seed=st.integers(0, 10_000),
       scale=st.sampled_from([0.05, 1.0, 3.0]))
def test_sharpness_is_the_top_hessian_eigenvalue(n_out, n_in, d, seed, scale):
    p = TwoFactorMF(n_out, n_in, d, seed=[seed, seed + 1], spectrum="linspace", kappa=4.0, alpha=1.0)
    g = torch.Generator().manual_seed(seed)
    params = [scale * torch.randn(2, n_out, d, generator=g, dtype=torch.float64),
              scale * torch.randn(2, d, n_in, generator=g, dtype=torch.float64)]
    got = METRICS["sharpness"](p, params)
    assert got.shape == (2,) and got.dtype == torch.float64
    for r in range(2):
        want = _hessian_top(p, params, r)
        assert float(got[r]) == pytest.approx(want, rel=1e-8, abs=1e-10)


def test_sharpness_at_the_balanced_minimizer_is_twice_the_top_target_value():
    # η_crit = 2/λ_max of seed 002's stability claim: λ_max = σ1(W1)² + σ1(W2)² = 2σ*_1.
    p = TwoFactorMF(6, 6, 6, seed=[0, 1], spectrum="diag", values=[10, 5, 3, 2, 1, 0.5])
    got = METRICS["sharpness"](p, p.minimizer())
    torch.testing.assert_close(got, torch.full((2,), 20.0, dtype=torch.float64), rtol=1e-8, atol=0)
    assert _hessian_top(p, p.minimizer(), 0) == pytest.approx(20.0, rel=1e-10)


@pytest.mark.parametrize(("n", "d"), [(3, 3), (5, 5), (4, 6)])
def test_det_sign_matches_torch_det(n, d):
    p = TwoFactorMF(n, n, d, seed=list(range(12)), spectrum="linspace", alpha=1.0)
    params = p.init_params()
    got = METRICS["product_det_sign"](p, params)
    want = torch.sign(torch.linalg.det(params[0] @ params[1]))
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert set(got.tolist()) == {-1.0, 1.0}  # 12 random inits give both orientations


def test_det_sign_flips_with_a_reflected_factor_and_is_0_for_a_rectangular_product():
    p = TwoFactorMF(4, 4, 4, seed=[3], spectrum="linspace", alpha=1.0)
    W2, W1 = p.init_params()
    flip = torch.diag(torch.tensor([-1.0, 1, 1, 1], dtype=torch.float64))
    a = METRICS["product_det_sign"](p, [W2, W1])
    b = METRICS["product_det_sign"](p, [W2 @ flip, W1])
    assert float(a[0]) == -float(b[0]) != 0
    q = TwoFactorMF(3, 5, 4, seed=[0], spectrum="linspace", alpha=1.0)
    assert (METRICS["product_det_sign"](q, q.init_params()) == 0).all()
