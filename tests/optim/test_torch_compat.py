"""``torch_compatible_muon`` against ``torch.optim.Muon``, step for step.

Tolerance: zero.  ``torch.optim.Muon`` runs Newton–Schulz in bfloat16 (8-bit
mantissa, relative rounding 2⁻⁸ ≈ 0.4 %), so any change in operation order (a batched
``bmm`` instead of ``addmm``, ``+eps`` instead of ``clamp(min=eps)``, μM + G instead of
``lerp``) would perturb each update entry by up to ~0.4 % of its size, i.e. ≈ lr·0.4 %
per step in the weights, and the trajectories would separate slowly.  muonlab's
bf16 path performs the same operations in the same order on 2-D parameters, so on
CPU the trajectories agree bit for bit; the test asserts exact equality so that any
drift in either implementation is caught.  (On CUDA, cuBLAS may choose different bf16
GEMM kernels per call shape; there a tolerance of a few bf16 ulps · lr per step applies.)
"""

from __future__ import annotations

import copy

import pytest
import torch

from muonlab.optim import torch_compatible_muon


def mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(12, 48), torch.nn.GELU(), torch.nn.Linear(48, 32), torch.nn.GELU(), torch.nn.Linear(32, 4)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"lr": 0.02},
        {"lr": 0.02, "weight_decay": 0.0, "nesterov": False, "momentum": 0.9},
        {"lr": 0.01, "adjust_lr_fn": "match_rms_adamw"},
    ],
    ids=["defaults", "lr", "no-nesterov", "match-rms"],
)
def test_matches_torch_muon_for_20_steps(kwargs):
    net = mlp(0)
    ref = copy.deepcopy(net)
    ours_kw = dict(kwargs)
    if "adjust_lr_fn" in ours_kw:
        ours_kw["adjust_lr"] = ours_kw.pop("adjust_lr_fn")
    matrices = [p for p in ref.parameters() if p.ndim == 2]
    vectors = [p for p in ref.parameters() if p.ndim != 2]
    torch_opts = [
        torch.optim.Muon(matrices, **kwargs),
        torch.optim.AdamW(vectors, lr=1e-3, weight_decay=kwargs.get("weight_decay", 0.1)),
    ]
    ours = torch_compatible_muon(net.parameters(), adamw_lr=1e-3, **ours_kw)
    # Any torch LR scheduler drives both parts (Muon and AdamW groups) alike.
    scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=20) for o in (*torch_opts, ours)]
    g = torch.Generator().manual_seed(1)
    for step in range(20):
        x = torch.randn(32, 12, generator=g)
        y = torch.randint(0, 4, (32,), generator=g)
        for model, opts in ((net, [ours]), (ref, torch_opts)):
            for o in opts:
                o.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            for o in opts:
                o.step()
        for sched in scheds:
            sched.step()
        for (name, p), q in zip(net.named_parameters(), ref.parameters()):
            assert torch.equal(p, q), f"step {step}: {name} differs by {(p - q).abs().max():.3e}"
    assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), mlp(0).parameters()))


def test_defaults_are_torch_defaults():
    W = torch.nn.Parameter(torch.randn(4, 4))
    ours = torch_compatible_muon([W]).param_groups[0]
    theirs = torch.optim.Muon([W]).param_groups[0]
    assert ours["lr"] == theirs["lr"] and ours["weight_decay"] == theirs["weight_decay"]
    assert ours["momentum"] == theirs["momentum"] and ours["nesterov"] == theirs["nesterov"]
    assert ours["eps"] == theirs["eps"] and ours["ns_steps"] == theirs["ns_steps"]
    assert ours["ns_dtype"] == torch.bfloat16 and ours["adjust_lr"] == "original"
