"""PyTorch calibrate with subnormal variances: finite evidence, never saturated early.

A Python number over a tensor is evaluated by torch as ``number * (1 / tensor)``; for a
subnormal variance that reciprocal overflows to +inf although ``(1/τ) / var`` is finite,
so evidence of 1.8e37 (float32) or 6.6e307 (float64) came out saturated at the dtype's
largest value. Found by the conformance fresh tier's subnormal variances.
"""

from __future__ import annotations

import numpy as np
import pytest
from backend_cases import TORCH

import bogc_ref

pytest.importorskip("torch", reason="PyTorch is not installed")

from bogc_ref.backends import get_backend

pytestmark = pytest.mark.skipif(not TORCH, reason="PyTorch is not installed")


@pytest.mark.parametrize(("dtype", "subnormal"), [("float32", 1.25e-39), ("float64", 3.35e-310)])
@pytest.mark.parametrize("mode", ["fixed", "relative"])
def test_subnormal_variance_gets_its_finite_evidence(
    dtype: str, subnormal: float, mode: str
) -> None:
    torch_backend = get_backend("torch")
    var = np.array([[subnormal, 1.0, 2.0], [0.5, subnormal * 4, 1.0]], dtype=dtype)
    mean = np.array([[1.0, -2.0, 3.0], [0.5, 1.5, -1.0]], dtype=dtype)
    kwargs = {"mode": "fixed", "tau": 45.0} if mode == "fixed" else {}
    ref = bogc_ref.calibrate(mean, var, **kwargs)
    got = torch_backend.calibrate(
        torch_backend.from_numpy(mean), torch_backend.from_numpy(var), **kwargs
    )
    evidence = got.evidence.numpy()
    assert np.isfinite(evidence).all()
    np.testing.assert_allclose(evidence, ref.evidence, rtol=1e-5)
    np.testing.assert_allclose(got.belief.numpy(), ref.belief, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.grad.numpy(), ref.grad, rtol=1e-5, atol=1e-6)
