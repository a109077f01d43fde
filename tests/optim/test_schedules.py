"""Tests for muonlab.optim.schedules: the pure batched core and the torch shell."""

from __future__ import annotations

import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from muonlab.optim.schedules import (
    SCHEDULES,
    Constant,
    Geometric,
    Plateau,
    ScheduleLR,
    ScheduleState,
    SpikeAnneal,
    WarmupCosine,
    make_schedule,
)

F64 = torch.float64
FAST = settings(max_examples=40, deadline=None)


def run_pure(sched, base_lr, n_steps, losses=None, n_runs=None, generator=None):
    """Drive a schedule the way the batched engine does; return (lrs (T, R), final state)."""
    state = sched.init(base_lr, n_runs=n_runs, generator=generator)
    lrs = [state.lr]
    for t in range(n_steps):
        loss = None if losses is None else losses[t]
        state = sched.step(state, loss)
        lrs.append(state.lr)
    return torch.stack(lrs), state


# ----------------------------------------------------------------------------- state / purity


def test_init_shapes_dtypes_and_broadcast():
    for sched in (Constant(), Geometric(), Plateau(), SpikeAnneal(first=1e-3), WarmupCosine(2, 10)):
        s = sched.init(0.1, n_runs=5, generator=torch.Generator().manual_seed(0))
        assert isinstance(s, ScheduleState) and s.t == 0
        for x in (s.lr, s.base, s.best):
            assert x.shape == (5,) and x.dtype == F64
        assert s.bad.shape == (5,) and s.bad.dtype == torch.int64
        assert torch.isinf(s.best).all() and (s.bad == 0).all()
    # a (R,) base_lr sets R; a float32 tensor is promoted
    s = Constant().init(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float32))
    assert s.lr.dtype == F64 and s.lr.shape == (3,)
    assert torch.allclose(s.lr, torch.tensor([0.1, 0.2, 0.3], dtype=F64), atol=1e-7)
    with pytest.raises(ValueError, match="n_runs"):
        Constant().init(torch.tensor([0.1, 0.2]), n_runs=3)


def test_step_is_pure():
    base = torch.tensor([1.0, 2.0], dtype=F64)
    for sched in (Constant(), Geometric(), Plateau(patience=1), SpikeAnneal(first=0.1), WarmupCosine(1, 4)):
        s0 = sched.init(base, generator=torch.Generator().manual_seed(1))
        snap = [x.clone() for x in (s0.lr, s0.base, s0.best, s0.bad)]
        loss = torch.tensor([5.0, 5.0], dtype=F64)
        s1 = sched.step(s0, loss)
        s2 = sched.step(s1, loss)  # plateau cuts here (patience 1, no improvement)
        assert s0.t == 0 and s1.t == 1 and s2.t == 2
        for before, after in zip(snap, (s0.lr, s0.base, s0.best, s0.bad)):
            assert torch.equal(before, after)
        assert base.tolist() == [1.0, 2.0]
        # the state never aliases the caller's base_lr tensor
        assert s0.base.data_ptr() != base.data_ptr()


# ----------------------------------------------------------------------------- constant


def test_constant():
    lrs, state = run_pure(Constant(), torch.tensor([0.1, 0.5], dtype=F64), 7)
    assert torch.equal(lrs, torch.tensor([[0.1, 0.5]] * 8, dtype=F64))
    assert state.t == 7
    assert Constant().lr_at(123, base_lr=0.3) == 0.3


# ----------------------------------------------------------------------------- geometric


def test_geometric_equals_c_q_t_and_prefactor_in_range():
    q, c_lo, c_hi = 0.9, 0.5, 1.0
    sched = Geometric(q=q, c_lo=c_lo, c_hi=c_hi)
    R, T = 64, 30
    lrs, state = run_pure(sched, 1.0, T, n_runs=R, generator=torch.Generator().manual_seed(0))
    c = lrs[0]
    assert ((c >= c_lo) & (c <= c_hi)).all()
    assert c.unique().numel() == R  # distinct prefactor per run
    assert c.std() > 0.05  # spread over the interval (U[0.5,1] has std ≈ 0.144)
    assert torch.equal(state.base, c)  # base stores base_lr · c
    t = torch.arange(T + 1, dtype=F64)[:, None]
    torch.testing.assert_close(lrs, c[None, :] * q**t, rtol=1e-14, atol=0)
    for tt in (0, 5, 30):
        assert sched.lr_at(tt, base_lr=float(c[3])) == pytest.approx(float(lrs[tt, 3]), rel=1e-14)


