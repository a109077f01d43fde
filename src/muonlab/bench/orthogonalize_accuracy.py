"""Accuracy of every orthogonalizer on matrices with a known SVD (prints a Markdown table).

    python bench/orthogonalize_accuracy.py [--json]

:func:`orthogonalize_accuracy` builds G = U diag(s) Vᵀ in float64 (s log-spaced from 1
to 1/κ, U, V random orthonormal, a batch of each shape: 60×40, 40×60 and 50×50 by
default) and reports, per method, iteration dtype and κ, the worst spectral-norm
error against the method's own exact target: the float64 polar factor U Vᵀ for
``svd`` and ``gram``; U φ(s/‖G‖_F) Vᵀ for the polynomial methods (φ = the composed
scalar polynomial; this isolates rounding); and ‖O − msign(G)‖₂, which for the
polynomial methods is dominated by how far φ is from 1.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from muonlab.bench.common import as_json
from muonlab.linalg import orthogonalize, polynomial_map, resolve_coefficients

__all__ = ["DTYPES", "KAPPAS", "METHODS", "SHAPES", "AccuracyResult", "Orthogonalizer", "main",
           "orthogonalize_accuracy"]


@dataclass(frozen=True)
class Orthogonalizer:
    """A method as the benchmark calls it, with what its exact target needs to know."""

    label: str
    method: str
    coefficients: str | None = None  # the polynomial methods' preset
    norm_scale: float = 1.0  # Polar Express divides by 1.02·‖G‖_F (+ eps)
    eps: float = 0.0  # the floor added to the scaled norm (only with norm_scale ≠ 1)

    @property
    def exact(self) -> bool:
        return self.coefficients is None

    def __call__(self, G: Tensor, dtype: torch.dtype) -> Tensor:
        if self.method == "newton_schulz" and self.coefficients is not None:
            return orthogonalize(G, self.method, coefficients=self.coefficients, dtype=dtype)
        return orthogonalize(G, self.method, dtype=dtype)

    def target(self, U: Tensor, s: Tensor, V: Tensor, fro: Tensor) -> Tensor:
        """What the method computes in exact arithmetic (float64)."""
        if self.coefficients is None:
            return U @ V.mT
        phi = polynomial_map(s / (fro * self.norm_scale + self.eps), resolve_coefficients(self.coefficients, None))
        return (U * phi.unsqueeze(-2)) @ V.mT


METHODS: dict[str, Orthogonalizer] = {o.label: o for o in (
    Orthogonalizer("svd", "svd"),
    Orthogonalizer("gram", "gram"),
    Orthogonalizer("newton_schulz/keller", "newton_schulz", "keller"),
    Orthogonalizer("newton_schulz/dion", "newton_schulz", "dion"),
    Orthogonalizer("polar_express", "polar_express", "polar_express", norm_scale=1.02, eps=1e-7),
)}
KAPPAS = (1.0, 1e2, 1e4, 1e8)
SHAPES = ((60, 40), (40, 60), (50, 50))
DTYPES = (torch.float64, torch.float32, torch.bfloat16)
#: The exact methods run half precision in float32 (LAPACK has none), so bf16 adds nothing.
_EXACT_DTYPES = (torch.float64, torch.float32)


@dataclass(frozen=True)
class AccuracyResult:
    """The worst errors of one method at one dtype and one κ, over every shape and batch entry."""

    method: str
    dtype: str
    kappa: float
    error_to_target: float  # max ‖O − the method's exact target‖₂
    error_to_msign: float  # max ‖O − U Vᵀ‖₂


def known_svd(m: int, n: int, kappa: float, batch: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(G, U, s, V) in float64 with G = U diag(s) Vᵀ, s log-spaced from 1 to 1/κ."""
    k = min(m, n)
    s = torch.logspace(0.0, -math.log10(kappa), k, dtype=torch.float64)
    U, _ = torch.linalg.qr(torch.randn(batch, m, k, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(batch, n, k, generator=g, dtype=torch.float64))
    return (U * s) @ V.mT, U, s, V


def orthogonalize_accuracy(
    *,
    methods: Sequence[str] = tuple(METHODS),
    dtypes: Sequence[torch.dtype] = DTYPES,
    kappas: Sequence[float] = KAPPAS,
    shapes: Sequence[tuple[int, int]] = SHAPES,
    batch: int = 3,
    seed: int = 0,
) -> list[AccuracyResult]:
    """Worst errors per method × dtype × κ (bf16 is skipped for the exact methods ``svd`` and ``gram``).

    The inputs are drawn once per (κ, shape) from ``seed``, so every method and dtype
    sees the same matrices.
    """
    for label in methods:
        if label not in METHODS:
            raise ValueError(f"methods: unknown {label!r}; allowed: {', '.join(METHODS)}")
    g = torch.Generator().manual_seed(seed)
    cases = {(kappa, shape): known_svd(*shape, kappa, batch, g) for kappa in kappas for shape in shapes}
    results = []
    for label in methods:
        ortho = METHODS[label]
        for dtype in dtypes:
            if ortho.exact and dtype not in _EXACT_DTYPES:
                continue
            for kappa in kappas:
                worst_t = worst_m = 0.0
                for shape in shapes:
                    G, U, s, V = cases[kappa, shape]
                    O = ortho(G.to(dtype), dtype).double()
                    fro = torch.linalg.vector_norm(G, dim=(-2, -1), keepdim=True)[..., 0]
                    target = ortho.target(U, s, V, fro)
                    worst_t = max(worst_t, torch.linalg.matrix_norm(O - target, ord=2).max().item())
                    worst_m = max(worst_m, torch.linalg.matrix_norm(O - U @ V.mT, ord=2).max().item())
                results.append(AccuracyResult(label, str(dtype).removeprefix("torch."), kappa, worst_t, worst_m))
    return results


def markdown(results: Sequence[AccuracyResult]) -> str:
    """One row per method and dtype, κ across (the table in docs/orthogonalize.md)."""
    kappas = list(dict.fromkeys(r.kappa for r in results))
    rows: dict[tuple[str, str], dict[float, AccuracyResult]] = {}
    for r in results:
        rows.setdefault((r.method, r.dtype), {})[r.kappa] = r
    head = " / ".join(f"κ={k:g}" for k in kappas)
    lines = [f"| method | dtype | ‖O − target‖₂ ({head}) | ‖O − msign(G)‖₂ ({head}) |", "|---|---|---|---|"]
    for (label, dt), by_kappa in rows.items():
        et = " / ".join(f"{by_kappa[k].error_to_target:.1e}" for k in kappas)
        em = " / ".join(f"{by_kappa[k].error_to_msign:.1e}" for k in kappas)
        lines.append(f"| {label} | {dt} | {et} | {em} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[AccuracyResult]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead")
    ap.add_argument("--quiet", action="store_true", help="print nothing (return the results)")
    args = ap.parse_args(argv)
    results = orthogonalize_accuracy()
    if args.json:
        print(as_json(results))
    elif not args.quiet:
        print(markdown(results))
    return results


if __name__ == "__main__":
    main()
