"""The whole performance suite (SPEC §8) as one call: what ``muonlab bench`` runs and prints.

:func:`run_suite` runs every benchmark at the SPEC §8 sizes (or, with ``quick``, at
smoke-test sizes; both in :data:`SIZES`) and returns a dict of their typed results:

=================  =======================================================================
``machine``        :class:`~muonlab.bench.common.MachineInfo`
``engine``         list of :class:`~muonlab.bench.engine.EngineResult` (msign svd, gram)
``orthogonalize``  list of :class:`~muonlab.bench.orthogonalize_speed.SpeedResult`
``lora_monitor``   :class:`~muonlab.bench.lora_monitor.MonitorResult` (absent when skipped)
``engine_scaling`` list of :class:`~muonlab.bench.engine_scaling.ScalingPoint`
``matmul_rate``    :class:`~muonlab.bench.matmul_rate.RateReport`
``scaling``        list of :class:`~muonlab.bench.scaling.ScalingResult`: a reproduction's
                   wall time against workers, local and Ray (``quick``: the experiment's
                   quick scale, local only)
``figures``        list of the figure files written (str; empty without ``out_dir``)
``skipped``        {benchmark: reason} for the ones that could not run (the LoRA monitor
                   without the ``lora`` extra or its model)
=================  =======================================================================

``common.as_json(results)`` turns it into one JSON object; :func:`print_suite` prints
one rich table (baseline s, muonlab s, ratio per row) and the machine line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from muonlab.bench import engine_scaling as scaling_mod
from muonlab.bench import matmul_rate as rate_mod
from muonlab.bench import scaling as workers_mod

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["SIZES", "print_suite", "run_suite"]

#: Keyword arguments of each benchmark: the SPEC §8 workloads (False) and ``quick``'s smoke-test sizes (True).
SIZES: dict[bool, dict[str, dict[str, Any]]] = {
    False: {"engine": {}, "orthogonalize": {}, "lora_monitor": {"steps": 30}, "engine_scaling": {},
            "matmul_rate": {}, "scaling": {}},
    True: {"engine": {"runs": 8, "steps": 50}, "orthogonalize": {"shapes": [(8, 64, 64)], "repeats": 1},
           "lora_monitor": {"steps": 10}, "engine_scaling": dict(scaling_mod.QUICK),
           "matmul_rate": dict(rate_mod.QUICK), "scaling": dict(workers_mod.QUICK)},
}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_suite(
    quick: bool = False,
    out_dir: Path | str | None = None,
    device: str | None = None,
    *,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run every benchmark; write the figures into ``out_dir`` when given.

    ``device`` (default: cuda when available, else cpu) is where orthogonalize, the
    engine-scaling sweep and the matmul rates run; the engine-vs-loop and LoRA
    benchmarks run on the CPU, the worker scaling where its experiment says (the CPU).
    ``console`` (e.g. ``rich.console.Console(stderr=True)``) shows a status line per
    benchmark and says why one was skipped.
    """
    from contextlib import nullcontext

    from muonlab.bench.common import default_device, machine_info
    from muonlab.bench.engine import engine_speed
    from muonlab.bench.engine_scaling import engine_scaling, plot_engine_scaling
    from muonlab.bench.matmul_rate import matmul_rate
    from muonlab.bench.orthogonalize_speed import orthogonalize_speed
    from muonlab.bench.scaling import worker_scaling

    sizes = SIZES[bool(quick)]
    dev = torch.device(device) if device is not None else default_device()

    def status(text: str) -> Any:
        return console.status(text) if console is not None else nullcontext()

    results: dict[str, Any] = {"machine": machine_info(dev)}
    with status("engine: batched runs vs a loop of torch.optim runs"):
        results["engine"] = engine_speed(methods=("svd", "gram"), **sizes["engine"])
    with status("orthogonalize: batch vs torch.optim.Muon's per-matrix loop"):
        on: dict[str, Any] = {} if device is None else {"device": dev}  # None: orthogonalize_speed's own default
        results["orthogonalize"] = orthogonalize_speed(**sizes["orthogonalize"], **on)
    skipped: dict[str, str] = {}
    try:
        from muonlab.bench.lora_monitor import lora_monitor

        with status("LoRA spectral monitor vs a training step (MiniLM-L6)"):
            results["lora_monitor"] = lora_monitor(**sizes["lora_monitor"])
    except (ImportError, ValueError) as e:  # no lora extra, no model package: say so, keep the rest
        skipped["lora_monitor"] = f"{type(e).__name__}: {_one_line(str(e))}"
        if console is not None:
            console.print(f"lora_monitor skipped: {skipped['lora_monitor']}", highlight=False)
    with status("engine step time against n and the number of runs"):
        results["engine_scaling"] = engine_scaling(device=dev, **sizes["engine_scaling"])
    with status("matmul rate, and orthogonalize against it"):
        results["matmul_rate"] = matmul_rate(device=dev, **sizes["matmul_rate"])
    with status("reproduction wall time against workers (local, Ray)"):
        results["scaling"] = worker_scaling(**sizes["scaling"])
    figures: list[str] = []
    if out_dir is not None:
        figures += [str(p) for p in plot_engine_scaling(results["engine_scaling"], out_dir)]
    results["figures"] = figures
    results["skipped"] = skipped
    return results