def test_geometric_scales_with_base_lr_and_is_reproducible():
    sched = Geometric(q=0.99)
    a = sched.init(1.0, n_runs=8, generator=torch.Generator().manual_seed(7))
    b = sched.init(1.0, n_runs=8, generator=torch.Generator().manual_seed(7))
    c = sched.init(1.0, n_runs=8, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.lr, b.lr)
    assert not torch.equal(a.lr, c.lr)
    base = torch.linspace(0.1, 0.8, 8, dtype=F64)
    d = sched.init(base, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(d.base, base * a.base, rtol=1e-15, atol=0)


def test_geometric_degenerate_interval_is_deterministic():
    s = Geometric(q=0.5, c_lo=0.3, c_hi=0.3).init(2.0, n_runs=3)
    s = Geometric(q=0.5, c_lo=0.3, c_hi=0.3).step(s)
    torch.testing.assert_close(s.lr, torch.full((3,), 2.0 * 0.3 * 0.5, dtype=F64))


@FAST
@given(q=st.floats(0.01, 1.0), t=st.integers(0, 500), base=st.floats(1e-4, 10.0), seed=st.integers(0, 2**31))
def test_geometric_property(q, t, base, seed):
    sched = Geometric(q=q, c_lo=0.25, c_hi=2.0)
    state = sched.init(base, n_runs=4, generator=torch.Generator().manual_seed(seed))
    c = state.base / base
    assert ((c >= 0.25 - 1e-12) & (c <= 2.0 + 1e-12)).all()
    state = state._replace(t=t)
    nxt = sched.step(state)
    torch.testing.assert_close(nxt.lr, state.base * q ** (t + 1), rtol=1e-13, atol=0)


# ----------------------------------------------------------------------------- plateau


def plateau_reference(losses, lr0, factor, patience, min_lr):
    """Scalar reference written straight from the documented rule."""
    best, bad, lr, out = math.inf, 0, lr0, [lr0]
    for L in losses:
        if math.isfinite(L) and L < best:
            best, bad = L, 0
        else:
            bad += 1
        if bad >= patience:
            lr = min(lr, max(lr * factor, min_lr))
            bad = 0
        out.append(lr)
    return out


def test_plateau_cuts_exactly_after_patience_non_improving_steps():
    sched = Plateau(factor=0.5, patience=3)
    # run 0 improves every step; run 1 stalls from step 1 on; run 2 stalls, recovers, stalls.
    losses = torch.tensor(
        [
            [5.0, 5.0, 5.0],
            [4.0, 5.0, 5.0],
            [3.0, 5.0, 4.0],  # run 2 improves at step 2
            [2.0, 5.0, 4.5],
            [1.0, 5.0, 4.5],
            [0.5, 5.0, 4.5],  # run 1: 5th non-improving step; run 2: 3rd since improving
            [0.4, 5.0, 4.5],
            [0.3, 5.0, 4.5],
        ],
        dtype=F64,
    )
    lrs, state = run_pure(sched, 1.0, len(losses), losses=losses, n_runs=3)
    # run 0 never cut
    assert (lrs[:, 0] == 1.0).all()
    # run 1: bad counts 1,2,3 at steps 1,2,3 -> cut after step 3 (lrs index 4); again after step 6
    assert lrs[:, 1].tolist() == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    # run 2: improves at steps 0 and 2; bad 1,2,3 at steps 3,4,5 -> cut after step 5
    assert lrs[:, 2].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    # runs with different loss histories have different lrs
    assert len(set(state.lr.tolist())) == 3
    assert state.best.tolist() == [0.3, 5.0, 4.0]
    assert state.bad.tolist() == [0, 1, 2]


def test_plateau_non_finite_loss_is_not_improving_and_min_lr_floor():
    sched = Plateau(factor=0.1, patience=1, min_lr=0.05)
    losses = torch.tensor(
        [[1.0, 1.0], [float("nan"), float("-inf")], [float("inf"), 0.5], [0.5, float("nan")]], dtype=F64
    )
    lrs, state = run_pure(sched, 1.0, 4, losses=losses, n_runs=2)
    # run 0: step1 NaN -> cut to 0.1, step2 +inf -> cut to max(0.01, 0.05) = 0.05, step3 improves
    assert lrs[:, 0].tolist() == pytest.approx([1.0, 1.0, 0.1, 0.05, 0.05])
    # run 1: -inf does not count as improvement (cut), 0.5 improves, NaN cuts again
    assert lrs[:, 1].tolist() == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.05])
    assert state.best.tolist() == [0.5, 0.5]
    # a cut never raises lr: base below min_lr stays put
    s = sched.init(0.01, n_runs=1)
    s = sched.step(sched.step(s, torch.tensor([1.0])), torch.tensor([1.0]))
    assert s.lr.tolist() == [0.01]


