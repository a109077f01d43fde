"""The package as a whole: every module imports on its own, and no module imports
another that (directly or not) imports it back — deferred imports inside functions
included, since those only hide a cycle until the function runs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import muonlab

ROOT = Path(muonlab.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The muonlab modules ``name`` imports anywhere in its body (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for block in ast.walk(tree) if _type_checking_only(block) for n in ast.walk(block)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            # `from pkg import sub` imports the submodule when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        found.update(t for t in targets if t in modules and t != name)
    return found


def test_no_import_cycle_in_the_package():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name)
            assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_cycle_detector_sees_a_deferred_import(tmp_path):
    # the detector must notice an import hidden inside a function
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from muonlab.engine import experiment\n")
    modules = {"muonlab.x.m": path, "muonlab.engine.experiment": path}
    assert _imports("muonlab.x.m", path, modules) == {"muonlab.engine.experiment"}


_FORK_IMPORTER = """
import importlib, os, sys, traceback
# Third-party libraries only: no muonlab module is loaded in this parent, so each forked
# child starts with none and imports its module (and what that pulls in) from scratch.
import numpy, pandas, pyarrow.parquet, scipy.integrate, torch, pydantic, yaml, matplotlib.figure  # noqa: F401
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failed.append(name)
print("FAILED:" + ",".join(failed))
"""


def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    names = sorted(_modules())
    assert len(names) > 40
    proc = subprocess.run([sys.executable, "-c", _FORK_IMPORTER, *names], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    failed = proc.stdout.strip().rpartition("FAILED:")[2]
    assert failed == "", f"modules that do not import on their own: {failed}\n{proc.stderr[-3000:]}"


def test_fresh_import_check_reports_a_broken_module():
    proc = subprocess.run([sys.executable, "-c", _FORK_IMPORTER, "muonlab.no_such_module"], capture_output=True,
                          text=True, timeout=300)
    assert proc.stdout.strip().endswith("FAILED:muonlab.no_such_module")
