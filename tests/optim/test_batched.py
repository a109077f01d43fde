"""Every engine update rule equals its torch.optim class run as a loop of single runs.

The engine advances R runs as one tensor set (dim 0 = runs, a step size per run); the
classes update one tensor at a time. Both call the same functionals of
``muonlab.optim.updates``; this checks the two forms agree, rule by rule, on R = 3
runs of ½‖AB − T_r‖² with different step sizes per run, over several steps (so that
momentum, Adam's moments and bias correction are exercised).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from muonlab.config import OPTIMIZERS
from muonlab.linalg.orthogonalize import METHODS
from muonlab.optim import Muon, ScaledGD, SignGD, SpecGD

F64 = torch.float64
R, STEPS = 3, 6
LRS = (0.02, 0.05, 0.011)

# (config, factory of the torch.optim class for one run's [A, B], square factors?)
Case = tuple[dict, Callable[[list[torch.Tensor], float], torch.optim.Optimizer], bool]


def _muon_case(method: str) -> Case:
    cfg = {"name": "muon", "method": method, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}
    if method == "beta":
        cfg["beta"] = 1e-3
    extra = {k: v for k, v in cfg.items() if k != "name"}
    return cfg, lambda ps, lr: Muon(ps, lr=lr, **extra), method == "symmetric"


CASES: dict[str, Case] = {
    **{f"muon-{m}": _muon_case(m) for m in METHODS},
    "specgd": ({"name": "specgd", "momentum": 0.5, "weight_decay": 0.05},
               lambda ps, lr: SpecGD(ps, lr=lr, momentum=0.5, weight_decay=0.05), False),
    "specgd_beta": ({"name": "specgd_beta", "beta": 1e-2},
                    lambda ps, lr: SpecGD(ps, lr=lr, beta=1e-2), False),
    # torch's SGD couples weight decay into the gradient (L2); ours is decoupled, so none here
    "gd": ({"name": "gd", "momentum": 0.8}, lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.8), False),
    "signgd": ({"name": "signgd", "momentum": 0.9, "weight_decay": 0.1},
               lambda ps, lr: SignGD(ps, lr=lr, momentum=0.9, weight_decay=0.1), False),
    "adam": ({"name": "adam", "betas": [0.8, 0.95], "eps": 1e-6, "weight_decay": 0.1},
             lambda ps, lr: torch.optim.AdamW(ps, lr=lr, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1), False),
    "scaledgd": ({"name": "scaledgd", "damping": 1e-3},
                 lambda ps, lr: ScaledGD([{"params": ps}], lr=lr, damping=1e-3), False),
}


def test_every_stepped_engine_optimizer_is_covered():
    stepped = {n for n, c in OPTIMIZERS.items() if c.solver == "discrete"}
    covered = {CASES[c][0]["name"] for c in CASES}
    assert covered == stepped
    assert {c.split("-", 1)[1] for c in CASES if c.startswith("muon-")} == set(METHODS)


def _problem(square: bool):
    g = torch.Generator().manual_seed(7)
    m, k, n = (5, 5, 5) if square else (6, 3, 5)
    A = torch.randn(R, m, k, generator=g, dtype=F64) * 0.5
    B = torch.randn(R, k, n, generator=g, dtype=F64) * 0.5
    T = torch.randn(R, m, n, generator=g, dtype=F64)
    return A, B, T


def _loss(A: torch.Tensor, B: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((A @ B - T) ** 2).sum()


@pytest.mark.parametrize("case", list(CASES))
def test_engine_rule_equals_torch_optim_class_per_run(case):
    cfg, make_class, square = CASES[case]
    A0, B0, T = _problem(square)

    # engine: all runs at once, one step size per run
    rule = OPTIMIZERS[cfg["name"]].model_validate({**cfg, "lr": 1.0}).build_rule()
    A, B = A0.clone(), B0.clone()
    lr = torch.tensor(LRS, dtype=F64)
    for _ in range(STEPS):
        a, b = A.clone().requires_grad_(), B.clone().requires_grad_()
        gA, gB = torch.autograd.grad(_loss(a, b, T), (a, b))
        rule.step([A, B], [gA, gB], lr)

    # classes: one run at a time
    for r in range(R):
        a = A0[r].clone().requires_grad_()
        b = B0[r].clone().requires_grad_()
        opt = make_class([a, b], LRS[r])
        for _ in range(STEPS):
            opt.zero_grad()
            _loss(a, b, T[r]).backward()
            opt.step()
        torch.testing.assert_close(A[r], a.detach(), rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(B[r], b.detach(), rtol=1e-12, atol=1e-13)
    assert not torch.equal(A, A0)  # the rule moved the parameters
