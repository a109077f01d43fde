r"""Spectral diagnostics of factorized matrices (SPEC §5): pure, batched tensor functions.

Every function treats the leading dimensions of its inputs as independent runs and
works on all of them at once (no Python loop over runs).  Functions that need a QR,
SVD or eigendecomposition compute half-precision (bf16/fp16) inputs in float32 and
return float32.  Conventions follow the
batched :class:`~muonlab.problems.base.Problem` interface: a product is given by its
factors ``(L, Rt)`` with ``L @ Rt.mT`` the end-to-end matrix; two-factor problems
(P3, P4) are written ``W2 @ W1`` (``A @ B`` for LoRA: ``W2 = A``, ``W1 = B``).

Contents
--------
* :func:`product_singular_values`, :func:`product_svd` — spectrum of ``L Rtᵀ`` from thin
  QRs of the factors and an SVD of the small core (never the ``m×n`` product).
* :func:`effective_rank` — exp of the entropy of the normalized spectrum
  (Roy & Vetterli 2007).
* :func:`alignment`, :func:`principal_angles`, :func:`factor_alignment`,
  :func:`target_alignment` — subspace alignment scores.
* :func:`merge_directions`, :func:`block_alignment`, :func:`block_alignment_scores` —
  seed 002's per-block alignment score with near-degenerate directions merged.
* :func:`gf_invariant`, :func:`muon_invariant`, :func:`psd_sqrt`,
  :func:`invariant_drift` — conserved quantities of P3(c) (seed 002).
* :func:`sharpness` — λ_max of the loss Hessian by Hessian-vector products
  (power iteration or Lanczos), batched over runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import Tensor

from muonlab.errors import MuonlabError

__all__ = [
    "alignment",
    "block_alignment",
    "block_alignment_scores",
    "effective_rank",
    "factor_alignment",
    "gf_invariant",
    "invariant_drift",
    "merge_directions",
    "muon_invariant",
    "principal_angles",
    "product_singular_values",
    "product_svd",
    "psd_sqrt",
    "sharpness",
    "target_alignment",
]


# ---------------------------------------------------------------------------
# Spectrum of a product of factors
# ---------------------------------------------------------------------------

_HALF = (torch.float16, torch.bfloat16)


def _lift(*ts: Tensor) -> tuple[Tensor, ...]:
    """Half-precision inputs go to float32: QR, SVD and eigh have no bf16/fp16 kernels."""
    return tuple(t.float() if t.dtype in _HALF else t for t in ts)



def _check_factors(L: Tensor, Rt: Tensor) -> None:
    if L.ndim < 2 or Rt.ndim < 2:
        raise MuonlabError(
            f"factors: expected (..., m, k) and (..., n, k), got {tuple(L.shape)} and {tuple(Rt.shape)}",
            field="factors",
        )
    if L.shape[-1] != Rt.shape[-1]:
        raise MuonlabError(
            f"factors: inner dimensions differ: L is {tuple(L.shape)}, Rt is {tuple(Rt.shape)} "
            "(the product is L @ Rt.mT, so both need k columns)", field="factors"
        )


def _core(L: Tensor, Rt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Thin QRs ``L = Q_L R_L``, ``Rt = Q_R R_R`` and the core ``C = R_L R_Rᵀ``."""
    _check_factors(L, Rt)
    same = Rt is L
    L, Rt = _lift(L, Rt)
    Q_L, R_L = torch.linalg.qr(L, mode="reduced")
    if same:  # symmetric layout (X Xᵀ): one QR suffices
        Q_R, R_R = Q_L, R_L
    else:
        Q_R, R_R = torch.linalg.qr(Rt, mode="reduced")
    return Q_L, Q_R, R_L @ R_R.mT


