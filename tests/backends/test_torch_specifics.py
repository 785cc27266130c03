"""PyTorch-only promises: half-precision policy, no autograd, compiled == eager, grad-only."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from backend_cases import TORCH

import bogc_ref

torch = pytest.importorskip("torch", reason="PyTorch is not installed")

from bogc_ref.backends import _torch_calibrate, get_backend  # noqa: E402

pytestmark = pytest.mark.skipif(not TORCH, reason="PyTorch is not installed")


def _inputs(d: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal((3, d)).astype(np.float32)
    var = np.exp(rng.uniform(-2, 2, (3, d))).astype(np.float32)
    var[1, 0] = 0.0
    var[:, 1] = np.inf
    return mean, var


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_inputs_compute_in_float32_and_return_their_dtype(half: str) -> None:
    backend = get_backend("torch")
    dtype = getattr(torch, half)
    mean, var = _inputs()
    m16, v16 = torch.from_numpy(mean).to(dtype), torch.from_numpy(var).to(dtype)
    out = backend.calibrate(m16, v16)
    assert all(x.dtype == dtype for x in out)
    # Policy: the same as float32 on the upcast inputs, rounded once to the half dtype.
    ref = bogc_ref.calibrate(m16.float().numpy(), v16.float().numpy())
    for got, expected in zip(out, ref, strict=True):
        want = torch.from_numpy(expected).to(dtype).float().numpy()
        np.testing.assert_allclose(got.float().numpy(), want, rtol=1e-2, atol=1e-3)


def test_outputs_carry_no_autograd_graph() -> None:
    backend = get_backend("torch")
    mean, var = _inputs()
    m = torch.from_numpy(mean).requires_grad_(True)
    v = torch.from_numpy(var).requires_grad_(True)
    for x in backend.calibrate(m, v):
        assert not x.requires_grad and x.grad_fn is None
    h = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    g = backend.empirical_moments(h)
    assert g.mean.grad_fn is None


def test_calibrate_grad_equals_calibrate() -> None:
    backend = get_backend("torch")
    mean, var = (torch.from_numpy(a) for a in _inputs())
    full = backend.calibrate(mean, var, normalize=True)
    grad = backend.calibrate_grad(mean, var, normalize=True)
    torch.testing.assert_close(grad, full.grad, rtol=0, atol=0)


@pytest.mark.slow
def test_compiled_path_equals_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """One compiled configuration (≈20 s of inductor compile on 2 CPU cores)."""
    monkeypatch.setenv("BOGC_TORCH_COMPILE", "1")
    mean, var = (torch.from_numpy(a) for a in _inputs(d=4096, seed=1))
    mask = torch.tensor([True, True, False])
    eager, compiled = get_backend("torch"), get_backend("torch")
    eager.compile_mode, compiled.compile_mode = "never", "always"
    a = eager.calibrate(mean, var, mask=mask)
    b = compiled.calibrate(mean, var, mask=mask)
    assert not _torch_calibrate.compile_failures(), _torch_calibrate.compile_failures()
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=4e-6, atol=1e-7)


def test_failed_compilation_falls_back_to_eager_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("no C++ compiler (simulated)")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(_torch_calibrate, "_COMPILED", {})
    monkeypatch.setattr(_torch_calibrate, "_FAILED", {})
    backend = get_backend("torch")
    backend.compile_mode = "always"
    mean, var = (torch.from_numpy(a) for a in _inputs())
    with caplog.at_level(logging.WARNING, logger="bogc_ref.backends.torch"):
        out = backend.calibrate(mean, var)
    assert "running eagerly" in caplog.text and "simulated" in caplog.text
    ref = bogc_ref.calibrate(mean.numpy(), var.numpy())
    np.testing.assert_allclose(out.grad.numpy(), ref.grad, rtol=1e-5, atol=1e-6)


def test_compile_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOGC_TORCH_COMPILE", "0")
    assert not _torch_calibrate.compile_enabled()
    monkeypatch.setenv("BOGC_TORCH_COMPILE", "1")
    assert _torch_calibrate.compile_enabled()


def test_target_size_smoke() -> None:
    """M = 3, D = 2**20 float32 through the default (auto) path: finite, correct shape."""
    rng = np.random.default_rng(0)
    d = 1 << 20
    mean = torch.from_numpy(rng.standard_normal((3, d)).astype(np.float32))
    var = torch.from_numpy((rng.random((3, d)) + 0.1).astype(np.float32))
    backend = get_backend("torch")
    backend.compile_mode = "never"
    grad = backend.calibrate_grad(mean, var)
    assert grad.shape == (d,) and bool(torch.isfinite(grad).all())
    # The first 4096 columns against the reference (a slice: the reference would take ~1 s).
    ref = bogc_ref.calibrate(mean[:, :4096].numpy(), var[:, :4096].numpy())
    out = backend.calibrate(mean[:, :4096], var[:, :4096])
    np.testing.assert_allclose(out.grad.numpy(), ref.grad, rtol=1e-4, atol=1e-6)
