"""Thin wrapper: `python bench/engine_scaling.py [options]` runs `muonlab.bench.engine_scaling` (see its docstring)."""

from muonlab.bench.engine_scaling import main

if __name__ == "__main__":
    main()