def product_singular_values(L: Tensor, Rt: Tensor) -> Tensor:
    r"""Singular values (descending) of ``P = L @ Rt.mT`` without forming ``P``.

    With thin QRs :math:`L = Q_L R_L` (:math:`Q_L \in \mathbb R^{m\times a}`,
    :math:`a=\min(m,k)`) and :math:`R_t = Q_R R_R` (:math:`b=\min(n,k)`),

    .. math::  L R_t^\top = Q_L\,(R_L R_R^\top)\,Q_R^\top ,

    and since :math:`Q_L, Q_R` have orthonormal columns the singular values of ``P``
    are those of the small :math:`a\times b` core :math:`R_L R_R^\top`.  The cost is
    :math:`O((m+n)k^2 + k^3)` per run instead of :math:`O(mn\min(m,n))` (SPEC §5).

    Args:
        L: ``(..., m, k)``.
        Rt: ``(..., n, k)`` (same leading dims, or broadcastable). Passing the same
            tensor object twice (symmetric ``X Xᵀ``) does one QR.

    Returns:
        ``(..., q)`` with ``q = min(m, n, k)``: all singular values that can be nonzero
        (the product has rank ≤ k; its remaining ``min(m, n) − q`` singular values are
        exactly zero and are not returned).
    """
    _, _, C = _core(L, Rt)
    return torch.linalg.svdvals(C)