def test_plateau_requires_loss_and_checks_shape():
    sched = Plateau()
    state = sched.init(1.0, n_runs=3)
    with pytest.raises(ValueError, match="loss"):
        sched.step(state)
    with pytest.raises(ValueError, match="shape"):
        sched.step(state, torch.ones(2))
    # a scalar loss broadcasts to all runs
    assert sched.step(state, torch.tensor(1.0)).best.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(NotImplementedError):
        sched.lr_at(3)


@FAST
@given(
    data=st.lists(
        st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, float("nan")]), min_size=3, max_size=3),
        min_size=1,
        max_size=40,
    ),
    patience=st.integers(1, 5),
    factor=st.sampled_from([0.1, 0.5, 0.9]),
    min_lr=st.sampled_from([0.0, 0.2]),
)
def test_plateau_batched_matches_scalar_reference(data, patience, factor, min_lr):
    losses = torch.tensor(data, dtype=F64)
    base = torch.tensor([1.0, 0.5, 0.1], dtype=F64)
    lrs, _ = run_pure(Plateau(factor=factor, patience=patience, min_lr=min_lr), base, len(data), losses=losses)
    for r in range(3):
        ref = plateau_reference(losses[:, r].tolist(), float(base[r]), factor, patience, min_lr)
        assert lrs[:, r].tolist() == pytest.approx(ref, rel=1e-15, abs=0)


@FAST
@given(
    seq=st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, float("nan"), float("inf")]), min_size=1, max_size=60),
    patience=st.integers(1, 6),
    factor=st.sampled_from([0.1, 0.5]),
    min_lr=st.sampled_from([0.0, 0.05]),
    threshold=st.sampled_from([0.0, 0.3]),
)
def test_plateau_matches_torch_reduce_lr_on_plateau(seq, patience, factor, min_lr, threshold):
    """Our patience k == torch's patience k-1 (torch cuts when bad > patience), with
    the same relative threshold, cooldown=0, eps=0. (-inf is the one documented difference; not drawn.)"""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=factor, patience=patience - 1, threshold=threshold, threshold_mode="rel",
        cooldown=0, min_lr=min_lr, eps=0.0,
    )
    sched = Plateau(factor=factor, patience=patience, min_lr=min_lr, threshold=threshold)
    state = sched.init(1.0, n_runs=1)
    for L in seq:
        ref.step(L)
        state = sched.step(state, torch.tensor([L], dtype=F64))
        assert state.lr.item() == opt.param_groups[0]["lr"]


# ----------------------------------------------------------------------------- spike_anneal


def test_spike_anneal_sequence():
    sched = SpikeAnneal(first=1e-3, peak=2.0)
    lrs, _ = run_pure(sched, 123.0, 4, n_runs=2)  # peak overrides base_lr
    assert lrs[:, 0].tolist() == [1e-3, 2.0, 1.0, 0.5, 0.25]
    assert torch.equal(lrs[:, 0], lrs[:, 1])
    # default peak = per-run base lr (e.g. sqrt(sigma_max(M*)) per run)
    base = torch.tensor([4.0, 9.0], dtype=F64).sqrt()
    lrs, _ = run_pure(SpikeAnneal(first=0.01), base, 3)
    assert lrs.tolist() == [[0.01, 0.01], [2.0, 3.0], [1.0, 1.5], [0.5, 0.75]]
    assert [SpikeAnneal(first=0.01).lr_at(t, base_lr=3.0) for t in range(4)] == [0.01, 3.0, 1.5, 0.75]
    lrs, _ = run_pure(SpikeAnneal(first=0.1, peak=1.0, decay=0.9), 1.0, 3, n_runs=1)
    assert lrs[:, 0].tolist() == pytest.approx([0.1, 1.0, 0.9, 0.81], rel=1e-15)


# ----------------------------------------------------------------------------- warmup_cosine


