"""The :class:`Claim` result, the claim registry (:func:`claim`) and helpers shared by the
claim modules."""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from muonlab.accuracy import EPSILONS, eps_column
from muonlab.errors import MuonlabError

#: Confidence level of the interval on the pass fraction.
CI_LEVEL = 0.95


def clopper_pearson(k: int, n: int, level: float = CI_LEVEL) -> tuple[float, float]:
    """The exact (Clopper–Pearson) two-sided ``level`` interval for a binomial proportion
    with ``k`` successes in ``n`` trials: [B(α/2; k, n−k+1), B(1−α/2; k+1, n−k)] with B the
    beta quantile, 0 and 1 at the ends. (nan, nan) when n = 0."""
    from scipy.stats import beta

    if n <= 0:
        return float("nan"), float("nan")
    if not 0 <= k <= n:
        raise MuonlabError.about("k", f"expected 0 <= k <= n = {n}, got {k}")
    a = 1.0 - level
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


@dataclass(frozen=True)
class Outcome:
    """The claim's statement evaluated on one replicate (a seed, or a run when the claim
    is per run): whether it held, and if not, why (a short phrase with the numbers)."""

    unit: str  # the replicate's label as shown: "0", "3", "κ=100/seed 2", …
    passed: bool
    reason: str = ""


@dataclass(frozen=True)
class Claim:
    """The outcome of one claim on one store.

    A claim is decided from counts, never from a median: its statement is evaluated on
    each replicate (``unit``: ``"seed"`` for a statement per seed, ``"run"`` per run,
    ``"instance"`` for a deterministic instance that has one replicate), ``n_pass`` of
    ``n_total`` held, and the claim passes when every replicate held (``required`` = 1,
    the default) or, for a statement about "most" replicates, when the lower end of the
    95 % Clopper–Pearson interval ``[ci_low, ci_high]`` is at least ``required``.
    ``failing_seeds`` lists the replicates that did not hold; ``seeds`` all of them, in
    order (the report's strip). ``scale`` (quick, paper, custom) is set by
    :func:`muonlab.claims.evaluate_claims` from the reproduction that made the store.
    """

    name: str
    seed: str
    passed: bool
    detail: str
    experiment: str = ""
    n_pass: int = 0
    n_total: int = 0
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    required: float = 1.0
    unit: str = "seed"
    failing_seeds: tuple[str, ...] = ()
    seeds: tuple[str, ...] = ()
    scale: str = ""

    def with_experiment(self, experiment: str) -> Claim:
        return dataclasses.replace(self, experiment=experiment)

    def with_scale(self, scale: str) -> Claim:
        return dataclasses.replace(self, scale=scale)

    def counted(self) -> Claim:
        """This claim, or, when it counted no replicates (a claim built as a plain
        ``Claim(name, seed, passed, detail)``, or one with nothing to judge), the same
        verdict as one replicate of unit ``instance``."""
        if self.n_total:
            return self
        k = int(bool(self.passed))
        lo, hi = clopper_pearson(k, 1)
        return dataclasses.replace(self, n_pass=k, n_total=1, ci_low=lo, ci_high=hi, unit="instance",
                                   seeds=("instance",), failing_seeds=() if k else ("instance",))

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else round(float(x), 6)

        return {"name": self.name, "seed": self.seed, "passed": bool(self.passed), "detail": self.detail,
                "experiment": self.experiment, "n_pass": int(self.n_pass), "n_total": int(self.n_total),
                "ci_low": num(self.ci_low), "ci_high": num(self.ci_high), "required": float(self.required),
                "unit": self.unit, "failing_seeds": list(self.failing_seeds), "seeds": list(self.seeds),
                "scale": self.scale}


