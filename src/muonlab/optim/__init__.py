"""Spectral optimizers: pure update rules (:mod:`.updates`), torch.optim shells, schedules."""

from muonlab.optim.optimizers import Muon, ScaledGD, SignGD, SpecGD, torch_compatible_muon

__all__ = ["Muon", "ScaledGD", "SignGD", "SpecGD", "torch_compatible_muon"]
