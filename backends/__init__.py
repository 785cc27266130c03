"""Array-library backends of BOGC (installed as ``bogc_ref.backends``).

``get_backend(name, device)`` returns an object with the reference's functions, taking
and returning the library's own arrays (see :mod:`bogc_ref.interface`):

* ``"numpy"``: the reference itself;
* ``"torch"``: PyTorch tensors on any device (CPU, CUDA), float32/float64, with
  float16/bfloat16 inputs computed in float32 and returned in their own dtype;
* ``"cupy"``: CuPy arrays on the current CUDA device, with fused CUDA kernels.

A backend whose library does not import, or a CUDA device that is absent, raises
:class:`BackendUnavailable` (a :class:`RuntimeError`) saying what to install.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from ._errors import INSTALL_HINTS, BackendUnavailable

BACKENDS = ("numpy", "torch", "cupy")

__all__ = ["BACKENDS", "BackendUnavailable", "available_backends", "get_backend"]


def _cupy_usable() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # any failure of the CUDA runtime means "not usable here"
        return False


def available_backends() -> list[str]:
    """Names of the backends usable on this machine (``cupy`` only with a CUDA device)."""
    names = ["numpy"]
    if importlib.util.find_spec("torch") is not None:
        names.append("torch")
    if _cupy_usable():
        names.append("cupy")
    return names


def get_backend(name: str, device: str | None = None) -> Any:
    """The backend ``name`` ("numpy", "torch" or "cupy") on ``device``.

    ``device`` defaults to "cpu" for numpy and torch and to the current CUDA device
    ("cuda") for cupy. Raises :class:`BackendUnavailable` when the library or the
    device is missing, ValueError for an unknown name.
    """
    if name == "numpy":
        from ._numpy_backend import NumpyBackend

        return NumpyBackend(device)
    if name == "torch":
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailable(
                f"backend 'torch': PyTorch does not import ({exc}); {INSTALL_HINTS['torch']}"
            ) from exc
        from ._torch_backend import TorchBackend

        return TorchBackend(device)
    if name == "cupy":
        try:
            import cupy  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailable(
                f"backend 'cupy': CuPy does not import ({exc}); {INSTALL_HINTS['cupy']}"
            ) from exc
        from ._cupy_backend import CupyBackend

        return CupyBackend(device)
    raise ValueError(f"name: unknown backend {name!r}; expected one of {BACKENDS}")
