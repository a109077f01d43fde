"""Spectral optimizers: pure update rules (:mod:`.updates`), torch.optim shells, schedules."""

from muonlab.optim.optimizers import (
    Muon,
    NonFiniteGradientError,
    NonFiniteUpdateError,
    ScaledGD,
    SignGD,
    SpecGD,
    torch_compatible_muon,
)
from muonlab.optim.schedules import (
    SCHEDULES,
    Constant,
    Geometric,
    Plateau,
    ScheduleLR,
    ScheduleState,
    SpikeAnneal,
    WarmupCosine,
    make_schedule,
)

__all__ = [
    "SCHEDULES",
    "Constant",
    "Geometric",
    "Muon",
    "NonFiniteGradientError",
    "NonFiniteUpdateError",
    "Plateau",
    "ScaledGD",
    "ScheduleLR",
    "ScheduleState",
    "SignGD",
    "SpecGD",
    "SpikeAnneal",
    "WarmupCosine",
    "make_schedule",
    "torch_compatible_muon",
]
