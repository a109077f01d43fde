"""Optimizer steps are atomic, and a non-finite gradient is handled one way (issue 14, item 5).

Policy (docs/optimizers.md, "Bad gradients"): before changing anything, ``step()``
checks every gradient of every param group; a sparse or complex gradient, or one
holding NaN/Inf, raises one ``ValueError`` naming ``param_groups[g][i]`` and its shape,
and parameters, momentum buffers, AdamW moments and step counts stay bit for bit as
they were. The constructors refuse bad hyper-parameters in one line.
"""

from __future__ import annotations

import copy
import math
import re

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from muonlab.optim import Muon, NonFiniteGradientError, NonFiniteUpdateError, ScaledGD, SignGD, SpecGD

OPTIMIZERS = {
    "muon": lambda ps, **kw: Muon(ps, lr=0.1, momentum=0.9, nesterov=True, **kw),
    "specgd": lambda ps, **kw: SpecGD(ps, lr=0.1, momentum=0.9, **kw),
    "signgd": lambda ps, **kw: SignGD(ps, lr=0.1, momentum=0.9, **kw),
}


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    # Two matrices and a vector (the vector goes to Muon's AdamW fallback).
    return [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in ((4, 3), (3, 5), (6,))]


def _grads(params, seed: int) -> None:
    g = torch.Generator().manual_seed(100 + seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)


def _snapshot(opt: torch.optim.Optimizer, params) -> tuple[list[torch.Tensor], dict]:
    return [p.detach().clone() for p in params], copy.deepcopy(opt.state_dict())


def _same_state(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, dict):
            if not isinstance(y, dict) or not _same_state(x, y):
                return False
        elif isinstance(x, torch.Tensor):
            if not (isinstance(y, torch.Tensor) and x.shape == y.shape and torch.equal(x, y)):
                return False
        elif x != y:
            return False
    return True


def _spoil(p: torch.nn.Parameter, kind: str) -> None:
    if kind == "nan":
        p.grad[0].fill_(float("nan"))
    elif kind == "inf":
        p.grad.view(-1)[-1] = -float("inf")
    elif kind == "sparse":
        p.grad = p.grad.to_sparse()


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("kind", ["nan", "inf", "sparse"])
@pytest.mark.parametrize("bad_index", [1, 2])
def test_a_bad_gradient_on_a_later_parameter_changes_nothing(name, kind, bad_index):
    params = _params()
    opt = OPTIMIZERS[name](params)
    for step in range(2):  # warm up the momentum buffers / AdamW moments
        _grads(params, step)
        opt.step()
    before, state = _snapshot(opt, params)
    _grads(params, 7)
    _spoil(params[bad_index], kind)
    with pytest.raises(ValueError) as info:
        opt.step()
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("params: param_groups[")
    assert f"shape {tuple(params[bad_index].shape)}" in msg
    for p, p0 in zip(params, before, strict=True):
        assert torch.equal(p.detach(), p0)
    assert _same_state(opt.state_dict(), state)
    # A good gradient afterwards steps normally.
    _grads(params, 8)
    opt.step()
    assert all(not torch.equal(p.detach(), p0) for p, p0 in zip(params, before, strict=True))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_nonfinite_gradient_is_one_documented_error_in_every_optimizer(name):
    params = _params()
    opt = OPTIMIZERS[name](params)
    _grads(params, 0)
    params[1].grad[1, 2] = float("nan")
    with pytest.raises(NonFiniteGradientError) as info:
        opt.step()
    err = info.value
    assert isinstance(err, ValueError) and err.field == "params"
    g, i = err.group, err.index
    assert opt.param_groups[g]["params"][i] is params[1]
    assert str(err) == (
        f"params: param_groups[{g}]['params'][{i}] (shape (3, 5)) has a non-finite gradient (NaN or Inf); "
        "the step was not taken and nothing was changed"
    )


