"""Thin wrapper: `python bench/matmul_rate.py [options]` runs `muonlab.bench.matmul_rate` (see its docstring)."""

from muonlab.bench.matmul_rate import main

if __name__ == "__main__":
    main()
