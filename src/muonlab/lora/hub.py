"""Fail fast, in one line, when a Hugging Face Hub name cannot be fetched.

Without network, ``from_pretrained`` and ``datasets.load_dataset`` retry for about
half a minute and print a warning per retry before failing. ``muonlab finetune`` first
looks for a Hub name in the local Hugging Face cache (``local_files_only=True``);
only when it is not there does it check offline mode (:func:`offline_mode`: the
libraries then fail at once) and whether the Hub can be reached at all
(:func:`hub_unreachable`: a 3-second TCP connection to the endpoint), and it refuses
at once when it cannot.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

__all__ = ["hub_unreachable", "offline_mode", "quiet_hub"]

_TRUE = {"1", "on", "yes", "true"}
_PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")


def offline_mode() -> bool:
    """Whether Hugging Face offline mode is on (``HF_HUB_OFFLINE=1`` and friends)."""
    if any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                                                    "HF_DATASETS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a dependency of transformers
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hub cannot be reached (one phrase), or None when it may be.

    A TCP connection to the endpoint (``HF_ENDPOINT``, default https://huggingface.co)
    is tried with ``timeout``. Nothing is tried, and None returned, in offline mode
    (the libraries then fail fast by themselves) or behind a proxy (``HTTPS_PROXY``
    ...: only the proxy knows).
    """
    if offline_mode():
        return None
    if any(os.environ.get(v) for v in _PROXIES):
        return None
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    parts = urlsplit(endpoint)
    host = parts.hostname or "huggingface.co"
    try:
        port = parts.port or (80 if parts.scheme == "http" else 443)
    except ValueError:
        port = 443
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        return f"the Hugging Face Hub ({endpoint}) is unreachable: {reason}"
    return None


def quiet_hub() -> None:
    """Silence huggingface_hub's per-retry warnings (the one-line error says it all)."""
    try:
        from huggingface_hub.utils import logging as hub_logging
    except ImportError:  # pragma: no cover
        return
    hub_logging.set_verbosity_error()
