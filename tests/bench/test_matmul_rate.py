"""muonlab.bench.matmul_rate on tiny sizes: FLOP counts, ratios and fractions (never how fast)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from muonlab.bench.common import as_json
from muonlab.bench.matmul_rate import (
    MUONLAB,
    TORCH_MUON,
    MatmulRate,
    OrthoRate,
    RateReport,
    best_rates,
    main,
    matmul_rate,
    ns_flops,
    torch_muon_loop,
)
from muonlab.linalg import orthogonalize

SHAPES = ((2, 8, 8), (3, 12, 6))  # square and tall (the iteration transposes tall inputs)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: tiny kernels on a shared 2-core machine spend far longer in thread hand-offs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def report() -> RateReport:
    return matmul_rate(sizes=(16, 32), shapes=SHAPES, repeats=1, device="cpu")


#: aten matmul → index of its first factor among the arguments (addmm's first is the added matrix).
_PRODUCTS = {torch.ops.aten.mm.default: 0, torch.ops.aten.bmm.default: 0,
             torch.ops.aten.addmm.default: 1, torch.ops.aten.baddbmm.default: 1}


class _MatmulFlops(TorchDispatchMode):
    """Adds 2·(rows × inner × cols) for every aten matmul that runs (batched ones per matrix)."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in _PRODUCTS:
            a, b = args[_PRODUCTS[func]], args[_PRODUCTS[func] + 1]
            self.flops += 2 * a.shape[:-1].numel() * a.shape[-1] * b.shape[-1]
        return func(*args, **(kwargs or {}))


def _counted(fn) -> int:
    with _MatmulFlops() as counter:
        fn()
    return counter.flops


@pytest.mark.parametrize(("m", "n"), [(6, 10), (10, 6), (7, 7)])
def test_ns_flops_is_the_count_of_every_matmul_the_iteration_runs(m, n):
    G = torch.randn(3, m, n)
    expected = ns_flops(m, n, steps=5, batch=3)
    s, l = min(m, n), max(m, n)
    assert expected == 3 * 5 * (2 * s * s * l + 2 * s**3 + 2 * s * s * l)  # X Xᵀ, A², (bA + cA²) X
    assert _counted(lambda: orthogonalize(G, "newton_schulz", dtype=torch.float32)) == expected
    assert _counted(lambda: orthogonalize(G, "polar_express", steps=5, dtype=torch.bfloat16)) == expected
    assert _counted(lambda: torch_muon_loop(G)) == expected
    assert ns_flops(m, n, steps=2) * 3 * 5 == expected * 2


def test_matmul_rates_per_dtype_and_size(report):
    keys = [(r.dtype, r.size) for r in report.matmul]
    assert keys == [(d, s) for d in ("bfloat16", "float32", "float64") for s in (16, 32)]
    for r in report.matmul:
        assert math.isfinite(r.seconds) and r.seconds > 0 and r.flops == 2 * r.size**3
        assert r.flop_rate == r.flops / r.seconds
    assert report.rates == {d: max(r.flop_rate for r in report.matmul if r.dtype == d)
                            for d in ("bfloat16", "float32", "float64")}
    assert best_rates(list(report.matmul)) == report.rates


def test_orthogonalize_rows_in_order(report):
    keys = [((o.batch, o.m, o.n), o.impl, o.method, o.dtype) for o in report.orthogonalize]
    assert keys == [(shape, *row) for shape in SHAPES for row in (
        (MUONLAB, "newton_schulz", "bfloat16"), (MUONLAB, "newton_schulz", "float32"),
        (MUONLAB, "polar_express", "bfloat16"), (MUONLAB, "polar_express", "float32"),
        (TORCH_MUON, "newton_schulz", "bfloat16"))]
    assert all(o.steps == 5 and o.device == "cpu" for o in report.orthogonalize)


def test_ratios_and_fractions_follow_from_the_times(report):
    for o in report.orthogonalize:
        assert math.isfinite(o.seconds) and o.seconds > 0 and math.isfinite(o.matmul_s) and o.matmul_s > 0
        assert o.flops == ns_flops(o.m, o.n, o.steps, o.batch)
        assert o.matmul_ratio == o.seconds / o.matmul_s
        assert o.flop_rate == o.flops / o.seconds
        assert (o.bf16_rate, o.float32_rate) == (report.rates["bfloat16"], report.rates["float32"])
        assert o.bf16_fraction == o.flop_rate / o.bf16_rate and o.float32_fraction == o.flop_rate / o.float32_rate
        s, l = min(o.m, o.n), max(o.m, o.n)
        assert o.matmul_flop_ratio == pytest.approx(5 * (2 + s / l))  # 5 steps × (2 s²l + s³)/(s²l)
    # One matmul per shape and dtype is timed once and shared by that shape's rows.
    for shape in SHAPES:
        rows = [o for o in report.orthogonalize if (o.batch, o.m, o.n) == shape]
        for dtype in ("bfloat16", "float32"):
            assert len({o.matmul_s for o in rows if o.dtype == dtype}) == 1


