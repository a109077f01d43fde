"""muonlab.bench.lora_monitor on a tiny BERT: the overhead is the monitor's time over a step's."""

from __future__ import annotations

import dataclasses
import math

import pytest

from muonlab.bench.lora_monitor import MonitorResult, lora_monitor


def test_monitor_overhead_on_a_tiny_model(tiny_bert):
    r = lora_monitor(steps=5, model=tiny_bert, batch_size=4, max_length=16, rank=2)
    assert isinstance(r, MonitorResult)
    assert r.adapters == 4  # 2 layers × (query, value)
    assert r.steps == 10  # whole blocks: 5 steps without the monitor, 5 with it
    assert (r.rank, r.batch_size, r.max_length, r.model) == (2, 4, 16, str(tiny_bert))
    for t in (r.step_s, r.monitor_s):
        assert math.isfinite(t) and t > 0
    assert r.overhead == r.monitor_s / r.step_s
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.overhead = 0.0  # type: ignore[misc]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="^steps: must be >= 1"):
        lora_monitor(steps=0)
    with pytest.raises(ValueError, match="no such model folder"):
        lora_monitor(steps=1, model=str(tmp_path / "missing"))
