"""Optimizer shells: update rules against independent closed forms, routing, state, errors."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from muonlab import orthogonalize
from muonlab.optim import Muon, ScaledGD, ScheduleLR, SignGD, SpecGD, make_schedule
from muonlab.optim.updates import as_matrix, muon_update_, scale_factor


def msign_ref(G: torch.Tensor) -> torch.Tensor:
    """msign through a float64 SVD, independent of muonlab."""
    U, _, Vh = torch.linalg.svd(G.double(), full_matrices=False)
    return (U @ Vh).to(G.dtype)


def param(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.Parameter(torch.randn(*shape, generator=g, dtype=dtype))


def set_grad(p, seed):
    g = torch.Generator().manual_seed(1000 + seed)
    p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)


def test_simplified_muon_is_spectral_gradient_descent():
    W = param(12, 7)
    W0 = W.detach().clone()
    set_grad(W, 0)
    opt = Muon([W], lr=0.3, method="svd")
    opt.step()
    assert torch.allclose(W.detach(), W0 - 0.3 * msign_ref(W.grad), atol=1e-14, rtol=0)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_sum_form_matches_hand_recursion(nesterov):
    W = param(9, 5)
    opt = Muon([W], lr=0.1, momentum=0.9, nesterov=nesterov, method="svd")
    expected = W.detach().clone()
    M = torch.zeros_like(expected)
    for t in range(4):
        set_grad(W, t)
        G = W.grad.clone()
        M = 0.9 * M + G
        D = G + 0.9 * M if nesterov else M
        expected = expected - 0.1 * msign_ref(D)
        opt.step()
        assert torch.allclose(W.detach(), expected, atol=1e-12, rtol=0)


def test_ema_form_gives_the_same_direction_as_sum_form():
    """M_ema = (1 − μ) M_sum, and orthogonalization removes the scale."""
    Wa, Wb = param(10, 6), param(10, 6)
    opts = [
        Muon([Wa], lr=0.05, momentum=0.95, nesterov=True, momentum_form="sum"),
        Muon([Wb], lr=0.05, momentum=0.95, nesterov=True, momentum_form="ema"),
    ]
    for t in range(6):
        for W, opt in zip((Wa, Wb), opts):
            set_grad(W, t)
            opt.step()
    assert torch.allclose(Wa, Wb, atol=1e-10, rtol=0)


def test_decoupled_weight_decay_with_zero_gradient():
    W = param(6, 4)
    W0 = W.detach().clone()
    W.grad = torch.zeros_like(W)
    Muon([W], lr=0.1, weight_decay=0.5).step()  # msign(0) = 0: only the decay acts
    assert torch.allclose(W.detach(), (1 - 0.05) * W0, atol=0, rtol=1e-15)


@pytest.mark.parametrize(
    "adjust,shape,factor",
    [("none", (8, 2), 1.0), ("original", (8, 2), 2.0), ("original", (2, 8), 1.0),
     ("match_rms_adamw", (8, 2), 0.2 * 8**0.5), ("match_rms_adamw", (2, 8), 0.2 * 8**0.5)],
)
def test_adjust_lr_scales_the_step(adjust, shape, factor):
    assert scale_factor(shape, adjust) == pytest.approx(factor, rel=1e-15)
    W = param(*shape)
    W0 = W.detach().clone()
    set_grad(W, 1)
    Muon([W], lr=0.01, method="svd", adjust_lr=adjust).step()
    assert torch.allclose(W.detach(), W0 - 0.01 * factor * msign_ref(W.grad), atol=1e-14, rtol=0)


def test_nd_parameter_is_flattened_to_out_by_rest():
    W = param(4, 3, 2, 2)
    W0 = W.detach().clone()
    set_grad(W, 2)
    Muon([W], lr=0.2, method="svd").step()
    expected = W0 - 0.2 * msign_ref(W.grad.reshape(4, 12)).reshape(4, 3, 2, 2)
    assert torch.allclose(W.detach(), expected, atol=1e-14, rtol=0)
    assert as_matrix(W).shape == (4, 12)


@pytest.mark.parametrize("method,kw", [("newton_schulz", {"coefficients": "dion"}), ("polar_express", {}),
                                        ("beta", {"beta": 1e-2})])
def test_optimizer_uses_the_chosen_orthogonalizer(method, kw):
    W = param(11, 6)
    W0 = W.detach().clone()
    set_grad(W, 3)
    Muon([W], lr=0.1, method=method, **kw).step()
    assert torch.allclose(W.detach(), W0 - 0.1 * orthogonalize(W.grad, method, **kw), atol=1e-14, rtol=0)


def test_specgd_beta_step_is_t_beta():
    W = param(8, 5)
    W0 = W.detach().clone()
    set_grad(W, 4)
    SpecGD([W], lr=0.1, beta=0.5).step()
    G = W.grad
    evals, evecs = torch.linalg.eigh(G.mT @ G + 0.5 * torch.eye(5, dtype=G.dtype))
    T = G @ (evecs * evals.rsqrt()) @ evecs.mT
    assert torch.allclose(W.detach(), W0 - 0.1 * T, atol=1e-13, rtol=0)


def test_routing_splits_groups_and_adamw_fallback_matches_torch():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).double()
    embed = torch.nn.Parameter(torch.randn(6, 5, dtype=torch.float64))
    opt = Muon(net.parameters(), lr=0.02, adamw_params=[embed], adamw_lr=3e-3, adamw_weight_decay=0.01)
    algos = [(g["algorithm"], len(g["params"]), g["lr"]) for g in opt.param_groups]
    assert algos == [("muon", 2, 0.02), ("adamw", 2, 3e-3), ("adamw", 1, 3e-3)]
    # The fallback is AdamW exactly: compare with torch.optim.AdamW over 10 steps.
    b1 = torch.nn.Parameter(torch.randn(7, dtype=torch.float64))
    b2 = torch.nn.Parameter(b1.detach().clone())
    o1 = Muon([b1], lr=1e-2, weight_decay=0.1)
    o2 = torch.optim.AdamW([b2], lr=1e-2, weight_decay=0.1)
    for t in range(10):
        set_grad(b1, t)
        b2.grad = b1.grad.clone()
        o1.step()
        o2.step()
    assert torch.equal(b1, b2)
    assert o1.param_groups[0]["algorithm"] == "adamw"


def test_explicit_algorithm_groups_and_errors():
    W, b = param(4, 3), param(3)
    opt = Muon([{"params": [W], "algorithm": "adamw", "lr": 1e-3}], lr=0.1)
    assert opt.param_groups[0]["algorithm"] == "adamw" and opt.param_groups[0]["lr"] == 1e-3
    with pytest.raises(ValueError, match="^params: a group with algorithm='muon' must hold matrices"):
        Muon([{"params": [b], "algorithm": "muon"}], lr=0.1)
    with pytest.raises(ValueError, match="^algorithm: unknown 'sgd'"):
        Muon([{"params": [W], "algorithm": "sgd"}], lr=0.1)
    # Group-level overrides are validated like constructor arguments.
    with pytest.raises(ValueError, match="^method: unknown 'qr'"):
        Muon([{"params": [W], "method": "qr"}], lr=0.1)
    with pytest.raises(ValueError, match="^lr:"):
        Muon([W], lr=0.1).add_param_group({"params": [param(2, 2)], "lr": -1.0})


def test_param_groups_closure_and_lr_scheduler():
    A, B = param(6, 4, seed=1), param(5, 3, seed=2)
    opt = Muon([{"params": [A], "lr": 0.1}, {"params": [B], "lr": 0.01}], lr=1.0, method="svd")
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = A.square().sum() + B.square().sum()
        loss.backward()
        return loss

    A0, B0 = A.detach().clone(), B.detach().clone()
    loss = opt.step(closure)
    assert len(calls) == 1 and torch.isclose(loss, A0.square().sum() + B0.square().sum())
    assert torch.allclose(A.detach(), A0 - 0.1 * msign_ref(2 * A0), atol=1e-14)
    assert torch.allclose(B.detach(), B0 - 0.01 * msign_ref(2 * B0), atol=1e-14)
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.005]


def test_muonlab_schedule_drives_the_optimizer():
    W = param(5, 5)
    opt = Muon([W], lr=0.2, method="svd")
    sched = ScheduleLR(opt, make_schedule("geometric", q=0.5, c_lo=1.0, c_hi=1.0))
    lrs = []
    for t in range(4):
        set_grad(W, t)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.2, 0.1, 0.05, 0.025], rel=1e-12)


def _train(make_opt, params, steps, start=0):
    opt = make_opt(params)
    for t in range(start, start + steps):
        for i, p in enumerate(params):
            set_grad(p, 10 * t + i)
        opt.step()
    return opt


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: Muon(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda ps: Muon(ps, lr=0.05, momentum=0.9, ns_dtype=torch.bfloat16, adjust_lr="original"),
        lambda ps: SpecGD(ps, lr=0.05, momentum=0.5),
        lambda ps: SignGD(ps, lr=0.01, momentum=0.9),
    ],
    ids=["muon", "muon-bf16", "specgd", "signgd"],
)
def test_state_dict_round_trip_resumes_identically(make_opt, tmp_path):
    shapes = [(6, 4), (4,), (3, 2, 2)]
    straight = [param(*s, seed=i) for i, s in enumerate(shapes)]
    _train(make_opt, straight, 10)

    resumed = [param(*s, seed=i) for i, s in enumerate(shapes)]
    opt = _train(make_opt, resumed, 5)
    torch.save({"opt": opt.state_dict(), "params": [p.detach() for p in resumed]}, tmp_path / "ck.pt")
    ck = torch.load(tmp_path / "ck.pt", weights_only=True)
    fresh = [torch.nn.Parameter(t.clone()) for t in ck["params"]]
    opt2 = make_opt(fresh)
    opt2.load_state_dict(ck["opt"])
    for t in range(5, 10):
        for i, p in enumerate(fresh):
            set_grad(p, 10 * t + i)
        opt2.step()
    for a, b in zip(straight, fresh):
        assert torch.equal(a, b)


def test_signgd_step_and_sign_of_zero():
    W = param(3, 4)
    W0 = W.detach().clone()
    W.grad = torch.tensor([[1.0, -2.0, 0.0, 3.0]] * 3, dtype=torch.float64)
    SignGD([W], lr=0.1).step()
    assert torch.equal(W.detach(), W0 - 0.1 * torch.tensor([[1.0, -1.0, 0.0, 1.0]] * 3, dtype=torch.float64))


def test_scaledgd_symmetric_direction():
    X = param(10, 3)
    X0 = X.detach().clone()
    set_grad(X, 5)
    ScaledGD([{"params": [X]}], lr=0.1).step()
    expected = X0 - 0.1 * X.grad @ torch.linalg.inv(X0.mT @ X0)
    assert torch.allclose(X.detach(), expected, atol=1e-13, rtol=0)


def test_scaledgd_product_is_invariant_to_factor_rescaling():
    """A → AS, B → S⁻¹B leaves the product's ScaledGD trajectory unchanged (Tong et al. 2021)."""
    g = torch.Generator().manual_seed(7)
    target = torch.randn(9, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 8, generator=g, dtype=torch.float64)
    A = torch.randn(9, 3, generator=g, dtype=torch.float64)
    B = torch.randn(3, 8, generator=g, dtype=torch.float64)
    S = (torch.diag(torch.tensor([100.0, 1.0, 0.01], dtype=torch.float64))
         + 0.1 * torch.randn(3, 3, generator=g, dtype=torch.float64))
    products = []
    for A0, B0 in ((A, B), (A @ S, torch.linalg.solve(S, B))):
        Ap, Bp = torch.nn.Parameter(A0.clone()), torch.nn.Parameter(B0.clone())
        opt = ScaledGD([Ap, Bp], lr=0.5)
        for _ in range(40):
            opt.zero_grad()
            (0.5 * (Ap @ Bp - target).square().sum()).backward()
            opt.step()
        products.append((Ap @ Bp).detach())
    assert torch.allclose(products[0], products[1], atol=1e-7, rtol=0)
    rel = (products[0] - target).norm() / target.norm()
    assert rel < 1e-8  # and it converged (linearly, at a rate set by η, not by κ)


