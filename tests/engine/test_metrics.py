"""Trajectory metrics and the per-step metric registry (muonlab.engine.metrics).

Per-step metrics are checked on small stand-in problems defined here (a two-factor
MF ``½‖AB − M‖²`` and a symmetric ``¼‖XXᵀ − M‖²``) at points where the answer is
known in closed form: the balanced global minimum, where the invariants vanish, the
alignment is perfect and the Hessian's top eigenvalue is 2σ₁(M).
"""

from __future__ import annotations

import math

import pytest
import torch

from muonlab.engine.metrics import (
    DEFAULT_METRICS,
    METRICS,
    available_metrics,
    compute_metrics,
    is_diverged,
    is_smallest_first,
    per_mode_progress,
    steps_to,
    steps_to_many,
    time_to_fraction,
)
from muonlab.linalg.spectral import effective_rank
from muonlab.problems import LoRAMF, SymmetricMF, TwoFactorMF
from muonlab.problems.base import Problem

from helpers import F64, orthonormal, randn

# ---------------------------------------------------------------------------
# trajectory metrics
# ---------------------------------------------------------------------------


def test_steps_to_single_and_batched():
    assert steps_to([1.0, 0.5, 0.1, 0.2, 0.01], 0.15) == [2]
    assert steps_to([1.0, 0.5, 0.1, 0.2, 0.01], 0.1) == [2]  # ≤ counts
    assert steps_to([1.0, 0.5], 1e-3) == [None]
    curve = torch.tensor(
        [[1.0, 1.0, float("nan")], [1e-3, 0.5, float("nan")], [1e-5, 1e-5, float("nan")], [1e-9, 1e-4, 1.0]],
        dtype=F64,
    )
    assert steps_to(curve, 1e-4) == [2, 2, None]  # NaN never reaches
    assert steps_to(curve, 1e-8) == [3, None, None]
    # Rows logged every 10 steps.
    assert steps_to(curve, 1e-4, steps=[0, 10, 20, 30]) == [20, 20, None]
    many = steps_to_many(curve, [1e-4, 1e-8])
    assert many == {1e-4: [2, 2, None], 1e-8: [3, None, None]}
    with pytest.raises(ValueError, match="steps"):
        steps_to(curve, 1e-4, steps=[0, 10])


def test_steps_to_geometric_decay_matches_closed_form():
    # e_t = q^t: first t with q^t ≤ eps is ceil(log eps / log q).
    q = torch.tensor([0.5, 0.9, 0.99], dtype=F64)
    t = torch.arange(3000, dtype=F64)[:, None]
    curve = q**t
    for eps in (1e-4, 1e-8):
        expected = [math.ceil(math.log(eps) / math.log(float(qi)) - 1e-9) for qi in q]
        assert steps_to(curve, eps) == expected


def test_is_diverged():
    loss = torch.tensor([1.0, float("nan"), float("inf"), 5e6, 2e6, -float("inf")], dtype=F64)
    ref = torch.full((6,), 2.0, dtype=F64)
    flags = is_diverged(loss, blowup=1e6, reference=ref)
    assert flags.tolist() == [False, True, True, True, False, True]
    # Without a reference the threshold is absolute.
    assert is_diverged(loss, blowup=3e6).tolist() == [False, True, True, True, False, True]
    # A zero reference uses the floor, so the threshold stays positive.
    assert is_diverged(torch.tensor([0.0, 1e-3]), 10.0, reference=torch.zeros(2), floor=1e-6).tolist() == [False, True]
    # blowup = inf: finiteness only.
    assert is_diverged(torch.tensor([1e300, float("nan")], dtype=F64), math.inf, reference=torch.ones(2)).tolist() == [
        False,
        True,
    ]


