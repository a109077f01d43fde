"""Shared pytest configuration: deterministic hypothesis runs under CI."""

import os
import sys
from pathlib import Path

from hypothesis import settings

# CI must be reproducible: the same examples every run; locally, explore new ones.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# tests/helpers.py is shared by modules in the sub-folders (importlib import mode puts
# no test folder on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The CLI's default is every core (a spawned process pool); the suite's CLI tests run
# in-process unless a test asks for workers itself (tests/engine/test_backends.py).
os.environ.setdefault("MUONLAB_WORKERS", "1")
