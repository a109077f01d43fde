"""Reproducible targets: everything is a function of (shape, rank, spectrum, seed) (SPEC §4).

Random draws happen on the CPU in float64 from a generator derived from the run's
seed and a *stream* name (``"target"``, ``"init"``, ``"data"``), so that the target
of a run does not change when its initialization scheme does, and results do not
depend on the device or dtype the run later uses.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from muonlab.errors import MuonlabError

__all__ = [
    "COVARIANCES",
    "SPECTRA",
    "batched",
    "covariance_basis",
    "exact_covariance_design",
    "generator",
    "low_rank_factors",
    "low_rank_target",
    "planted_target",
    "random_orthonormal",
    "semi_orthogonal",
    "spectrum",
]

SPECTRA = ("logspace", "linspace", "list")
COVARIANCES = ("rotated", "diagonal", "paired")
_F64 = torch.float64


def generator(seed: int, stream: str) -> torch.Generator:
    """A CPU generator for one (seed, stream) pair; independent across streams."""
    digest = hashlib.sha256(f"muonlab:{int(seed)}:{stream}".encode()).digest()
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def spectrum(rank: int, kind: str = "logspace", kappa: float = 1.0, values: Sequence[float] | None = None) -> Tensor:
    """Target singular values / eigenvalues, descending, float64.

    ``logspace``: λ_1 = 1 ≥ … ≥ λ_r = 1/κ log-spaced (seed 001's default);
    ``linspace``: evenly spaced from 1 to 1/κ; ``list``: ``values`` as given (sorted).
    """
    if rank < 1:
        raise MuonlabError(f"rank: must be >= 1, got {rank}", field="rank")
    if kind == "list":
        if values is None or len(values) != rank:
            raise MuonlabError(f"spectrum: kind 'list' needs {rank} values, got {values!r}", field="spectrum")
        return torch.sort(torch.as_tensor(values, dtype=_F64, device="cpu"), descending=True).values
    if not kappa >= 1.0:
        raise MuonlabError(f"kappa: must be >= 1, got {kappa!r}", field="kappa")
    if kind == "logspace":
        return torch.logspace(0.0, -math.log10(kappa), rank, dtype=_F64, device="cpu")
    if kind == "linspace":
        return torch.linspace(1.0, 1.0 / kappa, rank, dtype=_F64, device="cpu")
    raise MuonlabError(f"spectrum: unknown kind {kind!r}; allowed: {', '.join(SPECTRA)}", field="spectrum")


def random_orthonormal(n: int, r: int, gen: torch.Generator) -> Tensor:
    """Haar-random n×r matrix with orthonormal columns (QR with the sign fix)."""
    Q, R = torch.linalg.qr(torch.randn(n, r, generator=gen, dtype=_F64, device="cpu"))
    signs = torch.sign(torch.diagonal(R))
    signs[signs == 0] = 1.0
    return Q * signs


def semi_orthogonal(m: int, n: int, gen: torch.Generator) -> Tensor:
    """Haar-random m×n matrix with orthonormal columns (m ≥ n) or orthonormal rows (m < n)."""
    return random_orthonormal(m, n, gen) if m >= n else random_orthonormal(n, m, gen).T


def low_rank_factors(m: int, n: int, rank: int, gen: torch.Generator, symmetric: bool = False) -> tuple[Tensor, Tensor]:
    """The Haar singular bases (U m×rank, V n×rank) that :func:`low_rank_target` draws.

    ``symmetric`` returns (U, U). Same draws, same order as ``low_rank_target``, so a
    problem can keep the bases (for its minimizer) and still match the target exactly.
    """
    U = random_orthonormal(m, rank, gen)
    if symmetric:
        return U, U
    return U, random_orthonormal(n, rank, gen)


def low_rank_target(m: int, n: int, values: Tensor, gen: torch.Generator, symmetric: bool = False) -> Tensor:
    """U diag(values) Vᵀ (or U diag(values) Uᵀ when ``symmetric``) with Haar U, V."""
    U, V = low_rank_factors(m, n, values.shape[0], gen, symmetric)
    return (U * values) @ V.T


def covariance_basis(d: int, kind: str, gen: torch.Generator) -> Tensor:
    """Orthogonal eigenbasis Q (d×d) of a covariance Σ = Q diag(λ) Qᵀ, with λ descending.

    ``rotated``: Haar Q (generic, and the rotated-diagonal covariances seed 001's
    Thm 4 / App. E uses against SignGD); ``diagonal``: Q = I (Σ diagonal: sign-based
    methods see the eigenbasis for free); ``paired``: our reconstruction of App. E's
    instance (its formulas were lost in extraction): eigen-directions i and d+1−i
    (largest with smallest, …) mixed by a 45° rotation, so every 2×2 block of Σ has
    equal diagonal entries and an off-diagonal of (λ_i − λ_{d+1−i})/2; a middle
    direction (odd d) stays axis-aligned. Nothing is drawn for ``diagonal``/``paired``.
    """
    if kind == "rotated":
        return random_orthonormal(d, d, gen)
    if kind == "diagonal":
        return torch.eye(d, dtype=_F64, device="cpu")
    if kind == "paired":
        Q = torch.zeros(d, d, dtype=_F64, device="cpu")
        c = 1.0 / math.sqrt(2.0)
        for i in range(d // 2):
            j = d - 1 - i
            # coordinate i ← directions i and j; coordinate j ← their difference
            Q[i, i], Q[j, i] = c, c
            Q[i, j], Q[j, j] = c, -c
        if d % 2:
            Q[d // 2, d // 2] = 1.0
        return Q
    raise MuonlabError(f"covariance: unknown kind {kind!r}; allowed: {', '.join(COVARIANCES)}", field="covariance")


def exact_covariance_design(n_points: int, sqrt_cov: Tensor, gen: torch.Generator) -> Tensor:
    """``n_points`` rows x_i (n_points×d) whose second moment (1/N)Σ x_i x_iᵀ is exactly sqrt_cov².

    A Gaussian sample G (N×d) is whitened symmetrically, G ← G (GᵀG/N)^(-1/2), which
    keeps it close to the draw while making GᵀG/N = I up to rounding; then colored,
    X = G·sqrt_cov, so XᵀX/N = sqrt_cov·sqrt_cov (sqrt_cov symmetric). Needs N ≥ d.
    """
    d = sqrt_cov.shape[0]
    G = torch.randn(n_points, d, generator=gen, dtype=_F64, device="cpu")
    evals, evecs = torch.linalg.eigh(G.T @ G / n_points)
    G = G @ ((evecs * evals.rsqrt()) @ evecs.T)
    return G @ sqrt_cov


def planted_target(n: int, rank: int, snr: float, gen: torch.Generator) -> Tensor:
    """Seed 002's planted signal: diag(snr on the first ``rank`` entries) + G/sqrt(n)."""
    M = torch.zeros(n, n, dtype=_F64, device="cpu")
    M[range(rank), range(rank)] = snr
    return M + torch.randn(n, n, generator=gen, dtype=_F64, device="cpu") / math.sqrt(n)


def batched(
    make: Callable[[int], Tensor], seeds: Sequence[int], dtype: torch.dtype, device: torch.device | str
) -> Tensor:
    """Stack ``make(seed)`` over runs and move to ``dtype``/``device`` (after drawing in float64)."""
    return torch.stack([make(int(s)) for s in seeds]).to(dtype=dtype, device=device)
