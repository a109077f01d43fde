r"""PEFT LoRA on any ``transformers`` model, and the Muon / AdamW optimizers for it.

Seed 000 (Kang, Yun, Shin, Cho, Yun, *Uniform Spectral Growth and Convergence of Muon
in LoRA-Style Matrix Factorization*, arXiv 2602.06385, §3 and App. E.2) trains LoRA
adapters ΔW = (α/r)·B A with Muon applied to each factor separately,

.. math::  A \leftarrow A - η\,s(A)\,\mathrm{orth}(M_A), \qquad
           B \leftarrow B - η\,s(B)\,\mathrm{orth}(M_B),

and compares it with AdamW on the same schedule. Here A is ``lora_A.weight``
(r × d_in) and B is ``lora_B.weight`` (d_out × r), PEFT's layout; B starts at 0
and A at PEFT's Kaiming draw, so ΔW = 0 at step 0.

**LR scaling for the very non-square factors** (our choice; SPEC §2's
``adjust_lr``). An orthogonalized m×n update has singular values 1, so its per-entry
RMS is 1/sqrt(max(m, n)): 0.051 for a 8×384 factor. ``original``
(sqrt(max(1, m/n)), torch.optim.Muon's default) would give B (384×8) an RMS of
0.35 and A (8×384) one of 0.051, i.e. a 7× imbalance between the two factors of the
same product that depends only on which side is tall. ``match_rms_adamw``
(0.2·sqrt(max(m, n))) gives *both* factors an update RMS of 0.2, the RMS of a
typical AdamW update, which (i) keeps A and B symmetric as in the seed's analysis
and (ii) lets Muon share AdamW's learning rate, so the Muon vs AdamW comparison uses
one lr and one schedule. It is the default of :func:`build_optimizer`.

Everything that is not a LoRA factor (the task head PEFT marks trainable, biases)
goes to Muon's AdamW fallback with the same lr.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from muonlab.errors import MuonlabError

__all__ = [
    "DEFAULT_TARGETS",
    "OPTIMIZERS",
    "LoraError",
    "LoraFactor",
    "apply_lora",
    "build_optimizer",
    "check_lora_targets",
    "linear_module_names",
    "lora_factors",
    "parameter_groups",
]

DEFAULT_TARGETS = ("query", "value")
OPTIMIZERS = ("muon", "adamw")


class LoraError(MuonlabError):
    """Bad LoRA / fine-tuning input.

    ``field`` is the library's name for what is wrong: the keyword of the function
    that raised (``r``, ``alpha``, ``target_modules``, ``every``, ...) or a
    :class:`~muonlab.lora.finetune.FinetuneConfig` field (``rank``, ``lr``, ...); the
    one-line ``message`` starts with that same name (``"r: must be an integer >= 1,
    got 0"``). It never names a command-line option: the CLI maps ``field`` to one.
    """


@dataclass(frozen=True)
class LoraFactor:
    """One adapter: ``ΔW = scaling · B @ A`` for the module ``name``."""

    name: str  # as in model.named_modules()
    A: nn.Parameter  # (r, d_in)
    B: nn.Parameter  # (d_out, r)
    scaling: float

    def delta(self) -> torch.Tensor:
        """The full ΔW (d_out × d_in); for tests and small models only."""
        return self.scaling * (self.B @ self.A)


def _is_linear(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    # GPT-2 style Conv1D (weight stored transposed) is also a LoRA target in PEFT.
    weight = getattr(module, "weight", None)
    return type(module).__name__ == "Conv1D" and isinstance(weight, torch.Tensor) and weight.ndim == 2


def linear_module_names(model: nn.Module) -> list[str]:
    """The distinct last name components of the model's linear layers (``query``, ``dense``, …)."""
    return sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if name and _is_linear(m)})


def _matching(model: nn.Module, target: str) -> list[tuple[str, nn.Module]]:
    return [
        (name, m) for name, m in model.named_modules()
        if name and _is_linear(m) and (name == target or name.endswith("." + target))
    ]


def _shape(module: nn.Module) -> tuple[int, int]:
    """(d_out, d_in) of a linear layer (Conv1D stores weight as d_in × d_out)."""
    w = cast(torch.Tensor, module.weight)
    if type(module).__name__ == "Conv1D":
        return int(w.shape[1]), int(w.shape[0])
    return int(w.shape[0]), int(w.shape[1])


def check_lora_targets(model: nn.Module, r: int, target_modules: Sequence[str]) -> list[str]:
    """Check that every target names a linear layer of ``model`` and that ``r`` fits each
    one (r ≤ min(d_out, d_in)); works on a model built on the ``meta`` device.

    Raises:
        LoraError: field ``target_modules`` or ``r``, one line.
    """
    targets = [str(t) for t in target_modules]
    if not targets:
        raise LoraError("target_modules: give at least one module name", field="target_modules")
    for t in targets:
        found = _matching(model, t)
        if not found:
            raise LoraError(
                f"target_modules: {t!r} matches no linear layer of {type(model).__name__}; "
                f"linear layers: {', '.join(linear_module_names(model)) or 'none'}",
                field="target_modules",
            )
        for name, module in found:
            d_out, d_in = _shape(module)
            if r > min(d_out, d_in):
                raise LoraError(
                    f"r: {r} exceeds layer {name!r} ({d_out}×{d_in}); r must be <= {min(d_out, d_in)}",
                    field="r",
                )
    return targets