def decide(
    name: str,
    seed: str,
    detail: str,
    outcomes: Sequence[Outcome],
    *,
    required: float = 1.0,
    unit: str = "seed",
    reasons: Sequence[str] = (),
    most: int | None = 3,
    see: str | None = None,
) -> Claim:
    """The claim decided from per-replicate ``outcomes``.

    Passes iff there is at least one outcome, ``reasons`` (what keeps the store from
    supporting the claim at all: a missing optimizer, too few κ values) is empty, and
    either every outcome passed (``required`` = 1) or the Clopper–Pearson lower bound of
    the pass fraction is ≥ ``required`` (0 < required < 1: a statement about "most"
    replicates). ``detail`` gets the count, the interval and the rule, then the failing
    replicates with their reasons (at most ``most`` reasons shown; all are named).
    """
    if not 0.0 < required <= 1.0:
        raise MuonlabError.about("required", f"expected a fraction in (0, 1], got {required!r}")
    n = len(outcomes)
    k = sum(bool(o.passed) for o in outcomes)
    lo, hi = clopper_pearson(k, n)
    failing = [o for o in outcomes if not o.passed]
    plural = unit if n == 1 else f"{unit}s"
    if n == 0:
        held = False
        reasons = [*reasons, f"no {unit}s to judge"]
    elif required >= 1.0:
        held = k == n
    else:
        held = lo >= required
    rule = "need all" if required >= 1.0 else f"need the interval's lower end >= {required:g}"
    count = f"{k}/{n} {plural} hold (95% CI [{lo:.2f}, {hi:.2f}]; {rule})" if n else f"0 {plural}"
    text = f"{detail} {count}."
    problems = list(reasons)
    if failing:
        shown = failing if most is None else failing[:most]
        listed = [f"{o.unit} ({o.reason})" if o.reason else o.unit for o in shown]
        listed += [o.unit for o in failing[len(shown):]]
        text += f" Failing {unit}{'s' if len(failing) > 1 else ''}: " + "; ".join(listed) + "."
    passed = held and not problems
    if problems:
        text += " FAIL: " + "; ".join(problems) + "."
    elif not passed:
        text += " FAIL."
    if not passed and see is not None:
        text += f" ({see})"
    return Claim(name, seed, passed, text, n_pass=k, n_total=n, ci_low=lo, ci_high=hi, required=required,
                 unit=unit, failing_seeds=tuple(o.unit for o in failing), seeds=tuple(o.unit for o in outcomes))


