"""Small float64 factories shared by the test modules (tests/ is on sys.path under pytest)."""

import torch

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def orthonormal(*batch, n, k, seed=0):
    """Random n×k matrices with orthonormal columns (QR of a Gaussian), batched."""
    return torch.linalg.qr(randn(*batch, n, k, seed=seed))[0]
