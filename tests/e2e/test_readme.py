"""The README's promises: its set-up commands, CI's use of them, and its example code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def fenced_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.DOTALL)


def test_first_two_commands_are_main_job_and_tests():
    bash = fenced_blocks("bash")
    assert len(bash) >= 2
    main_job, tests = bash[0].strip(), bash[1].strip()
    assert "pip install torch==2.13.0" in main_job and "muonlab " in main_job
    assert "pip install torch==2.13.0" in tests and "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command():
    test_command = fenced_blocks("bash")[1].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_ci_runs_ruff_and_mypy_after_the_tests():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "python -m ruff check src tests bench" in ci and "python -m mypy" in ci


def test_readme_example_trains():
    (example,) = fenced_blocks("python")
    assert len(example.strip().splitlines()) <= 12
    namespace: dict = {"__name__": "readme_example"}
    import torch

    torch.manual_seed(0)
    exec(compile(example, "README.md", "exec"), namespace)  # the README's code is under test
    # XOR-like labels: chance is ln 2 ≈ 0.69; the example must actually learn them.
    assert namespace["loss"].item() < 0.1
