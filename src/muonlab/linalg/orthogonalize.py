r"""Spectral orthogonalization: msign, T_β, Newton–Schulz (also on the Gram side), Polar Express.

For a matrix :math:`G = U S V^\top` (thin SVD) the *matrix sign* (the orthogonal polar
factor restricted to the range of G) is

.. math::  \operatorname{msign}(G) = U V^\top, \qquad \operatorname{msign}(0) = 0,

and the β-regularized orthogonalization of seed 000 (Kang et al., arXiv 2602.06385,
eq. (5)) is

.. math::

    T_\beta(G) = G (G^\top G + \beta I)^{-1/2} = U \operatorname{diag}\!\Big(\tfrac{s}{\sqrt{s^2+\beta}}\Big) V^\top .

Muon (Jordan et al. 2024) never forms the SVD: it runs a few steps of an odd
polynomial iteration :math:`X \leftarrow aX + (bA + cA^2)X`, :math:`A = XX^\top`, on
:math:`X_0 = G / \lVert G\rVert_F`. Because the polynomial acts on every singular value
separately, the output is :math:`U\,\phi(S/\lVert G\rVert_F)\,V^\top` with
:math:`\phi = p_k \circ \dots \circ p_1`, :math:`p_j(x) = a_j x + b_j x^3 + c_j x^5`
(:func:`polynomial_map` evaluates φ on scalars; the tests use it as the exact
reference for the iteration).

All methods accept a batch ``(..., m, n)``, tall or wide, and return the same shape
and dtype.  See ``docs/orthogonalize.md`` for the measured accuracy of each method.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from muonlab.errors import MuonlabError

__all__ = [
    "COEFFICIENT_PRESETS",
    "GRAM_MIN_ASPECT",
    "METHODS",
    "POLYNOMIAL_METHODS",
    "choose_method",
    "orthogonalize",
    "orthogonalize_many",
    "polynomial_map",
    "resolve_coefficients",
    "scale_down_huge",
]

METHODS = (
    "svd", "gram", "symmetric", "beta", "newton_schulz", "polar_express", "gram_newton_schulz", "auto",
)
#: Methods that run the odd polynomial with a coefficient table (``coefficients``,
#: ``steps``); ``auto`` may dispatch to one of them, so it takes the same options.
POLYNOMIAL_METHODS = ("newton_schulz", "polar_express", "gram_newton_schulz", "auto")
#: Aspect ratio max(m, n)/min(m, n) from which ``gram_newton_schulz`` iterates on the
#: n×n Gram side; below it the Gram route costs more FLOPs and falls back to
#: ``newton_schulz`` (5 steps: (2r + 17)·n³ against (10r + 5)·n³ for r = m/n).
GRAM_MIN_ASPECT = 2.0

#: Per-step (a, b, c) tables.  A table shorter than the requested number of steps
#: repeats its last row, as Polar Express prescribes.
COEFFICIENT_PRESETS: dict[str, tuple[tuple[float, float, float], ...]] = {
    # Keller Jordan's quintic, 5 steps (torch.optim.Muon's defaults).
    "keller": ((3.4445, -4.7750, 2.0315),),
    # Dion's per-step schedule (Ahn et al. 2025).
    "dion": (
        (4.0848, -6.8946, 2.9270),
        (3.9505, -6.3029, 2.6377),
        (3.7418, -5.5913, 2.3037),
        (2.8769, -3.1427, 1.2046),
        (2.8366, -3.0525, 1.2012),
    ),
    # Polar Express (Amsel et al. 2025): per-step optimal minimax coefficients.
    "polar_express": (
        (8.156554524902461, -22.48329292557795, 15.878769915207462),
        (4.042929935166739, -2.808917465908714, 0.5000178451051316),
        (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
        (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
        (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
    ),
}

_DEFAULT_STEPS = 5
# Polar Express divides by 1.02·‖G‖_F so that rounding cannot push σ_max above 1,
# where its aggressive first polynomial would blow up.
_POLAR_EXPRESS_SAFETY = 1.02
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def resolve_coefficients(
    coefficients: str | Sequence[float] | Sequence[Sequence[float]],
    steps: int | None,
) -> list[tuple[float, float, float]]:
    """Return the list of ``steps`` (a, b, c) triples for a preset name or a custom table.

    ``coefficients`` is a preset name (``"keller"``, ``"dion"``, ``"polar_express"``),
    one triple ``(a, b, c)`` used at every step, or a table of triples of shape (k, 3);
    a table shorter than ``steps`` repeats its last row.  ``steps=None`` means one step
    per table row (5 for a single triple).
    """
    if isinstance(coefficients, str):
        if coefficients not in COEFFICIENT_PRESETS:
            raise MuonlabError(
                f"coefficients: unknown preset {coefficients!r}; "
                f"allowed: {', '.join(sorted(COEFFICIENT_PRESETS))} or a (k, 3) table", field="coefficients"
            )
        table = [(float(a), float(b), float(c)) for a, b, c in COEFFICIENT_PRESETS[coefficients]]
    else:
        rows: list[Any] = list(coefficients)
        if len(rows) == 3 and all(isinstance(x, (int, float)) for x in rows):
            rows = [rows]
        table = []
        for row in rows:
            try:
                values = [float(x) for x in row]
            except (TypeError, ValueError):
                raise MuonlabError(
                    f"coefficients: each row must be an (a, b, c) triple of numbers, got {row!r}",
                    field="coefficients",
                ) from None
            if len(values) != 3:
                raise MuonlabError(
                    f"coefficients: each row must be an (a, b, c) triple, got {len(values)} values",
                    field="coefficients",
                )
            table.append((values[0], values[1], values[2]))
        if not table:
            raise MuonlabError("coefficients: the table is empty; give at least one (a, b, c)", field="coefficients")
        for row in table:
            if not all(math.isfinite(x) for x in row):
                raise MuonlabError(
                    f"coefficients: must be finite numbers, got the row {row!r}", field="coefficients"
                )
    if steps is None:
        # A single triple is Keller-style (5 repeats); a table means one row per step.
        steps = len(table) if len(table) > 1 else _DEFAULT_STEPS
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise MuonlabError(f"steps: must be a positive integer, got {steps!r}", field="steps")
    return [table[min(i, len(table) - 1)] for i in range(steps)]


def polynomial_map(s: Tensor, table: Sequence[tuple[float, float, float]]) -> Tensor:
    """Apply φ = p_k ∘ … ∘ p_1, p_j(x) = a_j x + b_j x³ + c_j x⁵, elementwise to ``s``.

    The Newton–Schulz / Polar Express output has singular values φ(σ_i / ‖G‖_F)
    (up to rounding), so this is the exact scalar reference for those iterations.
    """
    x = s
    for a, b, c in table:
        x2 = x * x
        x = x * (a + x2 * (b + c * x2))
    return x


#: CPU rule measured in docs/orthogonalize.md (single-thread CPU time, AMD EPYC with
#: avx512_bf16): the Gram route wins from this aspect ratio on, per input dtype.  It
#: needs a larger ratio below float64 because its n×n side runs one size wider
#: (float32 → float64, bf16 → float32) than Newton–Schulz's matmuls.
_CPU_GRAM_MIN_ASPECT = {torch.float64: 2.0, torch.float32: 8.0, torch.bfloat16: 8.0, torch.float16: 8.0}


def choose_method(shape: Sequence[int], dtype: torch.dtype, device_type: str) -> str:
    """The fastest polynomial orthogonalizer for one ``(..., m, n)`` shape (``method="auto"``).

    A pure function of the matrix shape (leading batch dims are ignored, so a stacked
    batch chooses what each of its matrices would), the input dtype and the device
    type (``"cpu"``, ``"cuda"``, ...):

    * accelerators (anything but ``"cpu"``): ``"gram_newton_schulz"`` when
      max(m, n)/min(m, n) ≥ :data:`GRAM_MIN_ASPECT` (2), else ``"newton_schulz"``;
      :func:`orthogonalize` then runs it in bfloat16 unless ``dtype`` is given;
    * CPU: ``"gram_newton_schulz"`` from aspect ratio 2 in float64 and 8 in float32 /
      half precision, else ``"newton_schulz"``.  ``"svd"`` was measured too and never
      won by more than the timing noise (docs/orthogonalize.md), so it is not chosen.

    Never returns an exact msign: do not use ``"auto"`` where msign is required.
    """
    if len(shape) < 2:
        raise MuonlabError(f"shape: expected (..., m, n), got {tuple(shape)}", field="shape")
    aspect = _aspect(shape)
    threshold = _CPU_GRAM_MIN_ASPECT.get(dtype, GRAM_MIN_ASPECT) if device_type == "cpu" else GRAM_MIN_ASPECT
    return "gram_newton_schulz" if aspect >= threshold else "newton_schulz"


def orthogonalize_many(tensors: Sequence[Tensor], **kwargs: Any) -> list[Tensor]:
    """:func:`orthogonalize` each tensor of a mixed-shape list, one batched call per shape.

    Tensors with equal (shape, dtype, device) are stacked and orthogonalized in one
    call; the results come back in input order.  ``kwargs`` are :func:`orthogonalize`'s.
    On CPU each result equals ``orthogonalize(t, **kwargs)`` bit for bit (batches loop
    over 2-D slices there); on accelerators batches use batched matmuls, which may
    round differently.
    """
    out: list[Tensor | None] = [None] * len(tensors)
    groups: dict[tuple[tuple[int, ...], torch.dtype, torch.device], list[int]] = {}
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise MuonlabError(f"tensors[{i}]: expected a torch.Tensor, got {type(t).__name__}", field="tensors")
        groups.setdefault((tuple(t.shape), t.dtype, t.device), []).append(i)
    for index in groups.values():
        if len(index) == 1:
            out[index[0]] = orthogonalize(tensors[index[0]], **kwargs)
            continue
        batch = orthogonalize(torch.stack([tensors[i] for i in index]), **kwargs)
        for i, result in zip(index, batch.unbind(0), strict=True):
            out[i] = result
    return [t for t in out if t is not None]


def _check_input(G: Tensor) -> None:
    if not isinstance(G, Tensor):
        raise MuonlabError(f"G: expected a torch.Tensor, got {type(G).__name__}", field="G")
    if G.ndim < 2:
        raise MuonlabError(
            f"G: expected a matrix or a batch of matrices of shape (..., m, n), "
            f"got shape {tuple(G.shape)}", field="G"
        )
    if G.dtype not in _FLOAT_DTYPES:
        raise MuonlabError(
            f"G: dtype {G.dtype} is not supported; allowed: bfloat16, float16, float32, float64", field="G"
        )
    if not bool(torch.isfinite(G).all()):
        raise MuonlabError("G: contains NaN or Inf; orthogonalization of a non-finite matrix is undefined", field="G")


def orthogonalize(
    G: Tensor,
    method: str = "newton_schulz",
    *,
    coefficients: str | Sequence[float] | Sequence[Sequence[float]] = "keller",
    steps: int | None = None,
    dtype: torch.dtype | None = None,
    beta: float = 0.0,
    rtol: float | None = None,
    eps: float = 1e-7,
) -> Tensor:
    r"""Orthogonalize a matrix or a batch of matrices ``G`` of shape ``(..., m, n)``.

    Args:
        G: real floating tensor (bfloat16, float16, float32, float64), at least 2-D.
        method: ``"svd"`` (exact msign, the float64 reference), ``"gram"`` (exact
            msign from an eigendecomposition of the smaller Gram matrix: cheaper for
            tall-skinny factors, accurate while cond(G) ≪ ε^(-1/2)), ``"symmetric"``
            (exact msign of a square, symmetric G as V sign(Λ) Vᵀ from ``eigh`` of
            (G + Gᵀ)/2: the result is exactly symmetric, which keeps iterates that
            should commute with a symmetric matrix from drifting; docs/findings.md F1),
            ``"beta"`` (exact
            :math:`T_\beta` via SVD; ``beta=0`` gives msign), ``"newton_schulz"``
            (quintic iteration with ``coefficients``), ``"polar_express"``
            (Amsel et al. 2025, its own per-step table), ``"gram_newton_schulz"``
            (the same iteration as ``newton_schulz`` run on the n×n Gram side for
            aspect ratios ≥ 2, falling back to ``newton_schulz`` below) or
            ``"auto"`` (the fastest of the two polynomial routes for this shape,
            dtype and device: :func:`choose_method`; never an exact msign).
        coefficients: Newton–Schulz preset (``"keller"``, ``"dion"``,
            ``"polar_express"``) or a custom ``(a, b, c)`` triple / ``(k, 3)`` table.
            Used by ``newton_schulz``, ``gram_newton_schulz`` and ``auto``.
        steps: number of polynomial steps (default 5; a table repeats its last row).
        dtype: dtype the computation runs in (default: the input's dtype; the SVD
            methods run half-precision inputs in float32; ``gram_newton_schulz`` runs
            its n×n side one size wider, see :func:`_gram_polynomial`; ``auto`` on an
            accelerator defaults to bfloat16). The result is cast back to ``G.dtype``.
        beta: regularization of ``T_β`` (``method="beta"``), ≥ 0.
        rtol: singular values at or below ``rtol · s_max`` are treated as zero by the
            exact msign (default ``max(m, n) · finfo(dtype).eps``, as in
            ``torch.linalg.matrix_rank``; for ``gram`` the default is
            ``sqrt(max(m, n) · eps)``, the smallest singular value a Gram matrix resolves).
        eps: floor of ‖G‖_F in the polynomial methods' normalization (so msign(0) = 0);
            a finite number > 0.

    Returns:
        A tensor of ``G``'s shape and dtype.

    Empty input (any dim of size 0, e.g. a batch ``(0, m, n)``) returns an empty tensor
    of the same shape and dtype; a zero matrix maps to zero with every method.  Every
    method but ``beta`` scales a matrix whose Frobenius norm would overflow by an
    exact power of two first (msign is scale-invariant), and ``gram`` always does.

    Raises:
        ValueError: non-matrix input, complex or integer dtype, NaN/Inf entries, or
            an unknown method / bad option, e.g. a non-finite or non-positive ``eps``,
            a non-finite ``beta`` or coefficient (one line that names the field).
    """
    _check_input(G)
    if method not in METHODS:
        raise MuonlabError(f"method: unknown {method!r}; allowed: {', '.join(METHODS)}", field="method")
    if dtype is not None and dtype not in _FLOAT_DTYPES:
        raise MuonlabError(
            f"dtype: {dtype} is not supported; allowed: bfloat16, float16, float32, float64", field="dtype"
        )
    if not _is_number(beta) or not (math.isfinite(beta) and beta >= 0.0):
        raise MuonlabError(f"beta: must be a finite number >= 0, got {beta!r}", field="beta")
    if rtol is not None and not (_is_number(rtol) and rtol >= 0.0):
        raise MuonlabError(f"rtol: must be a number >= 0, got {rtol!r}", field="rtol")
    if not _is_number(eps) or not (math.isfinite(eps) and eps > 0.0):
        raise MuonlabError(f"eps: must be a finite number > 0, got {eps!r}", field="eps")
    if method == "symmetric" and G.shape[-1] != G.shape[-2]:
        raise MuonlabError(f"method: 'symmetric' needs square matrices, got shape {tuple(G.shape)}", field="method")
    if method in ("newton_schulz", "gram_newton_schulz", "auto"):
        table = resolve_coefficients(coefficients, steps)
    elif method == "polar_express":
        table = resolve_coefficients("polar_express", steps)
    else:
        table = []
    if method != "beta" and G.numel() > 0:  # T_β is not scale-invariant
        G = scale_down_huge(G, dtype or G.dtype, skip_if_unneeded=True)
    return orthogonalize_unchecked(
        G, method, table=table, dtype=dtype, beta=beta, rtol=rtol, eps=eps
    )


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _pow2_exponents(X: Tensor) -> Tensor:
    """Per matrix of ``X`` (..., m, n): e with max|X| = f·2^e, f in [0.5, 1) (0 for a zero matrix)."""
    amax = X.abs().amax(dim=(-2, -1), keepdim=True)
    return torch.frexp(amax.to(torch.promote_types(amax.dtype, torch.float32)))[1]


def _ldexp(X: Tensor, e: Tensor) -> Tensor:
    """X·2^e, exact (no rounding) while the result is a normal number; two factors so that
    neither 2^(e/2) over/underflows X's dtype even for e ≈ ±(2 × its exponent range)."""
    half = torch.div(e, 2, rounding_mode="floor")
    return X * torch.exp2(half.to(X.dtype)) * torch.exp2((e - half).to(X.dtype))


