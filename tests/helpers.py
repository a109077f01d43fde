"""Small float64 factories and a tiny sweep shared by the test modules (tests/ is on sys.path under pytest)."""

import torch

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def orthonormal(*batch, n, k, seed=0):
    """Random n×k matrices with orthonormal columns (QR of a Gaussian), batched."""
    return torch.linalg.qr(randn(*batch, n, k, seed=seed))[0]


def tiny_sweep(name: str) -> dict:
    """A 4-run-per-seed symmetric-MF sweep (2 κ × 2 seeds, 30 GD steps) as a raw config:
    small enough for store, provenance and damage tests to run it many times."""
    return {
        "name": name,
        "problem": {"kind": "symmetric_mf", "n": 8, "r": 2, "alpha": 1e-2},
        "optimizer": {"name": "gd", "lr": 0.2},
        "steps": 30,
        "seeds": 2,
        "grid": {"problem.kappa": [1.0, 10.0]},
        "metrics": ["loss", "rel_err"],
        "log_every": 5,
    }