def test_per_mode_progress_time_to_fraction_smallest_first():
    # Mode i grows linearly and saturates at its target at time tau_i (SpecGD-like:
    # smaller targets first); mode progress reaches 0.9 at ceil(0.9·tau_i).
    s_star = torch.tensor([[4.0, 2.0, 1.0], [4.0, 2.0, 1.0]], dtype=F64)
    tau = torch.tensor([[30.0, 20.0, 10.0], [10.0, 20.0, 30.0]], dtype=F64)  # run 1: largest first (GD-like)
    t = torch.arange(60, dtype=F64)[:, None, None]
    s = s_star * (t / tau).clamp(max=1.0)  # (T, R, k)
    progress = per_mode_progress(s, s_star)
    torch.testing.assert_close(progress[-1], torch.ones(2, 3, dtype=F64))
    times = time_to_fraction(progress, 0.9)
    assert times.tolist() == [[27, 18, 9], [9, 18, 27]]
    assert is_smallest_first(times).tolist() == [True, False]
    # Logged every 5 steps: report step numbers.
    assert time_to_fraction(progress[::5], 0.9, steps=torch.arange(0, 60, 5)).tolist() == [[30, 20, 10], [10, 20, 30]]
    # Never reached → −1, and then not "smallest first".
    never = time_to_fraction(progress[:15], 0.9)
    assert never.tolist() == [[-1, -1, 9], [9, -1, -1]]
    assert is_smallest_first(never).tolist() == [False, False]
    # More modes than targets: the first min(k, k*) are compared.
    assert per_mode_progress(torch.ones(2, 5, dtype=F64), s_star).shape == (2, 3)


# ---------------------------------------------------------------------------
# stand-in problems
# ---------------------------------------------------------------------------


class TinyMF(Problem):
    """½‖AB − M‖²_F with M = U diag(σ) Vᵀ of rank r*, A (m×r), B (r×n), r ≥ r*."""

    kind = "tiny_mf"
    layout = "product"

    def __init__(self, n_runs=3, m=7, n=5, r=3, sigma=(3.0, 2.0, 0.5), seed=0):
        super().__init__(n_runs)
        self.m, self.n, self.r = m, n, r
        self.sigma = torch.tensor(sigma, dtype=F64)
        k = len(sigma)
        self.U = orthonormal(n_runs, n=m, k=k, seed=seed)
        self.V = orthonormal(n_runs, n=n, k=k, seed=seed + 1)
        self.M = (self.U * self.sigma) @ self.V.mT
        self.seed = seed

    def init_params(self):
        return [
            0.3 * randn(self.n_runs, self.m, self.r, seed=self.seed + 2),
            0.3 * randn(self.n_runs, self.r, self.n, seed=self.seed + 3),
        ]

    def balanced_optimum(self):
        k = len(self.sigma)
        A = torch.zeros(self.n_runs, self.m, self.r, dtype=F64)
        B = torch.zeros(self.n_runs, self.r, self.n, dtype=F64)
        A[..., :k] = self.U * self.sigma.sqrt()
        B[..., :k, :] = self.sigma.sqrt()[:, None] * self.V.mT
        return [A, B]

    def loss(self, params):
        A, B = params
        return 0.5 * (A @ B - self.M).square().sum(dim=(-2, -1))

    def grad(self, params):
        A, B = params
        E = A @ B - self.M
        return [E @ B.mT, A.mT @ E]

    def rel_err(self, params):
        A, B = params
        return torch.linalg.matrix_norm(A @ B - self.M) / torch.linalg.matrix_norm(self.M)

    def optimum_loss(self):
        return torch.zeros(self.n_runs, dtype=F64)

    def end_to_end(self, params):
        A, B = params
        return A @ B

    def target(self):
        return self.M


class TinySymmetric(Problem):
    """¼‖XXᵀ − M‖² (layout "symmetric"), no invariants."""

    kind = "tiny_sym"
    layout = "symmetric"

    def __init__(self, n_runs=2, n=6, r=2):
        super().__init__(n_runs)
        U = orthonormal(n_runs, n=n, k=r, seed=5)
        self.lam = torch.tensor([2.0, 0.5], dtype=F64)
        self.M = (U * self.lam) @ U.mT
        self.X0 = 0.1 * randn(n_runs, n, r, seed=6)

    def init_params(self):
        return [self.X0.clone()]

    def loss(self, params):
        (X,) = params
        return 0.25 * (X @ X.mT - self.M).square().sum(dim=(-2, -1))

    def grad(self, params):
        (X,) = params
        return [(X @ X.mT - self.M) @ X]

    def rel_err(self, params):
        (X,) = params
        return torch.linalg.matrix_norm(X @ X.mT - self.M) / torch.linalg.matrix_norm(self.M)

    def optimum_loss(self):
        return torch.zeros(self.n_runs, dtype=F64)

    def end_to_end(self, params):
        (X,) = params
        return X @ X.mT

    def target(self):
        return self.M


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------