def test_error_names_the_group_and_position():
    a, b, c = _params()
    opt = SignGD([{"params": [a]}, {"params": [b, c], "lr": 0.01}], lr=0.1)
    _grads([a, b, c], 0)
    c.grad[0] = float("inf")
    with pytest.raises(ValueError, match=r"^params: param_groups\[1\]\['params'\]\[1\] \(shape \(6,\)\)"):
        opt.step()


def test_scaledgd_checks_before_changing_anything():
    A = torch.nn.Parameter(torch.randn(4, 2))
    B = torch.nn.Parameter(torch.randn(2, 3))
    X = torch.nn.Parameter(torch.randn(5, 2))
    opt = ScaledGD([{"params": [A, B]}, {"params": [X]}], lr=0.1, damping=1e-3)
    for p in (A, B, X):
        p.grad = torch.randn_like(p)
    X.grad[0, 0] = float("nan")
    before = [p.detach().clone() for p in (A, B, X)]
    with pytest.raises(NonFiniteGradientError, match=r"param_groups\[1\]\['params'\]\[0\]"):
        opt.step()
    assert all(torch.equal(p.detach(), q) for p, q in zip((A, B, X), before, strict=True))


def test_sparse_gradient_is_refused_by_name_before_any_change():
    params = _params()
    opt = Muon(params, lr=0.1, momentum=0.5)
    _grads(params, 0)
    params[1].grad = params[1].grad.to_sparse()
    before = [p.detach().clone() for p in params]
    with pytest.raises(ValueError, match=r"^params: param_groups\[0\]\['params'\]\[1\] \(shape \(3, 5\)\) has a "
                                         r"sparse gradient"):
        opt.step()
    assert all(torch.equal(p.detach(), q) for p, q in zip(params, before, strict=True))
    assert not opt.state


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_complex_parameters_are_refused_by_the_constructor(name):
    W = torch.nn.Parameter(torch.randn(3, 3, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"^params: param_groups\[0\]\['params'\]\[1\] \(shape \(3, 3\)\) is complex"):
        OPTIMIZERS[name]([torch.nn.Parameter(torch.randn(2, 2)), W])


def test_complex_parameter_added_later_is_refused():
    opt = Muon([torch.nn.Parameter(torch.randn(2, 2))], lr=0.1)
    with pytest.raises(ValueError, match="complex"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.randn(2, 2, dtype=torch.complex128))]})
    assert len(opt.param_groups) == 1
    with pytest.raises(ValueError, match="complex"):
        ScaledGD([torch.nn.Parameter(torch.randn(3, 2, dtype=torch.complex64))], lr=0.1)


BAD_HYPER = [
    # (optimizer, kwargs, field, allowed range in the message)
    ("muon", {"lr": math.inf}, "lr", "finite number >= 0"),
    ("muon", {"lr": math.nan}, "lr", "finite number >= 0"),
    ("muon", {"lr": -0.1}, "lr", "finite number >= 0"),
    ("muon", {"momentum": 1.5}, "momentum", "in [0, 1)"),
    ("muon", {"momentum": 1.0}, "momentum", "in [0, 1)"),
    ("muon", {"momentum": math.nan}, "momentum", "in [0, 1)"),
    ("muon", {"weight_decay": math.inf}, "weight_decay", "finite number >= 0"),
    ("muon", {"eps": 0.0}, "eps", "finite number > 0"),
    ("muon", {"eps": math.nan}, "eps", "finite number > 0"),
    ("muon", {"beta": math.inf}, "beta", "finite number >= 0"),
    ("muon", {"adamw_eps": 0.0}, "adamw_eps", "finite number > 0"),
    ("muon", {"adamw_lr": math.inf}, "adamw_lr", "finite number >= 0"),
    ("muon", {"adamw_weight_decay": -1.0}, "adamw_weight_decay", "finite number >= 0"),
    ("muon", {"adamw_betas": (0.9, math.nan)}, "adamw_betas", "two numbers in [0, 1)"),
    ("muon", {"adamw_betas": (0.9,)}, "adamw_betas", "two numbers in [0, 1)"),
    ("muon", {"adamw_betas": ("a", 0.9)}, "adamw_betas", "two numbers in [0, 1)"),
    ("muon", {"coefficients": (math.nan, 1.0, 1.0)}, "coefficients", "finite"),
    ("specgd", {"lr": math.inf}, "lr", "finite number >= 0"),
    ("specgd", {"momentum": 1.5}, "momentum", "in [0, 1)"),
    ("specgd", {"beta": math.nan}, "beta", "finite number >= 0"),
    ("signgd", {"lr": math.inf}, "lr", "finite number >= 0"),
    ("signgd", {"momentum": 1.5}, "momentum", "in [0, 1)"),
    ("signgd", {"weight_decay": math.nan}, "weight_decay", "finite number >= 0"),
    ("scaledgd", {"lr": math.inf}, "lr", "finite number >= 0"),
    ("scaledgd", {"damping": math.inf}, "damping", "finite number >= 0"),
]


