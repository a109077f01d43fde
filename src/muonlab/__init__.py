"""muonlab: a laboratory for spectral optimizers (Muon, spectral gradient descent).

The functional core lives in :mod:`muonlab.linalg` (orthogonalizers, spectral
metrics), :mod:`muonlab.optim.updates` (pure update rules) and
:mod:`muonlab.problems` (batched matrix problems); :mod:`muonlab.optim` holds the
``torch.optim.Optimizer`` shells and the step-size schedules, :mod:`muonlab.engine`
the batched run engine, configs and results store (``muonlab.run(config, out)``).
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from muonlab.linalg.orthogonalize import orthogonalize

try:
    __version__ = _version("muonlab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "orthogonalize", "run"]


def __getattr__(name: str):
    # ``muonlab.run`` (SPEC §6) pulls in pandas/pyarrow; load it only when asked for.
    if name == "run":
        from muonlab.engine.experiment import run

        return run
    raise AttributeError(f"module 'muonlab' has no attribute {name!r}")
