r"""Per-step metrics for seed 002's dynamics claims (alignment rate, balance, matrix-form
conservation) on the two-factor problem P3, f = ½‖W2 W1 − M*‖²_F.

Rhee, Simon, Karkada, *Muon dynamics in matrix factorization* (arXiv 2606.30509);
derivations in ``docs/seed002_dynamics.md``. All are ``cheap=False`` so that default
logging (and the config hashes of older experiments) do not change.

* ``block_misalignment`` — the share of the product's Frobenius mass that lies outside
  the target's singular *blocks*: with M* = U S Vᵀ and the singular values grouped into
  blocks b (a new block starts where the relative gap (s_{i−1} − s_i)/s_{i−1} exceeds
  :data:`BLOCK_GAP` = 0.08, SPEC §4's merging rule),

      μ = 1 − Σ_b ‖U_bᵀ (W2W1) V_b‖²_F / ‖W2W1‖²_F  ∈ [0, 1].

  μ = 0 exactly when the product is block-diagonal in the target's singular bases (the
  "aligned" form W2 = U D2 Oᵀ, W1 = O D1 Vᵀ up to rotations inside degenerate blocks).
  Singular values that are zero (a low-rank target) form one block of their own.
* ``balance`` — ‖W1W1ᵀ − W2ᵀW2‖_F / ‖M*‖_F: 0 at a balanced factorization.
* ``gf_invariant_entries`` / ``muon_invariant_entries`` — the d×d symmetric invariants
  Δ_GF = W2ᵀW2 − W1W1ᵀ and Δ_Muon = sqrt(W2ᵀW2) − sqrt(W1W1ᵀ) as vectors of their
  d(d+1)/2 upper-triangle entries, the off-diagonal ones times √2, so that the Euclidean
  inner product of two such vectors equals the Frobenius inner product of the matrices.
  A claim can then compute seed 002's matrix-form conservation ratio
  ⟨Δ(t), Δ(t*)⟩_F / ‖Δ(t*)‖²_F from one run's logged vectors (a per-step metric cannot:
  it does not know t*).
"""

from __future__ import annotations

import contextlib
import math
import weakref
from typing import Any

import torch
from torch import Tensor

from muonlab.engine.metrics import Metric, _is_product, _target_svd, register_metric
from muonlab.linalg.spectral import gf_invariant, muon_invariant

__all__ = ["BLOCK_GAP", "block_mask", "pack_symmetric", "singular_blocks"]

#: Relative gap that separates two singular blocks (SPEC §4, seed 002's planted-signal
#: alignment score: "directions merged by relative gap 0.08").
BLOCK_GAP = 0.08


def singular_blocks(s: Tensor, gap: float = BLOCK_GAP) -> Tensor:
    """Block label of each singular value of ``s`` ``(k,)`` (descending): a new block
    starts where (s_{i−1} − s_i)/s_{i−1} > ``gap``; values ≤ s_1·k·eps (zeros) share one
    block."""
    s = s.to(torch.float64)
    k = s.shape[-1]
    tiny = float(s[0]) * k * torch.finfo(torch.float64).eps if k else 0.0
    labels = torch.zeros(k, dtype=torch.int64)
    cur = 0
    for i in range(1, k):
        prev, now = float(s[i - 1]), float(s[i])
        zero_prev, zero_now = prev <= tiny, now <= tiny
        if zero_now and zero_prev:
            pass
        elif zero_now or (prev - now) / prev > gap:
            cur += 1
        labels[i] = cur
    return labels


def block_mask(s: Tensor, gap: float = BLOCK_GAP) -> Tensor:
    """``(..., k, k)`` float mask, 1 where singular directions i and j share a block."""
    flat = s.reshape(-1, s.shape[-1])
    out = []
    for row in flat:
        lab = singular_blocks(row, gap)
        out.append((lab[:, None] == lab[None, :]).to(torch.float64))
    return torch.stack(out).reshape(*s.shape[:-1], s.shape[-1], s.shape[-1])


_MASKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _mask(problem: Any, like: Tensor) -> Tensor:
    try:
        hit = _MASKS.get(problem)
    except TypeError:
        hit = None
    if hit is None:
        _, S, _, _ = _target_svd(problem)
        hit = block_mask(S.detach().cpu())
        with contextlib.suppress(TypeError):
            _MASKS[problem] = hit
    return hit.to(dtype=like.dtype, device=like.device)


def _m_block_misalignment(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    W2, W1 = params
    U, _, V, _ = _target_svd(problem)
    P = W2 @ W1
    if P.dtype in (torch.float16, torch.bfloat16):
        P = P.float()
    X = U.mT.to(P.dtype) @ P @ V.to(P.dtype)  # (R, k, k): the product in the target's bases
    total = P.square().sum((-2, -1))  # includes any mass outside the thin bases (n_out ≠ n_in)
    on = (X.square() * _mask(problem, X)).sum((-2, -1))
    return (1.0 - on / total).clamp(0.0, 1.0)


def _target_norm(problem: Any, like: Tensor) -> Tensor:
    _, S, _, _ = _target_svd(problem)
    return S.to(like.dtype).norm(dim=-1)


def _m_balance(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    W2, W1 = params
    return torch.linalg.matrix_norm(gf_invariant(W2, W1)) / _target_norm(problem, W2)


def pack_symmetric(A: Tensor) -> Tensor:
    """``(..., d, d)`` symmetric → ``(..., d(d+1)/2)``: upper triangle, off-diagonal × √2,
    so that ⟨pack(A), pack(B)⟩ = ⟨A, B⟩_F for symmetric A, B."""
    d = A.shape[-1]
    i, j = torch.triu_indices(d, d, device=A.device)
    w = torch.full(i.shape, math.sqrt(2.0), dtype=A.dtype, device=A.device)
    w[i == j] = 1.0
    return A[..., i, j] * w


def _m_gf_entries(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    W2, W1 = params
    return pack_symmetric(gf_invariant(W2, W1))


def _m_muon_entries(problem: Any, params: list[Tensor], cache: dict) -> Tensor:
    W2, W1 = params
    return pack_symmetric(muon_invariant(W2, W1))


register_metric(Metric(
    "block_misalignment", _m_block_misalignment,
    "1 − Σ_b ‖U_bᵀ W2W1 V_b‖²/‖W2W1‖²: the product's mass outside the target's singular blocks "
    "(relative gap 0.08), (R,)",
    applies=_is_product, cheap=False))
register_metric(Metric(
    "balance", _m_balance, "‖W1W1ᵀ − W2ᵀW2‖_F / ‖M*‖_F (0 at a balanced factorization), (R,)",
    applies=_is_product, cheap=False))
register_metric(Metric(
    "gf_invariant_entries", _m_gf_entries,
    "W2ᵀW2 − W1W1ᵀ as its d(d+1)/2 upper-triangle entries (off-diagonal × √2), (R, d(d+1)/2)",
    applies=_is_product, cheap=False))
register_metric(Metric(
    "muon_invariant_entries", _m_muon_entries,
    "sqrt(W2ᵀW2) − sqrt(W1W1ᵀ) as its d(d+1)/2 upper-triangle entries (off-diagonal × √2), (R, d(d+1)/2)",
    applies=_is_product, cheap=False))
