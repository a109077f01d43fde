"""LoRA fine-tuning of Hugging Face models with Muon vs AdamW and a spectral monitor.

Seed 000 §3 (Kang et al., arXiv 2602.06385): under Muon the singular values of each
LoRA update grow near-uniformly and its effective rank stays near r; under AdamW they
do not. This package makes that observable on real models (SPEC §7):

* :mod:`muonlab.lora.adapters` — :func:`apply_lora` (PEFT), :func:`build_optimizer`
  (Muon on each LoRA A and B, AdamW for the rest; or AdamW), :func:`lora_factors`.
* :mod:`muonlab.lora.monitor` — :class:`SpectralMonitor`, a ``TrainerCallback`` that
  also works from a plain loop.
* :mod:`muonlab.lora.data` — the built-in labelled text set and CSV/JSONL/``datasets``
  loading.
* :mod:`muonlab.lora.finetune` — the ``muonlab finetune`` pipeline (Trainer,
  checkpoints and resume, results store, report).

Needs the ``lora`` extra: ``pip install "muonlab[lora]"`` (transformers, peft).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "DEFAULT_TARGETS",
    "LoraError",
    "SpectralMonitor",
    "apply_lora",
    "build_optimizer",
    "lora_factors",
]

_LAZY = {
    "DEFAULT_TARGETS": "muonlab.lora.adapters",
    "LoraError": "muonlab.lora.adapters",
    "apply_lora": "muonlab.lora.adapters",
    "build_optimizer": "muonlab.lora.adapters",
    "lora_factors": "muonlab.lora.adapters",
    "SpectralMonitor": "muonlab.lora.monitor",
}


def __getattr__(name: str) -> Any:
    # transformers/peft are heavy imports: load them only when LoRA is used.
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'muonlab.lora' has no attribute {name!r}")