def test_metrics_at_random_point_match_direct_computation():
    prob = TinyMF(r=4)  # inner width 4 > target rank 3: factor alignment is not trivial
    params = prob.init_params()
    A, B = params
    out = compute_metrics(prob, params)
    assert set(out) == {n for n in DEFAULT_METRICS if METRICS[n].applies(prob)}
    assert "eigen_coordinates" not in out  # P1-only (symmetric, with an eigenbasis)
    assert "sharpness" not in out  # expensive: only on request
    for name, v in out.items():
        assert v.shape[0] == prob.n_runs, name
    torch.testing.assert_close(out["loss"], 0.5 * (A @ B - prob.M).square().sum((-2, -1)))
    torch.testing.assert_close(out["dist_to_opt"], out["loss"])  # optimum loss 0
    torch.testing.assert_close(out["singular_values"], torch.linalg.svdvals(A @ B)[:, : prob.r])
    torch.testing.assert_close(out["mode_progress"], out["singular_values"][:, :3] / prob.sigma)
    torch.testing.assert_close(out["effective_rank"], effective_rank(torch.linalg.svdvals(A @ B)))
    torch.testing.assert_close(out["gf_invariant_norm"], torch.linalg.matrix_norm(A.mT @ A - B @ B.mT))
    def psd_sqrt(S):
        lam, V = torch.linalg.eigh(S)
        return (V * lam.clamp_min(0).sqrt().unsqueeze(-2)) @ V.mT

    torch.testing.assert_close(out["muon_invariant_norm"],
                               torch.linalg.matrix_norm(psd_sqrt(A.mT @ A) - psd_sqrt(B @ B.mT)))
    # A random point is not aligned with the target.
    assert bool((out["target_alignment"] < 0.99).all())
    assert bool(((out["factor_alignment"] > 0) & (out["factor_alignment"] < 0.99)).all())
    # The runner's calling convention: METRICS[name](problem, params).
    for name in out:
        torch.testing.assert_close(METRICS[name](prob, params), out[name])


def test_metrics_at_balanced_optimum():
    prob = TinyMF(r=4)  # over-parameterized: rank 3 target, 4 inner directions
    params = prob.balanced_optimum()
    out = compute_metrics(prob, params, names=available_metrics(prob))
    zeros = torch.zeros(prob.n_runs, dtype=F64)
    ones = torch.ones(prob.n_runs, dtype=F64)
    torch.testing.assert_close(out["loss"], zeros, atol=1e-24, rtol=0)
    torch.testing.assert_close(out["rel_err"], zeros, atol=1e-14, rtol=0)
    torch.testing.assert_close(out["singular_values"][:, :3], prob.sigma.expand(prob.n_runs, 3))
    torch.testing.assert_close(out["singular_values"][:, 3], zeros, atol=1e-14, rtol=0)
    # Balanced: AᵀA = BBᵀ, so both invariants vanish.
    torch.testing.assert_close(out["gf_invariant_norm"], zeros, atol=1e-13, rtol=0)
    torch.testing.assert_close(out["muon_invariant_norm"], zeros, atol=1e-7, rtol=0)
    torch.testing.assert_close(out["target_alignment"], ones)
    torch.testing.assert_close(out["factor_alignment"], ones)
    # λ_max of the Hessian of ½‖AB − M‖² at a balanced minimum is 2σ₁(M):
    # q(dA, dB) = ‖dA·B + A·dB‖² ≤ 2σ₁(‖dA‖² + ‖dB‖²), attained at (u₁e₁ᵀ, e₁v₁ᵀ)/√2.
    torch.testing.assert_close(out["sharpness"], 2 * prob.sigma[0].expand(prob.n_runs), rtol=1e-6, atol=0)
    # GD critical step size 2/λ_max = 1/σ₁.