def scale_down_huge(G: Tensor, dtype: torch.dtype, *, skip_if_unneeded: bool = False) -> Tensor:
    """Scale each matrix whose ‖·‖_F would overflow ``dtype`` by a power of two to max|G| < 1.

    For every method but ``beta`` (msign(cG) = msign(G), c > 0). Without
    ``skip_if_unneeded`` no host sync is made (the optimizers' per-step path): every
    matrix is multiplied by 2^0 = 1 or by its power of two, so ordinary inputs come
    back bit for bit, at the cost of a few elementwise passes.

    The polynomial methods normalize by the Frobenius norm (and the SVD's largest
    singular value is at most that norm). Its sum of squares is
    accumulated in float32 for half inputs (float64 for float64) and overflows once
    max|G|·sqrt(mn) > sqrt(finfo(accumulator).max) (≈ 1.8e19 in float32/bfloat16),
    and the norm itself must fit the dtype (65504 in float16): past either, the result
    would silently be 0. msign is invariant to a positive scale, and a power of two is
    exact, so only matrices that would have overflowed change; the others (and the
    ``eps`` floor on small norms) are left bit for bit as they were.
    """
    accumulate = torch.float64 if torch.float64 in (dtype, G.dtype) else torch.float32
    limit = min(torch.finfo(dtype).max, torch.finfo(G.dtype).max, torch.finfo(accumulate).max ** 0.5) / 2
    m, n = G.shape[-2:]
    work = G if G.dtype in (torch.float32, torch.float64) else G.float()
    e = _pow2_exponents(work)
    amax = work.abs().amax(dim=(-2, -1), keepdim=True)
    big = amax.double() * math.sqrt(m * n) > limit
    if skip_if_unneeded and not bool(big.any()):
        return G
    return _ldexp(work, torch.where(big, -e, torch.zeros_like(e))).to(G.dtype)


