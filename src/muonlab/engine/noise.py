r"""Gradient noise applied by the discrete solver (config: :mod:`muonlab.config.noise`).

For run i with noise level σ_i and each gradient tensor G_i (one per parameter):

.. math:: \tilde G_i = G_i + σ_i\, s_i\, Ξ_i,\qquad Ξ_i \sim N(0, I),
          \quad s_i = 1 \ (\text{absolute}) \ \text{or}\ \lVert G_i\rVert_F/\sqrt{\mathrm{numel}\,G_i}
          \ (\text{relative}).

So E G̃ = G (unbiased) and E‖G̃ − G‖²_F = σ²·numel (absolute) or σ²‖G‖²_F (relative).
Ξ_i is drawn in float64 on the CPU from run i's own stream ``"gradient_noise"`` (seeded from
the run's seed), one draw per parameter per step for every run of the batch, so the noise a
run sees is the same alone or in any batch, and the same for every device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from muonlab.config import RunSpec
from muonlab.problems.targets import generator

__all__ = ["GradientNoise", "gradient_noise"]

STREAM = "gradient_noise"


class GradientNoise:
    """The noise of one batch: per-run σ (``(R,)``), the scale rule and per-run generators."""

    def __init__(self, sigmas: Sequence[float], seeds: Sequence[int], scale: str) -> None:
        if len(sigmas) != len(seeds):
            raise ValueError("one sigma per seed")
        self.sigma = torch.tensor([float(s) for s in sigmas], dtype=torch.float64)
        self.scale = scale
        self._gens = [generator(int(s), STREAM) for s in seeds]

    def draw(self, shape: Sequence[int]) -> Tensor:
        """One standard normal draw of ``shape`` per run, ``(R, *shape)`` float64 on the CPU."""
        return torch.stack([torch.randn(*shape, generator=g, dtype=torch.float64) for g in self._gens])

    def apply(self, grads: Sequence[Tensor]) -> list[Tensor]:
        """The noisy gradients (new tensors; ``grads`` are left as they are)."""
        out = []
        for g in grads:
            R = g.shape[0]
            xi = self.draw(g.shape[1:]).to(dtype=g.dtype, device=g.device)
            sig = self.sigma.to(dtype=g.dtype, device=g.device)
            if self.scale == "relative":
                rms = g.reshape(R, -1).norm(dim=1) / math.sqrt(max(g[0].numel(), 1))
                sig = sig * rms
            out.append(g + sig.view(R, *([1] * (g.ndim - 1))) * xi)
        return out


def gradient_noise(runs: Sequence[RunSpec]) -> GradientNoise | None:
    """The batch's noise, or None when its runs have none (runs of one batch agree on the
    kind and scale; σ may differ per run)."""
    cfg = runs[0].gradient_noise
    if cfg is None:
        return None
    return GradientNoise([r.gradient_noise.sigma if r.gradient_noise is not None else 0.0 for r in runs],
                         [int(r.seed) for r in runs], cfg.scale)