def apply_lora(
    model: nn.Module,
    *,
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    target_modules: Sequence[str] = DEFAULT_TARGETS,
    task_type: str | None = None,
    modules_to_save: Sequence[str] | None = None,
) -> nn.Module:
    """Wrap ``model`` with PEFT LoRA adapters (``peft.get_peft_model``).

    Args:
        r: adapter rank (1 ≤ r ≤ min(d_out, d_in) of every targeted layer).
        alpha: LoRA α; the adapter is scaled by α / r (PEFT's convention).
        dropout: LoRA dropout in [0, 1).
        target_modules: names (or dotted suffixes) of linear layers to adapt.
        task_type: a ``peft.TaskType`` name (``SEQ_CLS``, ``CAUSAL_LM``, …) so that PEFT
            keeps the task head trainable; None for a bare model.
        modules_to_save: extra modules to train fully (PEFT's option).

    Raises:
        LoraError: one line naming the keyword at fault (``field``: ``r``, ``alpha``,
            ``dropout``, ``target_modules``, ``task_type``) and the allowed values.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise LoraError(f"r: must be an integer >= 1, got {r!r}", field="r")
    if not alpha > 0:
        raise LoraError(f"alpha: must be > 0, got {alpha!r}", field="alpha")
    if not 0.0 <= dropout < 1.0:
        raise LoraError(f"dropout: must be in [0, 1), got {dropout!r}", field="dropout")
    targets = check_lora_targets(model, r, target_modules)
    kw: dict[str, Any] = {}
    if task_type is not None:
        try:
            kw["task_type"] = TaskType[task_type]
        except KeyError:
            raise LoraError(f"task_type: unknown PEFT task type {task_type!r}; allowed: "
                            f"{', '.join(t.name for t in TaskType)}", field="task_type") from None
    config = LoraConfig(
        # peft annotates lora_alpha as int, but only ever computes alpha / r: a float α works.
        r=r, lora_alpha=alpha,  # type: ignore[arg-type]
        lora_dropout=dropout, target_modules=targets,
        modules_to_save=list(modules_to_save) if modules_to_save else None, **kw,
    )
    return get_peft_model(model, config)


def lora_factors(model: nn.Module) -> list[LoraFactor]:
    """Every active LoRA adapter of ``model`` as (name, A, B, scaling), in module order.

    ``name`` is the adapted module's name in ``model.named_modules()``. Adapters of
    layers stored transposed (``fan_in_fan_out``, GPT-2's Conv1D) are reported in the
    same B @ A orientation: their singular values do not depend on it.
    """
    from peft.tuners.lora import LoraLayer

    out = []
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        for adapter in module.active_adapters:
            if adapter not in module.lora_A:
                continue  # e.g. an embedding adapter kept in lora_embedding_A
            out.append(LoraFactor(
                name=name,
                A=cast(nn.Parameter, module.lora_A[adapter].weight),
                B=cast(nn.Parameter, module.lora_B[adapter].weight),
                scaling=float(module.scaling[adapter]),
            ))
    return out


def build_optimizer(
    model: nn.Module,
    name: str = "muon",
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.95,
    nesterov: bool = True,
    method: str = "newton_schulz",
    adjust_lr: str = "match_rms_adamw",
    ns_dtype: torch.dtype | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """The optimizer for a LoRA-wrapped model.

    ``muon``: :class:`muonlab.optim.Muon` on every LoRA A and B (each orthogonalized on
    its own), with ``adjust_lr="match_rms_adamw"`` by default (module docstring), and
    its AdamW fallback (same lr, ``betas``, ``eps``, ``weight_decay``) for every other
    trainable parameter. ``adamw``: ``torch.optim.AdamW`` on all trainable parameters.

    Raises:
        LoraError: unknown ``name`` (field ``name``), or a ``model`` without trainable
            parameters or, for ``muon``, without LoRA adapters (field ``model``).
    """
    if name not in OPTIMIZERS:
        raise LoraError(f"name: unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}", field="name")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise LoraError("model: no trainable parameters (apply LoRA first)", field="model")
    if name == "adamw":
        return torch.optim.AdamW(trainable, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    from muonlab.optim import Muon

    factors = lora_factors(model)
    if not factors:
        raise LoraError("model: has no LoRA adapters, which the 'muon' optimizer needs (apply LoRA first)",
                        field="model")
    lora_ids = {id(f.A) for f in factors} | {id(f.B) for f in factors}
    lora = [p for f in factors for p in (f.A, f.B) if p.requires_grad]
    rest = [p for p in trainable if id(p) not in lora_ids]
    return Muon(
        lora, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, method=method,
        adjust_lr=adjust_lr, ns_dtype=ns_dtype, momentum_form="ema",
        adamw_params=rest or None, adamw_betas=betas, adamw_eps=eps,
    )


def parameter_groups(optimizer: torch.optim.Optimizer) -> dict[str, list[nn.Parameter]]:
    """``{"muon": [...], "adamw": [...]}`` of a :func:`build_optimizer` result (AdamW: all in ``adamw``)."""
    out: dict[str, list[nn.Parameter]] = {"muon": [], "adamw": []}
    for g in optimizer.param_groups:
        out[g.get("algorithm", "adamw")].extend(g["params"])
    return out