@pytest.mark.parametrize("name,kwargs,field,allowed", BAD_HYPER)
def test_bad_hyperparameters_are_refused_in_one_line(name, kwargs, field, allowed):
    build = {
        "muon": lambda ps, kw: Muon(ps, **{"lr": 0.1, **kw}),
        "specgd": lambda ps, kw: SpecGD(ps, **{"lr": 0.1, **kw}),
        "signgd": lambda ps, kw: SignGD(ps, **{"lr": 0.1, **kw}),
        "scaledgd": lambda ps, kw: ScaledGD(ps, **{"lr": 0.1, **kw}),
    }[name]
    with pytest.raises(ValueError) as info:
        build([torch.nn.Parameter(torch.randn(3, 2))], kwargs)
    msg = str(info.value)
    assert msg.startswith(f"{field}: ") and allowed in msg and "\n" not in msg
    assert getattr(info.value, "field", None) == field


@pytest.mark.parametrize("name", ["signgd", "scaledgd", "muon"])
def test_group_overrides_are_validated_too(name):
    p = torch.nn.Parameter(torch.randn(3, 2))
    build = {"signgd": SignGD, "scaledgd": ScaledGD, "muon": Muon}[name]
    with pytest.raises(ValueError, match="^lr: "):
        build([{"params": [p], "lr": math.inf}], lr=0.1)


def test_a_scheduler_that_sets_a_nonfinite_lr_is_refused_at_step():
    params = _params()
    opt = SignGD(params, lr=0.1)
    _grads(params, 0)
    opt.param_groups[0]["lr"] = math.nan
    before = [p.detach().clone() for p in params]
    with pytest.raises(ValueError, match=r"^lr: param_groups\[0\]"):
        opt.step()
    assert all(torch.equal(p.detach(), q) for p, q in zip(params, before, strict=True))


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(OPTIMIZERS)),
    bad=st.integers(0, 2),
    kind=st.sampled_from(["nan", "inf", "sparse"]),
    warm=st.integers(0, 2),
    seed=st.integers(0, 1000),
)
def test_property_any_bad_gradient_leaves_everything_untouched(name, bad, kind, warm, seed):
    params = _params(seed)
    opt = OPTIMIZERS[name](params)
    for step in range(warm):
        _grads(params, seed + step)
        opt.step()
    before, state = _snapshot(opt, params)
    _grads(params, seed + 50)
    _spoil(params[bad], kind)
    with pytest.raises(ValueError, match=r"^params: param_groups\[\d+\]\['params'\]\[\d+\] \(shape "):
        opt.step()
    assert all(torch.equal(p.detach(), q) for p, q in zip(params, before, strict=True))
    assert _same_state(opt.state_dict(), state)