def orthogonalize_unchecked(
    G: Tensor,
    method: str,
    *,
    table: Sequence[tuple[float, float, float]] = (),
    dtype: torch.dtype | None = None,
    beta: float = 0.0,
    rtol: float | None = None,
    eps: float = 1e-7,
) -> Tensor:
    """:func:`orthogonalize` without input validation (the optimizers' hot path).

    ``table`` is the resolved list of (a, b, c) triples for the polynomial methods.
    For ``gram_newton_schulz`` and ``auto`` an empty table means the default Keller
    preset (the optimizers' ``coefficient_table`` has no table for these methods).
    """
    if G.numel() == 0:  # an empty matrix or an empty batch
        return torch.zeros_like(G)
    if method in ("gram_newton_schulz", "auto") and not table:
        table = resolve_coefficients("keller", None)
    if method == "auto":
        method = choose_method(G.shape, G.dtype, G.device.type)
        if dtype is None and G.device.type != "cpu" and method != "svd":
            dtype = torch.bfloat16  # accelerators: the bf16 matmuls are the fast path
    if method in ("svd", "beta"):
        return _spectral(G, beta=beta if method == "beta" else 0.0, rtol=rtol, dtype=dtype)
    if method == "gram":
        return _gram_msign(G, rtol=rtol, dtype=dtype)
    if method == "symmetric":
        return _symmetric_msign(G, rtol=rtol, dtype=dtype)
    scale = _POLAR_EXPRESS_SAFETY if method == "polar_express" else 1.0
    if method == "gram_newton_schulz" and _aspect(G.shape) >= GRAM_MIN_ASPECT:
        return _gram_polynomial(G, table, dtype=dtype or G.dtype, eps=eps).to(G.dtype)
    return _polynomial(G, table, dtype=dtype or G.dtype, norm_scale=scale, eps=eps).to(G.dtype)


