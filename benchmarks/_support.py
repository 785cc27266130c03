"""Helpers shared by the suites: backend loading, device synchronisation, a memory guard.

A backend label is ``numpy``, ``torch-cpu``, ``torch-cuda`` or ``cupy``. Suites raise
``NotImplementedError`` in ``setup`` for a label that cannot run here, which asv records
as skipped (shown as n/a in the tables and graphs).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import bogc_ref

BACKENDS = ("numpy", "torch-cpu", "torch-cuda", "cupy")

#: Fraction of MemAvailable a case may plan to use before it is skipped as too big here.
MEMORY_FRACTION = float(os.environ.get("BOGC_BENCH_MEMORY_FRACTION", "0.6"))


class NumpyReference:
    """The NumPy reference seen through the backend interface (used until
    ``bogc_ref.backends.get_backend`` exists, and for the reference itself)."""

    name = "numpy"
    device = "cpu"

    def __getattr__(self, attr: str) -> Any:
        return getattr(bogc_ref, attr)

    @staticmethod
    def from_numpy(array: np.ndarray) -> np.ndarray:
        return array


def load_backend(label: str) -> Any:
    """The backend object for ``label``; ``NotImplementedError`` when unusable here."""
    if label not in BACKENDS:
        raise ValueError(f"label: expected one of {BACKENDS}, got {label!r}")
    name, _, device = label.partition("-")
    try:
        from bogc_ref import backends

        get_backend = backends.get_backend  # type: ignore[attr-defined]
        available = backends.available_backends()  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        if name == "numpy":
            return NumpyReference()
        raise NotImplementedError(
            f"{label}: bogc_ref.backends.get_backend is not available"
        ) from None
    if name not in available:
        raise NotImplementedError(f"{label}: backend not available here ({available})")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise NotImplementedError(f"{label}: no CUDA device")
    try:
        return get_backend(name, device=device or None)
    except (ImportError, RuntimeError, ValueError) as exc:
        raise NotImplementedError(f"{label}: {exc}") from exc


def on_gpu(backend: Any) -> bool:
    """Whether the backend's arrays live on a GPU."""
    return getattr(backend, "name", "") == "cupy" or str(getattr(backend, "device", "")).startswith(
        "cuda"
    )


def synchronize(backend: Any) -> None:
    """Wait for queued device work, so a timing covers the computation and not its launch."""
    name = getattr(backend, "name", "")
    if name == "torch" and on_gpu(backend):
        import torch

        torch.cuda.synchronize()
    elif name == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()


def preload_torch() -> None:
    """Import torch, its backend and its compiler stack once, where asv imports the suites.

    asv imports the benchmark suites once and forks a process for every case from there; what
    is imported before the fork is inherited. Importing torch, ``bogc_ref.backends``' torch
    backend and ``torch.compile``'s modules costs 3-4 s, which every case that compiles
    (``calibrate`` from 2^18 entries, the training steps) would otherwise pay again in its own
    process. Nothing is run or compiled here: each case still compiles its own graphs, in its
    setup, outside the timings. Without torch this does nothing.
    """
    try:
        import torch._dynamo
        import torch._inductor.compile_fx  # noqa: F401

        from bogc_ref.backends import _torch_backend  # noqa: F401
    except ImportError:
        pass


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (or a large number where it cannot be read)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def require_memory(nbytes: float, what: str) -> None:
    """Skip (``NotImplementedError``) a case that plans to use more host memory than allowed."""
    limit = MEMORY_FRACTION * available_bytes()
    if nbytes > limit:
        raise NotImplementedError(
            f"{what}: needs about {nbytes / 2**30:.1f} GiB, more than {MEMORY_FRACTION:g} of "
            f"the {available_bytes() / 2**30:.1f} GiB available (BOGC_BENCH_MEMORY_FRACTION)"
        )