@pytest.mark.parametrize("name", ["muon", "specgd"])
def test_a_finite_gradient_whose_update_overflows_changes_nothing(name):
    """Finite float32 gradients near 3e38 overflow the momentum buffer on the next step:
    SpecGD's SVD used to raise LinAlgError, and Muon to write NaN, after the first
    parameter had already been updated."""
    a, b = (torch.nn.Parameter(torch.randn(3, 3, generator=torch.Generator().manual_seed(s))) for s in (0, 1))
    opt = OPTIMIZERS[name]([a, b])
    taken = 0
    for _ in range(6):  # the buffer grows by 1e38 per step until it overflows
        before, state = _snapshot(opt, [a, b])
        a.grad, b.grad = torch.randn(3, 3), torch.full((3, 3), 1e38)
        try:
            opt.step()
        except ValueError as error:
            assert isinstance(error, NonFiniteUpdateError)
            assert re.match(
                r"^params: param_groups\[0\]\['params'\]\[1\] \(shape \(3, 3\)\): the update "
                r"(is not finite|could not be computed).*nothing was changed$", str(error)
            ), str(error)
            break
        taken += 1
    else:
        pytest.fail("the momentum buffer never overflowed")
    assert taken >= 1
    assert all(torch.equal(p.detach(), q) for p, q in zip((a, b), before, strict=True))
    assert _same_state(opt.state_dict(), state)


def test_catching_the_error_is_skipping_the_step():
    """GradScaler's policy by hand: an optimizer that met (and skipped) a bad step ends
    bit for bit where one that never saw it does."""
    p1, q1 = _params(3)[:2]
    p2, q2 = (torch.nn.Parameter(t.detach().clone()) for t in (p1, q1))
    o1 = Muon([p1, q1], lr=0.1, momentum=0.9, nesterov=True)
    o2 = Muon([p2, q2], lr=0.1, momentum=0.9, nesterov=True)
    for step in range(4):
        if step == 2:
            _grads([p1, q1], 99)
            q1.grad[0, 0] = float("nan")
            with pytest.raises(NonFiniteGradientError):
                o1.step()
        for ps, o in (([p1, q1], o1), ([p2, q2], o2)):
            _grads(ps, step)
            o.step()
    assert torch.equal(p1, p2) and torch.equal(q1, q2)


def test_gradscaler_still_skips_steps_on_its_own():
    p = torch.nn.Parameter(torch.randn(4, 3))
    opt = Muon([p], lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127)
    scaler.scale((p * 1e30).sum()).backward()  # inf gradients after scaling
    p0 = p.detach().clone()
    scaler.step(opt)  # skips: no error from muonlab
    scaler.update()
    assert torch.equal(p.detach(), p0) and scaler.get_scale() < 2.0**127


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_finite_gradients_whose_sum_overflows_still_step(name):
    """The fast finiteness check sums each gradient; a sum that overflows from finite
    entries must fall back to the exact check, not refuse the step."""
    p = torch.nn.Parameter(torch.randn(3, 3))
    opt = {"muon": Muon, "specgd": SpecGD, "signgd": SignGD}[name]([p], lr=0.1)
    # Positive (so their float32 sum overflows) and of full rank.
    p.grad = 3e38 * (0.5 + 0.5 * torch.rand(3, 3, generator=torch.Generator().manual_seed(5)))
    p0 = p.detach().clone()
    opt.step()
    assert torch.isfinite(p).all() and not torch.equal(p.detach(), p0)
    if name != "signgd":  # the update is msign(G), not 0 (‖G‖_F overflowed float32)
        ref = torch.linalg.svd(p.grad.double())
        polar = (ref.U @ ref.Vh).float()
        tol = 0.02 if name == "specgd" else 0.35  # Newton–Schulz (keller) is only ~msign
        assert (p0 - p.detach() - 0.1 * polar).abs().max() < tol * 0.1


@pytest.mark.parametrize("build", [lambda ps: SignGD(ps, lr=0.1), lambda ps: Muon(ps, lr=0.1)])
def test_add_param_group_reads_a_generator_once(build):
    opt = build([torch.nn.Parameter(torch.randn(2, 2))])
    new = [torch.nn.Parameter(torch.randn(3, 2)) for _ in range(2)]
    opt.add_param_group({"params": (p for p in new)})
    assert [p for g in opt.param_groups[1:] for p in g["params"]] == new