def _aspect(shape: Sequence[int]) -> float:
    m, n = int(shape[-2]), int(shape[-1])
    return max(m, n) / min(m, n) if min(m, n) > 0 else 1.0


def _spectral(G: Tensor, *, beta: float, rtol: float | None, dtype: torch.dtype | None) -> Tensor:
    """Exact msign / T_β from a thin SVD, computed in ``dtype`` (≥ float32)."""
    work = dtype or G.dtype
    if work in (torch.float16, torch.bfloat16):
        work = torch.float32  # LAPACK has no half-precision SVD
    U, S, Vh = torch.linalg.svd(G.to(work), full_matrices=False)
    if beta > 0.0:
        # s / sqrt(s² + β): smooth in s, exactly 0 at s = 0, no cut-off needed.
        weights = S / torch.sqrt(S * S + beta)
    else:
        m, n = G.shape[-2:]
        tol = rtol if rtol is not None else max(m, n) * torch.finfo(work).eps
        cutoff = tol * S[..., :1]
        weights = ((S > cutoff) & (S > 0)).to(work)
    return ((U * weights.unsqueeze(-2)) @ Vh).to(G.dtype)


def _symmetric_msign(G: Tensor, *, rtol: float | None, dtype: torch.dtype | None) -> Tensor:
    """msign of the symmetric part, V sign(Λ) Vᵀ, exactly symmetric by construction.

    For a symmetric G this is msign(G) (U Vᵀ of its SVD) in exact arithmetic; in
    floating point the SVD's polar factor is not exactly symmetric, and on problems
    whose iterates stay symmetric that asymmetry accumulates in weakly curved
    directions (seen on P2 at κ = 100; docs/findings.md F1).
    """
    if G.shape[-1] != G.shape[-2]:
        raise MuonlabError(f"method: 'symmetric' needs square matrices, got shape {tuple(G.shape)}", field="method")
    work = dtype or G.dtype
    if work in (torch.float16, torch.bfloat16):
        work = torch.float32
    X = G.to(work)
    evals, V = torch.linalg.eigh((X + X.mT) / 2)
    n = X.shape[-1]
    tol = rtol if rtol is not None else n * torch.finfo(work).eps
    cutoff = tol * evals.abs().amax(dim=-1, keepdim=True)
    signs = torch.where(evals.abs() > cutoff, torch.sign(evals), torch.zeros_like(evals))
    return ((V * signs.unsqueeze(-2)) @ V.mT).to(G.dtype)