def test_warmup_cosine_endpoints():
    sched = WarmupCosine(warmup=4, total=12, min_factor=0.1)
    lrs, _ = run_pure(sched, 2.0, 15, n_runs=1)
    lr = lrs[:, 0].tolist()
    assert lr[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])  # base·(t+1)/W
    assert lr[4] == pytest.approx(2.0)  # cosine starts at the peak
    assert lr[8] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))  # halfway
    assert lr[12:] == pytest.approx([0.2] * 4)  # base·min_factor at and after total
    assert [sched.lr_at(t, 2.0) for t in range(16)] == pytest.approx(lr)
    # no warmup: starts at base
    assert WarmupCosine(warmup=0, total=10).lr_at(0) == 1.0
    assert WarmupCosine(warmup=0, total=10).lr_at(10) == 0.0


@FAST
@given(warmup=st.integers(0, 30), extra=st.integers(1, 60), m=st.floats(0.0, 1.0))
def test_warmup_cosine_monotone(warmup, extra, m):
    total = warmup + extra
    sched = WarmupCosine(warmup=warmup, total=total, min_factor=m)
    lrs, _ = run_pure(sched, 1.0, total + 5, n_runs=1)
    lr = lrs[:, 0]
    d = lr.diff()
    if warmup:
        assert (d[: warmup - 1] > 0).all()  # strictly increasing warmup
        assert lr[warmup - 1].item() == pytest.approx(1.0)
    assert (d[warmup - 1 if warmup else 0 :] <= 1e-15).all()  # non-increasing afterwards
    assert lr.max().item() == pytest.approx(1.0)
    assert lr[total:].tolist() == pytest.approx([m] * 6)
    assert (lr[warmup:] >= m - 1e-15).all()  # never below the floor after warmup


# ----------------------------------------------------------------------------- registry / validation


def test_registry_and_factory():
    assert set(SCHEDULES) == {"constant", "geometric", "plateau", "spike_anneal", "warmup_cosine"}
    assert make_schedule("plateau", factor=0.25, patience=3) == Plateau(factor=0.25, patience=3)
    assert isinstance(make_schedule("constant"), Constant)
    with pytest.raises(ValueError, match=r"'cosine'.*constant.*geometric.*plateau.*spike_anneal.*warmup_cosine"):
        make_schedule("cosine")
    with pytest.raises(ValueError, match="gamma"):
        make_schedule("geometric", gamma=0.9)
    with pytest.raises(ValueError, match="first"):
        make_schedule("spike_anneal")


@pytest.mark.parametrize(
    "name, params, field",
    [
        ("geometric", {"q": -0.5}, "q"),
        ("geometric", {"q": 0.0}, "q"),
        ("geometric", {"q": 1.5}, "q"),
        ("geometric", {"c_lo": 0.9, "c_hi": 0.5}, "c_lo"),
        ("geometric", {"c_lo": 0.0}, "c_lo"),
        ("geometric", {"q": float("nan")}, "q"),
        ("plateau", {"factor": 1.0}, "factor"),
        ("plateau", {"factor": 0.0}, "factor"),
        ("plateau", {"patience": 0}, "patience"),
        ("plateau", {"patience": 2.5}, "patience"),
        ("plateau", {"min_lr": -1.0}, "min_lr"),
        ("plateau", {"threshold": 1.0}, "threshold"),
        ("plateau", {"threshold": -0.1}, "threshold"),
        ("spike_anneal", {"first": -1.0}, "first"),
        ("spike_anneal", {"first": 0.1, "peak": 0.0}, "peak"),
        ("spike_anneal", {"first": 0.1, "decay": 1.5}, "decay"),
        ("warmup_cosine", {"warmup": -1, "total": 5}, "warmup"),
        ("warmup_cosine", {"warmup": 5, "total": 5}, "total"),
        ("warmup_cosine", {"warmup": 1, "total": 5, "min_factor": 2.0}, "min_factor"),
    ],
)
def test_bad_parameters_raise_with_field_name(name, params, field):
    with pytest.raises(ValueError, match=field):
        make_schedule(name, **params)


# ----------------------------------------------------------------------------- torch shell


def _model_and_sgd(lrs=(0.1, 0.02)):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 1))
    groups = [{"params": m.parameters(), "lr": lr} for m, lr in zip(model, lrs)]
    return model, torch.optim.SGD(groups, lr=lrs[0])


def _train_step(model, opt, x, y):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    return loss.detach()