def test_symmetric_problem_and_inapplicable_metrics():
    prob = TinySymmetric()
    (X,) = params = prob.init_params()
    names = available_metrics(prob)
    assert "gf_invariant_norm" not in names and "muon_invariant_norm" not in names and "factor_alignment" not in names
    assert "target_alignment" in names and "sharpness" in names
    assert "sharpness" not in available_metrics(prob, cheap_only=True)
    out = compute_metrics(prob, params)
    # X Xᵀ is PSD: its singular values are the eigenvalues.
    torch.testing.assert_close(out["singular_values"], torch.linalg.eigvalsh(X @ X.mT).flip(-1)[:, :2])
    with pytest.raises(ValueError, match="does not apply"):
        METRICS["gf_invariant_norm"](prob, params)
    with pytest.raises(ValueError, match="unknown"):
        compute_metrics(prob, params, ["no_such_metric"])
    # At the optimum X = U sqrt(λ), the top eigenvalue of the Hessian of ¼‖XXᵀ − M‖² is
    # 2λ₁ (direction dX = u₁e₁ᵀ: q = ½‖dX Xᵀ + X dXᵀ‖² = ½·(2√λ₁)² = 2λ₁; the bound
    # ‖dX Xᵀ + X dXᵀ‖ ≤ 2√λ₁‖dX‖ makes it the maximum).
    lam = prob.lam
    _, U = torch.linalg.eigh(prob.M)
    Xs = U[..., -2:].flip(-1) * lam.sqrt()
    sharp = METRICS["sharpness"](prob, [Xs])
    torch.testing.assert_close(sharp, 2 * lam[0].expand(prob.n_runs), rtol=1e-6, atol=0)
    torch.testing.assert_close(METRICS["target_alignment"](prob, [Xs]), torch.ones(prob.n_runs, dtype=F64))


def test_invariant_metric_tracks_gradient_descent():
    """Under small-step GD (time 20 at η = 4e-3) on the stand-in problem, the loss drops by
    orders of magnitude and each Gram matrix AᵀA moves by O(1), while gf_invariant_norm
    moves by O(η) only; the logged singular values approach the target's."""
    prob = TinyMF()
    params = prob.init_params()
    A0 = params[0]
    start = compute_metrics(prob, params, ["loss", "gf_invariant_norm"])
    lr = 4e-3
    for _ in range(5000):
        g = prob.grad(params)
        params = [p - lr * gp for p, gp in zip(params, g)]
    end = compute_metrics(prob, params, ["loss", "gf_invariant_norm", "singular_values", "mode_progress"])
    assert bool((end["loss"] < 1e-4 * start["loss"]).all())
    gram_change = torch.linalg.matrix_norm(params[0].mT @ params[0] - A0.mT @ A0)
    inv_change = (end["gf_invariant_norm"] - start["gf_invariant_norm"]).abs()
    assert bool((gram_change > 1.0).all())
    assert bool((inv_change < 1e-2 * gram_change).all())
    assert bool((inv_change < 2e-2 * start["gf_invariant_norm"]).all())
    torch.testing.assert_close(end["singular_values"], prob.sigma.expand(prob.n_runs, 3), rtol=1e-2, atol=0)
    torch.testing.assert_close(end["mode_progress"], torch.ones(prob.n_runs, 3, dtype=F64), rtol=1e-2, atol=0)


def test_with_symmetric_mf():
    prob = SymmetricMF(12, 5, 3, seed=[1, 2], kappa=[1.0, 100.0], alpha=0.1)
    lam = prob.target_spectrum()  # (R, 3): 1 … 1/κ
    params = prob.init_params()
    (X,) = params
    out = compute_metrics(prob, params)
    assert "gf_invariant_norm" not in out  # symmetric layout
    torch.testing.assert_close(out["singular_values"], torch.linalg.eigvalsh(X @ X.mT).flip(-1)[:, :5])
    torch.testing.assert_close(out["dist_to_opt"], prob.loss(params) - prob.optimum_loss())
    torch.testing.assert_close(out["mode_progress"], out["singular_values"][:, :3] / lam)
    # At the minimizer (over-parameterized: r = 5 > r* = 3).
    star = prob.minimizer()
    at = compute_metrics(prob, star, available_metrics(prob))
    ones = torch.ones(prob.n_runs, dtype=F64)
    torch.testing.assert_close(at["dist_to_opt"], torch.zeros_like(ones), atol=1e-24, rtol=0)
    torch.testing.assert_close(at["mode_progress"], torch.ones(2, 3, dtype=F64))
    torch.testing.assert_close(at["effective_rank"], effective_rank(lam))
    torch.testing.assert_close(at["target_alignment"], ones)
    # λ_max of the Hessian of ¼‖XXᵀ − M‖² at a global minimum is 2λ₁ = 2.
    torch.testing.assert_close(at["sharpness"], 2 * lam[:, 0], rtol=1e-6, atol=0)


