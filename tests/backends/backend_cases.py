"""Backend × device cases and helpers of the backend tests; CUDA cases skip with a reason."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from bogc_ref.backends import available_backends


def _torch_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


TORCH = importlib.util.find_spec("torch") is not None
TORCH_CUDA = _torch_cuda()
CUPY = "cupy" in available_backends()

CASES = [
    pytest.param(
        ("torch", "cpu"),
        id="torch-cpu",
        marks=pytest.mark.skipif(not TORCH, reason="PyTorch is not installed"),
    ),
    pytest.param(
        ("torch", "cuda"),
        id="torch-cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not TORCH_CUDA, reason="no CUDA device (torch.cuda.is_available())"),
        ],
    ),
    pytest.param(
        ("cupy", "cuda"),
        id="cupy-cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not CUPY, reason="CuPy with a usable CUDA device is not available"),
        ],
    ),
]


def to_numpy(x: Any) -> np.ndarray:
    """A host NumPy copy of a backend array (half precision widened to float32)."""
    if type(x).__module__.startswith("cupy"):
        return np.asarray(x.get())
    if type(x).__module__.startswith("torch"):
        t = x.detach().cpu()
        if t.dtype in (__import__("torch").float16, __import__("torch").bfloat16):
            t = t.float()
        return np.asarray(t.numpy())
    return np.asarray(x)


def tolerance(dtype: Any) -> float:
    """Relative tolerance per dtype: float64 1e-12; float32 64 eps (scaled further by callers)."""
    return 1e-12 if np.dtype(dtype) == np.float64 else 64 * float(np.finfo(np.float32).eps)
