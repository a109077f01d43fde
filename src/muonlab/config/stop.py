"""When a run stops early."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
)

from muonlab.config.base import _Model, _NonNeg


class StopConfig(_Model):
    """When a run stops early.

    ``target``: stop (status ``ok``) when rel_err <= target; None: run all steps.
    ``blowup``: diverged when the loss exceeds blowup × the initial loss (or is
    non-finite); None: only non-finite losses count as divergence.
    """

    target: _NonNeg | None = None
    blowup: Annotated[float, Field(gt=1.0)] | None = 1e6

