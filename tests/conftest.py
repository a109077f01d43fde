"""Shared pytest configuration: deterministic hypothesis runs under CI."""

import os

from hypothesis import settings

# CI must be reproducible: the same examples every run; locally, explore new ones.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
