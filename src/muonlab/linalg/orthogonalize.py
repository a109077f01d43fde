r"""Spectral orthogonalization: msign, the β-regularized T_β, Newton–Schulz, Polar Express.

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
    "METHODS",
    "orthogonalize",
    "polynomial_map",
    "resolve_coefficients",
]

METHODS = ("svd", "gram", "symmetric", "beta", "newton_schulz", "polar_express")

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
            values = [float(x) for x in row]
            if len(values) != 3:
                raise MuonlabError(
                    f"coefficients: each row must be an (a, b, c) triple, got {len(values)} values",
                    field="coefficients",
                )
            table.append((values[0], values[1], values[2]))
        if not table:
            raise MuonlabError("coefficients: the table is empty; give at least one (a, b, c)", field="coefficients")
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
            (quintic iteration with ``coefficients``) or ``"polar_express"``
            (Amsel et al. 2025, its own per-step table).
        coefficients: Newton–Schulz preset (``"keller"``, ``"dion"``) or a custom
            ``(a, b, c)`` triple / ``(k, 3)`` table. Only used by ``newton_schulz``.
        steps: number of polynomial steps (default 5; a table repeats its last row).
        dtype: dtype the computation runs in (default: the input's dtype; the SVD
            methods run half-precision inputs in float32). The result is cast back
            to ``G.dtype``.
        beta: regularization of ``T_β`` (``method="beta"``), ≥ 0.
        rtol: singular values at or below ``rtol · s_max`` are treated as zero by the
            exact msign (default ``max(m, n) · finfo(dtype).eps``, as in
            ``torch.linalg.matrix_rank``; for ``gram`` the default is
            ``sqrt(max(m, n) · eps)``, the smallest singular value a Gram matrix resolves).
        eps: floor of ‖G‖_F in the polynomial methods' normalization (so msign(0) = 0).

    Returns:
        A tensor of ``G``'s shape and dtype.

    Raises:
        ValueError: non-matrix input, complex or integer dtype, NaN/Inf entries, or
            an unknown method / bad option (the message names the field).
    """
    _check_input(G)
    if method not in METHODS:
        raise MuonlabError(f"method: unknown {method!r}; allowed: {', '.join(METHODS)}", field="method")
    if dtype is not None and dtype not in _FLOAT_DTYPES:
        raise MuonlabError(
            f"dtype: {dtype} is not supported; allowed: bfloat16, float16, float32, float64", field="dtype"
        )
    if not beta >= 0.0:
        raise MuonlabError(f"beta: must be >= 0, got {beta!r}", field="beta")
    if rtol is not None and not rtol >= 0.0:
        raise MuonlabError(f"rtol: must be >= 0, got {rtol!r}", field="rtol")
    if method == "newton_schulz":
        table = resolve_coefficients(coefficients, steps)
    elif method == "polar_express":
        table = resolve_coefficients("polar_express", steps)
    else:
        table = []
    return orthogonalize_unchecked(
        G, method, table=table, dtype=dtype, beta=beta, rtol=rtol, eps=eps
    )


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
    """
    if G.shape[-1] == 0 or G.shape[-2] == 0:
        return torch.zeros_like(G)
    if method in ("svd", "beta"):
        return _spectral(G, beta=beta if method == "beta" else 0.0, rtol=rtol, dtype=dtype)
    if method == "gram":
        return _gram_msign(G, rtol=rtol, dtype=dtype)
    if method == "symmetric":
        return _symmetric_msign(G, rtol=rtol, dtype=dtype)
    scale = _POLAR_EXPRESS_SAFETY if method == "polar_express" else 1.0
    return _polynomial(G, table, dtype=dtype or G.dtype, norm_scale=scale, eps=eps).to(G.dtype)


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