def test_derived_fields_by_hand():
    r = MatmulRate(device="cpu", dtype="float32", size=4, seconds=0.5, flops=128)
    assert r.flop_rate == 256.0
    o = OrthoRate(device="cpu", impl=MUONLAB, method="newton_schulz", dtype="bfloat16", batch=2, m=4, n=8, steps=5,
                  seconds=2.0, matmul_s=0.1, flops=ns_flops(4, 8, 5, 2), bf16_rate=1000.0, float32_rate=500.0)
    assert o.flops == 2 * 5 * (4 * 16 * 8 + 2 * 64) == 6400
    assert (o.matmul_ratio, o.flop_rate, o.bf16_fraction, o.float32_fraction) == (20.0, 3200.0, 3.2, 6.4)
    assert o.matmul_flop_ratio == 6400 / (2 * 2 * 16 * 8)


@pytest.mark.parametrize(("kw", "match"), [
    ({"methods": ["svd"]}, "^methods: unknown 'svd'; allowed: newton_schulz, polar_express"),
    ({"shapes": [(0, 4, 4)]}, "^shapes: each shape is"),
    ({"repeats": 0}, "^repeats: must be >= 1"),
    ({"sizes": (0,)}, "^sizes: must be positive"),
])
def test_bad_arguments_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        matmul_rate(**{"sizes": (8,), "shapes": ((1, 4, 4),), "repeats": 1, "device": "cpu", **kw})


def test_report_is_json_serializable(report):
    data = json.loads(as_json(report))
    assert data["rates"] == report.rates and data["orthogonalize"][0]["bf16_fraction"] == \
        report.orthogonalize[0].bf16_fraction
    assert data["matmul"][0]["dtype"] == "bfloat16"


def test_run_suite_quick_results_are_json_serializable(monkeypatch, tmp_path):
    """run_suite(quick=True) end to end, with the two slow pre-existing benchmarks shrunk further."""
    import functools

    import muonlab.bench.engine as engine_mod
    import muonlab.bench.lora_monitor as lora_mod
    import muonlab.bench.orthogonalize_speed as speed_mod
    from muonlab.bench.suite import print_suite, run_suite

    monkeypatch.setattr(engine_mod, "engine_speed", functools.partial(
        engine_mod.engine_speed, runs=2, n=8, rank=2, steps=3))
    monkeypatch.setattr(speed_mod, "orthogonalize_speed", functools.partial(
        speed_mod.orthogonalize_speed, shapes=[(2, 8, 8)], repeats=1))

    def no_lora(**kw):
        raise ImportError("no lora extra here")

    monkeypatch.setattr(lora_mod, "lora_monitor", no_lora)
    import muonlab.bench.scaling as workers_mod

    monkeypatch.setattr(workers_mod, "worker_scaling", functools.partial(
        workers_mod.worker_scaling, overrides=["steps=60", "seeds=2"]))
    results = run_suite(quick=True, out_dir=tmp_path, device="cpu")
    data = json.loads(as_json(results))
    assert set(data) == {"machine", "engine", "orthogonalize", "engine_scaling", "matmul_rate", "scaling", "figures",
                         "skipped"}
    assert [(s["backend"], s["workers"], s["stores_equal"]) for s in data["scaling"]] == [
        ("local", 1, True), ("local", 2, True)]
    assert data["skipped"] == {"lora_monitor": "ImportError: no lora extra here"}
    assert data["figures"] == [str(tmp_path / "bench_engine_scaling.png"), str(tmp_path / "bench_engine_scaling.svg")]
    assert all((tmp_path / name).stat().st_size > 0
               for name in ("bench_engine_scaling.png", "bench_engine_scaling.svg"))
    assert data["engine_scaling"] and all(p["ratio"] == p["baseline_run_step_s"] / p["engine_run_step_s"]
                                          for p in data["engine_scaling"])
    assert data["matmul_rate"]["orthogonalize"][-1]["impl"] == TORCH_MUON
    from rich.console import Console

    console = Console(record=True, width=250)
    print_suite(results, console=console)
    text = console.export_text()
    assert "engine step (n sweep)" in text and "torch.optim.Muon loop newton_schulz bfloat16" in text
    assert "lora_monitor skipped: ImportError" in text and results["machine"].cpu_model in text
    assert "reproduce s002_mode_order (quick), local × 2 workers" in text


def test_main_json(capsys):
    out = main(["--quick", "--dtypes", "float32", "--json"])
    data = json.loads(capsys.readouterr().out)
    # bf16 is measured even when not asked for: the fractions refer to it.
    assert [m["dtype"] for m in data["matmul_rate"]["matmul"]] == ["float32"] * 2 + ["bfloat16"] * 2
    assert set(data["matmul_rate"]["rates"]) == {"float32", "bfloat16"} and out.orthogonalize
