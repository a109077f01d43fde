"""Optimizers for the batched engine: R runs of one problem advanced as one tensor set.

Each optimizer updates a list of parameters of shape ``(R, ·, ·)`` in place from
their gradients and a per-run step size ``lr`` of shape ``(R,)``, by calling the
pure rules of :mod:`muonlab.optim.updates` (the same functions behind the
``torch.optim`` classes, so the engine and the classes cannot drift apart).

=============  ===============================================================
name           update per run (SPEC §2; each factor orthogonalized separately)
=============  ===============================================================
muon           M ← μM + G; D = G + μM (Nesterov) or M; W ← W − η·orth(D)
specgd         muon with the exact msign (``method="svd"``)
specgd_beta    muon with T_β (``method="beta"``)
gd             W ← W − η·D, D = G or heavy-ball M ← μM + G
signgd         W ← W − η·sign(D)
adam           Adam (Kingma & Ba 2015) with bias correction
scaledgd       ScaledGD (Tong, Ma & Chi 2021) by the problem's layout
=============  ===============================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from muonlab.linalg.orthogonalize import resolve_coefficients
from muonlab.optim.updates import (
    adamw_update_,
    momentum_direction_,
    muon_update_,
    per_run,
    scaledgd_directions,
    signgd_update_,
)

__all__ = ["BatchedOptimizer", "DTYPES", "OPTIMIZER_NAMES"]

OPTIMIZER_NAMES = ("muon", "specgd", "specgd_beta", "gd", "signgd", "adam", "scaledgd")
#: Config dtype names → torch dtypes (shared with the runner).
DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16}


class BatchedOptimizer:
    """One optimizer over a batch of runs; ``step(params, grads, lr)`` updates in place.

    ``settings`` is the optimizer's resolved config (``name`` plus its
    hyper-parameters, as in the experiment YAML); ``layout`` is the problem's
    (``symmetric`` | ``product`` | ``matrix``), needed by ScaledGD.
    """

    def __init__(self, settings: Mapping[str, Any], layout: str) -> None:
        s = dict(settings)
        self.name = s.get("name")
        if self.name not in OPTIMIZER_NAMES:
            raise ValueError(f"optimizer.name: unknown {self.name!r}; allowed: {', '.join(OPTIMIZER_NAMES)}")
        if self.name == "scaledgd" and layout == "matrix":
            raise ValueError("optimizer.name: scaledgd needs a factorized problem (symmetric or product layout)")
        self.layout = layout
        self.weight_decay = float(s.get("weight_decay", 0.0) or 0.0)
        self.momentum = float(s.get("momentum", 0.0) or 0.0)
        self.nesterov = bool(s.get("nesterov", False))
        self.method = {"specgd": "svd", "specgd_beta": "beta"}.get(self.name, s.get("method") or "newton_schulz")
        self.beta = float(s.get("beta", 0.0) or 0.0)
        self.table = (
            resolve_coefficients(
                "polar_express" if self.method == "polar_express" else (s.get("coefficients") or "keller"),
                s.get("ns_steps"),
            )
            if self.method in ("newton_schulz", "polar_express")
            else ()
        )
        ns_dtype = s.get("ns_dtype")
        self.ns_dtype = DTYPES[ns_dtype] if isinstance(ns_dtype, str) else ns_dtype
        self.betas = tuple(s.get("betas", (0.9, 0.999)))
        self.eps = float(s.get("eps", 1e-8))
        self.damping = float(s.get("damping", 0.0) or 0.0)
        self.state: list[dict[str, Tensor]] = []
        self.t = 0

    def step(self, params: Sequence[Tensor], grads: Sequence[Tensor], lr: Tensor) -> None:
        """Advance every run by one step; ``lr`` has shape ``(R,)``."""
        if not self.state:
            self.state = [{} for _ in params]
        self.t += 1
        if self.name == "scaledgd":
            directions = scaledgd_directions(list(params), list(grads), damping=self.damping)
            for p, d in zip(params, directions):
                p.sub_(d * per_run(lr, p))
            return
        for p, g, st in zip(params, grads, self.state):
            if self.name == "adam":
                if "exp_avg" not in st:
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                adamw_update_(
                    p, g, st["exp_avg"], st["exp_avg_sq"], step=self.t, lr=lr,
                    betas=self.betas, eps=self.eps, weight_decay=self.weight_decay,
                )
                continue
            buf = None
            if self.momentum != 0.0:
                buf = st.setdefault("momentum_buffer", torch.zeros_like(p))
            d = momentum_direction_(g, buf, momentum=self.momentum, nesterov=self.nesterov)
            if self.name == "gd":
                lr_b = per_run(lr, p)
                if self.weight_decay != 0.0:
                    p.mul_(1 - lr_b * self.weight_decay)
                p.sub_(d * lr_b)
            elif self.name == "signgd":
                signgd_update_(p, d, lr=lr, weight_decay=self.weight_decay)
            else:  # muon, specgd, specgd_beta
                muon_update_(
                    p, d, lr=lr, weight_decay=self.weight_decay, method=self.method, table=self.table,
                    ns_dtype=self.ns_dtype, beta=self.beta, batched=True,
                )
