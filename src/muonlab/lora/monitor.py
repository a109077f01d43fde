r"""``SpectralMonitor``: the spectrum of every LoRA update ΔW = s·B A during training.

Seed 000 §3 (Kang et al., arXiv 2602.06385) observes that under Muon the singular
values of each LoRA product grow near-uniformly, so its effective rank stays near r,
unlike AdamW. The monitor makes that visible on a real model: every ``every`` steps it
records, for every adapter,

* the singular values σ_1 ≥ … ≥ σ_r of ΔW, from thin QRs B = Q_B R_B and
  Aᵀ = Q_A R_A and the SVD of the r×r core s·R_B R_Aᵀ
  (:func:`muonlab.linalg.spectral.product_singular_values`) — never the d_out×d_in
  matrix. Adapters of the same shape are stacked and done in one batched call;
* the effective rank exp(H(σ/‖σ‖₁)) (Roy & Vetterli 2007; 0 for ΔW = 0);
* ‖A‖_F, ‖B‖_F and ‖ΔW‖_F (= ‖σ‖₂).

It is a ``transformers.TrainerCallback`` (pass it in ``callbacks=``) and also works
from a plain loop (call :meth:`SpectralMonitor.step` after ``optimizer.step()``).
Records use the results-store trajectory format (SPEC §6): long form
``run_id, step, metric, index, value`` with ``metric = "<module name>:<quantity>"``,
``quantity`` ∈ {singular_values (index i), effective_rank, norm_A, norm_B,
norm_delta}. With ``out=DIR`` they are written as Parquet parts just before the Trainer
saves a checkpoint and at the end of training, so a run killed at any point and
resumed from its last checkpoint keeps every step (steps recorded twice are
deduplicated on reading, the later record winning).
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from muonlab.atomic import atomic_file
from muonlab.linalg.spectral import effective_rank, product_singular_values
from muonlab.lora.adapters import LoraError, LoraFactor, lora_factors

try:  # the callback base class; the monitor also works without a Trainer
    from transformers import TrainerCallback as _Callback
except ImportError:  # pragma: no cover - transformers is a dependency of muonlab.lora
    _Callback = object  # type: ignore[assignment,misc]

__all__ = ["QUANTITIES", "SpectralMonitor", "adapter_spectra"]

QUANTITIES = ("singular_values", "effective_rank", "norm_A", "norm_B", "norm_delta")


def adapter_spectra(factors: list[LoraFactor], dtype: torch.dtype = torch.float64) -> dict[str, Tensor]:
    """``{name: σ(ΔW) descending}`` for every adapter, batched over same-shape adapters.

    Computed in ``dtype`` (float64 by default: r is small, so the QRs cost microseconds
    and the values match a float64 SVD of ΔW to rounding) on the factors' device, and
    returned on the CPU.
    """
    groups: dict[tuple, list[LoraFactor]] = defaultdict(list)
    for f in factors:
        groups[(tuple(f.A.shape), tuple(f.B.shape), f.A.device)].append(f)
    out: dict[str, Tensor] = {}
    with torch.no_grad():
        for fs in groups.values():
            B = torch.stack([f.B.detach() for f in fs]).to(dtype)
            At = torch.stack([f.A.detach() for f in fs]).to(dtype).mT
            s = product_singular_values(B, At)
            scale = torch.tensor([abs(f.scaling) for f in fs], dtype=dtype, device=s.device)
            s = (s * scale[:, None]).cpu()
            for f, row in zip(fs, s):
                out[f.name] = row
    return {f.name: out[f.name] for f in factors}


class SpectralMonitor(_Callback):
    """Record each LoRA adapter's spectrum every ``every`` optimizer steps.

    Args:
        every: record at steps that are multiples of ``every`` (and at step 0).
        out: directory for Parquet parts (None: keep records in memory only).
        run_id: the ``run_id`` column of the records.
        tensorboard: a log directory for ``torch.utils.tensorboard`` (needs the
            ``tensorboard`` package), or None.
        dtype: dtype of the QR/SVD (float64 default).

    ``snapshot(model)`` returns ``{module name: singular values of ΔW, descending}``;
    ``frame()`` returns every record so far as a long-form DataFrame; ``timings``
    holds the wall time of each measurement (for the overhead benchmark).

    Raises:
        LoraError: ``every`` not an integer >= 1 (field ``every``), or ``tensorboard``
            given without the ``tensorboard`` package (field ``tensorboard``).
    """

    def __init__(
        self,
        every: int = 1,
        *,
        out: str | Path | None = None,
        run_id: str = "run",
        tensorboard: str | Path | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise LoraError(f"every: must be an integer >= 1, got {every!r}", field="every")
        self.every = every
        self.out = Path(out) if out is not None else None
        self.run_id = str(run_id)
        self.dtype = dtype
        self.timings: list[float] = []
        self._buffer: list[tuple[int, list[str], Tensor, Tensor, Tensor, Tensor]] = []
        self._last_step: int | None = None
        self._factors: list[LoraFactor] | None = None
        self._factor_model: int | None = None
        self._writer = None
        if tensorboard is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise LoraError(f"tensorboard: needs the 'tensorboard' package ({e})", field="tensorboard") from None
            self._writer = SummaryWriter(str(tensorboard))

    # -- measuring ---------------------------------------------------------------------

    def _adapters(self, model: Any) -> list[LoraFactor]:
        # Cache the factor list per model object: walking named_modules every step would
        # cost more than the QRs.
        if self._factors is None or self._factor_model != id(model):
            self._factors = lora_factors(model)
            self._factor_model = id(model)
        return self._factors

    def snapshot(self, model: Any) -> dict[str, Tensor]:
        """``{adapted module name: σ(ΔW) descending}`` (CPU, ``dtype``)."""
        return adapter_spectra(self._adapters(model), self.dtype)

    def step(self, model: Any, step: int) -> None:
        """Record ``model``'s adapters at ``step`` if it is due (plain-loop entry point)."""
        if step % self.every == 0 and step != self._last_step:
            self.record(model, step)

    def record(self, model: Any, step: int) -> None:
        """Measure every adapter now and buffer the result under ``step``."""
        t0 = time.perf_counter()
        factors = self._adapters(model)
        spectra = adapter_spectra(factors, self.dtype)
        names = list(spectra)
        S = torch.stack([spectra[n] for n in names]) if names else torch.zeros(0, 0, dtype=self.dtype)
        with torch.no_grad():
            nA = torch.stack([f.A.detach().float().norm() for f in factors]).cpu() if factors else torch.zeros(0)
            nB = torch.stack([f.B.detach().float().norm() for f in factors]).cpu() if factors else torch.zeros(0)
        erank = effective_rank(S) if len(names) else torch.zeros(0)
        self._buffer.append((int(step), names, S, erank, nA, nB))
        self._last_step = int(step)
        self.timings.append(time.perf_counter() - t0)
        if self._writer is not None:
            for i, n in enumerate(names):
                self._writer.add_scalar(f"lora/{n}/effective_rank", float(erank[i]), step)
                self._writer.add_scalar(f"lora/{n}/norm_delta", float(S[i].norm()), step)
                for j, v in enumerate(S[i].tolist()):
                    self._writer.add_scalar(f"lora/{n}/sigma_{j}", v, step)

    # -- storage -----------------------------------------------------------------------

    def _buffer_frame(self) -> pd.DataFrame:
        frames = []
        for step, names, S, erank, nA, nB in self._buffer:
            k = len(names)
            if k == 0:
                continue
            r = S.shape[1]
            sv = S.numpy()
            metric = np.repeat(np.array([f"{n}:singular_values" for n in names], dtype=object), r)
            frames.append(pd.DataFrame({
                "run_id": self.run_id, "step": step, "metric": metric,
                "index": np.tile(np.arange(r, dtype=np.int64), k), "value": sv.reshape(-1),
            }))
            scalars = {
                "effective_rank": erank.numpy(), "norm_A": nA.numpy(), "norm_B": nB.numpy(),
                "norm_delta": np.linalg.norm(sv, axis=1),
            }
            for q, vals in scalars.items():
                frames.append(pd.DataFrame({
                    "run_id": self.run_id, "step": step,
                    "metric": np.array([f"{n}:{q}" for n in names], dtype=object),
                    "index": np.zeros(k, dtype=np.int64), "value": np.asarray(vals, dtype=np.float64),
                }))
        if not frames:
            return pd.DataFrame({"run_id": pd.Series(dtype=str), "step": pd.Series(dtype=np.int64),
                                 "metric": pd.Series(dtype=str), "index": pd.Series(dtype=np.int64),
                                 "value": pd.Series(dtype=np.float64)})
        df = pd.concat(frames, ignore_index=True)
        df["step"] = df["step"].astype(np.int64)
        return df

    def flush(self) -> Path | None:
        """Write buffered records to ``out`` as one Parquet part, atomically
        (:func:`muonlab.atomic.atomic_file`: a reader never sees a torn part)."""
        if self.out is None or not self._buffer:
            return None
        df = self._buffer_frame()
        self.out.mkdir(parents=True, exist_ok=True)
        first, last = self._buffer[0][0], self._buffer[-1][0]
        path = self.out / f"part-{first:09d}-{last:09d}-{uuid.uuid4().hex[:8]}.parquet"
        with atomic_file(path) as f:
            df.to_parquet(f, index=False)
        self._buffer.clear()
        return path

    def frame(self) -> pd.DataFrame:
        """Every record (written parts, then the buffer), one row per (step, metric, index).

        Parts are read in step order; where a step appears twice (a run resumed from a
        checkpoint older than the last flush), the later record wins.
        """
        parts = []
        if self.out is not None and self.out.is_dir():
            for p in sorted(self.out.glob("part-*.parquet")):
                parts.append(pd.read_parquet(p))
        parts.append(self._buffer_frame())
        df = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else parts[-1]
        if len(df):
            df = df.drop_duplicates(["run_id", "step", "metric", "index"], keep="last")
            df = df.sort_values(["step", "metric", "index"], kind="stable").reset_index(drop=True)
        return df

    def overhead_s(self) -> float:
        """Median wall time of one measurement, in seconds (nan before the first)."""
        return float(np.median(self.timings)) if self.timings else float("nan")

    # -- transformers.TrainerCallback hooks --------------------------------------------

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None:
            self.step(model, int(state.global_step))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            self.step(model, int(state.global_step))
        # Flush *before* the Trainer writes this step's checkpoint: a kill in between then
        # costs re-recorded steps after resuming (deduplicated), never lost ones.
        if getattr(control, "should_save", False):
            self.flush()

    def on_save(self, args, state, control, **kwargs):
        self.flush()

    def on_train_end(self, args, state, control, **kwargs):
        self.flush()
        if self._writer is not None:
            self._writer.flush()
