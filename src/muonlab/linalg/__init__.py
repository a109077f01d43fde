"""Linear-algebra kernels: orthogonalizers (msign, T_β, Newton–Schulz, Polar Express)."""

from muonlab.linalg.orthogonalize import (
    COEFFICIENT_PRESETS,
    GRAM_MIN_ASPECT,
    METHODS,
    POLYNOMIAL_METHODS,
    choose_method,
    orthogonalize,
    orthogonalize_many,
    polynomial_map,
    resolve_coefficients,
)

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
]
