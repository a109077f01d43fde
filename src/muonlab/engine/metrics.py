r"""Metrics over batches of runs and their trajectories (SPEC §5).

Two kinds of functions live here:

* **trajectory metrics** on logged curves — :func:`steps_to`, :func:`steps_to_many`,
  :func:`is_diverged`, :func:`per_mode_progress`, :func:`time_to_fraction`,
  :func:`is_smallest_first`;
* **per-step metrics** of a batched problem's parameters — the registry
  :data:`METRICS`, mapping a name to ``fn(problem, params) -> Tensor`` with a leading
  run dimension ``R`` (``(R,)`` for scalars, ``(R, k)`` for vectors).  The runner
  calls ``METRICS[name](problem, params)``; :func:`compute_metrics` evaluates several
  at once, sharing intermediate results (the product's SVD), and
  :func:`available_metrics` lists the ones that apply to a problem.

Problems are used by duck typing on the :class:`~muonlab.problems.base.Problem`
interface: ``loss``, ``rel_err``, ``optimum_loss``, ``factors``, ``layout`` and
``target``.  The spectral mathematics is in :mod:`muonlab.linalg.spectral`.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from muonlab.accuracy import steps_to, steps_to_many
from muonlab.errors import MuonlabError
from muonlab.linalg.spectral import (
    alignment,
    effective_rank,
    factor_alignment,
    gf_invariant,
    muon_invariant,
    product_singular_values,
    product_svd,
    sharpness,
)
from muonlab.problems.base import Problem

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "RUNNER_METRICS",
    "SHARPNESS_ITERS",
    "Metric",
    "available_metrics",
    "compute_metrics",
    "is_diverged",
    "is_smallest_first",
    "per_mode_progress",
    "register_metric",
    "steps_to",
    "steps_to_many",
    "time_to_fraction",
]


# ---------------------------------------------------------------------------
# Trajectory metrics
# ---------------------------------------------------------------------------


def is_diverged(
    loss: Tensor, blowup: float, reference: Tensor | None = None, floor: float | None = None
) -> Tensor:
    r"""Divergence flag per run: ``(R,)`` bool.

    A run has diverged when its loss is not finite (NaN, ±inf) or exceeds the blow-up
    threshold

    .. math::  \text{loss} > \text{blowup}\cdot\max(\text{reference}, \text{floor}),

    where ``reference`` is typically the initial loss and ``floor`` (default the
    smallest positive normal number of the dtype) keeps the threshold positive when
    the reference is 0.  Without a reference, the threshold is ``blowup`` itself
    (an absolute bound).  ``blowup = inf`` checks finiteness only.
    """
    loss = torch.as_tensor(loss)
    dtype = loss.dtype if loss.is_floating_point() else torch.float64
    loss = loss.to(dtype)
    bad = ~torch.isfinite(loss)
    if reference is None:
        thr = torch.full_like(loss, float(blowup))
    else:
        tiny = torch.finfo(dtype).tiny if floor is None else float(floor)
        ref = torch.as_tensor(reference, dtype=dtype, device=loss.device)
        thr = float(blowup) * ref.clamp_min(tiny)
    return bad | (loss > thr)


def per_mode_progress(s: Tensor, s_star: Tensor) -> Tensor:
    r"""Per-mode progress :math:`\sigma_i / \sigma^*_i` (seed 000's equal-rate growth).

    ``s`` ``(..., k)`` and ``s_star`` ``(..., k*)``, both descending; the first
    ``min(k, k*)`` modes are compared (broadcasting over leading dims, e.g. a
    trajectory ``(T, R, k)`` against targets ``(R, k*)``).  A zero target value gives
    inf/NaN for that mode.
    """
    k = min(s.shape[-1], s_star.shape[-1])
    return s[..., :k] / s_star[..., :k]


def time_to_fraction(
    progress: Tensor, frac: float = 0.9, steps: Sequence[int] | Tensor | None = None
) -> Tensor:
    """First step at which each mode's progress reaches ``frac``: ``(R, k)`` int64, −1 if never.

    ``progress`` is ``(T, R, k)`` (e.g. :func:`per_mode_progress` along a
    trajectory); a mode has reached its target fraction at the first ``t`` with
    ``progress[t, r, i] ≥ frac``.  ``steps`` maps row indices to step numbers as in
    :func:`steps_to`.  With seed 000's claim (SpecGD reaches σ*_i at time ≈ sqrt(σ*_i)),
    the smallest modes come first: see :func:`is_smallest_first`.
    """
    progress = torch.as_tensor(progress)
    if progress.ndim != 3:
        raise MuonlabError(f"progress: expected shape (T, R, k), got {tuple(progress.shape)}", field="progress")
    T = progress.shape[0]
    mask = progress >= frac
    hit = mask.any(dim=0)
    first = mask.to(torch.int8).argmax(dim=0).to(torch.int64)
    if steps is not None:
        steps = torch.as_tensor(steps, dtype=torch.int64, device=first.device)
        if steps.shape != (T,):
            raise MuonlabError(f"steps: expected {T} step numbers, got shape {tuple(steps.shape)}", field="steps")
        first = steps[first]
    return torch.where(hit, first, torch.full_like(first, -1))


def is_smallest_first(times: Tensor, strict: bool = False) -> Tensor:
    """Whether modes (ordered by descending target value) arrive smallest-first: ``(R,)`` bool.

    ``times`` is ``(R, k)`` from :func:`time_to_fraction`.  True when every mode was
    reached and the arrival times are non-increasing along ``i`` (mode ``k`` — the
    smallest target — first); ``strict`` requires strictly decreasing times.
    Gradient flow is expected to give the opposite order (largest first).
    """
    times = torch.as_tensor(times)
    reached = (times >= 0).all(dim=-1)
    d = times[..., 1:] - times[..., :-1]
    ordered = (d < 0).all(dim=-1) if strict else (d <= 0).all(dim=-1)
    return reached & ordered


# ---------------------------------------------------------------------------
# Per-step metrics of a problem's parameters
# ---------------------------------------------------------------------------

MetricFn = Callable[..., Tensor]


@dataclass(frozen=True)
class Metric:
    """A named per-step metric.

    ``fn(problem, params, cache=None) -> Tensor`` with leading dim ``R``; ``applies``
    says whether it is defined for a problem (given its class or an instance); ``cheap`` marks metrics meant to be
    logged every step (``sharpness`` is not: it costs ``iters`` HVPs).
    """

    name: str
    fn: MetricFn
    doc: str
    applies: Callable[[Any], bool] = lambda problem: True
    cheap: bool = True

    def __call__(self, problem: Any, params: Sequence[Tensor], cache: dict | None = None) -> Tensor:
        if not self.applies(problem):
            raise MuonlabError.about(
                "metrics",
                f"{self.name!r} does not apply to {type(problem).__name__} "
                f"(layout {getattr(problem, 'layout', '?')!r}); "
                f"available: {', '.join(available_metrics(problem))}",
            )
        with torch.no_grad():
            return self.fn(problem, list(params), {} if cache is None else cache)


def _cached(cache: dict, key: str, make: Callable[[], Any]) -> Any:
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _svals(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    def make() -> Tensor:
        if "svd" in cache:
            return cache["svd"][1]
        return product_singular_values(*problem.factors(params))

    return _cached(cache, "singular_values", make)


def _svd(problem: Any, params: list[Tensor], cache: dict) -> tuple[Tensor, Tensor, Tensor]:
    return _cached(cache, "svd", lambda: product_svd(*problem.factors(params)))


# The target's SVD is fixed for a problem: compute it once per problem object.
_TARGET_SVD: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _target_svd(problem: Any) -> tuple[Tensor, Tensor, Tensor, int]:
    """(U, S, V, rank) of ``problem.target()``; rank = the largest numerical rank over runs."""
    try:
        hit = _TARGET_SVD.get(problem)
    except TypeError:  # unhashable / not weak-referenceable problem
        hit = None
    if hit is not None:
        return hit
    M = problem.target()
    if M.dtype in (torch.float16, torch.bfloat16):  # no half-precision SVD kernels
        M = M.float()
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    tol = S[..., :1] * max(M.shape[-2:]) * torch.finfo(M.dtype).eps
    rank = max(1, int((S > tol).sum(dim=-1).max()))
    out = (U, S, Vh.mT, rank)
    with contextlib.suppress(TypeError):  # unhashable / not weak-referenceable problem
        _TARGET_SVD[problem] = out
    return out


def _problem_class(problem: Any) -> type:
    return problem if isinstance(problem, type) else type(problem)


# Applicability is a property of the problem *class* (each predicate takes a class or an
# instance), so a config naming a metric its problem lacks is refused at validation.
def _has_target(problem: Any) -> bool:
    return getattr(_problem_class(problem), "target", Problem.target) is not Problem.target


def _has_target_spectrum(problem: Any) -> bool:
    return _has_target(problem) and callable(getattr(_problem_class(problem), "target_spectrum", None))


def _is_product(problem: Any) -> bool:
    return getattr(problem, "layout", None) == "product"


def _m_loss(problem, params, cache):
    return _cached(cache, "loss", lambda: problem.loss(params))


def _m_rel_err(problem, params, cache):
    return problem.rel_err(params)


def _m_dist_to_opt(problem, params, cache):
    return _m_loss(problem, params, cache) - problem.optimum_loss()


def _m_singular_values(problem, params, cache):
    return _svals(problem, params, cache)


def _m_effective_rank(problem, params, cache):
    return effective_rank(_svals(problem, params, cache))


def _m_gf_invariant_norm(problem, params, cache):
    W2, W1 = params
    return torch.linalg.matrix_norm(gf_invariant(W2, W1))


def _m_muon_invariant_norm(problem, params, cache):
    W2, W1 = params
    return torch.linalg.matrix_norm(muon_invariant(W2, W1))


def _m_factor_alignment(problem, params, cache):
    W2, W1 = params
    kmax = min(W2.shape[-2], W2.shape[-1], W1.shape[-1])
    k = min(kmax, _target_svd(problem)[3]) if _has_target(problem) else kmax
    return factor_alignment(W2, W1, k=k)


def _m_matched_alignment(problem, params, cache):
    W2, W1 = params
    return factor_alignment(W2, W1, matched=True)


def _m_target_alignment(problem, params, cache):
    U, _, V = _svd(problem, params, cache)
    Ut, _, Vt, rank = _target_svd(problem)
    k = min(rank, U.shape[-1])
    return 0.5 * (alignment(U[..., :k], Ut[..., :k]) + alignment(V[..., :k], Vt[..., :k]))


def _m_mode_progress(problem, params, cache):
    s_star = problem.target_spectrum()
    if s_star.dtype in (torch.float16, torch.bfloat16):
        s_star = s_star.float()
    # Only the target's nonzero modes have a progress (a generic target_spectrum may
    # list the exact zeros of a low-rank target): keep the numerical rank (max over runs).
    tol = s_star[..., :1] * max(s_star.shape[-1], 1) * torch.finfo(s_star.dtype).eps
    rank = max(1, int((s_star > tol).sum(dim=-1).max()))
    return per_mode_progress(_svals(problem, params, cache), s_star[..., :rank])


#: Lanczos steps (capped at the parameter dimension) of the ``sharpness`` metric.
SHARPNESS_ITERS = 50


def _has_eigenbasis(problem: Any) -> bool:
    return hasattr(problem, "eigen_coordinates")


def _m_eigen_coordinates(problem, params, cache):
    return _cached(cache, "eigen_coordinates", lambda: problem.eigen_coordinates(params))[0]


def _m_alignment_residual(problem, params, cache):
    return _cached(cache, "eigen_coordinates", lambda: problem.eigen_coordinates(params))[1]


def _m_product_det_sign(problem, params, cache):
    # sign det(W2 W1) of a square product (n_out = n_in); 0 for a rectangular one (no
    # orientation, as slogdet's sign of a singular matrix), so the value stays finite.
    # With d = N the factors are square and det(W2W1) = det(W2)·det(W1) changes sign
    # only when a singular value of a factor passes through 0 — the topological reason a
    # mode lags in seed 002's figure 1 (findings F4); slogdet is stable for tiny factors.
    W2, W1 = params
    P = W2 @ W1
    if P.shape[-1] != P.shape[-2]:
        return torch.zeros(P.shape[:-2], dtype=P.dtype, device=P.device)
    if P.dtype in (torch.float16, torch.bfloat16):
        P = P.float()
    return torch.linalg.slogdet(P).sign.to(W2.dtype)


def _m_sharpness(problem, params, cache):
    # Lanczos, not power iteration: it returns the largest *algebraic* eigenvalue
    # (the one behind GD's critical step 2/λ_max, also near saddles whose spectrum is
    # ±σ) and converges much faster for the same number of HVPs.  A fixed seed makes
    # the logged value reproducible.
    return sharpness(
        problem.loss, params, iters=SHARPNESS_ITERS, method="lanczos", generator=torch.Generator().manual_seed(0)
    )


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("loss", _m_loss, "per-run loss f, (R,)"),
        Metric("rel_err", _m_rel_err, "the problem's relative error, (R,)"),
        Metric("dist_to_opt", _m_dist_to_opt, "loss − optimum_loss, (R,)"),
        Metric(
            "singular_values",
            _m_singular_values,
            "singular values of the end-to-end matrix via thin QRs of the factors, (R, min(m, n, k))",
        ),
        Metric("effective_rank", _m_effective_rank, "exp(H(σ/‖σ‖₁)) of the end-to-end matrix, (R,)"),
        Metric(
            "gf_invariant_norm",
            _m_gf_invariant_norm,
            "‖W2ᵀW2 − W1W1ᵀ‖_F (conserved by gradient flow), (R,)",
            applies=_is_product,
        ),
        Metric(
            "muon_invariant_norm",
            _m_muon_invariant_norm,
            "‖sqrt(W2ᵀW2) − sqrt(W1W1ᵀ)‖_F (conserved by aligned Muon flow), (R,)",
            applies=_is_product,
        ),
        Metric(
            "factor_alignment",
            _m_factor_alignment,
            "subspace alignment of W2's right and W1's left top-k singular vectors "
            "(k = target rank when there is a target), (R,)",
            applies=_is_product,
        ),
        Metric(
            "matched_alignment",
            _m_matched_alignment,
            "direction-by-direction (v₂ᵢᵀu₁ᵢ)² of W2's right and W1's left singular vectors, averaged over "
            "all min(n_out, d, n_in) directions (seed 002's per-mode alignment; not trivial when d is full), (R,)",
            applies=_is_product,
        ),
        Metric(
            "target_alignment",
            _m_target_alignment,
            "mean of left/right subspace alignment of the product's top-k singular "
            "vectors with the target's (k = target rank), (R,)",
            applies=_has_target,
        ),
        Metric(
            "mode_progress",
            _m_mode_progress,
            "σ_i(product)/σ*_i for the top min(k, r*) modes (seed 000's per-mode progress), (R, k)",
            applies=_has_target_spectrum,
        ),
        Metric(
            "eigen_coordinates",
            _m_eigen_coordinates,
            "diag(UᵀXXᵀU) in M*'s eigenbasis U (= x_i² for aligned iterates, seed 001 eq. 12), (R, r*)",
            applies=_has_eigenbasis,
        ),
        Metric(
            "alignment_residual",
            _m_alignment_residual,
            "‖XXᵀ − U diag(UᵀXXᵀU) Uᵀ‖_F/‖M*‖_F: distance from the aligned form (0 when aligned), (R,)",
            applies=_has_eigenbasis,
        ),
        Metric(
            "product_det_sign",
            _m_product_det_sign,
            "sign det(W2 W1) ∈ {−1, 0, 1} of a square product (nan when n_out ≠ n_in), (R,)",
            applies=_is_product,
        ),
        Metric(
            "sharpness",
            _m_sharpness,
            "λ_max of the Hessian of the loss by Lanczos on HVPs (50 steps), (R,)",
            cheap=False,
        ),
    ]
}



def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` to :data:`METRICS` (the extension point for metrics defined
    outside this module); returned unchanged.

    A module ``muonlab.engine.<topic>_metrics`` is imported when this module is, so the
    metrics it registers are known to config validation (``metrics:`` lists are checked
    against :data:`METRICS` when :mod:`muonlab.config` is imported). A metric of your own
    elsewhere must be registered before the config that names it is loaded.

    Raises:
        MuonlabError: the name is taken by a different function.
    """
    old = METRICS.get(metric.name)
    if old is not None and (old.fn.__module__, old.fn.__qualname__) != (metric.fn.__module__, metric.fn.__qualname__):
        raise MuonlabError.about("name", f"metric {metric.name!r} is already registered by {old.fn.__module__}")
    METRICS[metric.name] = metric
    return metric


def _load_metric_modules() -> None:
    """Import every ``muonlab.engine.*_metrics`` module (they register themselves)."""
    import importlib
    import pkgutil
    from pathlib import Path

    package = __name__.rpartition(".")[0]  # the package itself is not imported: no cycle through its __init__
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        if info.name.endswith("_metrics"):
            importlib.import_module(f"{package}.{info.name}")


_load_metric_modules()

#: Metrics the batched runner records itself, because they are not functions of
#: (problem, params): ``lr`` is the step size η_t the run's schedule used at step t.
RUNNER_METRICS: dict[str, str] = {"lr": "step size η_t applied at this step (from the run's schedule), (R,)"}

#: Metrics logged when none are named: the cheap ones that apply.
DEFAULT_METRICS = tuple(name for name, m in METRICS.items() if m.cheap)


def available_metrics(problem: Any, cheap_only: bool = False) -> list[str]:
    """Names of the registered metrics defined for ``problem``."""
    return [n for n, m in METRICS.items() if m.applies(problem) and (m.cheap or not cheap_only)]


def compute_metrics(
    problem: Any, params: Sequence[Tensor], names: Iterable[str] | None = None
) -> dict[str, Tensor]:
    """Evaluate several metrics at once, sharing the product's SVD between them.

    ``names=None`` computes every cheap metric that applies to ``problem``; an
    explicitly named metric that is unknown or does not apply raises ``ValueError``.
    Returns ``{name: tensor with leading dim R}``.
    """
    if names is None:
        names = [n for n in DEFAULT_METRICS if METRICS[n].applies(problem)]
    cache: dict = {}
    out = {}
    for name in names:
        if name not in METRICS:
            raise MuonlabError(f"metric: unknown {name!r}; allowed: {', '.join(METRICS)}", field="metric")
        out[name] = METRICS[name](problem, params, cache)
    return out
