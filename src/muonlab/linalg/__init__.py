"""Linear-algebra kernels: orthogonalizers (msign, T_β, Newton–Schulz, Polar Express)."""

from muonlab.linalg.orthogonalize import (
    COEFFICIENT_PRESETS,
    METHODS,
    orthogonalize,
    polynomial_map,
    resolve_coefficients,
)

__all__ = ["COEFFICIENT_PRESETS", "METHODS", "orthogonalize", "polynomial_map", "resolve_coefficients"]
