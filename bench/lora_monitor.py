"""Thin wrapper: `python bench/lora_monitor.py [options]` runs `muonlab.bench.lora_monitor` (see its docstring)."""

from muonlab.bench.lora_monitor import main

if __name__ == "__main__":
    main()
