"""Thin wrapper: `python bench/orthogonalize_accuracy.py [options]` runs
`muonlab.bench.orthogonalize_accuracy` (see its docstring)."""

from muonlab.bench.orthogonalize_accuracy import main

if __name__ == "__main__":
    main()
