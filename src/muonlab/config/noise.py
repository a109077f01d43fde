"""The optional ``gradient_noise`` field of a run: noise added to every gradient before the
update rule (issue 15 [beyond], item 2; docs/beyond_noise.md).

``{kind: additive, sigma: σ, scale: absolute | relative}``: at every step the solver replaces
each gradient tensor G (one per parameter, per run) by

* ``absolute``: G + σ·Ξ, Ξ with i.i.d. N(0, 1) entries, so E‖G̃ − G‖²_F = σ²·numel(G)
  (σ is the per-entry standard deviation: a mini-batch of fixed size far from the optimum);
* ``relative``: G + σ·(‖G‖_F/√numel(G))·Ξ, so E‖G̃ − G‖²_F = σ²‖G‖²_F (the noise-to-signal
  ratio is σ at every step and every κ; it vanishes with the gradient, so there is no floor).

The draws come from each run's own stream ``"gradient_noise"`` (muonlab.problems.targets.
generator), one draw per parameter per step whether the run is still active or not, so a
run's noise does not depend on the batch it lands in. Absent (None, the default) the field
is left out of every dump: configs without it keep their run ids and config hashes.
"""

from __future__ import annotations

from typing import Literal

from muonlab.config.base import _Model, _NonNeg

__all__ = ["NOISE_KINDS", "NOISE_SCALES", "GradientNoiseConfig"]

NOISE_KINDS = ("additive",)
NOISE_SCALES = ("absolute", "relative")


class GradientNoiseConfig(_Model):
    """Additive Gaussian gradient noise: per-entry standard deviation ``sigma`` (absolute)
    or ``sigma``·RMS(G) (relative)."""

    kind: Literal["additive"] = "additive"
    sigma: _NonNeg
    scale: Literal["absolute", "relative"] = "absolute"