def _gram_msign(G: Tensor, *, rtol: float | None, dtype: torch.dtype | None) -> Tensor:
    """msign(G) = G V diag(1/s) Vᵀ from GᵀG = V diag(s²) Vᵀ (G made tall first).

    For an m×n factor with n ≪ m this costs an n×n eigh instead of an m×n SVD.
    Squaring G squares its condition number: directions with s_i < sqrt(eps)·s_max
    are dropped, and direction errors grow like eps·(s_max/s_i)² (measured in
    docs/orthogonalize.md).
    """
    work = dtype or G.dtype
    if work in (torch.float16, torch.bfloat16):
        work = torch.float32
    X = G.to(work)
    transpose = X.shape[-2] < X.shape[-1]
    if transpose:
        X = X.mT
    m, n = X.shape[-2:]
    # msign(cX) = msign(X) for c > 0: scale each matrix by a power of two (exact) to
    # max|X| in [0.5, 1), so that XᵀX neither overflows (float32 entries near 1e38 made
    # eigh fail) nor underflows (entries near 1e-30 made it 0).
    X = _ldexp(X, -_pow2_exponents(X))
    evals, V = torch.linalg.eigh(X.mT @ X)
    s = evals.clamp_min(0.0).sqrt()
    tol = rtol if rtol is not None else math.sqrt(max(m, n) * torch.finfo(work).eps)
    keep = (s > tol * s.amax(dim=-1, keepdim=True)) & (s > 0)
    inv = torch.where(keep, 1.0 / torch.where(keep, s, torch.ones_like(s)), torch.zeros_like(s))
    O = X @ ((V * inv.unsqueeze(-2)) @ V.mT)
    return (O.mT if transpose else O).to(G.dtype)


