"""Progress over runs, with an ETA: a rich bar on a terminal, plain lines in a log.

:class:`RunProgress` counts runs of one or more experiments. The engine reports whole
batches (``on_batch(done, total)``) from any backend and, when batches run in this
process, steps as they go (``on_step(k)``: k run-steps), which move the bar by
k / steps runs, so a long batch shows movement. When stderr is not a terminal (a
log file, CI), a background thread prints one line every ``interval`` seconds
(``MUONLAB_PROGRESS_SECONDS``, default 10) and one when an experiment ends::

    [00:01:12] p1_kappa_sweep: 40.0/150 runs (27 %), ETA 00:03:14
"""

from __future__ import annotations

import os
import sys
import threading
import time
from types import TracebackType
from typing import IO, Any

__all__ = ["RunProgress"]


def _clock(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class RunProgress:
    """Runs done out of planned, per experiment, shown on ``stream`` (default stderr)."""

    def __init__(self, stream: IO[str] | None = None, *, interval: float | None = None,
                 live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.interval = float(os.environ.get("MUONLAB_PROGRESS_SECONDS", 10)) if interval is None else interval
        self.name = ""
        self.total = 0.0
        self.done = 0.0
        self.steps = 1
        self.t0 = time.perf_counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rich: Any = None
        self._task: Any = None

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> RunProgress:
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._rich = Progress(TextColumn("{task.description:<22}"), BarColumn(),
                                  TextColumn("{task.completed:.0f}/{task.total:.0f} runs"), TimeElapsedColumn(),
                                  TextColumn("ETA"), TimeRemainingColumn(),
                                  console=Console(file=self.stream))
            self._rich.__enter__()
        else:
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._rich is not None:
            self._rich.__exit__(exc_type, exc, tb)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if self.name and self.done < self.total:
                    self._line()

    # -- reporting -------------------------------------------------------------------

    def message(self, text: str) -> None:
        """A line above the bar (the plan of an experiment)."""
        if self._rich is not None:
            self._rich.console.print(text, highlight=False, soft_wrap=True)
        else:
            print(text, file=self.stream, flush=True)

    def start(self, name: str, total: int, steps: int = 1) -> None:
        """A new experiment: ``total`` runs planned, ``steps`` per run (for on_step)."""
        with self._lock:
            self._finish_current()
            self.name, self.total, self.done, self.steps = name, float(total), 0.0, max(int(steps), 1)
            self.t0 = time.perf_counter()
            if self._rich is not None:
                self._task = self._rich.add_task(name, total=max(total, 1))

    def on_batch(self, done: int, total: int) -> None:
        """``done`` of ``total`` runs stored."""
        with self._lock:
            self.total = float(total)
            self.done = max(self.done, float(done))
            self._show()

    def on_step(self, k: int) -> None:
        """k run-steps done in this process (a fraction of a run each)."""
        with self._lock:
            self.done = min(self.done + k / self.steps, self.total)
            self._show()

    def finish(self) -> None:
        """The current experiment ended (runs that stopped early count as done)."""
        with self._lock:
            self._finish_current()

    def _finish_current(self) -> None:
        if not self.name:
            return
        self.done = self.total
        self._show()
        if self._rich is None:
            self._line()
        self.name = ""

    def _show(self) -> None:
        if self._rich is not None and self._task is not None:
            self._rich.update(self._task, completed=self.done, total=max(self.total, 1))

    def eta(self) -> float | None:
        """Seconds left at the rate so far (None before any progress)."""
        elapsed = time.perf_counter() - self.t0
        if self.done <= 0 or elapsed <= 0:
            return None
        return (self.total - self.done) * elapsed / self.done

    def _line(self) -> None:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = self.eta()
        tail = "done" if self.done >= self.total else f"ETA {_clock(eta)}" if eta is not None else "ETA ?"
        print(f"[{_clock(time.perf_counter() - self.t0)}] {self.name}: {self.done:.1f}/{self.total:.0f} runs "
              f"({pct:.0f} %), {tail}", file=self.stream, flush=True)