def print_suite(results: dict[str, Any], console: Console | None = None) -> None:
    """One rich table of every benchmark in ``results`` (baseline s, muonlab s, ratio) and the machine line."""
    from rich.console import Console
    from rich.table import Table

    from muonlab.bench.engine import BASELINE as ENGINE_BASELINE
    from muonlab.bench.engine_scaling import BASELINE as SCALING_BASELINE
    from muonlab.bench.orthogonalize_speed import BASELINE as ORTHO_BASELINE
    from muonlab.bench.scaling import BASELINE as WORKERS_BASELINE
    from muonlab.bench.scaling import TARGET_EFFICIENCY

    caption = (f"engine baseline: {ENGINE_BASELINE}\northogonalize baseline: {ORTHO_BASELINE}\n"
               f"engine step baseline: {SCALING_BASELINE}; s are per step of the batch\n"
               "matmul rate rows: baseline = one matmul of the orthogonalization's shape; "
               "ratio = its time in such matmuls and its fraction of the measured bf16 / float32 rate\n"
               f"workers rows: baseline = {WORKERS_BASELINE}; ratio = speedup (efficiency = speedup / workers, "
               f"target ≥ {TARGET_EFFICIENCY:.0%}); wall includes pool / Ray start-up and the claims")
    table = Table(title="muonlab bench (ratio = baseline s / muonlab s, measured in this process)",
                  title_justify="left", caption=caption, caption_justify="left")
    for col in ("benchmark", "baseline s", "muonlab s", "ratio"):
        table.add_column(col, justify="left" if col == "benchmark" else "right")
    for r in results.get("engine", []):
        table.add_row(f"engine, {r.runs} runs of P1 n={r.n}, {r.steps} steps, msign={r.method} "
                      f"(final errors' log10 gap {r.max_log10_gap_final_rel_err:.0e})",
                      f"{r.baseline_s:.3g}", f"{r.muonlab_s:.3g}", f"{r.ratio:.2f}×")
    for r in results.get("orthogonalize", []):
        table.add_row(f"orthogonalize {r.method} {r.dtype}, {r.batch}×{r.m}×{r.n} on {r.device} "
                      f"(max |Δ| vs baseline {r.max_abs_diff:.1e})",
                      f"{r.baseline_s:.3g}", f"{r.muonlab_s:.3g}", f"{r.ratio:.2f}×")
    lm = results.get("lora_monitor")
    if lm is not None:
        table.add_row(f"LoRA monitor, {lm.adapters} adapters r={lm.rank} (baseline: one training step; "
                      "ratio = overhead, target < 2 %)",
                      f"{lm.step_s:.3g}", f"{lm.monitor_s:.3g}", f"{lm.overhead:.2%}")
    points = results.get("engine_scaling", [])
    if points:
        table.add_section()
    for p in points:
        table.add_row(f"engine step ({p.sweep} sweep), {p.runs} runs of P1 n={p.n} r={p.rank}, msign={p.method} "
                      f"({p.engine_run_step_s:.3g} s per run-step)",
                      "—" if p.baseline_step_s is None else f"{p.baseline_step_s:.3g}", f"{p.engine_step_s:.3g}",
                      "—" if p.ratio is None else f"{p.ratio:.2f}×")
    report = results.get("matmul_rate")
    if report is not None:
        table.add_section()
        rates = ", ".join(f"{k} {v / 1e9:.1f}" for k, v in report.rates.items())
        sizes = sorted({m.size for m in report.matmul})
        table.add_row(f"matmul rate on {report.device} (GFLOP/s, best of square sizes {sizes}): {rates}",
                      "", "", "")
        for o in report.orthogonalize:
            table.add_row(f"{o.impl} {o.method} {o.dtype}, {o.batch}×{o.m}×{o.n}, {o.steps} steps "
                          f"({o.flop_rate / 1e9:.1f} GFLOP/s)",
                          f"{o.matmul_s:.3g}", f"{o.seconds:.3g}",
                          f"{o.matmul_ratio:.1f} matmuls; {o.bf16_fraction:.0%} bf16, {o.float32_fraction:.0%} f32")
    scaling = results.get("scaling", [])
    if scaling:
        table.add_section()
    for s in scaling:
        what = f"reproduce {s.experiment} ({s.scale}), {s.backend} × {s.workers} workers"
        if s.skipped is not None:
            table.add_row(f"{what}: skipped ({s.skipped})", f"{s.baseline_s:.3g}", "—", "—")
            continue
        equal = "stores equal" if s.stores_equal else "STORES DIFFER from the baseline's"
        table.add_row(f"{what}, {s.runs} runs in {s.batches} batches ({equal}; efficiency {s.efficiency:.0%})",
                      f"{s.baseline_s:.3g}", f"{s.wall_s:.3g}", f"{s.speedup:.2f}×")
    out = console or Console()
    out.print(table)
    for name, why in results.get("skipped", {}).items():
        out.print(f"{name} skipped: {why}", highlight=False)
    for path in results.get("figures", []):
        out.print(f"figure: {path}", highlight=False)
    out.print(results["machine"].summary(), highlight=False, soft_wrap=True)