def _polynomial(
    G: Tensor,
    table: Sequence[tuple[float, float, float]],
    *,
    dtype: torch.dtype,
    norm_scale: float,
    eps: float,
) -> Tensor:
    """Run X ← aX + (bA + cA²)X, A = XXᵀ, on the smaller Gram side, in ``dtype``.

    The operation order on a single matrix is exactly torch.optim.Muon's
    (``addmm`` with beta/alpha, Frobenius normalization clamped at ``eps``), so the
    bf16 torch-compatible preset reproduces it bit for bit.
    """
    X = G.to(dtype)
    transpose = X.shape[-2] > X.shape[-1]
    if transpose:  # keep A = XXᵀ the smaller Gram matrix
        X = X.mT
    batch_shape = X.shape[:-2]
    if X.ndim == 2:
        X = _polynomial_2d(X, table, norm_scale, eps)
    else:
        X3 = X.reshape(-1, *X.shape[-2:])
        if X3.device.type == "cpu":
            # On CPU a loop of 2-D matmuls runs at least as fast as bmm (a batched bf16
            # bmm measured ~2x slower, SPEC §8) and keeps each slice bit-identical to
            # the single-matrix result.
            X3 = torch.stack([_polynomial_2d(x, table, norm_scale, eps) for x in X3.unbind(0)])
        else:
            X3 = _polynomial_batched(X3, table, norm_scale, eps)
        X = X3.reshape(*batch_shape, *X3.shape[-2:])
    return X.mT if transpose else X


