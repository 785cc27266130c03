"""The one error a missing backend raises."""

from __future__ import annotations

INSTALL_HINTS = {
    "torch": "pip install 'bogc-ref[torch]' (CPU build first: pip install torch==2.13.0)",
    "cupy": "pip install 'bogc-ref[cupy]' (cupy-cuda12x; needs an NVIDIA GPU and driver)",
}


class BackendUnavailable(RuntimeError):
    """A backend's library does not import, or the device it needs is absent.

    A subclass of :class:`RuntimeError`; the message says what to install or which
    device is missing.
    """