def test_batched_muon_update_equals_loop_with_per_run_lrs():
    R = 5
    W = torch.randn(R, 7, 4, dtype=torch.float64)
    G = torch.randn(R, 7, 4, dtype=torch.float64)
    lr = torch.linspace(0.01, 0.5, R, dtype=torch.float64)
    batched = W.clone()
    muon_update_(batched, G, lr=lr, weight_decay=0.1, method="svd", adjust_lr="original", batched=True)
    for r in range(R):
        single = W[r].clone()
        muon_update_(single, G[r], lr=float(lr[r]), weight_decay=0.1, method="svd", adjust_lr="original")
        assert torch.allclose(batched[r], single, atol=1e-15, rtol=0)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.sampled_from([(1, 1), (5, 1), (1, 5), (3, 8), (8, 3), (2, 3, 2), (4,)]),
    dtype=st.sampled_from([torch.float64, torch.float32, torch.bfloat16]),
    method=st.sampled_from(["newton_schulz", "polar_express", "svd"]),
    momentum=st.sampled_from([0.0, 0.9]),
)
def test_any_shape_and_dtype_steps_finitely(shape, dtype, method, momentum):
    W = param(*shape, dtype=dtype)
    W0 = W.detach().clone()
    set_grad(W, 0)
    opt = Muon([W], lr=0.01, momentum=momentum, method=method)
    for _ in range(3):
        opt.step()
    assert W.dtype == dtype and W.shape == W0.shape
    assert torch.isfinite(W).all() and not torch.equal(W, W0)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"lr": -1.0}, "lr"),
        ({"lr": 0.1, "momentum": -0.1}, "momentum"),
        ({"lr": 0.1, "weight_decay": -1}, "weight_decay"),
        ({"lr": 0.1, "method": "qr"}, "method"),
        ({"lr": 0.1, "adjust_lr": "sqrt"}, "adjust_lr"),
        ({"lr": 0.1, "momentum_form": "avg"}, "momentum_form"),
        ({"lr": 0.1, "nesterov": True}, "nesterov"),
        ({"lr": 0.1, "coefficients": "jordan"}, "coefficients"),
        ({"lr": 0.1, "ns_steps": 0}, "steps"),
        ({"lr": 0.1, "ns_dtype": torch.int8}, "ns_dtype"),
        ({"lr": 0.1, "adamw_betas": (0.9, 1.5)}, "adamw_betas"),
    ],
)
def test_muon_bad_hyperparameters_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        Muon([param(3, 3)], **kwargs)


def test_other_optimizers_bad_input():
    with pytest.raises(ValueError, match="^lr:"):
        SignGD([param(2, 2)], lr=-1)
    with pytest.raises(ValueError, match="^params: each ScaledGD group"):
        ScaledGD([param(2, 2), param(2, 2), param(2, 2)], lr=0.1)
    with pytest.raises(ValueError, match="do not form a product"):
        ScaledGD([param(4, 2), param(3, 5)], lr=0.1)
    with pytest.raises(ValueError, match="^method: SpecGD always uses the exact SVD"):
        SpecGD([param(2, 2)], lr=0.1, method="newton_schulz")
    W = torch.nn.Parameter(torch.randn(3, 3, dtype=torch.complex64))
    W.grad = torch.ones_like(W)
    with pytest.raises(ValueError, match="complex"):
        Muon([W], lr=0.1).step()
