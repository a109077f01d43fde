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

__all__ = [
    "SPECTRA",
    "batched",
    "generator",
    "low_rank_target",
    "planted_target",
    "random_orthonormal",
    "spectrum",
]

SPECTRA = ("logspace", "linspace", "list")
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
        raise ValueError(f"rank: must be >= 1, got {rank}")
    if kind == "list":
        if values is None or len(values) != rank:
            raise ValueError(f"spectrum: kind 'list' needs {rank} values, got {values!r}")
        return torch.sort(torch.as_tensor(values, dtype=_F64), descending=True).values
    if not kappa >= 1.0:
        raise ValueError(f"kappa: must be >= 1, got {kappa!r}")
    if kind == "logspace":
        return torch.logspace(0.0, -math.log10(kappa), rank, dtype=_F64)
    if kind == "linspace":
        return torch.linspace(1.0, 1.0 / kappa, rank, dtype=_F64)
    raise ValueError(f"spectrum: unknown kind {kind!r}; allowed: {', '.join(SPECTRA)}")


def random_orthonormal(n: int, r: int, gen: torch.Generator) -> Tensor:
    """Haar-random n×r matrix with orthonormal columns (QR with the sign fix)."""
    Q, R = torch.linalg.qr(torch.randn(n, r, generator=gen, dtype=_F64))
    signs = torch.sign(torch.diagonal(R))
    signs[signs == 0] = 1.0
    return Q * signs


def low_rank_target(m: int, n: int, values: Tensor, gen: torch.Generator, symmetric: bool = False) -> Tensor:
    """U diag(values) Vᵀ (or U diag(values) Uᵀ when ``symmetric``) with Haar U, V."""
    r = values.shape[0]
    U = random_orthonormal(m, r, gen)
    if symmetric:
        return (U * values) @ U.T
    V = random_orthonormal(n, r, gen)
    return (U * values) @ V.T


def planted_target(n: int, rank: int, snr: float, gen: torch.Generator) -> Tensor:
    """Seed 002's planted signal: diag(snr on the first ``rank`` entries) + G/sqrt(n)."""
    M = torch.zeros(n, n, dtype=_F64)
    M[range(rank), range(rank)] = snr
    return M + torch.randn(n, n, generator=gen, dtype=_F64) / math.sqrt(n)


def batched(
    make: Callable[[int], Tensor], seeds: Sequence[int], dtype: torch.dtype, device: torch.device | str
) -> Tensor:
    """Stack ``make(seed)`` over runs and move to ``dtype``/``device`` (after drawing in float64)."""
    return torch.stack([make(int(s)) for s in seeds]).to(dtype=dtype, device=device)
