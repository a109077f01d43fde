"""Thin wrapper: `python bench/scaling.py [options]` runs `muonlab.bench.scaling` (see its docstring)."""

from muonlab.bench.scaling import main

if __name__ == "__main__":  # the local pool spawns processes that re-import this file
    main()
