"""Survey (not collected by pytest): damage a small results store in many ways and count
how each ends. Run from the repository root:

    PYTHONPATH=src python tests/engine/store_corruption_survey.py [--flips N] [--seed S]

For every case: a copy of an undamaged store (4 runs, 4 batches) is damaged; then
(1) its readers are asked for the runs and trajectories, and (2) ``run`` resumes into
it. Outcomes: ``read`` = what the readers returned before any repair (``same``,
``error`` = a one-line StoreError, ``silent`` = different data with no error); ``after``
= the store after the resume (``equal`` to the undamaged one, pandas frame equality,
wall_s excepted for reran runs; ``different``; or ``raised``).
"""

from __future__ import annotations

import argparse
import collections
import logging
import random
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

from muonlab.config import ExperimentConfig
from muonlab.engine.experiment import run
from muonlab.engine.store import ResultStore, StoreError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the shared helpers
from helpers import tiny_sweep

RAW = tiny_sweep("survey")
CONFIG = ExperimentConfig.model_validate(RAW)


def frames(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    store = ResultStore(path)
    runs = store.runs().sort_values("run_id").reset_index(drop=True).drop(columns=["wall_s"])
    traj = store.trajectories().sort_values(["run_id", "metric", "step", "index"]).reset_index(drop=True)
    return runs, traj


def equal(a: tuple[pd.DataFrame, pd.DataFrame], b: tuple[pd.DataFrame, pd.DataFrame]) -> bool:
    try:
        pd.testing.assert_frame_equal(a[0], b[0])
        pd.testing.assert_frame_equal(a[1], b[1])
        return True
    except AssertionError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flips", type=int, default=12, help="bit flips per file")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.getLogger("muonlab").setLevel(logging.ERROR)  # the repair notices: counted, not printed
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="muonlab-survey-"))
    template = root / "template"
    run(CONFIG, template, max_batch=1)
    reference = frames(template)
    targets = ["runs.parquet", "trajectories.parquet",
               next(p for p in sorted((template / "parts").iterdir()) if p.name.startswith("runs-")),
               next(p for p in sorted((template / "parts").iterdir()) if p.name.startswith("traj-"))]
    targets = [t if isinstance(t, str) else str(t.relative_to(template)) for t in targets]
    # A second template whose last batch the consolidated files do not hold yet (as after
    # a crash before consolidation): damage to its parts loses runs, which a resume reruns.
    pending = root / "pending"
    shutil.copytree(template, pending)
    last = ResultStore(pending)._extras(None)[-1]
    saved = {p: p.read_bytes() for p in (pending / "parts").glob(f"*-{last}.parquet")}
    for p in saved:
        p.unlink()
    for name in ("runs.parquet", "trajectories.parquet"):
        (pending / name).unlink()
    ResultStore(pending).consolidate()
    for p, data in saved.items():
        p.write_bytes(data)
    targets += [f"pending:parts/{kind}-{last}.parquet" for kind in ("runs", "traj")]
    cases: list[tuple[str, str, int | None]] = []
    for t in targets:
        size = (template / t).stat().st_size if not t.startswith("pending:") else (pending / t[8:]).stat().st_size
        cases.append((t, "zero-byte", 0))
        cases += [(t, "truncate", rng.randrange(1, size)) for _ in range(3)]
        cases += [(t, "bit flip", rng.randrange(size)) for _ in range(args.flips)]
    tally: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for i, (target, kind, where) in enumerate(cases):
        path = root / f"case{i}"
        shutil.copytree(pending if target.startswith("pending:") else template, path)
        f = path / target.removeprefix("pending:")
        data = bytearray(f.read_bytes())
        if kind == "zero-byte":
            data = bytearray()
        elif kind == "truncate":
            data = data[:where]
        else:
            assert where is not None
            data[where] ^= 1 << rng.randrange(8)
        f.write_bytes(bytes(data))
        try:
            read = "same" if equal(frames(path), reference) else "silent"
        except StoreError:
            read = "error"
        except Exception as e:  # noqa: BLE001 - a survey counts every ending
            read = f"raised {type(e).__name__}"
        try:
            run(CONFIG, path, max_batch=1)
            after = "equal" if equal(frames(path), reference) else "different"
        except Exception as e:  # noqa: BLE001 - a survey counts every ending
            after = f"raised {type(e).__name__}"
        tally[(kind, read, after)] += 1
        print(f"{target:48s} {kind:9s} {where!s:>6s}  read={read:6s} after={after}", flush=True)
        shutil.rmtree(path)
    print(f"\n{len(cases)} corruptions:")
    for (kind, read, after), n in sorted(tally.items()):
        print(f"  {n:3d}  {kind:9s} read={read:6s} after resume={after}")
    shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
