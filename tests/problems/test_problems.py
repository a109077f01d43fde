"""P1–P5 (SPEC §4): closed-form gradients, targets, optima, the ICL view, validation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from muonlab.problems import (
    BATCHABLE,
    PROBLEMS,
    InContextRegression,
    LinearAttention,
    LoRAMF,
    MatrixRegression,
    Problem,
    SymmetricMF,
    TwoFactorMF,
    attention_from_gamma,
    gamma_from_attention,
)

F64 = torch.float64

# One representative batch per problem (R > 1, per-run κ, non-default options).
FACTORIES = {
    "symmetric_exact": lambda: SymmetricMF(9, 3, seed=[0, 1, 2], kappa=[1.0, 10.0, 1e3]),
    "symmetric_over": lambda: SymmetricMF(8, 5, 2, seed=[3, 4], kappa=[5.0, 50.0], init="orthonormal"),
    "symmetric_under": lambda: SymmetricMF(8, 2, 4, seed=[5, 6], kappa=7.0, spectrum="linspace"),
    "icl": lambda: InContextRegression(5, seed=[0, 1], kappa=[2.0, 100.0]),
    "icl_diag": lambda: InContextRegression(4, seed=[2], kappa=10.0, covariance="diagonal", n_design=6),
    "icl_paired": lambda: InContextRegression(5, seed=[3, 4], kappa=[3.0, 30.0], covariance="paired"),
    "two_factor": lambda: TwoFactorMF(7, 5, 3, seed=[0, 1], kappa=[1.0, 20.0]),
    "two_factor_wide": lambda: TwoFactorMF(4, 9, 6, seed=[2, 3, 4], rank=3, kappa=4.0, init="orthogonal"),
    "two_factor_diag": lambda: TwoFactorMF(6, 6, 4, seed=[0, 1], spectrum="diag", values=[10 / i for i in range(1, 7)]),
    "two_factor_list": lambda: TwoFactorMF(6, 5, 5, seed=[7], spectrum="list", values=[0.5, 3.0, 1.0]),
    "two_factor_planted": lambda: TwoFactorMF(8, 8, 3, seed=[0, 1], spectrum="planted", rank=2, snr=4.0),
    "lora": lambda: LoRAMF(7, 6, 2, 3, seed=[0, 1], kappa=[1.0, 30.0], gamma=[1e-3, 1e-2]),
    "lora_l2": lambda: LoRAMF(6, 8, 3, 2, seed=[2, 3], kappa=4.0, l2=0.1),
    "lora_list": lambda: LoRAMF(5, 5, 4, seed=[4], spectrum="list", values=[2.0, 1.0, 0.5, 0.05], l2=0.2),
    "regression": lambda: MatrixRegression(3, 5, 12, seed=[0, 1], kappa=[1.0, 1e3]),
    "regression_noise": lambda: MatrixRegression(4, 3, 7, seed=[2, 3], kappa=[10.0, 100.0], noise=0.3),
}


def random_params(problem: Problem, seed: int = 0, scale: float = 1.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(p.shape, generator=g, dtype=p.dtype) for p in problem.init_params()]


def autograd_grad(problem: Problem, params: list[torch.Tensor]) -> list[torch.Tensor]:
    leaves = [p.clone().requires_grad_(True) for p in params]
    problem.loss(leaves).sum().backward()  # runs are independent: the sum's gradient is per run
    return [p.grad for p in leaves]


def assert_close_rel(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-12) -> None:
    err = (a - b).norm().item()
    assert err <= rtol * max(b.norm().item(), 1e-300), (err, b.norm().item())


# --- gradients --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_grad_matches_autograd(name):
    problem = FACTORIES[name]()
    for seed in (0, 1):
        params = random_params(problem, seed)
        for closed, auto in zip(problem.grad(params), autograd_grad(problem, params)):
            assert_close_rel(closed, auto)
        loss, grads = problem.loss_and_grad(params)
        assert torch.equal(loss, problem.loss(params))
        for g1, g2 in zip(grads, problem.grad(params)):
            assert_close_rel(g1, g2, 1e-14)
        # The engine's one-pass evaluate agrees with the separate calls.
        e_loss, e_grads, e_rel = problem.evaluate(params)
        assert_close_rel(e_loss, loss, 1e-14)
        assert_close_rel(e_rel, problem.rel_err(params), 1e-14)
        for g1, g2 in zip(e_grads, grads):
            assert_close_rel(g1, g2, 1e-14)


@settings(max_examples=20, deadline=None)
@given(
    kind=st.sampled_from(["symmetric_mf", "two_factor_mf", "lora_mf", "regression", "icl"]),
    a=st.integers(1, 6),
    b=st.integers(1, 6),
    c=st.integers(1, 6),
    kappas=st.lists(st.floats(1.0, 1e4), min_size=1, max_size=3),
    first_seed=st.integers(0, 10**6),
)
def test_grad_matches_autograd_any_shape(kind, a, b, c, kappas, first_seed):
    seeds = [first_seed + i for i in range(len(kappas))]
    if kind == "symmetric_mf":
        n = max(a, b, c)
        problem = SymmetricMF(n, min(a, n), min(b, n), seed=seeds, kappa=kappas)
    elif kind == "two_factor_mf":
        problem = TwoFactorMF(a, b, c, seed=seeds, kappa=kappas)
    elif kind == "lora_mf":
        small = min(a, b)
        problem = LoRAMF(a, b, min(c, small), seed=seeds, kappa=kappas, l2=0.01 * c)
    elif kind == "regression":
        problem = MatrixRegression(a, b, b + c, seed=seeds, kappa=kappas, noise=0.1)
    else:
        problem = InContextRegression(a, seed=seeds, kappa=kappas)
    assert problem.n_runs == len(seeds)
    params = random_params(problem, first_seed)
    for closed, auto in zip(problem.grad(params), autograd_grad(problem, params)):
        assert_close_rel(closed, auto)


# --- shapes, factors, dtype ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_shapes_and_factors(name):
    problem = FACTORIES[name]()
    R = problem.n_runs
    params = random_params(problem, 3)
    assert all(p.shape[0] == R for p in params)
    for out in (problem.loss(params), problem.rel_err(params), problem.optimum_loss()):
        assert out.shape == (R,)
    E = problem.end_to_end(params)
    assert E.shape == problem.target().shape
    L, Rt = problem.factors(params)
    torch.testing.assert_close(L @ Rt.mT, E, rtol=1e-13, atol=1e-13)
    # rel_err is the documented Frobenius ratio to the target
    expected = torch.linalg.matrix_norm(E - problem.target()) / torch.linalg.matrix_norm(problem.target())
    torch.testing.assert_close(problem.rel_err(params), expected, rtol=1e-10, atol=0)


def test_registry():
    assert set(PROBLEMS) == {"symmetric_mf", "icl", "two_factor_mf", "lora_mf", "regression"}
    for kind, cls in PROBLEMS.items():
        assert cls.kind == kind and cls.layout in ("symmetric", "product", "matrix")
    assert BATCHABLE == ("seed", "kappa", "alpha", "gamma")


@pytest.mark.parametrize("name", ["symmetric_exact", "icl", "two_factor", "lora", "regression"])
def test_float32(name):
    f32 = FACTORIES[name]
    p64 = f32()
    kw = {"dtype": torch.float32}
    problem = type(p64)(**_ctor_args(name), **kw)
    params = [p.float() for p in random_params(p64, 1)]
    assert problem.target().dtype == torch.float32 and all(p.dtype == torch.float32 for p in problem.init_params())
    torch.testing.assert_close(
        problem.loss(params).double(), p64.loss([p.double() for p in params]), rtol=1e-4, atol=1e-5
    )


def _ctor_args(name):
    return {
        "symmetric_exact": dict(n=9, r=3, seed=[0, 1, 2], kappa=[1.0, 10.0, 1e3]),
        "icl": dict(d=5, seed=[0, 1], kappa=[2.0, 100.0]),
        "two_factor": dict(n_out=7, n_in=5, d=3, seed=[0, 1], kappa=[1.0, 20.0]),
        "lora": dict(m=7, n=6, r=2, r_star=3, seed=[0, 1], kappa=[1.0, 30.0], gamma=[1e-3, 1e-2]),
        "regression": dict(d_out=3, d_in=5, n_samples=12, seed=[0, 1], kappa=[1.0, 1e3]),
    }[name]


# --- targets ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_reproducible_and_batch_independent(name):
    a, b = FACTORIES[name](), FACTORIES[name]()
    assert torch.equal(a.target(), b.target())
    for x, y in zip(a.init_params(), b.init_params()):
        assert torch.equal(x, y)
    # a run's target and init do not depend on the batch it lands in
    cls, args = type(a), _single_run_args(a)
    solo = cls(**args)
    assert torch.allclose(solo.target()[0], a.target()[-1], rtol=0, atol=1e-15)
    for x, y in zip(solo.init_params(), a.init_params()):
        assert torch.equal(x[0], y[-1])


def _single_run_args(p: Problem) -> dict:
    """Constructor arguments rebuilding the last run of ``p`` alone."""
    common = dict(seed=p.seed[-1], kappa=p.kappa[-1])
    if isinstance(p, SymmetricMF):
        return dict(n=p.n, r=p.r, r_star=p.r_star, alpha=p.alpha[-1], spectrum=p.spectrum, init=p.init, **common)
    if isinstance(p, InContextRegression):
        return dict(d=p.d, covariance=p.covariance, n_design=p.n_design, **common)
    if isinstance(p, TwoFactorMF):
        return dict(n_out=p.n_out, n_in=p.n_in, d=p.d, rank=p.rank, spectrum=p.spectrum, values=p.values,
                    snr=p.snr, alpha=p.alpha[-1], init=p.init, **common)
    if isinstance(p, LoRAMF):
        return dict(m=p.m, n=p.n, r=p.r, r_star=p.r_star, spectrum=p.spectrum, values=p.values,
                    gamma=p.gamma[-1], l2=p.l2, **common)
    return dict(d_out=p.d_out, d_in=p.d_in, n_samples=p.n_samples, noise=p.noise, **common)


@pytest.mark.parametrize(
    ("make", "zero_init"),
    [
        (lambda s: SymmetricMF(6, 3, seed=s, kappa=10.0), False),
        (lambda s: InContextRegression(4, seed=s, kappa=10.0), True),  # P2 starts from 0
        (lambda s: TwoFactorMF(5, 4, 3, seed=s), False),
        (lambda s: TwoFactorMF(6, 6, 3, seed=s, spectrum="planted", rank=2, snr=3.0), False),
        (lambda s: LoRAMF(5, 4, 2, seed=s), False),
        (lambda s: MatrixRegression(2, 3, 5, seed=s, kappa=10.0), True),  # P5 starts from 0
    ],
    ids=["p1", "p2", "p3", "p3_planted", "p4", "p5"],
)
def test_targets_differ_across_seeds(make, zero_init):
    p = make([0, 1])
    assert not torch.allclose(p.target()[0], p.target()[1])
    init = p.init_params()[-1]
    if zero_init:
        assert not bool(init.any())
    else:
        assert not torch.allclose(init[0], init[1])


def test_same_seed_other_kappa_keeps_the_basis():
    """Sweeping κ with a fixed seed changes the spectrum only (the κ-sweep compares like with like)."""
    p = SymmetricMF(10, 4, seed=[5, 5], kappa=[1.0, 100.0])
    _, v0 = torch.linalg.eigh(p.target()[0])
    _, v1 = torch.linalg.eigh(p.target()[1])
    P0 = v0[:, -4:] @ v0[:, -4:].T
    P1 = v1[:, -4:] @ v1[:, -4:].T
    torch.testing.assert_close(P0, P1, rtol=0, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 12), data=st.data())
def test_symmetric_spectrum_is_as_asked(n, data):
    r_star = data.draw(st.integers(1, n))
    kappa = data.draw(st.floats(1.0, 1e6))
    p = SymmetricMF(n, r_star, seed=data.draw(st.integers(0, 99)), kappa=kappa)
    eig = torch.linalg.eigvalsh(p.target()[0]).flip(0)
    lam = torch.logspace(0, -math.log10(kappa), r_star, dtype=F64)
    torch.testing.assert_close(eig[:r_star], lam, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(eig[r_star:], torch.zeros(n - r_star, dtype=F64), rtol=0, atol=1e-13)
    torch.testing.assert_close(p.target_spectrum()[0], lam)


@pytest.mark.parametrize("name", ["two_factor", "two_factor_wide", "two_factor_diag", "two_factor_list",
                                  "two_factor_planted", "lora", "lora_l2", "lora_list"])
def test_product_target_spectrum(name):
    p = FACTORIES[name]()
    sv = torch.linalg.svdvals(p.target())
    k = p.target_spectrum().shape[-1]
    torch.testing.assert_close(sv[:, :k], p.target_spectrum(), rtol=1e-12, atol=1e-13)
    assert (sv[:, k:] < 1e-12).all()


def test_two_factor_target_kinds():
    values = [10 / i for i in range(1, 33)]
    p = TwoFactorMF(32, 32, 32, seed=0, spectrum="diag", values=values, alpha=5e-3)  # seed 002 fig 1
    torch.testing.assert_close(p.target()[0], torch.diag(torch.tensor(values, dtype=F64)), rtol=0, atol=0)
    p = TwoFactorMF(6, 5, 2, seed=0, kappa=100.0, rank=3)
    torch.testing.assert_close(p.target_spectrum()[0], torch.tensor([1.0, 0.1, 0.01], dtype=F64))
    p = TwoFactorMF(6, 5, 2, seed=0, kappa=3.0, rank=3, spectrum="linspace")
    torch.testing.assert_close(p.target_spectrum()[0], torch.tensor([1.0, 2 / 3, 1 / 3], dtype=F64))
    # planted: diag(snr on the first rank entries) + G/sqrt(n)
    p = TwoFactorMF(64, 64, 8, seed=1, spectrum="planted", rank=4, snr=4.0)
    M = p.target()[0]
    torch.testing.assert_close(torch.diagonal(M)[:4], torch.full((4,), 4.0, dtype=F64), rtol=0, atol=0.6)
    off = M - torch.diag(torch.diagonal(M))
    assert abs(off.square().sum().item() / (64 * 63) * 64 - 1.0) < 0.1  # entries ~ N(0, 1/n)


@pytest.mark.parametrize("covariance", ["rotated", "diagonal", "paired"])
def test_icl_covariance_and_design(covariance):
    kappa = [10.0, 1e3]
    p = InContextRegression(7, seed=[0, 1], kappa=kappa, covariance=covariance, n_design=9)
    S = p.covariance_matrix()
    for i, k in enumerate(kappa):
        torch.testing.assert_close(
            torch.linalg.eigvalsh(S[i]).flip(0), torch.logspace(0, -math.log10(k), 7, dtype=F64), rtol=1e-12, atol=1e-14
        )
    X = p.design()
    assert X.shape == (2, 9, 7)
    torch.testing.assert_close(X.mT @ X / 9, S, rtol=0, atol=1e-13)  # exact empirical covariance
    if covariance == "diagonal":
        torch.testing.assert_close(S, torch.diag_embed(torch.diagonal(S, dim1=-2, dim2=-1)))
    if covariance == "paired":  # 2×2 blocks (i, d−1−i) with equal diagonals, nothing else
        lam = p.eigenvalues()[0]
        for i in range(3):
            j = 6 - i
            assert S[0, i, i] == pytest.approx(S[0, j, j]) == pytest.approx((lam[i] + lam[j]).item() / 2)
            assert S[0, i, j] == pytest.approx((lam[i] - lam[j]).item() / 2)
        assert S[0, 3, 3] == pytest.approx(lam[3].item())
        mask = torch.eye(7, dtype=torch.bool) | torch.eye(7, dtype=torch.bool).flip(1)
        assert (S[0][~mask] == 0).all()


def test_regression_data_covariance():
    p = MatrixRegression(3, 6, 20, seed=[0, 1], kappa=[10.0, 1e4])
    X, Y = p.data()
    torch.testing.assert_close(X @ X.mT / 20, p.covariance_matrix(), rtol=0, atol=1e-13)
    torch.testing.assert_close(torch.linalg.eigvalsh(p.covariance_matrix()[1]).flip(0),
                               torch.logspace(0, -4, 6, dtype=F64), rtol=1e-10, atol=0)
    # noiseless teacher: unit singular values, Y = W* X, W_opt = W*
    torch.testing.assert_close(torch.linalg.svdvals(p.target()), torch.ones(2, 3, dtype=F64))
    torch.testing.assert_close(Y, p.target() @ X, rtol=0, atol=1e-14)


# --- optima -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_minimizer_attains_optimum(name):
    p = FACTORIES[name]()
    m = p.minimizer()
    f_star = p.optimum_loss()
    torch.testing.assert_close(p.loss(m), f_star, rtol=1e-10, atol=1e-13)
    for g in p.grad(m):
        assert g.norm() < 1e-12
    # no nearby point does better (a true minimum, not just a stationary point)
    for s in range(5):
        bumped = [x + 1e-3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(s), dtype=F64) for x in m]
        assert (p.loss(bumped) >= f_star - 1e-14).all()


def test_optimum_independent_constructions():
    # P1, r < r*: best rank-r approximation from a plain eigendecomposition
    p = SymmetricMF(8, 2, 5, seed=[0, 1], kappa=[10.0, 100.0])
    e, V = torch.linalg.eigh(p.target())
    X = V[..., -2:] * e[..., -2:].sqrt().unsqueeze(-2)
    torch.testing.assert_close(p.loss([X]), p.optimum_loss(), rtol=1e-10, atol=0)
    lam = p.target_spectrum()
    torch.testing.assert_close(p.optimum_loss(), 0.25 * lam[:, 2:].square().sum(-1))
    # P3, d < rank: Eckart–Young tail
    p = TwoFactorMF(7, 6, 2, seed=[0, 1], kappa=[3.0, 30.0])
    U, S, Vh = torch.linalg.svd(p.target())
    W2, W1 = U[..., :2] * S[:, None, :2], Vh[:, :2, :]
    torch.testing.assert_close(p.loss([W2, W1]), 0.5 * S[:, 2:].square().sum(-1), rtol=1e-10, atol=0)
    torch.testing.assert_close(p.optimum_loss(), 0.5 * S[:, 2:].square().sum(-1), rtol=1e-10, atol=0)
    # P5 with noise: least squares by lstsq on the data
    p = MatrixRegression(3, 4, 9, seed=[0, 1], kappa=[10.0, 100.0], noise=0.5)
    X, Y = p.data()
    W = torch.linalg.lstsq(X.mT, Y.mT).solution.mT
    torch.testing.assert_close(W, p.target(), rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(p.data_loss([W]), p.optimum_loss(), rtol=1e-10, atol=0)


def test_zero_optimum_is_exact():
    assert (SymmetricMF(6, 4, 3, seed=[0, 1]).optimum_loss() == 0).all()
    assert (TwoFactorMF(5, 5, 5, seed=0, kappa=10.0).optimum_loss() == 0).all()
    assert (LoRAMF(6, 5, 3, 2, seed=0).optimum_loss() == 0).all()
    assert (MatrixRegression(2, 3, 4, seed=0).optimum_loss() == 0).all()


@pytest.mark.parametrize(
    "values, r, l2",
    [([1.0, 0.6, 0.3], 2, 0.2), ([1.0, 0.6, 0.3], 3, 0.5), ([2.0, 0.4], 3, 1.0), ([1.5, 1.0, 0.2], 1, 0.0)],
)
def test_lora_l2_optimum_matches_long_gradient_descent(values, r, l2):
    """The soft-thresholded closed form is the value GD converges to from random starts."""
    p = LoRAMF(5, 4, r, len(values), seed=[0, 1, 2], spectrum="list", values=values, l2=l2)
    params = random_params(p, seed=11, scale=0.5)
    for _ in range(6000):
        grads = p.grad(params)
        params = [x - 0.1 * g for x, g in zip(params, grads)]
    sig = torch.tensor(values, dtype=F64)
    kept = (sig[:r] - l2).clamp_min(0.0)
    closed = 0.5 * sig.square().sum() - 0.5 * kept.square().sum()
    torch.testing.assert_close(p.optimum_loss(), closed.expand(3), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(p.loss(params), p.optimum_loss(), rtol=1e-9, atol=1e-12)
    # the product's singular values are the soft-thresholded targets
    sv = torch.linalg.svdvals(p.end_to_end(params))[:, : len(kept)]
    torch.testing.assert_close(sv, kept.expand(3, -1), rtol=0, atol=1e-5)


def test_regression_loss_equals_data_loss():
    p = MatrixRegression(4, 5, 11, seed=[0, 1], kappa=[10.0, 1e3], noise=0.2)
    for s in range(3):
        params = random_params(p, s)
        torch.testing.assert_close(p.loss(params), p.data_loss(params), rtol=1e-11, atol=0)


# --- P2: in-context learning ----------------------------------------------------------


def test_icl_minimizer_is_sigma_inverse():
    p = InContextRegression(6, seed=[0, 1, 2], kappa=[1.0, 10.0, 1e3])
    (G,) = p.minimizer()
    eye = torch.eye(6, dtype=F64).expand(3, 6, 6)
    torch.testing.assert_close(G @ p.covariance_matrix(), eye, rtol=0, atol=1e-10)
    assert (p.loss([G]) < 1e-24).all() and (p.optimum_loss() == 0).all()
    assert p.grad([G])[0].norm() < 1e-12
    (G0,) = p.init_params()
    assert (G0 == 0).all()
    torch.testing.assert_close(p.loss([G0]), 0.5 * p.eigenvalues().sum(-1))  # f(0) = ½ tr Σ
    torch.testing.assert_close(p.rel_err([G0]), torch.ones(3, dtype=F64))


def test_icl_hessian_and_convexity():
    """f is the quadratic ½⟨Δ, ΣΔΣ²⟩ around Σ⁻¹ (Hessian Γ ↦ ΣΓΣ², condition number κ³)."""
    p = InContextRegression(4, seed=3, kappa=10.0)
    (G,) = p.minimizer()
    D = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    S = p.covariance_matrix()
    torch.testing.assert_close(p.loss([G + D]), 0.5 * (D * (S @ D @ S @ S)).sum((-2, -1)), rtol=1e-10, atol=0)


def test_icl_mc_loss_agrees_with_closed_form():
    p = InContextRegression(5, seed=[0, 1], kappa=[3.0, 30.0], n_design=12)
    g = torch.Generator().manual_seed(0)
    (G,) = p.minimizer()
    G = G + 0.3 * torch.randn(G.shape, generator=g, dtype=F64)
    mean, stderr = p.mc_loss(G, 100_000, g)
    closed = p.loss([G])
    assert ((mean - closed).abs() < 4 * stderr).all(), (mean, closed, stderr)
    assert (stderr < 0.02 * closed).all()
    # at the minimizer every prompt is predicted exactly
    mean0, _ = p.mc_loss(p.minimizer(), 1000, g)
    assert (mean0 < 1e-20).all()


def test_icl_prompts():
    p = InContextRegression(3, seed=[0, 1], n_design=5)
    pr = p.sample_prompts(4, torch.Generator().manual_seed(1))
    assert pr.y.shape == (2, 4, 5) and pr.x_q.shape == (2, 4, 3) and pr.query_index.shape == (2, 4)
    torch.testing.assert_close(pr.y, pr.w @ p.design().mT)
    torch.testing.assert_close(pr.x_q, torch.stack([p.design()[r][pr.query_index[r]] for r in range(2)]))
    torch.testing.assert_close(pr.y_q, (pr.x_q * pr.w).sum(-1))
    # h = (1/N) Σ y_i x_i = Σ w on the exact-covariance design
    torch.testing.assert_close(pr.context(), pr.w @ p.covariance_matrix())
    Z = pr.tokens()
    assert Z.shape == (2, 4, 4, 6)
    assert (Z[..., 3, 5] == 0).all()
    torch.testing.assert_close(Z[..., :3, 5], pr.x_q)


def test_linear_attention_realizes_gamma_predictor():
    p = InContextRegression(4, seed=[0, 1], kappa=[5.0, 50.0], n_design=10)
    g = torch.Generator().manual_seed(2)
    G = torch.randn(2, 4, 4, generator=g, dtype=F64)
    pr = p.sample_prompts(16, g)
    reference = (pr.x_q.unsqueeze(-2) @ G.unsqueeze(1) @ pr.context().unsqueeze(-1))[..., 0, 0]  # x_qᵀ Γ h
    att = attention_from_gamma(G, n_runs=2)
    torch.testing.assert_close(gamma_from_attention(att), G, rtol=0, atol=0)
    Z = pr.tokens()
    torch.testing.assert_close(att(Z), reference, rtol=1e-13, atol=1e-13)
    full = att.transform(Z)
    torch.testing.assert_close(full[..., 4, 10], reference, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(full[..., :4, :], Z[..., :4, :], rtol=0, atol=0)  # only the label row is written
    # the App. D block structure
    assert att.W_KQ.shape == (2, 5, 5) and (att.W_KQ[:, 4, :] == 0).all() and (att.W_KQ[:, :, 4] == 0).all()
    assert att.W_PV.sum() == 1 and att.W_PV[4, 4] == 1
    # per-prompt losses through the module equal the problem's
    losses = 0.5 * (att(Z) - pr.y_q).square()
    torch.testing.assert_close(losses, p.prompt_losses(G, pr), rtol=1e-12, atol=1e-14)


def test_training_linear_attention_learns_sigma_inverse():
    p = InContextRegression(4, seed=0, kappa=2.0, n_design=12)
    model = LinearAttention(4)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    g = torch.Generator().manual_seed(0)
    f0 = p.loss([gamma_from_attention(model).unsqueeze(0)]).item()
    for _ in range(400):
        pr = p.sample_prompts(64, g)
        loss = 0.5 * (model(pr.tokens()[0]) - pr.y_q[0]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    G = gamma_from_attention(model).unsqueeze(0)
    mc, _ = p.mc_loss(G, 20_000, g)
    assert mc.item() < 1e-4 * f0 and p.loss([G]).item() < 1e-4 * f0
    assert p.rel_err([G]).item() < 1e-2


# --- initialization -----------------------------------------------------------------


def test_initializations():
    (X,) = SymmetricMF(400, 50, 10, seed=0, alpha=1e-3).init_params()
    assert X.std().item() == pytest.approx(1e-3 / 20, rel=0.02)
    (X,) = SymmetricMF(20, 5, seed=[0, 1], alpha=[1e-3, 2.0], init="orthonormal").init_params()
    torch.testing.assert_close(X.mT @ X, torch.eye(5, dtype=F64) * torch.tensor([1e-6, 4.0], dtype=F64)[:, None, None])
    W2, W1 = TwoFactorMF(300, 200, 100, seed=0, alpha=5e-3).init_params()
    assert W2.std().item() == pytest.approx(5e-3 / math.sqrt(300), rel=0.02)
    assert W1.std().item() == pytest.approx(5e-3 / math.sqrt(300), rel=0.02)
    W2, W1 = TwoFactorMF(25, 25, 25, seed=0, alpha=1e-4, init="orthogonal").init_params()
    torch.testing.assert_close(W2[0] @ W2[0].T, 1e-8 * torch.eye(25, dtype=F64))
    torch.testing.assert_close(W1[0] @ W1[0].T, 1e-8 * torch.eye(25, dtype=F64))
    A, B = LoRAMF(60, 70, 5, seed=[0, 1], gamma=[1e-3, 1e-1]).init_params()
    assert (A == 0).all()
    assert B[0].std().item() == pytest.approx(1e-3, rel=0.15) and B[1].std().item() == pytest.approx(1e-1, rel=0.15)
    (W,) = MatrixRegression(2, 3, 4, seed=0).init_params()
    assert (W == 0).all()


def test_init_stream_independent_of_target_options():
    """Changing κ or the spectrum leaves the initial point of a seed unchanged (separate streams)."""
    a = SymmetricMF(10, 3, seed=4, kappa=1.0).init_params()[0]
    b = SymmetricMF(10, 3, seed=4, kappa=1e3, spectrum="linspace").init_params()[0]
    assert torch.equal(a, b)


# --- validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, make",
    [
        ("r", lambda: SymmetricMF(10, 20, seed=0)),
        ("r_star", lambda: SymmetricMF(10, 2, 11, seed=0)),
        ("n", lambda: SymmetricMF(0, 1, seed=0)),
        ("seed", lambda: SymmetricMF(5, 2, seed=[])),
        ("seed", lambda: SymmetricMF(5, 2, seed=1.5)),
        ("seed", lambda: SymmetricMF(5, 2, seed=-1)),
        ("kappa", lambda: SymmetricMF(5, 2, seed=[0, 1], kappa=[1.0, 2.0, 3.0])),
        ("kappa", lambda: SymmetricMF(5, 2, seed=0, kappa=0.5)),
        ("kappa", lambda: SymmetricMF(5, 2, seed=0, kappa=float("nan"))),
        ("alpha", lambda: SymmetricMF(5, 2, seed=0, alpha=0.0)),
        ("spectrum", lambda: SymmetricMF(5, 2, seed=0, spectrum="list")),
        ("init", lambda: SymmetricMF(5, 2, seed=0, init="zeros")),
        ("d", lambda: InContextRegression(0, seed=0)),
        ("n_design", lambda: InContextRegression(5, seed=0, n_design=4)),
        ("covariance", lambda: InContextRegression(5, seed=0, covariance="random")),
        ("kappa", lambda: InContextRegression(5, seed=[0, 1], kappa=[2.0])),
        ("d", lambda: TwoFactorMF(4, 4, 0, seed=0)),
        ("rank", lambda: TwoFactorMF(4, 5, 2, seed=0, rank=5)),
        ("values", lambda: TwoFactorMF(4, 4, 2, seed=0, spectrum="diag")),
        ("values", lambda: TwoFactorMF(3, 4, 2, seed=0, spectrum="diag", values=[1, 2, 3, 4])),
        ("values", lambda: TwoFactorMF(4, 4, 2, seed=0, spectrum="list", values=[1.0, -1.0])),
        ("values", lambda: TwoFactorMF(4, 4, 2, seed=0, values=[1.0])),
        ("n_in", lambda: TwoFactorMF(4, 5, 2, seed=0, spectrum="planted", rank=1, snr=2.0)),
        ("rank", lambda: TwoFactorMF(4, 4, 2, seed=0, spectrum="planted", snr=2.0)),
        ("snr", lambda: TwoFactorMF(4, 4, 2, seed=0, spectrum="planted", rank=1)),
        ("snr", lambda: TwoFactorMF(4, 4, 2, seed=0, snr=1.0)),
        ("alpha", lambda: TwoFactorMF(4, 4, 2, seed=[0, 1], alpha=[1e-3])),
        ("r", lambda: LoRAMF(5, 4, 5, seed=0)),
        ("r_star", lambda: LoRAMF(5, 4, 2, 6, seed=0)),
        ("gamma", lambda: LoRAMF(5, 4, 2, seed=0, gamma=-1.0)),
        ("l2", lambda: LoRAMF(5, 4, 2, seed=0, l2=-0.1)),
        ("values", lambda: LoRAMF(5, 4, 2, 3, seed=0, spectrum="list", values=[1.0, 0.5])),
        ("values", lambda: LoRAMF(5, 4, 2, seed=0, values=[1.0, 0.5])),
        ("n_samples", lambda: MatrixRegression(2, 5, 4, seed=0)),
        ("noise", lambda: MatrixRegression(2, 3, 4, seed=0, noise=-1.0)),
        ("d_out", lambda: MatrixRegression(True, 3, 4, seed=0)),
    ],
)
def test_bad_inputs_name_the_field(field, make):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        make()


def test_error_message_format():
    with pytest.raises(ValueError, match=r"^r: must be <= n \(10\), got 20$"):
        SymmetricMF(10, 20, seed=0)


def test_scalar_and_sequence_fields_broadcast():
    p = SymmetricMF(6, 2, seed=[0, 1, 2], kappa=10.0, alpha=[1e-3, 1e-2, 1e-1])
    assert p.n_runs == 3 and p.kappa == (10.0, 10.0, 10.0) and p.alpha == (1e-3, 1e-2, 1e-1)
    q = SymmetricMF(6, 2, seed=torch.tensor(7), kappa=torch.tensor(3.0))
    assert q.n_runs == 1 and q.seed == (7,) and q.kappa == (3.0,)