@pytest.mark.parametrize(
    "sched",
    [Constant(), Geometric(q=0.8), Plateau(factor=0.5, patience=2), SpikeAnneal(first=1e-3), WarmupCosine(3, 10, 0.1)],
    ids=lambda s: s.name,
)
def test_schedule_lr_drives_sgd_like_the_pure_schedule(sched):
    model, opt = _model_and_sgd()
    sch = ScheduleLR(opt, sched, generator=torch.Generator().manual_seed(3))
    assert isinstance(sch, torch.optim.lr_scheduler.LRScheduler)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.02]
    pure = sched.init(torch.tensor([0.1, 0.02], dtype=F64), generator=torch.Generator().manual_seed(3))
    torch.manual_seed(1)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    losses = []
    for t in range(12):
        assert [g["lr"] for g in opt.param_groups] == pure.lr.tolist()
        assert sch.get_last_lr() == pure.lr.tolist() and sch.last_epoch == t
        loss = _train_step(model, opt, x, y)
        # plateau: a synthetic stall makes cuts happen within the 12 steps
        fed = loss if t < 3 else torch.tensor(10.0)
        losses.append(fed)
        sch.step(fed)
        pure = sched.step(pure, fed.to(F64).expand(2))
    if isinstance(sched, Plateau):
        assert sch.get_last_lr()[0] < 0.1  # it did cut
    if isinstance(sched, Geometric):
        assert sch.get_last_lr()[0] / 0.1 != sch.get_last_lr()[1] / 0.02  # per-group prefactor


def test_schedule_lr_accepts_float_loss_and_name():
    _model, opt = _model_and_sgd()
    sch = ScheduleLR(opt, Plateau(patience=1, factor=0.5))
    sch.step(1.0)
    sch.step(2.0)  # no improvement -> cut
    assert sch.get_last_lr() == [0.05, 0.01]
    with pytest.raises(ValueError, match="loss"):
        sch.step()
    _, opt2 = _model_and_sgd()
    assert ScheduleLR(opt2, "constant").get_last_lr() == [0.1, 0.02]


@pytest.mark.parametrize(
    "sched", [Geometric(q=0.9), Plateau(factor=0.5, patience=2), WarmupCosine(2, 9)], ids=lambda s: s.name
)
def test_schedule_lr_state_dict_round_trip_resumes_identically(sched):
    torch.manual_seed(2)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    stall = [3.0, 2.0, 2.5, 2.5, 2.5, 1.0, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5]

    model, opt = _model_and_sgd()
    sch = ScheduleLR(opt, sched, generator=torch.Generator().manual_seed(5))
    for t in range(5):
        _train_step(model, opt, x, y)
        sch.step(stall[t])
    # checkpoint through torch.save / weights_only load
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sch.state_dict()}, buf)
    ckpt_lrs = sch.get_last_lr()
    for t in range(5, 12):  # continue the original
        _train_step(model, opt, x, y)
        sch.step(stall[t])
    expected = sch.get_last_lr()

    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    model2, opt2 = _model_and_sgd()
    # a different generator must not matter after loading (c is in the state)
    sch2 = ScheduleLR(opt2, sched, generator=torch.Generator().manual_seed(99))
    model2.load_state_dict(ckpt["model"])
    sch2.load_state_dict(ckpt["sched"])
    assert sch2.get_last_lr() == ckpt_lrs
    assert [g["lr"] for g in opt2.param_groups] == ckpt_lrs
    opt2.load_state_dict(ckpt["opt"])
    assert sch2.last_epoch == 5
    for t in range(5, 12):
        _train_step(model2, opt2, x, y)
        sch2.step(stall[t])
    assert sch2.get_last_lr() == expected
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)


def test_schedule_lr_load_rejects_other_schedule():
    _, opt = _model_and_sgd()
    sd = ScheduleLR(opt, Geometric(q=0.9)).state_dict()
    _, opt2 = _model_and_sgd()
    with pytest.raises(ValueError, match="schedule"):
        ScheduleLR(opt2, Geometric(q=0.8)).load_state_dict(sd)


def test_schedule_lr_tensor_lr_updated_in_place():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=torch.tensor(0.5))
    lr_tensor = opt.param_groups[0]["lr"]
    sch = ScheduleLR(opt, SpikeAnneal(first=0.01))
    assert opt.param_groups[0]["lr"] is lr_tensor and lr_tensor.item() == pytest.approx(0.01)
    sch.step()
    assert lr_tensor.item() == pytest.approx(0.5)
    assert float(opt.param_groups[0]["initial_lr"]) == 0.5