def seed_label(value: Any) -> str:
    """A seed's label in outcomes (``3``, not ``3.0``)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(f)) if f.is_integer() else str(value)


#: What a claim may read from its experiment's store, passed positionally in the order
#: the claim lists them: ``runs`` (:meth:`ResultStore.runs`), ``trajectories``
#: (:meth:`ResultStore.trajectories`, long form).
READABLE = ("runs", "trajectories")

F = TypeVar("F", bound=Callable[..., Claim])


@dataclass(frozen=True)
class ClaimDef:
    """A registered claim: its name (what experiment YAMLs list), the function, and what
    it reads from the store."""

    name: str
    fn: Callable[..., Claim]
    reads: tuple[str, ...]
    seed: str  # for a claim that raised (a working claim states its own seed)

    def __call__(self, tables: dict[str, pd.DataFrame]) -> Claim:
        """Evaluate over ``tables`` (``{"runs": …, "trajectories": …}``, what it reads)."""
        return self.fn(*(tables[t] for t in self.reads))


_REGISTRY: dict[str, ClaimDef] = {}


def outcomes_by_seed(items: Sequence[tuple[str, str]]) -> list[Outcome]:
    """Per-seed outcomes from (seed label, failure or "") pairs: a seed holds when all its
    items hold; its reason joins the failures. Seeds in numeric order."""
    seeds: dict[str, list[str]] = {}
    for seed, why in items:
        seeds.setdefault(seed, [])
        if why:
            seeds[seed].append(why)
    return [Outcome(s, not w, "; ".join(w)) for s, w in sorted(seeds.items(), key=lambda kv: float(kv[0]))]


def claim(*, reads: Sequence[str] = ("runs",), name: str | None = None, seed: str | None = None) -> Callable[[F], F]:
    """Register the decorated function as a claim; it is returned unchanged.

    Args:
        reads: the store tables it takes, in argument order (from :data:`READABLE`).
        name: the name experiment YAMLs use (default: the function's name).
        seed: the paper seed (default: the defining module's ``SEED``, else ``"beyond"``).

    Raises:
        ValueError: an unknown table in ``reads``, or a name taken by another function.
    """
    reads = tuple(reads)
    if not reads or any(r not in READABLE for r in reads) or len(set(reads)) != len(reads):
        raise MuonlabError.about("reads", f"expected distinct names from {', '.join(READABLE)}, got {reads!r}")

    def register(fn: F) -> F:
        key = name or fn.__name__
        old = _REGISTRY.get(key)
        # Re-registering the same function (a module reload) is fine; a second one is not.
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise MuonlabError.about(
                "name", f"claim {key!r} is already registered by {old.fn.__module__}.{old.fn.__qualname__}"
            )
        module_seed = getattr(sys.modules.get(fn.__module__), "SEED", None)
        _REGISTRY[key] = ClaimDef(key, fn, reads, seed or (module_seed if isinstance(module_seed, str) else "beyond"))
        return fn

    return register


def registered_claims() -> dict[str, ClaimDef]:
    """Every registered claim by name (the shipped ones are registered when
    :mod:`muonlab.claims` is imported)."""
    return dict(_REGISTRY)


def verdict(name: str, seed: str, detail: str, reasons: list[str], *, most: int | None = None,
            see: str | None = None, unit: str = "instance") -> Claim:
    """A claim with one replicate (a deterministic instance, or a statement about the
    whole store): passed iff ``reasons`` is empty; otherwise ``detail`` gets
    `` FAIL: reason; reason.`` (at most ``most`` reasons, then ``(+k more)``; ``see`` adds a
    pointer such as ``(see docs/findings.md F4)``). Counted as 1/1 or 0/1 ``unit``."""
    if reasons:
        shown = reasons if most is None else reasons[:most]
        more = "" if len(shown) == len(reasons) else f" (+{len(reasons) - len(shown)} more)"
        detail += " FAIL: " + "; ".join(shown) + more + ("" if see is None else f" ({see})") + "."
    k = 0 if reasons else 1
    lo, hi = clopper_pearson(k, 1)
    return Claim(name, seed, not reasons, detail, n_pass=k, n_total=1, ci_low=lo, ci_high=hi, unit=unit,
                 failing_seeds=() if k else (unit,), seeds=(unit,))


def level_for(runs: pd.DataFrame) -> float:
    """The finest recorded level ε (1e-12, 1e-8, 1e-4) that every run was asked to reach.

    That is the smallest ε ≥ the largest ``stop.target`` in the store (a run stopped at
    1e-10 has no steps to 1e-12); 1e-4 if none qualifies.
    """
    target = None
    if "stop.target" in runs and runs["stop.target"].notna().any():
        target = float(runs["stop.target"].max())
    finest_first = sorted(EPSILONS)
    if target is None or target <= finest_first[0]:
        return finest_first[0]
    for eps in finest_first:
        if eps >= target * (1 - 1e-9):
            return eps
    return finest_first[-1]


def steps_column(eps: float) -> str:
    """The store column of steps to ``eps`` (:func:`muonlab.accuracy.eps_column`)."""
    return eps_column(eps)


def median_steps(group: pd.DataFrame, col: str) -> float | None:
    """Median over seeds of the steps to the level; None (not reached) if the median
    run did not reach it — unreached runs count as +∞. Descriptive only (the report's
    figures use it); no claim decides on it."""
    values = [math.inf if pd.isna(v) else float(v) for v in group[col]]
    if not values:
        return None
    med = float(np.median(values))
    return None if math.isinf(med) else med


def loglog_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x (needs two distinct x)."""
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    if len(set(lx.tolist())) < 2:
        return float("nan")
    return float(np.polyfit(lx, ly, 1)[0])


def kappa_exponent(costs: dict[float, float], what: str) -> tuple[float, str | None]:
    """The κ-exponent e of ``costs`` (κ → steps per e-fold, or any cost) ∝ κ^e: the
    log-log slope (+inf when a cost is infinite), with the reason it cannot be judged
    (None when it can): it needs ≥ 3 κ spanning ≥ 2 decades. ``what`` names the cost in
    the reason."""
    if len(costs) < 3 or max(costs) / min(costs) < 100:
        listed = ", ".join(f"{k:g}" for k in costs) or "none"
        return float("nan"), f"{what} measured at {len(costs)} κ ({listed}); need >= 3 spanning >= 2 decades"
    finite = {k: v for k, v in costs.items() if math.isfinite(v)}
    if len(finite) < len(costs):
        return math.inf, None
    return loglog_slope(list(finite), list(finite.values())), None


def run_metric(trajectories: pd.DataFrame, run_id: str, metric: str) -> pd.Series:
    """One run's scalar ``metric`` from the long-form trajectories, indexed by step (sorted)."""
    t = trajectories[(trajectories["run_id"] == run_id) & (trajectories["metric"] == metric)]
    return t.set_index("step")["value"].sort_index()
