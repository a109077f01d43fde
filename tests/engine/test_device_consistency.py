"""The engine creates every tensor on the device it belongs to, and syncs once per step.

No GPU is needed. A run with ``device: cuda`` breaks (or silently syncs/copies) when a
tensor factory on the engine path (``torch.zeros``, ``torch.eye``, ``torch.tensor``, …)
names no device: the tensor lands on the default device (the CPU) and meets the
batch's CUDA tensors. Here the batch runs on the CPU while :class:`StrayFactories`
sends every factory call that muonlab's own code makes *without* ``device=`` to the
``meta`` device — the CPU plays the batch's device, ``meta`` the wrong default. A
stray factory then either raises (meta meets cpu, or a meta tensor is copied to the
host) or at least is recorded with its file and line; the test asserts there is none
and that the run's numbers equal the plain run's exactly.

Tensors that are meant to live on the host (targets drawn in float64 before they are
moved, the run book, the schedule state) say ``device="cpu"``, so they pass — and they
stay on the CPU under ``torch.set_default_device("cuda")`` too.

:func:`test_one_host_copy_per_step` counts the host copies of the discrete solver: one
per step (loss, error and finiteness cross together), plus the logged metrics.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

import muonlab
from muonlab.config import ExperimentConfig, expand
from muonlab.engine.batch import build_batch
from muonlab.engine.plan import group_runs
from muonlab.engine.solvers import solve

_TORCH_DIR = str(Path(torch.__file__).parent)
_MUONLAB_DIR = Path(muonlab.__file__).parent
_FACTORIES = _device_constructors()

#: Factory calls left on the default device although they name none: (path under
#: src/muonlab, function). Each makes a host tensor on purpose, in a file this test's
#: author does not own; give it ``device="cpu"`` and drop it from here.
EXEMPT = {
    ("engine/batch.py", "initial_lr"),  # the schedule state is kept on the host
    ("linalg/spectral.py", "sharpness"),  # Lanczos start vector: drawn on the host, then moved
    ("linalg/spectral.py", "_lanczos"),  # restart vectors: same
}


class StrayFactories(TorchFunctionMode):
    """Send factory calls without ``device=`` made by code under ``roots`` to ``meta``; record them.

    ``sites`` lists ``(path, line, function)`` of each such call (``path`` relative to
    its root); ``exempt`` ``(path, function)`` pairs are recorded in ``exempted`` and
    left alone. ``host_copies`` counts ``Tensor.cpu`` and ``Tensor.item`` calls (each a
    device→host copy and a sync on CUDA; on the CPU a ``.to(device)`` or ``bool(t)``
    cannot be told from the host's own bookkeeping, so those are not counted).
    """

    def __init__(self, roots: tuple[Path, ...] = (_MUONLAB_DIR,), exempt: set[tuple[str, str]] = EXEMPT) -> None:
        super().__init__()
        self.roots = tuple(str(r) for r in roots)
        self.exempt = exempt
        self.sites: list[tuple[str, int, str]] = []
        self.exempted: set[tuple[str, str]] = set()
        self.host_copies = 0

    def _caller(self) -> tuple[str, int, str] | None:
        """The first frame outside torch, if it lies under a root: ``(path, line, function)``."""
        frame = sys._getframe(2)  # 0: here, 1: __torch_function__, 2: the torch call (or torch's own code)
        while frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR):
            frame = frame.f_back
        if frame is None:
            return None
        name = frame.f_code.co_filename
        for root in self.roots:
            if name == root or name.startswith(root.rstrip("/") + "/"):
                rel = name[len(root) :].lstrip("/") if name != root else Path(name).name
                return rel, frame.f_lineno, frame.f_code.co_name
        return None

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func in _FACTORIES and kwargs.get("device") is None and not (args and isinstance(args[0], torch.Tensor)):
            site = self._caller()
            if site is not None:
                if (site[0], site[2]) in self.exempt:
                    self.exempted.add((site[0], site[2]))
                else:
                    self.sites.append(site)
                    kwargs["device"] = "meta"
        elif func in (torch.Tensor.cpu, torch.Tensor.item):
            self.host_copies += 1
        return func(*args, **kwargs)


@contextmanager
def stray_factories(**kw: Any) -> Iterator[StrayFactories]:
    with StrayFactories(**kw) as mode:
        yield mode


def _config(**fields: Any) -> ExperimentConfig:
    raw = {"name": "device", "steps": 15, "seeds": 2, "log_every": 5, "metrics": ["loss", "rel_err"]}
    raw.update(fields)
    return ExperimentConfig.model_validate(raw)


def _run(cfg: ExperimentConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, trajs = [], []
    for group in group_runs(expand(cfg)):
        result = solve(build_batch(group))
        rows += result.runs
        trajs.append(result.trajectories)
    runs = pd.DataFrame(rows).drop(columns=["wall_s"]).sort_values("run_id").reset_index(drop=True)
    traj = pd.concat(trajs, ignore_index=True).sort_values(["run_id", "metric", "step", "index"])
    return runs, traj.reset_index(drop=True)


_SYM = {"kind": "symmetric_mf", "n": 10, "r": 3, "alpha": 1e-2}
_SYM_METRICS = ["loss", "rel_err", "lr", "dist_to_opt", "singular_values", "effective_rank", "target_alignment",
                "mode_progress", "eigen_coordinates", "alignment_residual"]
_PRODUCT_METRICS = ["loss", "rel_err", "singular_values", "gf_invariant_norm", "muon_invariant_norm",
                    "factor_alignment", "matched_alignment", "target_alignment", "mode_progress", "product_det_sign"]

#: Every problem kind, optimizer, schedule, solver and metric; runs that stop early
#: (stop.target) and runs that diverge (the masked step), in float64/float32/bfloat16.
CASES: dict[str, dict[str, Any]] = {
    "symmetric_mf-optimizers": dict(
        problem=_SYM, optimizer={"name": "gd", "lr": 0.3}, stop={"target": 1e-3, "blowup": 1e6},
        schedule={"name": "plateau", "factor": 0.5, "patience": 3},
        grid={"problem.kappa": [1, 10], "optimizer": [
            {"name": "muon", "lr": 0.5, "method": "svd"},
            {"name": "muon", "lr": 0.05, "momentum": 0.9, "nesterov": True, "method": "newton_schulz"},
            {"name": "specgd_beta", "lr": 0.1, "beta": 1e-4},
            {"name": "gd", "lr": 0.3, "momentum": 0.5},
            {"name": "signgd", "lr": 0.02},
            {"name": "adam", "lr": 0.02, "weight_decay": 0.01},
            {"name": "scaledgd", "lr": 0.3, "damping": 1e-6},
        ]},
        metrics=_SYM_METRICS,
    ),
    "symmetric_mf-inits-schedules": dict(
        problem={**_SYM, "n": 6, "r_star": 6, "r": 6}, optimizer={"name": "muon", "lr": 0.2, "method": "svd"},
        grid={"problem": [
            {**_SYM, "n": 6, "r": 6, "init": "orthonormal"},
            {**_SYM, "n": 6, "r": 6, "init": "aligned"},
            {**_SYM, "n": 6, "r": 6, "init": "identity", "basis": "paired"},
        ], "schedule": [{"name": "spike_anneal", "first": 1e-3, "decay": 0.9},
                        {"name": "warmup_cosine", "warmup": 5, "total": 15},
                        {"name": "geometric", "q": 0.95}]},
        metrics=["loss", "rel_err", "eigen_coordinates", "alignment_residual"],
    ),
    "two_factor_mf": dict(
        problem={"kind": "two_factor_mf", "n_out": 8, "n_in": 8, "d": 5, "rank": 3, "alpha": 1e-2},
        optimizer={"name": "gd", "lr": 0.2}, stop={"target": 0.0, "blowup": 1e3},
        grid={"problem": [
            {"kind": "two_factor_mf", "n_out": 8, "n_in": 7, "d": 5, "spectrum": "diag", "values": [3, 2, 1]},
            {"kind": "two_factor_mf", "n_out": 8, "n_in": 8, "d": 8, "spectrum": "planted", "rank": 2, "snr": 3.0,
             "init": "orthogonal"},
        ], "optimizer.lr": [0.2, 40.0]},  # lr 40 diverges: the masked step
        metrics=_PRODUCT_METRICS,
    ),
    "lora_mf": dict(
        problem={"kind": "lora_mf", "m": 9, "n": 8, "r": 3, "gamma": 1e-2, "l2": 0.01},
        optimizer={"name": "specgd", "lr": 0.05, "momentum": 0.5},
        metrics=["loss", "rel_err", "dist_to_opt", "mode_progress", "singular_values"],
    ),
    "icl": dict(
        problem={"kind": "icl", "d": 6}, optimizer={"name": "muon", "lr": 0.1, "method": "svd"},
        grid={"problem.covariance": ["rotated", "paired"]},
        metrics=["loss", "rel_err", "dist_to_opt", "singular_values", "effective_rank", "mode_progress"],
    ),
    "sharpness": dict(  # Lanczos on HVPs: costly, so logged twice only
        problem={"kind": "icl", "d": 4}, optimizer={"name": "gd", "lr": 0.5}, steps=10, log_every=10,
        metrics=["loss", "rel_err", "sharpness"],
    ),
    "regression": dict(
        problem={"kind": "regression", "d_out": 4, "d_in": 6, "n_samples": 20, "noise": 0.1},
        optimizer={"name": "gd", "lr": 0.5}, schedule={"name": "plateau", "patience": 2},
        metrics=["loss", "rel_err", "dist_to_opt", "lr"],
    ),
    "specgf-flow": dict(
        problem={"kind": "lora_mf", "m": 6, "n": 7, "r": 2, "spectrum": "list", "values": [2.0, 1.0], "gamma": 1e-2},
        optimizer={"name": "specgf", "dt": 0.05, "beta": 1e-4, "integrator": "RK23", "rtol": 1e-5, "atol": 1e-8},
        metrics=["loss", "rel_err", "mode_progress"],
    ),
    "float32": dict(
        problem=_SYM, optimizer={"name": "muon", "lr": 0.3, "method": "newton_schulz", "ns_dtype": "float32"},
        grid={"optimizer": [{"name": "muon", "lr": 0.3, "method": "newton_schulz", "ns_dtype": "float32"},
                            {"name": "gd", "lr": 0.3}]},
        dtype="float32", metrics=["loss", "rel_err", "mode_progress"],
    ),
    "bfloat16": dict(
        problem={"kind": "icl", "d": 6}, optimizer={"name": "signgd", "lr": 0.01}, dtype="bfloat16",
        grid={"optimizer": [{"name": "signgd", "lr": 0.01}, {"name": "muon", "lr": 0.1, "method": "svd"}]},
        metrics=["loss", "rel_err", "singular_values", "mode_progress"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_engine_path_names_the_device_of_every_tensor(case: str) -> None:
    cfg = _config(**CASES[case])
    runs, traj = _run(cfg)
    assert (runs["status"] != "failed").all(), runs.get("error")
    with stray_factories() as mode:
        try:
            got_runs, got_traj = _run(cfg)
        except Exception as e:  # noqa: BLE001 - report the stray sites, not only the symptom
            pytest.fail(f"{type(e).__name__}: {e}; factories without a device: {mode.sites}")
    assert not mode.sites, f"tensor factories without device= on the engine path: {sorted(set(mode.sites))}"
    pd.testing.assert_frame_equal(got_runs, runs)
    pd.testing.assert_frame_equal(got_traj, traj)


def test_detector_catches_a_stray_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    """A planted bug (a parameter created without ``device=``) is caught, with its line."""
    from muonlab.problems.icl import InContextRegression

    def init_params(self: InContextRegression) -> list[torch.Tensor]:
        return [torch.zeros(self.n_runs, self.d, self.d, dtype=self.dtype)]  # no device: the bug

    monkeypatch.setattr(InContextRegression, "init_params", init_params)
    cfg = _config(problem={"kind": "icl", "d": 4}, optimizer={"name": "gd", "lr": 0.5}, steps=3)
    with stray_factories(roots=(_MUONLAB_DIR, Path(__file__))) as mode, pytest.raises(Exception, match="meta"):
        _run(cfg)
    assert [s[2] for s in mode.sites] == ["init_params"]


def test_one_host_copy_per_step() -> None:
    """The discrete solver copies to the host once per step (plus each logged metric).

    Before, loss, error and each gradient's finiteness crossed separately: 2 + (number
    of parameters) syncs per step on CUDA.
    """
    steps, metrics = 40, ["loss", "rel_err", "singular_values"]
    cfg = _config(problem={"kind": "two_factor_mf", "n_out": 8, "n_in": 7, "d": 5, "rank": 3, "alpha": 1e-2},
                  optimizer={"name": "muon", "lr": 0.05, "method": "svd"}, steps=steps, log_every=steps,
                  metrics=metrics, seeds=2)
    (group,) = group_runs(expand(cfg))
    batch = build_batch(group)
    with stray_factories() as mode:
        result = solve(batch)
    assert all(r["steps"] == steps for r in result.runs)
    logged = 2  # t = 0 and t = steps
    per_run_schedule_init = len(group)  # each run's schedule state is drawn from its own seed
    assert mode.host_copies <= (steps + 1) + logged * len(metrics) + per_run_schedule_init, mode.host_copies
