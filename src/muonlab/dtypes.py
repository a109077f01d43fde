"""The floating-point dtypes a run may use: config name → torch dtype (the one table)."""

from __future__ import annotations

import torch

__all__ = ["DTYPES", "DTYPE_NAMES"]

#: Config dtype names → torch dtypes, for runs (``dtype:``) and orthogonalizers (``ns_dtype:``).
DTYPES: dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16}
DTYPE_NAMES: tuple[str, ...] = tuple(DTYPES)