def _polynomial_2d(X: Tensor, table, norm_scale: float, eps: float) -> Tensor:
    X = X / X.norm().clamp(min=eps) if norm_scale == 1.0 else X / (X.norm() * norm_scale + eps)
    for a, b, c in table:
        A = X @ X.T
        B = torch.addmm(A, A, A, beta=b, alpha=c)
        X = torch.addmm(X, B, X, beta=a)
    return X


def _polynomial_batched(X: Tensor, table, norm_scale: float, eps: float) -> Tensor:
    norms = torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True)
    X = X / norms.clamp(min=eps) if norm_scale == 1.0 else X / (norms * norm_scale + eps)
    for a, b, c in table:
        A = X @ X.mT
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)
        X = torch.baddbmm(X, B, X, beta=a)
    return X


def _gram_polynomial(
    G: Tensor, table: Sequence[tuple[float, float, float]], *, dtype: torch.dtype, eps: float
) -> Tensor:
    r"""Newton–Schulz iterated on the smaller Gram side (``method="gram_newton_schulz"``).

    For a tall X₀ = G/‖G‖_F (m×n, m ≥ n) every iterate is X_k = X₀ Q_k with Q_k a
    polynomial in S₀ = X₀ᵀX₀.  With S_k = X_kᵀX_k and P_k = aI + bS_k + cS_k² (which
    commutes with S_k): Q_{k+1} = Q_k P_k and S_{k+1} = P_k S_k P_k, all n×n.  The
    result X₀ Q_K is the only m×n×n product after forming S₀.

    ``dtype`` is the dtype of the final product X₀ Q_K; S₀ and the n×n iteration run
    in at least float32, because S₀ squares the condition number: in bfloat16 (8
    mantissa bits) every σ_i/‖G‖_F below ~0.06 would be lost in S₀'s rounding.
    """
    X = G.to(dtype)
    transpose = X.shape[-2] < X.shape[-1]
    if transpose:
        X = X.mT
    # One size wider than dtype: half → float32, float32/float64 → float64.
    gram_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else torch.float64
    if X.ndim > 2 and X.device.type == "cpu":
        # As in _polynomial: a loop of 2-D matmuls on CPU, each slice bit-identical to
        # the single-matrix result.
        X3 = X.reshape(-1, *X.shape[-2:])
        out = torch.stack([_gram_core(x, table, gram_dtype, eps) for x in X3.unbind(0)])
        out = out.reshape(X.shape)
    else:
        out = _gram_core(X, table, gram_dtype, eps)
    return out.mT if transpose else out


def _gram_core(X: Tensor, table: Sequence[tuple[float, float, float]], gram_dtype: torch.dtype, eps: float) -> Tensor:
    """X₀ Q_K for a tall X (..., m, n), returned in X's dtype; the n×n work in ``gram_dtype``."""
    Xg = X.to(gram_dtype)
    norms = torch.linalg.vector_norm(Xg, dim=(-2, -1), keepdim=True)
    Xg = Xg / norms.clamp(min=eps)
    S = Xg.mT @ Xg
    Q: Tensor | None = None
    last = len(table) - 1
    for k, (a, b, c) in enumerate(table):
        P = S @ (c * S) + b * S
        P.diagonal(dim1=-2, dim2=-1).add_(a)
        Q = P if Q is None else Q @ P
        if k < last:  # S_{k+1} = X_{k+1}ᵀX_{k+1}; the last one is never used
            S = P @ (S @ P)
    # The final m×n×n product in X's dtype, but at least float32: Q's eigenvalues span
    # [φ(1), φ(x)/x → ∏a_j] (up to ~1e3), and rounding Q to bfloat16 costs ~3× the error.
    out_dtype = torch.promote_types(X.dtype, torch.float32)
    if Q is None:
        return Xg.to(X.dtype)
    return (Xg.to(out_dtype) @ Q.to(out_dtype)).to(X.dtype)
