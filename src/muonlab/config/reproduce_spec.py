"""The ``reproduce:`` section of an experiment YAML: how ``muonlab reproduce`` presents,
judges and scales the experiment, declared next to its problem and grid.

::

    reproduce:
      seed: "001"                 # the paper seed it reproduces (shown in the report)
      group: paper                # paper: part of `reproduce all`; beyond: `reproduce beyond`
                                  # (the open questions, seed "beyond"); example: only by name
      kind: sweep                 # sweep (the engine, the default) or finetune (LoRA on a
                                  # transformer, muonlab.lora.experiment; only by name)
      order: 10                   # position in `reproduce all` and in the report
      title: "Seed 001, Fig. 1(a–c): symmetric MF, κ sweep"
      description: "Muon's steps to the target are κ-free; GD ∝ κ."
      figure: {curve_by: [problem.kappa], panel_by: optimizer.name, best_of: [], x: step, y: rel_err,
               extra: [mode_arrivals]}
      claims: [muon_kappa_free, signgd_kappa_dependent]
      scales:
        quick: ["problem.n=40", "steps=1500"]   # --set overrides of `reproduce --quick`
        paper: []                               # the YAML as written

None of it reaches a run: :class:`~muonlab.config.RunSpec` does not carry it, so run ids
and batch keys do not depend on it, and the engine's ``meta.json`` leaves it out.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from muonlab.config.base import _error, _Model
from muonlab.config.messages import _config_error

__all__ = ["FigureSpec", "ReproduceSpec", "ScalesSpec", "parse_reproduce"]


class _Section(_Model):
    """A strict model whose unknown keys get a one-line error listing the allowed ones.

    The generic wording (:mod:`muonlab.config.messages`) only knows the allowed keys of
    the run models, so these sections check their keys themselves.
    """

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = list(cls.model_fields)
            for key in data:
                if key not in allowed:
                    hint = difflib.get_close_matches(str(key), allowed, n=1)
                    did = f" (did you mean {hint[0]!r}?)" if hint else ""
                    raise _error(f"unknown key{did}; allowed: {', '.join(allowed)}", str(key))
        return data


class FigureSpec(_Section):
    """How the report draws the experiment (see :mod:`muonlab.report.figures`)."""

    curve_by: list[str] = Field(default_factory=list)  # one curve per combination of these columns
    panel_by: str | None = None  # one panel per value of this column
    best_of: list[str] = Field(default_factory=list)  # plot only each curve's best variant over these columns
    x: str = "step"
    y: str = "rel_err"
    extra: list[str] = Field(default_factory=list)  # names in muonlab.report.extra_figures


class ScalesSpec(_Section):
    """``--set`` overrides per scale, applied before the user's own overrides."""

    # `muonlab reproduce --quick`: smaller sizes that keep every claim checkable
    quick: list[str] = Field(default_factory=list)
    paper: list[str] = Field(default_factory=list)  # the default: the paper's sizes (usually the YAML as written)

    @field_validator("quick", "paper")
    @classmethod
    def _key_value(cls, value: list[str]) -> list[str]:
        for item in value:
            if "=" not in item:
                raise _error(f"expected key=value overrides such as steps=1500, got {item!r}")
        return value


class ReproduceSpec(_Section):
    """The ``reproduce:`` section: what ``muonlab reproduce`` needs besides the runs."""

    title: str
    description: str
    seed: str  # the paper seed, "000", "001", … (a string: YAML would read 001 as 1)
    group: Literal["paper", "beyond", "example"] = "paper"
    # sweep: a muonlab.config.ExperimentConfig run by the engine. finetune: a
    # muonlab.lora.experiment.FinetuneExperiment (LoRA fine-tuning with transformers'
    # Trainer, the `lora` extra); never part of `reproduce all` (minutes per run, and
    # it needs transformers), so it runs by name only.
    kind: Literal["sweep", "finetune"] = "sweep"
    order: int | None = None  # sort key of `reproduce all`; None: after the numbered ones, by name
    figure: FigureSpec = Field(default_factory=FigureSpec)
    claims: list[str] = Field(default_factory=list)
    scales: ScalesSpec = Field(default_factory=ScalesSpec)

    @field_validator("claims")
    @classmethod
    def _known_claims(cls, value: list[str]) -> list[str]:
        # Imported here: the claims (pandas, numpy) are only needed once a YAML names them,
        # and importing the package registers the shipped claims.
        from muonlab.claims.base import registered_claims

        known = registered_claims()
        for name in value:
            if name not in known:
                raise _error(f"unknown claim {name!r}; known: {', '.join(sorted(known))}")
        if len(set(value)) != len(value):
            dup = next(n for n in value if value.count(n) > 1)
            raise _error(f"claim {dup!r} is listed twice")
        return value

    def overrides(self, scale: Literal["quick", "paper"]) -> list[str]:
        """The ``--set`` overrides of ``scale``."""
        return list(getattr(self.scales, scale))


class _Wrapper(_Model):
    # The section alone, under its key, so that error paths read reproduce.<field>.
    reproduce: ReproduceSpec


def parse_reproduce(raw: Any) -> ReproduceSpec:
    """Validate a YAML's ``reproduce:`` section on its own (without the rest of the config).

    Raises:
        ConfigError: one line naming the field (``reproduce.claims: unknown claim …``).
    """
    try:
        return _Wrapper.model_validate({"reproduce": raw}).reproduce
    except ValidationError as e:
        raise _config_error(e, _Wrapper) from e