@pytest.mark.parametrize("which", ["two_factor_mf", "lora_mf"])
def test_with_product_problems(which):
    if which == "two_factor_mf":
        prob = TwoFactorMF(6, 5, 4, seed=[3, 4], rank=2, kappa=4.0, alpha=0.5)
    else:
        prob = LoRAMF(6, 5, 4, 2, seed=[3, 4], kappa=4.0, gamma=0.5)
    sigma = prob.target_spectrum()[:, :2]
    params = prob.init_params()
    out = compute_metrics(prob, params)
    for name, v in out.items():
        assert v.shape[0] == 2 and bool(torch.isfinite(v).all()), name
    W2, W1 = params
    torch.testing.assert_close(out["singular_values"], torch.linalg.svdvals(W2 @ W1)[:, :4])
    if which == "lora_mf":  # A_0 = 0: the product is the zero matrix, effective rank 0
        torch.testing.assert_close(out["effective_rank"], torch.zeros(2, dtype=F64))
    # At the balanced minimizer: invariants vanish, factors and target aligned, λ_max = 2σ₁.
    at = compute_metrics(prob, prob.minimizer(), available_metrics(prob))
    zeros, ones = torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)
    torch.testing.assert_close(at["dist_to_opt"], zeros, atol=1e-24, rtol=0)
    torch.testing.assert_close(at["gf_invariant_norm"], zeros, atol=1e-13, rtol=0)
    torch.testing.assert_close(at["muon_invariant_norm"], zeros, atol=1e-7, rtol=0)
    torch.testing.assert_close(at["factor_alignment"], ones)
    torch.testing.assert_close(at["target_alignment"], ones)
    torch.testing.assert_close(at["mode_progress"], torch.ones(2, 2, dtype=F64))
    torch.testing.assert_close(at["sharpness"], 2 * sigma[:, 0], rtol=1e-6, atol=0)


def test_register_metric_adds_one_and_refuses_a_second_function_under_a_taken_name():
    from muonlab.engine.metrics import METRICS, Metric, compute_metrics, register_metric
    from muonlab.errors import MuonlabError
    from muonlab.problems import SymmetricMF

    def twice_loss(problem, params, cache):
        return 2 * problem.loss(params)

    try:
        register_metric(Metric("_test_twice_loss", twice_loss, "2f"))
        problem = SymmetricMF(n=6, r=2, seed=[0, 1], dtype=torch.float64)
        params = problem.init_params()
        out = compute_metrics(problem, params, ["loss", "_test_twice_loss"])
        assert torch.equal(out["_test_twice_loss"], 2 * out["loss"])
        with pytest.raises(MuonlabError, match="already registered"):
            register_metric(Metric("loss", twice_loss, "not the loss"))
    finally:
        METRICS.pop("_test_twice_loss", None)
    assert METRICS["loss"].fn.__name__ == "_m_loss"


def test_extra_figure_registers_and_refuses_a_name_from_another_module():
    from muonlab.report.extra_figures import EXTRA_FIGURES, extra_figure

    def _test_fig(store_dir):
        raise AssertionError("not drawn")

    try:
        assert extra_figure("_test_fig")(_test_fig) is _test_fig
        assert EXTRA_FIGURES["_test_fig"] is _test_fig
        other = type(_test_fig)(_test_fig.__code__, {}, "_test_fig")
        other.__module__ = "somewhere.else"
        with pytest.raises(ValueError, match="already registered"):
            extra_figure("_test_fig")(other)
    finally:
        EXTRA_FIGURES.pop("_test_fig", None)
