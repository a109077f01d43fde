"""Batched run engine: configs, runner, metrics, results store (SPEC §4–§6)."""