def product_svd(L: Tensor, Rt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Thin SVD ``(U, S, V)`` of ``P = L @ Rt.mT`` with ``P = U diag(S) Vᵀ``, via the core.

    With :math:`C = R_L R_R^\top = U_c S V_c^\top` (see :func:`product_singular_values`),
    :math:`U = Q_L U_c` (``(..., m, q)``) and :math:`V = Q_R V_c` (``(..., n, q)``) have
    orthonormal columns, ``S`` is ``(..., q)`` descending, ``q = min(m, n, k)``.
    Singular vectors of repeated or zero singular values are determined only up to a
    rotation within their subspace, as for any SVD.
    """
    Q_L, Q_R, C = _core(L, Rt)
    U_c, S, Vh_c = torch.linalg.svd(C, full_matrices=False)
    return Q_L @ U_c, S, Q_R @ Vh_c.mT


def effective_rank(s: Tensor) -> Tensor:
    r"""Effective rank ``exp(H(p))`` of a spectrum, over the last dimension.

    Roy & Vetterli, *The effective rank: a measure of effective dimensionality*,
    EUSIPCO 2007: with :math:`p_i = |s_i| / \lVert s\rVert_1`,

    .. math::  \operatorname{erank}(s) = \exp\Big(-\sum_i p_i \log p_i\Big),

    with the convention :math:`0 \log 0 = 0` (zero singular values do not count).
    It equals ``r`` for ``r`` equal nonzero values, 1 for a single nonzero value, and
    lies in ``[1, #nonzero]`` otherwise.  The all-zero spectrum (the zero matrix) has
    no distribution ``p``; we define its effective rank as **0** (the rank of the zero
    matrix).  Absolute values are used, so any sign convention of ``s`` is harmless.

    Args:
        s: ``(..., k)`` singular values.

    Returns:
        ``(...,)`` in ``s``'s dtype.
    """
    a = s.abs()
    total = a.sum(dim=-1, keepdim=True)
    zero = total == 0
    p = a / torch.where(zero, torch.ones_like(total), total)
    H = -torch.xlogy(p, p).sum(dim=-1)
    return torch.where(zero.squeeze(-1), torch.zeros_like(H), torch.exp(H))


# ---------------------------------------------------------------------------
# Alignment of subspaces
# ---------------------------------------------------------------------------


def alignment(U_a: Tensor, U_b: Tensor) -> Tensor:
    r"""Subspace alignment :math:`\lVert U_a^\top U_b\rVert_F^2 / k \in [0, 1]` per run.

    ``U_a`` ``(..., n, k_a)`` and ``U_b`` ``(..., n, k_b)`` have orthonormal columns;
    ``k = min(k_a, k_b)``.  The value is the mean of :math:`\cos^2` of the ``k``
    principal angles between the two subspaces (:func:`principal_angles`): 1 when the
    smaller subspace lies in the larger one (same subspace when ``k_a = k_b``), 0 when
    they are orthogonal, ``k/n`` in expectation for a random pair of equal dimension.
    Rounding can push the raw ratio a few ulps above 1; it is clamped to 1.
    """
    if U_a.shape[-2] != U_b.shape[-2]:
        raise MuonlabError(
            f"alignment: bases live in different spaces: {tuple(U_a.shape)} vs {tuple(U_b.shape)}", field="alignment"
        )
    k = min(U_a.shape[-1], U_b.shape[-1])
    O = U_a.mT @ U_b
    return (O.square().sum(dim=(-2, -1)) / k).clamp(max=1.0)


def principal_angles(U_a: Tensor, U_b: Tensor) -> Tensor:
    r"""Principal angles (radians, ascending) between ``span(U_a)`` and ``span(U_b)``.

    Björck & Golub (1973): the cosines of the angles are the singular values of
    :math:`U_a^\top U_b` (orthonormal columns assumed).  Returns ``(..., min(k_a, k_b))``;
    cosines are clamped to ``[0, 1]`` before ``arccos`` against rounding.
    """
    U_a, U_b = _lift(U_a, U_b)
    cos = torch.linalg.svdvals(U_a.mT @ U_b).clamp(0.0, 1.0)
    return torch.arccos(cos)


def factor_alignment(W2: Tensor, W1: Tensor, k: int | None = None, matched: bool = False) -> Tensor:
    r"""How aligned the two factors of ``W2 @ W1`` are with each other (seed 002).

    ``W2`` is ``(..., n_out, d)``, ``W1`` is ``(..., d, n_in)``.  Both act on the
    inner space :math:`\mathbb R^d`: let :math:`V_2` be the top-``k`` right singular
    vectors of ``W2`` and :math:`U_1` the top-``k`` left singular vectors of ``W1``.
    The factors are *aligned* (seed 002: :math:`W_2 = U S_2 O^\top`,
    :math:`W_1 = O S_1 V^\top` share the inner basis ``O``) when these coincide.

    * ``matched=False``: subspace alignment :func:`alignment` ``(V_2, U_1)`` ∈ [0, 1].
    * ``matched=True``: direction-by-direction :math:`\frac1k\sum_i (v_{2,i}^\top u_{1,i})^2`,
      which also requires the ordering to agree (ill-defined under degenerate
      singular values; prefer the subspace score there).

    ``k`` defaults to ``min(n_out, d, n_in)``.  Note that when that equals ``d`` both
    subspaces are all of :math:`\mathbb R^d` and the subspace score is trivially 1 —
    pass the rank of interest (e.g. the target's rank) in that case.
    """
    if W2.shape[-1] != W1.shape[-2]:
        raise MuonlabError(
            f"factor_alignment: W2 {tuple(W2.shape)} @ W1 {tuple(W1.shape)} do not chain", field="factor_alignment"
        )
    kmax = min(W2.shape[-2], W2.shape[-1], W1.shape[-1])
    k = kmax if k is None else int(k)
    if not 1 <= k <= kmax:
        raise MuonlabError(f"factor_alignment: k must be in [1, {kmax}], got {k}", field="factor_alignment")
    W2, W1 = _lift(W2, W1)
    _, _, Vh2 = torch.linalg.svd(W2, full_matrices=False)
    U1, _, _ = torch.linalg.svd(W1, full_matrices=False)
    V2 = Vh2.mT[..., :k]
    U1 = U1[..., :k]
    if matched:
        return (V2 * U1).sum(dim=-2).square().mean(dim=-1).clamp(max=1.0)
    return alignment(V2, U1)


def target_alignment(
    product_U: Tensor,
    product_V: Tensor,
    target_U: Tensor,
    target_V: Tensor,
    k: int | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Alignment of the product's singular subspaces with the target's.

    Columns are assumed sorted by descending singular value; the first ``k`` of each
    are compared (default ``k = min`` of the column counts, i.e. the target's rank when
    the product has more columns).  Returns ``(left, right)``, each ``(...,)`` in
    [0, 1]: :func:`alignment` of the left subspaces ``(product_U, target_U)`` and of the
    right ones ``(product_V, target_V)``.
    """
    kmax = min(product_U.shape[-1], product_V.shape[-1], target_U.shape[-1], target_V.shape[-1])
    k = kmax if k is None else int(k)
    if not 1 <= k <= kmax:
        raise MuonlabError(f"target_alignment: k must be in [1, {kmax}], got {k}", field="target_alignment")
    left = alignment(product_U[..., :k], target_U[..., :k])
    right = alignment(product_V[..., :k], target_V[..., :k])
    return left, right


def merge_directions(s: Tensor | Sequence[float], rel_gap: float = 0.08) -> list:
    r"""Group near-degenerate singular values into blocks (seed 002's planted-signal score).

    ``s`` is sorted descending.  Consecutive values ``s_i ≥ s_{i+1}`` fall in the same
    block when their *relative gap* is small:

    .. math::  s_i - s_{i+1} \le \text{rel\_gap}\cdot s_i

    (relative to the larger value; two zeros are merged).  Directions inside a block
    are not individually identifiable, so their alignment is scored jointly
    (:func:`block_alignment`).  Chaining applies: a run of values each within
    ``rel_gap`` of the next is one block.

    Returns a list of blocks, each a list of consecutive indices, covering
    ``range(k)``.  For a batch ``(..., k)`` the result is nested lists over the
    leading dimensions (blocks differ per run, so this is Python structure, not a tensor).
    """
    s = torch.as_tensor(s)
    if s.ndim == 0:
        raise MuonlabError("merge_directions: s must have at least one dimension (..., k)", field="merge_directions")
    if s.ndim > 1:
        return [merge_directions(row, rel_gap) for row in s]
    if not rel_gap >= 0:
        raise MuonlabError(f"merge_directions: rel_gap must be >= 0, got {rel_gap!r}", field="merge_directions")
    vals = s.tolist()
    if not vals:
        return []
    blocks = [[0]]
    for i in range(1, len(vals)):
        hi, lo = vals[i - 1], vals[i]
        if hi < lo:
            raise MuonlabError("merge_directions: s must be sorted in descending order", field="merge_directions")
        if hi - lo <= rel_gap * abs(hi):
            blocks[-1].append(i)
        else:
            blocks.append([i])
    return blocks


def block_alignment(O_block: Tensor) -> Tensor:
    r"""Alignment score of one block: :math:`\lVert O_{\text{block}}^\top\rVert_F^2 / r` (seed 002).

    ``O_block`` is ``(..., r, k)``: its ``r`` rows are the overlaps of the block's ``r``
    reference directions (e.g. target singular vectors of near-equal singular values)
    with ``k`` orthonormal learned directions, ``O = U_refᵀ U_learned`` restricted to
    the block's rows.  The score is the fraction of the block's subspace captured by
    the learned subspace: 1 when it is contained, 0 when orthogonal, in [0, 1]
    (clamped against rounding).
    """
    r = O_block.shape[-2]
    return (O_block.square().sum(dim=(-2, -1)) / r).clamp(max=1.0)


def block_alignment_scores(O: Tensor, blocks: Sequence[Sequence[int]]) -> Tensor:
    """:func:`block_alignment` for each block (same blocks for all runs): ``(..., n_blocks)``.

    ``O`` is ``(..., p, k)`` with one row per reference direction; ``blocks`` is the
    output of :func:`merge_directions` on the reference spectrum.
    """
    return torch.stack([block_alignment(O[..., list(b), :]) for b in blocks], dim=-1)


# ---------------------------------------------------------------------------
# Conserved quantities of two-factor MF (P3(c), seed 002)
# ---------------------------------------------------------------------------


def gf_invariant(W2: Tensor, W1: Tensor) -> Tensor:
    r""":math:`\Delta_{GF} = W_2^\top W_2 - W_1 W_1^\top` (``(..., d, d)``).

    For :math:`f = \tfrac12\lVert W_2W_1 - M\rVert_F^2`, with :math:`E = W_2W_1 - M`,
    :math:`\nabla_{W_2} f = E W_1^\top` and :math:`\nabla_{W_1} f = W_2^\top E`, so
    :math:`W_2^\top\nabla_{W_2} = \nabla_{W_1} W_1^\top = W_2^\top E W_1^\top` and under
    gradient flow :math:`\tfrac{d}{dt}(W_2^\top W_2 - W_1W_1^\top) = 0` (Arora, Cohen,
    Hazan 2018; Du, Hu, Lee 2018).  Discrete GD changes it by
    :math:`\eta^2(G_2^\top G_2 - G_1G_1^\top)` per step, i.e. O(η) over a fixed time.
    """
    return W2.mT @ W2 - W1 @ W1.mT


def psd_sqrt(A: Tensor) -> Tensor:
    r"""Principal square root of symmetric PSD matrices ``(..., d, d)`` via ``eigh``.

    :math:`A = Q\Lambda Q^\top \Rightarrow \sqrt A = Q \sqrt{\max(\Lambda, 0)} Q^\top`;
    tiny negative eigenvalues from rounding are clamped to 0.  ``A`` is symmetrized
    first.
    """
    (A,) = _lift(A)
    A = 0.5 * (A + A.mT)
    lam, Q = torch.linalg.eigh(A)
    return (Q * lam.clamp(min=0).sqrt().unsqueeze(-2)) @ Q.mT


def muon_invariant(W2: Tensor, W1: Tensor) -> Tensor:
    r""":math:`\Delta_{Muon} = \sqrt{W_2^\top W_2} - \sqrt{W_1 W_1^\top}` (``(..., d, d)``).

    Seed 002 (Rhee, Simon, Karkada): once the factors are aligned with each other and
    the target (:math:`W_2 = U\,\mathrm{diag}(a)O^\top`, :math:`W_1 = O\,\mathrm{diag}(b)V^\top`),
    Muon flow moves every :math:`a_i` and :math:`b_i` at the same speed, so
    :math:`\sqrt{W_2^\top W_2} - \sqrt{W_1W_1^\top} = O\,\mathrm{diag}(a - b)O^\top` is
    conserved.  Square roots by :func:`psd_sqrt`.
    """
    W2, W1 = _lift(W2, W1)
    return psd_sqrt(W2.mT @ W2) - psd_sqrt(W1 @ W1.mT)


def invariant_drift(delta_t: Tensor, delta_ref: Tensor) -> Tensor:
    r"""Projection :math:`\langle\Delta(t), \Delta(t^*)\rangle_F / \lVert\Delta(t^*)\rVert_F^2` (seed 002).

    Seed 002 plots this with :math:`t^* = 80`: it stays at 1 from :math:`t^*` on for a
    conserved quantity.  ``delta_t`` ``(..., d, d)`` broadcasts against ``delta_ref``
    (e.g. a trajectory ``(T, R, d, d)`` against ``(R, d, d)``).  Runs with
    :math:`\Delta(t^*) = 0` give NaN (the ratio is undefined).
    """
    num = (delta_t * delta_ref).sum(dim=(-2, -1))
    den = delta_ref.square().sum(dim=(-2, -1))
    return num / torch.where(den == 0, torch.full_like(den, float("nan")), den)


# ---------------------------------------------------------------------------
# Sharpness: λ_max of the Hessian by Hessian-vector products
# ---------------------------------------------------------------------------


def _flat(ts: Sequence[Tensor], R: int) -> Tensor:
    return torch.cat([t.reshape(R, -1) for t in ts], dim=1)


def sharpness(
    loss_fn: Callable[[list[Tensor]], Tensor],
    params: Sequence[Tensor],
    iters: int = 50,
    tol: float = 1e-8,
    generator: torch.Generator | None = None,
    method: str = "power",
) -> Tensor:
    r"""Top Hessian eigenvalue of a per-run loss, for every run at once: ``(R,)``.

    ``loss_fn(params) -> (R,)`` must be twice differentiable and *separable over runs*
    (run ``r``'s loss depends only on ``p[r]`` for each parameter ``p``), as every
    batched :class:`~muonlab.problems.base.Problem` is.  Then the Hessian of
    :math:`\sum_r f_r` is block diagonal over runs, and one double-backward
    Hessian-vector product (Pearlmutter 1994)

    .. math::  Hv = \nabla\big(\langle \nabla \textstyle\sum_r f_r,\; v\rangle\big)

    gives every run's HVP at once.  Vectors live in the concatenation of all parameter
    tensors; norms and inner products are taken per run across all of them.

    Methods:

    * ``"power"`` (default): power iteration with Rayleigh quotient
      :math:`\lambda = v^\top Hv`; it converges to the eigenvalue of **largest
      magnitude** (returned with its sign), at rate :math:`|\lambda_2/\lambda_1|`.
      Near a minimum (H ⪰ 0) this is λ_max, the quantity behind GD's critical step
      size 2/λ_max.  At a saddle where −λ dominates (e.g. near 0 in MF, where the
      spectrum is ±σ_i(M)) it returns that negative value or fails to settle when
      ±λ tie; use ``"lanczos"`` there.  Stops when every run's relative change is
      below ``tol``.
    * ``"lanczos"``: ``iters`` steps of Lanczos with full reorthogonalization (capped
      at the parameter dimension), returning the largest **algebraic** Ritz value of
      the tridiagonal matrix; exact once the Krylov space is the whole space.

    Args:
        loss_fn: maps a list of tensors shaped like ``params`` to ``(R,)`` losses.
        params: list of ``(R, ...)`` tensors (not modified; detached copies are used).
        iters: maximum number of HVPs.
        tol: relative stopping tolerance of the power iteration.
        generator: CPU generator for the random start vector (reproducibility).
        method: ``"power"`` or ``"lanczos"``.

    Returns:
        ``(R,)`` tensor, detached, in the parameters' dtype.
    """
    if method not in ("power", "lanczos"):
        raise MuonlabError(f"sharpness: unknown method {method!r}; allowed: power, lanczos", field="sharpness")
    if iters < 1:
        raise MuonlabError(f"sharpness: iters must be >= 1, got {iters}", field="sharpness")
    params = list(params)
    if not params:
        raise MuonlabError("sharpness: params is empty", field="sharpness")
    R = params[0].shape[0]
    dtype, device = params[0].dtype, params[0].device
    with torch.enable_grad():
        ps = [p.detach().clone().requires_grad_(True) for p in params]
        total = loss_fn(ps)
        if total.shape != (R,):
            raise MuonlabError(
                f"sharpness: loss_fn must return shape ({R},), got {tuple(total.shape)}", field="sharpness"
            )
        grads = torch.autograd.grad(total.sum(), ps, create_graph=True)
        sizes = [p[0].numel() for p in ps]
        shapes = [p.shape for p in ps]

        # Gradients that are constant in the parameters (a linear term) contribute 0.
        live = [i for i, g in enumerate(grads) if g.requires_grad]

        def hvp(v: Tensor) -> Tensor:  # v: (R, P) -> (R, P)
            if not live:
                return torch.zeros_like(v)
            chunks = torch.split(v, sizes, dim=1)
            vs = [c.reshape(s) for c, s in zip(chunks, shapes)]
            hv_or_none = torch.autograd.grad(
                [grads[i] for i in live],
                ps,
                grad_outputs=[vs[i] for i in live],
                retain_graph=True,
                allow_unused=True,
            )
            hv = [torch.zeros_like(p) if h is None else h for p, h in zip(ps, hv_or_none)]
            return _flat(hv, R).detach()

        P = sum(sizes)
        v = torch.randn(R, P, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
        v = v / v.norm(dim=1, keepdim=True)
        if method == "power":
            return _power(hvp, v, iters, tol)
        return _lanczos(hvp, v, min(iters, P), generator)


def _power(hvp: Callable[[Tensor], Tensor], v: Tensor, iters: int, tol: float) -> Tensor:
    lam = None
    for _ in range(iters):
        w = hvp(v)
        new = (v * w).sum(dim=1)
        norm = w.norm(dim=1, keepdim=True)
        # A zero HVP (H v = 0) leaves v in place: its Rayleigh quotient 0 is exact.
        v = torch.where(norm > 0, w / torch.where(norm > 0, norm, torch.ones_like(norm)), v)
        if lam is not None and bool(((new - lam).abs() <= tol * new.abs().clamp_min(1e-300)).all()):
            return new
        lam = new
    return cast(Tensor, lam)  # iters >= 1 (checked by sharpness): the loop ran


def _project_out(basis: Tensor, w: Tensor) -> Tensor:
    """``w − Bᵀ(B w)`` per run, for an orthonormal basis ``B``: (R, j, P), w: (R, P)."""
    coef = torch.bmm(basis, w.unsqueeze(-1))  # (R, j, 1)
    return w - torch.bmm(coef.transpose(1, 2), basis).squeeze(1)


def _lanczos(hvp: Callable[[Tensor], Tensor], v: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    R, P = v.shape
    dtype, device = v.dtype, v.device
    Q = torch.zeros(R, k, P, dtype=dtype, device=device)
    alpha = torch.zeros(R, k, dtype=dtype, device=device)
    beta = torch.zeros(R, k, dtype=dtype, device=device)  # beta[:, j] couples j and j+1
    Q[:, 0] = v
    eps = torch.finfo(dtype).eps
    for j in range(k):
        w = hvp(Q[:, j])
        alpha[:, j] = (Q[:, j] * w).sum(dim=1)
        # Full reorthogonalization against the basis so far (twice, for stability);
        # batched matmuls, ~2× faster than the equivalent einsum on CPU.
        for _ in range(2):
            w = _project_out(Q[:, : j + 1], w)
        if j + 1 == k:
            break
        b = w.norm(dim=1)
        scale = alpha[:, : j + 1].abs().amax(dim=1).clamp_min(1.0)
        broke = b <= 1e3 * eps * scale
        if bool(broke.any()):
            # Invariant subspace found: restart with a fresh random direction orthogonal
            # to the basis; beta = 0 decouples the tridiagonal matrix, so Ritz values
            # remain eigenvalue estimates of H.
            fresh = torch.randn(R, P, generator=generator, dtype=torch.float64).to(dtype=dtype, device=device)
            for _ in range(2):
                fresh = _project_out(Q[:, : j + 1], fresh)
            fresh = fresh / fresh.norm(dim=1, keepdim=True)
            b = torch.where(broke, torch.zeros_like(b), b)
            nxt = torch.where(broke[:, None], fresh, w / torch.where(broke, torch.ones_like(b), b)[:, None])
        else:
            nxt = w / b[:, None]
        beta[:, j] = b
        Q[:, j + 1] = nxt
    T = torch.diag_embed(alpha) + torch.diag_embed(beta[:, : k - 1], 1) + torch.diag_embed(beta[:, : k - 1], -1)
    return torch.linalg.eigvalsh(T)[:, -1]

