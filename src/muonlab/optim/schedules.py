"""Step-size schedules: a pure, batched core and a ``torch.optim`` shell.

Every schedule is a frozen dataclass with two pure methods,

* ``init(base_lr, n_runs=None, generator=None) -> ScheduleState`` and
* ``step(state, loss=None) -> ScheduleState``,

that operate on a :class:`ScheduleState` whose tensors carry a leading run
dimension ``R``.  A batched run engine advances many runs together::

    sched = make_schedule("geometric", q=0.99)
    state = sched.init(base_lr=torch.full((R,), 0.1), generator=g)
    for _ in range(T):
        W = update(W, grad, lr=state.lr)          # state.lr: (R,) float64
        state = sched.step(state, loss=loss_fn(W))  # loss: (R,), used by plateau

:class:`ScheduleLR` wraps any schedule as a ``torch.optim.lr_scheduler.LRScheduler``
over an optimizer's param groups (one "run" per group).

Schedules (SPEC §3):

* ``constant`` — η_t = η.
* ``geometric`` — η_t = η·c·q^t with c ~ U[c_lo, c_hi] per run (seed 001, Ma, Huang,
  Chi, Chen, arXiv 2601.13474, Theorems 1 and 3).
* ``plateau`` — η ← ρ·η after k consecutive non-improving steps (seed 001 experiments).
* ``spike_anneal`` — η_0 = α, η_1 = peak, η_{t+1} = η_t·decay (seed 002, Rhee, Simon,
  Karkada, arXiv 2606.30509, two-step alignment).
* ``warmup_cosine`` — linear warmup then cosine decay, for fine-tuning.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor
from torch.optim.lr_scheduler import LRScheduler

from muonlab.errors import MuonlabError

__all__ = [
    "SCHEDULES",
    "Constant",
    "Geometric",
    "Plateau",
    "Schedule",
    "ScheduleLR",
    "ScheduleState",
    "SpikeAnneal",
    "WarmupCosine",
    "make_schedule",
]

_DTYPE = torch.float64


class ScheduleState(NamedTuple):
    """Batched state of a schedule; every tensor has the leading run dimension R.

    Attributes:
        t: number of completed steps (a Python int, shared by all runs).
        lr: ``(R,)`` float64, the step size to use for step ``t``.
        base: ``(R,)`` float64, the per-run base value (base lr, or base lr · c for
            ``geometric``).
        best: ``(R,)`` float64, best loss seen so far (``+inf`` initially; plateau).
        bad: ``(R,)`` int64, consecutive non-improving steps (plateau).
    """

    t: int
    lr: Tensor
    base: Tensor
    best: Tensor
    bad: Tensor


# ----------------------------------------------------------------------------- helpers


def _check_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MuonlabError.about(name, f"must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise MuonlabError.about(name, f"must be finite, got {value!r}")
    return value


def _check_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise MuonlabError.about(name, f"must be an integer, got {value!r}")
    return int(value)


def _as_runs(value: Tensor | float, n_runs: int | None, what: str) -> Tensor:
    """Broadcast a scalar or (R,) value to a fresh (R,) float64 tensor."""
    v = value.detach().to(_DTYPE) if isinstance(value, Tensor) else torch.as_tensor(value, dtype=_DTYPE)
    if v.dim() > 1:
        raise MuonlabError.about(what, f"must be a scalar or a 1-D (R,) tensor, got shape {tuple(v.shape)}")
    v = v.reshape(-1)
    if n_runs is None:
        n_runs = v.numel()
    if n_runs < 1:
        raise MuonlabError.about("n_runs", f"must be >= 1, got {n_runs}")
    if v.numel() not in (1, n_runs):
        raise MuonlabError.about(what, f"has {v.numel()} entries but n_runs = {n_runs}")
    # clone: the state must never alias the caller's tensor (purity).
    return v.expand(n_runs).clone()


def _fresh_state(lr: Tensor, base: Tensor) -> ScheduleState:
    n = lr.shape[0]
    return ScheduleState(
        t=0,
        lr=lr,
        base=base,
        best=torch.full((n,), math.inf, dtype=_DTYPE, device=lr.device),
        bad=torch.zeros((n,), dtype=torch.int64, device=lr.device),
    )


# ----------------------------------------------------------------------------- schedules


@dataclass(frozen=True)
class Schedule:
    """Base class. Subclasses define ``name`` and either ``_factor`` (deterministic
    schedules: η_t = base · factor(t)) or override ``init``/``step``."""

    name: ClassVar[str] = ""

    def params(self) -> dict[str, Any]:
        """The constructor arguments, e.g. for configs and ``state_dict``."""
        return dataclasses.asdict(self)

    def _factor(self, t: int) -> float:  # pragma: no cover - overridden
        raise NotImplementedError(f"schedule {self.name!r} has no closed form lr_at(t)")

    def init(
        self,
        base_lr: Tensor | float,
        n_runs: int | None = None,
        generator: torch.Generator | None = None,
    ) -> ScheduleState:
        """State at t = 0; ``state.lr`` is the step size for the first step."""
        base = _as_runs(base_lr, n_runs, "base_lr")
        return _fresh_state(base * self._factor(0), base)

    def step(self, state: ScheduleState, loss: Tensor | None = None) -> ScheduleState:
        """Advance one step (pure). ``loss`` is ignored by deterministic schedules."""
        t = state.t + 1
        # Closed form from t (not a running product) so lr_t is exactly base·factor(t).
        return state._replace(t=t, lr=state.base * self._factor(t))

    def lr_at(self, t: int, base_lr: float = 1.0) -> float:
        """Step size at step ``t`` for a scalar base value."""
        return float(base_lr) * self._factor(_check_int("t", t))


@dataclass(frozen=True)
class Constant(Schedule):
    """η_t = η (the base lr), for all t."""

    name: ClassVar[str] = "constant"

    def _factor(self, t: int) -> float:
        return 1.0


@dataclass(frozen=True)
class Geometric(Schedule):
    """Geometrically decaying step size with a random prefactor (seed 001).

    η_t = η · c · q^t,  c ~ Uniform[c_lo, c_hi] drawn once per run at ``init``.

    Ma, Huang, Chi, Chen, *Preconditioning Benefits of Spectral Orthogonalization in
    Muon*, arXiv 2601.13474, Theorems 1 and 3: with η = 1 this is the paper's c·q^t;
    the random prefactor keeps the scalar iterates from landing exactly on a fixed
    point. ``state.base`` stores η·c, so ``lr_at(t, base_lr=η·c)`` reproduces a run.

    Args:
        q: decay ratio, 0 < q <= 1 (q = 1: constant at η·c).
        c_lo, c_hi: prefactor range, 0 < c_lo <= c_hi (equal: deterministic c).
    """

    q: float = 0.99
    c_lo: float = 0.5
    c_hi: float = 1.0

    name: ClassVar[str] = "geometric"

    def __post_init__(self) -> None:
        q = _check_real("q", self.q)
        if not 0.0 < q <= 1.0:
            raise MuonlabError.about("q", f"must satisfy 0 < q <= 1, got q={self.q!r}")
        c_lo = _check_real("c_lo", self.c_lo)
        c_hi = _check_real("c_hi", self.c_hi)
        if c_lo <= 0.0:
            raise MuonlabError.about("c_lo", f"must be > 0, got c_lo={self.c_lo!r}")
        if c_lo > c_hi:
            raise MuonlabError.about("c_lo", f"must be <= c_hi, got c_lo={self.c_lo!r} > c_hi={self.c_hi!r}")

    def _factor(self, t: int) -> float:
        return self.q**t

    def init(
        self,
        base_lr: Tensor | float,
        n_runs: int | None = None,
        generator: torch.Generator | None = None,
    ) -> ScheduleState:
        base = _as_runs(base_lr, n_runs, "base_lr")
        # Draw on the generator's device (torch requires it), then move to base's.
        gen_device = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand(base.shape[0], generator=generator, dtype=_DTYPE, device=gen_device)
        c = self.c_lo + (self.c_hi - self.c_lo) * u.to(base.device)
        base = base * c
        return _fresh_state(base.clone(), base)


@dataclass(frozen=True)
class Plateau(Schedule):
    """Cut the step size when the loss stalls (seed 001 experiments; SPEC §3).

    Per run r, after each step with loss L_t:

    * improved ⇔ L_t is finite and L_t < best·(1 − threshold) (default threshold 0:
      any strict decrease); then best ← L_t and bad ← 0, else bad ← bad + 1;
    * if bad == patience: η ← min(η, max(factor·η, min_lr)) and bad ← 0.

    So η is cut exactly after ``patience`` consecutive non-improving steps; ``best``
    is not reset by a cut. A cut never raises η (if η_0 < min_lr it stays η_0).
    Equivalent to ``torch.optim.lr_scheduler.ReduceLROnPlateau(mode="min",
    factor=factor, patience=patience - 1, threshold=threshold, threshold_mode="rel",
    cooldown=0, min_lr=min_lr, eps=0)`` except that a loss of -inf counts as *not* improving here (torch would
    accept it as a new best). NaN and +inf never improve in either.

    Args:
        factor: ρ, 0 < ρ < 1 (default 0.5).
        patience: k >= 1 (default 10).
        min_lr: floor on η, >= 0 (default 0).
        threshold: relative improvement that counts as progress, in [0, 1) (default
            0). A small positive value (e.g. 1e-3) keeps a loss that creeps down
            while oscillating between two levels from postponing every cut forever.
    """

    factor: float = 0.5
    patience: int = 10
    min_lr: float = 0.0
    threshold: float = 0.0

    name: ClassVar[str] = "plateau"

    def __post_init__(self) -> None:
        factor = _check_real("factor", self.factor)
        if not 0.0 < factor < 1.0:
            raise MuonlabError.about("factor", f"must satisfy 0 < factor < 1, got factor={self.factor!r}")
        patience = _check_int("patience", self.patience)
        if patience < 1:
            raise MuonlabError.about("patience", f"must be >= 1, got patience={self.patience!r}")
        if _check_real("min_lr", self.min_lr) < 0.0:
            raise MuonlabError.about("min_lr", f"must be >= 0, got min_lr={self.min_lr!r}")
        if not 0.0 <= _check_real("threshold", self.threshold) < 1.0:
            raise MuonlabError.about("threshold", f"must satisfy 0 <= threshold < 1, got threshold={self.threshold!r}")

    def _factor(self, t: int) -> float:
        # Only the base class's init uses it (η_0 = η); later steps depend on the loss.
        return 1.0

    def step(self, state: ScheduleState, loss: Tensor | None = None) -> ScheduleState:
        if loss is None:
            raise MuonlabError.about(
                "loss",
                "the plateau schedule needs it: call step(state, loss) with the (R,) loss after the step just taken",
            )
        n = state.lr.shape[0]
        L = torch.as_tensor(loss).detach().to(device=state.lr.device, dtype=_DTYPE)
        if L.dim() > 1 or L.numel() not in (1, n):
            raise MuonlabError.about("loss", f"must be a scalar or have shape ({n},), got shape {tuple(L.shape)}")
        L = L.reshape(-1).expand(n)
        # Vectorized over runs; isfinite guards NaN/±inf (NaN < best is already False,
        # but -inf would otherwise become an unbeatable best after a blow-up).
        improved = torch.isfinite(L) & (L < state.best * (1.0 - self.threshold))
        best = torch.where(improved, L, state.best)
        bad = torch.where(improved, torch.zeros_like(state.bad), state.bad + 1)
        cut = bad >= self.patience
        cut_lr = torch.minimum(state.lr, torch.clamp(state.lr * self.factor, min=self.min_lr))
        lr = torch.where(cut, cut_lr, state.lr)
        bad = torch.where(cut, torch.zeros_like(bad), bad)
        return ScheduleState(t=state.t + 1, lr=lr, base=state.base, best=best, bad=bad)

    def lr_at(self, t: int, base_lr: float = 1.0) -> float:
        raise NotImplementedError("plateau depends on the loss history; it has no lr_at(t)")


@dataclass(frozen=True)
class SpikeAnneal(Schedule):
    """Two-step alignment schedule of seed 002 (Rhee, Simon, Karkada, *Muon dynamics in
    matrix factorization*, arXiv 2606.30509).

    η_0 = first (the init scale α), η_1 = peak, η_{t+1} = decay · η_t for t >= 1,
    i.e. η_t = peak · decay^(t-1) for t >= 1.

    ``peak`` defaults to the per-run base lr passed to ``init`` (the seed uses
    sqrt(σ_max(M*)), which the caller computes from the target); a given ``peak``
    overrides base_lr for every run.

    Args:
        first: η_0 > 0.
        peak: η_1 > 0 or None (use base_lr).
        decay: 0 < decay <= 1 (default 0.5, the seed's halving).
    """

    first: float
    peak: float | None = None
    decay: float = 0.5

    name: ClassVar[str] = "spike_anneal"

    def __post_init__(self) -> None:
        if _check_real("first", self.first) <= 0.0:
            raise MuonlabError.about("first", f"must be > 0, got first={self.first!r}")
        if self.peak is not None and _check_real("peak", self.peak) <= 0.0:
            raise MuonlabError.about("peak", f"must be > 0, got peak={self.peak!r}")
        decay = _check_real("decay", self.decay)
        if not 0.0 < decay <= 1.0:
            raise MuonlabError.about("decay", f"must satisfy 0 < decay <= 1, got decay={self.decay!r}")

    def _lr(self, t: int, base: Tensor) -> Tensor:
        if t == 0:
            return torch.full_like(base, float(self.first))
        return base * (self.decay ** (t - 1))

    def init(
        self,
        base_lr: Tensor | float,
        n_runs: int | None = None,
        generator: torch.Generator | None = None,
    ) -> ScheduleState:
        base = _as_runs(base_lr, n_runs, "base_lr")
        if self.peak is not None:
            base = torch.full_like(base, float(self.peak))
        return _fresh_state(self._lr(0, base), base)

    def step(self, state: ScheduleState, loss: Tensor | None = None) -> ScheduleState:
        t = state.t + 1
        return state._replace(t=t, lr=self._lr(t, state.base))

    def lr_at(self, t: int, base_lr: float = 1.0) -> float:
        t = _check_int("t", t)
        if t == 0:
            return float(self.first)
        peak = float(base_lr) if self.peak is None else float(self.peak)
        return peak * self.decay ** (t - 1)


@dataclass(frozen=True)
class WarmupCosine(Schedule):
    """Linear warmup then cosine decay (for fine-tuning).

    With W = warmup, T = total, m = min_factor:

    * t < W:      η_t = η · (t+1)/W
    * W <= t < T: η_t = η · (m + (1-m) · ½(1 + cos(π (t-W)/(T-W))))
    * t >= T:     η_t = η · m

    So η reaches η at t = W-1 (and stays there at t = W), and η·m at t = T.

    Args:
        warmup: W >= 0 (0: no warmup).
        total: T > W.
        min_factor: m in [0, 1] (default 0).
    """

    warmup: int
    total: int
    min_factor: float = 0.0

    name: ClassVar[str] = "warmup_cosine"

    def __post_init__(self) -> None:
        warmup = _check_int("warmup", self.warmup)
        total = _check_int("total", self.total)
        if warmup < 0:
            raise MuonlabError.about("warmup", f"must be >= 0, got warmup={self.warmup!r}")
        if total <= warmup:
            raise MuonlabError.about("total", f"must be > warmup, got total={self.total!r}, warmup={self.warmup!r}")
        m = _check_real("min_factor", self.min_factor)
        if not 0.0 <= m <= 1.0:
            raise MuonlabError.about("min_factor", f"must be in [0, 1], got min_factor={self.min_factor!r}")

    def _factor(self, t: int) -> float:
        if t < self.warmup:
            return (t + 1) / self.warmup
        if t >= self.total:
            return float(self.min_factor)
        frac = (t - self.warmup) / (self.total - self.warmup)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * frac))


# ----------------------------------------------------------------------------- registry

SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (Constant, Geometric, Plateau, SpikeAnneal, WarmupCosine)
}


def make_schedule(name: str, **params: Any) -> Schedule:
    """Build a schedule by registry name, e.g. ``make_schedule("plateau", factor=0.5)``.

    Raises:
        ValueError: unknown name (the message lists the allowed names), unknown or
            missing parameter, or a parameter out of range (the message names it).
    """
    cls = SCHEDULES.get(name)
    if cls is None:
        raise MuonlabError.about("name", f"unknown schedule {name!r}; allowed: {', '.join(sorted(SCHEDULES))}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise MuonlabError.about(
            unknown[0], f"unknown parameter of schedule {name!r}; allowed: {', '.join(fields) or '(none)'}"
        )
    missing = [
        f.name
        for f in fields.values()
        if f.name not in params
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise MuonlabError.about(missing[0], f"required by schedule {name!r}")
    return cls(**params)


# ----------------------------------------------------------------------------- torch shell


class ScheduleLR(LRScheduler):
    """Drive any :class:`Schedule` as a torch LR scheduler on any optimizer.

    One run per param group: ``R = len(optimizer.param_groups)`` and the base value of
    group i is its ``initial_lr`` (set to its current ``lr`` if absent, as torch does).
    Each group's ``lr`` is set from ``state.lr`` at construction and after every
    ``step``. Call ``step(loss)`` after ``optimizer.step()``; ``loss`` (float, 0-d
    tensor, or one value per group) is required by ``plateau`` and ignored otherwise,
    like ``ReduceLROnPlateau.step(metrics)``.

    This *is* a ``torch.optim.lr_scheduler.LRScheduler`` (``isinstance`` holds, so
    frameworks accept it) but, like ``ReduceLROnPlateau``, it does not call the base
    ``__init__``: all state lives in a :class:`ScheduleState`, and ``state_dict`` holds
    only tensors and plain Python values (safe for ``torch.load(weights_only=True)``).
    ``last_epoch`` mirrors ``state.t``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: Schedule | str,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if isinstance(schedule, str):
            schedule = make_schedule(schedule)
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a Schedule or a registry name, got {schedule!r}")
        self.optimizer = optimizer
        self.schedule = schedule
        for group in optimizer.param_groups:
            lr = group["lr"]
            group.setdefault("initial_lr", lr.clone() if isinstance(lr, Tensor) else lr)
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.state = schedule.init(
            torch.tensor(self.base_lrs, dtype=_DTYPE), generator=generator
        )
        self._step_count = 1
        self._apply()

    @property
    def last_epoch(self) -> int:
        return self.state.t

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        # torch's machinery may assign it; the state's t is the single source of truth.
        if int(value) != self.state.t:
            raise AttributeError("last_epoch is read-only on ScheduleLR (it mirrors state.t)")

    def _apply(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != self.state.lr.shape[0]:
            raise RuntimeError(
                f"optimizer has {len(groups)} param groups but the schedule state has "
                f"{self.state.lr.shape[0]} runs (param groups added after construction?)"
            )
        for group, lr in zip(groups, self.state.lr.tolist()):
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(lr)  # tensor lrs (capturable/compiled) are updated in place
            else:
                group["lr"] = lr
        self._last_lr = self.state.lr.tolist()

    def step(self, loss: Tensor | float | None = None) -> None:
        """Advance the schedule by one step and update the groups' lrs."""
        if loss is not None and not isinstance(loss, Tensor):
            loss = torch.as_tensor(loss, dtype=_DTYPE)
        self.state = self.schedule.step(self.state, loss)
        self._step_count += 1
        self._apply()

    def get_lr(self) -> list[float | Tensor]:
        """The current step size of each group (same as :meth:`get_last_lr`)."""
        return self.state.lr.tolist()

    def get_last_lr(self) -> list[float | Tensor]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        s = self.state
        return {
            "schedule": {"name": self.schedule.name, "params": self.schedule.params()},
            "t": s.t,
            "lr": s.lr.clone(),
            "base": s.base.clone(),
            "best": s.best.clone(),
            "bad": s.bad.clone(),
            "base_lrs": list(self.base_lrs),
            "_step_count": self._step_count,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` and set the groups' lrs from it.

        Raises ``ValueError`` if the saved schedule (name and parameters) differs from
        this scheduler's: resuming under another schedule would silently change the run.
        """
        saved = state_dict["schedule"]
        mine = {"name": self.schedule.name, "params": self.schedule.params()}
        if saved != mine:
            raise MuonlabError.about("state_dict", f"is for schedule {saved}, this scheduler has {mine}")
        self.state = ScheduleState(
            t=int(state_dict["t"]),
            lr=state_dict["lr"].to(_DTYPE).clone(),
            base=state_dict["base"].to(_DTYPE).clone(),
            best=state_dict["best"].to(_DTYPE).clone(),
            bad=state_dict["bad"].to(torch.int64).clone(),
        )
        self.base_lrs = list(state_dict["base_lrs"])
        self._step_count = int(state_dict["_step_count"])
        self._apply()
