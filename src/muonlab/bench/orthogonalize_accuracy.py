"""Accuracy of every orthogonalizer on matrices with a known SVD (prints a Markdown table).

    python bench/orthogonalize_accuracy.py

For G = U diag(s) Vᵀ (s log-spaced from 1 to 1/κ, U, V random orthonormal, 3 × 60×40,
40×60 and 50×50) it reports, per method and iteration dtype, the worst spectral-norm
error against the method's own exact target: U Vᵀ for ``svd`` and ``gram``; U φ(s/‖G‖_F) Vᵀ for the
polynomial methods (φ = the composed scalar polynomial; this isolates rounding), and
‖O − msign(G)‖₂ which for the polynomial methods is dominated by how far φ is from 1.
"""

from __future__ import annotations

import math

import torch

from muonlab import orthogonalize
from muonlab.linalg import polynomial_map, resolve_coefficients

KAPPAS = (1.0, 1e2, 1e4, 1e8)
SHAPES = ((60, 40), (40, 60), (50, 50))
METHODS = (
    ("svd", "svd", None, 1.0),
    ("gram", "gram", None, 1.0),
    ("newton_schulz/keller", "newton_schulz", "keller", 1.0),
    ("newton_schulz/dion", "newton_schulz", "dion", 1.0),
    ("polar_express", "polar_express", "polar_express", 1.02),
)
DTYPES = (torch.float64, torch.float32, torch.bfloat16)


def known(m: int, n: int, kappa: float, g: torch.Generator):
    k = min(m, n)
    s = torch.logspace(0.0, -math.log10(kappa), k, dtype=torch.float64)
    U, _ = torch.linalg.qr(torch.randn(3, m, k, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(3, n, k, generator=g, dtype=torch.float64))
    return (U * s) @ V.mT, U, V, s


def main() -> None:
    g = torch.Generator().manual_seed(0)
    rows = []
    for label, method, preset, safety in METHODS:
        for dtype in DTYPES if method not in ("svd", "gram") else (torch.float64, torch.float32):
            errs_target, errs_msign = [], []
            for kappa in KAPPAS:
                worst_t = worst_m = 0.0
                for m, n in SHAPES:
                    G, U, V, s = known(m, n, kappa, g)
                    kw = {"coefficients": preset} if method == "newton_schulz" else {}
                    O = orthogonalize(G.to(dtype), method, **kw).double()
                    msign = U @ V.mT
                    if method in ("svd", "gram"):
                        target = msign
                    else:
                        fro = torch.linalg.vector_norm(G, dim=(-2, -1), keepdim=True)[..., 0]
                        eps = 1e-7 if safety != 1.0 else 0.0
                        phi = polynomial_map(s / (fro * safety + eps), resolve_coefficients(preset, None))
                        target = (U * phi.unsqueeze(-2)) @ V.mT
                    worst_t = max(worst_t, torch.linalg.matrix_norm(O - target, ord=2).max().item())
                    worst_m = max(worst_m, torch.linalg.matrix_norm(O - msign, ord=2).max().item())
                errs_target.append(worst_t)
                errs_msign.append(worst_m)
            rows.append((label, str(dtype).removeprefix("torch."), errs_target, errs_msign))
    head = " / ".join(f"κ={k:g}" for k in KAPPAS)
    print(f"| method | dtype | ‖O − target‖₂ ({head}) | ‖O − msign(G)‖₂ ({head}) |")
    print("|---|---|---|---|")
    for label, dt, et, em in rows:
        print(f"| {label} | {dt} | {' / '.join(f'{e:.1e}' for e in et)} | {' / '.join(f'{e:.1e}' for e in em)} |")


if __name__ == "__main__":
    main()
