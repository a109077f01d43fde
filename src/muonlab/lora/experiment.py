"""Fine-tuning experiments for ``muonlab reproduce`` (``reproduce: {kind: finetune}``).

A fine-tuning experiment YAML names a :class:`~muonlab.lora.finetune.FinetuneConfig`
(without its seed) and a list of seeds::

    name: lora
    finetune: {rank: 8, alpha: 16, target_modules: [query, value], max_steps: 300}
    seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    architecture: {...}      # optional: the model's config (model_type + sizes), for checks
    reproduce: {kind: finetune, seed: "000", ...}
    scales: quick: ["seeds=[0, 1, 2]", "finetune.max_steps=100"]

:func:`run_finetune_experiment` runs every optimizer × seed with the one training loop
of :func:`muonlab.lora.finetune.finetune` into the results store ``DIR/<name>/`` (each
run resumable from its checkpoints under ``DIR/<name>/work/``, a finished run never
rerun), with one extra column ``config_hash`` (the hash of the whole experiment:
settings and seeds) so that the claims read this configuration's runs only, as for the
engine's sweeps.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from muonlab.config.reproduce_spec import ReproduceSpec
from muonlab.lora.finetune import FinetuneConfig

__all__ = ["FinetuneExperiment", "FinetuneExperimentResult", "load_finetune_experiment", "run_finetune_experiment"]

#: The folder (inside the experiment's store) for checkpoints and monitor parts.
WORK = "work"


class FinetuneExperiment(BaseModel):
    """A validated fine-tuning experiment: one :class:`FinetuneConfig` per seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    finetune: dict[str, Any] = Field(default_factory=dict)  # FinetuneConfig fields except seed
    seeds: list[int] = Field(min_length=1)
    # The model's config.json content (model_type + sizes): lets tests and checks build the
    # architecture on the meta device without the Hub. Not part of the runs.
    architecture: dict[str, Any] | None = None
    reproduce: ReproduceSpec | None = None  # how `muonlab reproduce` presents and judges it

    @field_validator("finetune")
    @classmethod
    def _valid_finetune(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "seed" in value:
            raise ValueError("seed: give the seeds as the top-level 'seeds' list")
        if isinstance(value.get("target_modules"), str):
            value = {**value, "target_modules": [t.strip() for t in value["target_modules"].split(",") if t.strip()]}
        FinetuneConfig(**value)  # raises on any bad field
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct, got {value}")
        return value

    @field_validator("architecture")
    @classmethod
    def _model_type(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not isinstance(value.get("model_type"), str):
            raise ValueError("architecture: needs a model_type (e.g. roberta, llama)")
        return value

    def configs(self) -> list[FinetuneConfig]:
        """One :class:`FinetuneConfig` per seed, in the order of ``seeds``."""
        return [FinetuneConfig(**self.finetune, seed=s) for s in self.seeds]

    @property
    def config_hash(self) -> str:
        """Hash of the settings and seeds (what the store's ``config_hash`` column holds)."""
        blob = json.dumps({"finetune": self.configs()[0].model_dump(mode="json", exclude={"seed"}),
                           "seeds": self.seeds}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def steps(self) -> int:
        """Steps per run when ``max_steps`` is set, else 1 (unknown before the data is read)."""
        cfg = self.configs()[0]
        return cfg.max_steps if cfg.max_steps > 0 else 1

    @property
    def n_runs(self) -> int:
        return len(self.seeds) * len(self.configs()[0].optimizers)


def load_finetune_experiment(path: str | Path, overrides: Iterable[str] = ()) -> FinetuneExperiment:
    """Read a fine-tuning experiment YAML with ``key=value`` overrides
    (``finetune.max_steps=100``, ``seeds=[0, 1, 2]``) and validate it.

    Raises:
        ConfigError: one line naming the field (``finetune.rank: ...``).
    """
    from muonlab.config import ConfigError, load_yaml
    from muonlab.config.yaml_io import apply_overrides

    raw = apply_overrides(load_yaml(path), list(overrides))
    try:
        return FinetuneExperiment.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc") or ())
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if isinstance(err.get("ctx", {}).get("error"), ValidationError):  # a bad FinetuneConfig field
            inner = err["ctx"]["error"].errors()[0]
            loc = f"{loc}.{'.'.join(str(p) for p in inner.get('loc') or ())}"
            msg = f"{inner['msg']}, got {inner.get('input')!r}"
        raise ConfigError(f"{path}: {loc}: {msg}" if loc else f"{path}: {msg}", field=loc or None) from None


@dataclass
class FinetuneExperimentResult:
    store: Path
    executed: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # "<optimizer>/seed <s>" -> error


def run_finetune_experiment(
    exp: FinetuneExperiment,
    store_dir: str | Path,
    *,
    overrides: Iterable[str] = (),
    on_run: Callable[..., None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> FinetuneExperimentResult:
    """Run every seed × optimizer of ``exp`` into the store ``store_dir`` (resuming).

    Each seed is one call of :func:`muonlab.lora.finetune.finetune` (the real Trainer,
    the spectral monitor, checkpoints under ``store_dir/work/``); its rows get the
    experiment's ``config_hash``. ``on_run(done, total)`` reports progress in runs
    (fractional within a run, after each training step), ``on_status(text)`` events.

    Raises:
        StoreConfigError: the store holds runs of another configuration.
        LoraError, DataError: bad input (model, targets, rank, data), before anything is written.
    """
    from muonlab.engine.store import ResultStore
    from muonlab.lora.finetune import finetune, prepare

    store_dir = Path(store_dir)
    h = exp.config_hash
    store = ResultStore(store_dir)
    if store_dir.is_dir():
        store.check_config(h, list(overrides))
    configs = exp.configs()
    # the data, the model and the folders are checked (first seed) before anything is written
    prepared = prepare(configs[0], store_dir, store_dir=store_dir, work_dir=store_dir / WORK)
    store_dir.mkdir(parents=True, exist_ok=True)
    store.write_metadata({"kind": "finetune", "name": exp.name, "config_hash": h, "overrides": list(overrides),
                          "finetune": exp.configs()[0].model_dump(mode="json", exclude={"seed"}),
                          "seeds": exp.seeds})
    result = FinetuneExperimentResult(store_dir)
    total, done = exp.n_runs, 0
    run_steps = [1]

    def started(opt: str, steps: int) -> None:
        run_steps[0] = max(int(steps), 1)

    def step(k: int, _total: int) -> None:
        if on_run is not None:  # a fraction of the current run: the bar moves within a run
            on_run(done + min(k / run_steps[0], 1.0), total)

    for cfg in configs:
        res = finetune(cfg, store_dir, store_dir=store_dir, work_dir=store_dir / WORK, extra={"config_hash": h},
                       on_run=started, on_step=step, on_status=on_status, report=False,
                       prepared=prepared if cfg == prepared.cfg else None)
        result.executed += len(res.executed)
        result.skipped += len(res.skipped)
        result.failed.update({f"{o}/seed {cfg.seed}": m for o, m in res.failed.items()})
        done += len(cfg.optimizers)
        if on_run is not None:
            on_run(done, total)
    return result
