"""The registry: names, availability, the one error for a missing library or device."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from backend_cases import TORCH, TORCH_CUDA

import bogc_ref
from bogc_ref.backends import BackendUnavailable, available_backends, get_backend
from bogc_ref.interface import STAGES, Implementation


def test_numpy_always_available_and_is_the_reference() -> None:
    assert available_backends()[0] == "numpy"
    backend = get_backend("numpy")
    assert backend.name == "numpy" and backend.device == "cpu"
    assert backend.calibrate is bogc_ref.calibrate
    arr = np.ones((2, 3))
    assert backend.from_numpy(arr) is arr


def test_unknown_backend_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="name: unknown backend 'jax'"):
        get_backend("jax")


@pytest.mark.skipif(not TORCH, reason="PyTorch is not installed")
def test_torch_backend_implements_every_stage() -> None:
    backend = get_backend("torch")
    assert "torch" in available_backends()
    assert isinstance(backend, Implementation)
    for names in STAGES.values():
        for name in names:
            assert callable(getattr(backend, name)), name
    assert backend.device == "cpu"


@pytest.mark.skipif(TORCH_CUDA, reason="this machine has CUDA; the error path cannot be shown")
@pytest.mark.skipif(not TORCH, reason="PyTorch is not installed")
def test_torch_on_missing_cuda_raises_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailable, match="CUDA is not available"):
        get_backend("torch", "cuda")
    assert issubclass(BackendUnavailable, RuntimeError)


@pytest.mark.skipif(
    importlib.util.find_spec("cupy") is not None, reason="CuPy is installed on this machine"
)
def test_missing_cupy_says_what_to_install() -> None:
    assert "cupy" not in available_backends()
    with pytest.raises(BackendUnavailable, match=r"cupy-cuda12x"):
        get_backend("cupy")
