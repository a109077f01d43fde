"""The performance suite behind ``muonlab bench`` (SPEC §8); ``bench/*.py`` are thin wrappers.

Each benchmark is a typed function with keyword parameters that returns frozen
dataclasses; every timing is measured against a baseline in the same process and the
result carries the ratio. None of them is a test (timings are never asserted):

* :func:`.engine.engine_speed` → :class:`.engine.EngineResult`: the batched engine vs
  a loop of single runs;
* :func:`.orthogonalize_speed.orthogonalize_speed` → :class:`~.orthogonalize_speed.SpeedResult`:
  a batch vs torch.optim.Muon's per-matrix loop;
* :func:`.orthogonalize_accuracy.orthogonalize_accuracy` →
  :class:`~.orthogonalize_accuracy.AccuracyResult`: errors on matrices with a known SVD;
* :func:`.lora_monitor.lora_monitor` → :class:`~.lora_monitor.MonitorResult`: the
  spectral monitor vs a LoRA training step;
* :func:`.common.machine_info` → :class:`~.common.MachineInfo`: the CPU model and flags
  (``lscpu`` or ``/proc/cpuinfo``) they ran on.

The functions are imported from their modules (the package re-exports nothing, so
that a module and its function of the same name never shadow each other).
``python -m muonlab.bench.<module>`` (or ``python bench/<module>.py``) runs one with a
few options and prints it.
"""
