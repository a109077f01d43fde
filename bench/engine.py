"""Thin wrapper: `python bench/engine.py [options]` runs `muonlab.bench.engine` (see its docstring)."""

from muonlab.bench.engine import main

if __name__ == "__main__":
    main()
