"""Thin wrapper: `python bench/orthogonalize_speed.py [options]` runs
`muonlab.bench.orthogonalize_speed` (see its docstring)."""

from muonlab.bench.orthogonalize_speed import main

if __name__ == "__main__":
    main()
