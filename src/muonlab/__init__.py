"""muonlab: a laboratory for spectral optimizers (Muon, spectral gradient descent).

The functional core lives in :mod:`muonlab.linalg` (orthogonalizers) and
:mod:`muonlab.optim.updates` (pure update rules); :mod:`muonlab.optim` holds the
``torch.optim.Optimizer`` shells and the step-size schedules.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from muonlab.linalg.orthogonalize import orthogonalize

try:
    __version__ = _version("muonlab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["orthogonalize", "__version__"]
