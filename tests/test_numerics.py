"""Numerics: extreme magnitudes against 50-digit arithmetic, and dtype preservation."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bogc_ref

mpmath.mp.dps = 50


def calibrate_mp(mean: np.ndarray, var: np.ndarray, w: float, normalize: bool) -> np.ndarray:
    """calibrate (relative mode, p = 1) in 50-digit arithmetic, one dimension at a time."""
    m, d = mean.shape
    log_lam = [[-mpmath.log(mpmath.mpf(float(var[i, j]))) for j in range(d)] for i in range(m)]
    log_ref = mpmath.fsum(x for row in log_lam for x in row) / (m * d)
    out = np.empty(d)
    for j in range(d):
        e = [mpmath.exp(log_lam[i][j] - log_ref) for i in range(m)]
        total = mpmath.fsum(e)
        denominator = total if normalize else w + total
        out[j] = float(
            mpmath.fsum(e[i] * mpmath.mpf(float(mean[i, j])) for i in range(m)) / denominator
        )
    return out


def extreme_case(seed: int, dtype: type, exponent: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    var = 10.0 ** rng.uniform(-exponent, exponent, size=(3, 16))
    mean = rng.normal(size=(3, 16)) * 10.0 ** rng.uniform(-3, 3, size=(3, 16))
    return mean.astype(dtype), var.astype(dtype)


@given(st.integers(0, 2**32 - 1), st.booleans())
def test_extreme_precisions_float64(seed: int, normalize: bool) -> None:
    mean, var = extreme_case(seed, np.float64, 30.0)
    out = bogc_ref.calibrate(mean, var, normalize=normalize)
    expected = calibrate_mp(mean, var, 3.0, normalize)
    assert np.all(np.isfinite(out.grad)) and np.all(np.isfinite(out.belief))
    # grad = Σ_m b_m μ_m: relative accuracy where the terms add up, and an absolute accuracy
    # of the terms' size, max_m |μ_m|, where they cancel.
    scale = np.abs(mean).max(axis=0)
    assert np.all(np.abs(out.grad - expected) <= 1e-12 * np.abs(expected) + 1e-13 * scale)


@given(st.integers(0, 2**32 - 1), st.booleans())
def test_extreme_precisions_float32(seed: int, normalize: bool) -> None:
    mean, var = extreme_case(seed, np.float32, 15.0)
    out = bogc_ref.calibrate(mean, var, normalize=normalize)
    assert out.grad.dtype == np.float32
    expected = calibrate_mp(mean, var, 3.0, normalize)
    eps32 = np.finfo(np.float32).eps
    scale = np.abs(mean.astype(np.float64)).max(axis=0)
    # The reference computes in float64; the only float32 error is the final rounding.
    assert np.all(np.abs(out.grad - expected) <= eps32 * np.abs(expected) + 1e-12 * scale)


def test_tiny_and_huge_means_do_not_overflow() -> None:
    mean = np.array([[1e300, -1e-300], [1e300, 1e-300]])
    var = np.array([[1e-30, 1e30], [1e30, 1e-30]])
    out = bogc_ref.calibrate(mean, var, normalize=True)
    assert np.all(np.isfinite(out.grad))
    np.testing.assert_allclose(out.grad, [1e300, 1e-300], rtol=1e-12)


def _head_args(dtype: type) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    b, d, k = 3, 2, 2
    return {
        "h": rng.normal(size=(b, d)).astype(dtype),
        "y": rng.normal(size=(b, k)).astype(dtype),
        "labels": np.array([0, 1, 1]),
        "w": rng.normal(size=(k, d + 1)).astype(dtype),
        "cov_rows": np.stack([np.eye(d + 1)] * k).astype(dtype),
        "cov_full": (0.1 * np.eye(k * (d + 1))).astype(dtype),
        "eps": rng.normal(size=(8, k * (d + 1))).astype(dtype),
    }


CALLS: dict[str, Callable[[dict[str, Any], type], tuple[np.ndarray, ...]]] = {
    "linear_head_moments": lambda a, t: bogc_ref.linear_head_moments(
        a["h"], a["y"], a["w"], a["cov_rows"]
    ),
    "softmax_head_moments": lambda a, t: bogc_ref.softmax_head_moments(
        a["h"], a["labels"], a["w"], a["cov_full"], eps=a["eps"]
    ),
    "softmax_head_moments_linearized": lambda a, t: bogc_ref.softmax_head_moments_linearized(
        a["h"], a["labels"], a["w"], a["cov_full"]
    ),
    "empirical_moments": lambda a, t: bogc_ref.empirical_moments(a["cov_rows"]),
    "linear_head_posterior": lambda a, t: bogc_ref.linear_head_posterior(
        a["h"], a["y"], prior_mean=a["w"], prior_precision=a["cov_rows"][0], noise_var=1.0
    ),
    "softmax_head_laplace": lambda a, t: bogc_ref.softmax_head_laplace(
        a["h"], a["labels"], a["w"], prior_mean=a["w"], prior_precision=a["cov_full"]
    ),
    "evidence": lambda a, t: (bogc_ref.evidence(a["cov_rows"]),),
    "opinions": lambda a, t: bogc_ref.opinions(a["cov_rows"]),
    "reduced_dempster": lambda a, t: bogc_ref.reduced_dempster(a["cov_rows"]),
    "calibrate": lambda a, t: bogc_ref.calibrate(a["cov_rows"], a["cov_rows"] + 1),
    "dempster_combine": lambda a, t: (
        bogc_ref.dempster_combine(
            np.array([0, 0.5, 0.5], t)[[0, 1, 0, 2]], np.array([0, 0, 0, 1], t)
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(name: str, dtype: type) -> None:
    outputs = CALLS[name](_head_args(dtype), dtype)
    for out in outputs:
        assert out.dtype == dtype, f"{name} returned {out.dtype} for {dtype.__name__} inputs"
        assert np.all(np.isfinite(out) | np.isposinf(out))


def test_every_array_function_is_covered_by_the_dtype_test() -> None:
    results = {"Calibration", "Moments", "Opinion", "Posterior", "SPEC_VERSION"}
    assert set(bogc_ref.__all__) - results == set(CALLS)


def _peak_bytes(call: Callable[[], object]) -> int:
    """Peak of NumPy's (traced) allocations during ``call``."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_laplace_memory_is_that_of_its_output_not_of_a_per_sample_jacobian() -> None:
    # Issue 12: the GGN used a (B, K, K, D+1) work array, 8·B·K²(D+1) bytes (160 MB here).
    rng = np.random.default_rng(1)
    b, d, k = 20_000, 9, 10
    n = k * (d + 1)
    h = rng.normal(size=(b, d))
    w = 0.1 * rng.normal(size=(k, d + 1))
    args = (h, rng.integers(0, k, b), w)
    peak = _peak_bytes(
        lambda: bogc_ref.softmax_head_laplace(*args, prior_mean=w, prior_precision=np.eye(n))
    )
    # O(B·K + B·(D+1) + K²(D+1)²) plus one 8 MiB chunk (a fifth of the old work array):
    # a few (B, K) and (B, D+1) arrays, the K(D+1)-square precision, factor and inverse.
    bound = 8 * b * (6 * k + 2 * (d + 1)) + 4 * 8 * n * n + 2 * 8 * (1 << 20)
    assert peak < bound, (peak, bound)


def test_dempster_combine_memory_grows_like_2_to_the_n() -> None:
    # Issue 12: the (2^n, 2^n) intersection and product tables needed O(4^n) memory.
    rng = np.random.default_rng(2)
    n = 12
    m1, m2 = rng.random(1 << n), rng.random(1 << n)
    m1[0] = m2[0] = 0.0
    m1, m2 = m1 / m1.sum(), m2 / m2.sum()
    peak = _peak_bytes(lambda: bogc_ref.dempster_combine(m1, m2))
    assert peak < 64 * 2**20, peak  # 4^12 pairs of (int64, float64) would be 256 MiB


def test_dempster_combine_agrees_with_the_full_table() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 3, 6):
        m1, m2 = rng.random(1 << n) * (rng.random(1 << n) < 0.5), rng.random(1 << n)
        m1[0] = m2[0] = 0.0
        m1[-1] += 0.1
        m1, m2 = m1 / m1.sum(), m2 / m2.sum()
        subsets = np.arange(1 << n)
        table = np.bincount(
            np.bitwise_and.outer(subsets, subsets).ravel(),
            weights=np.outer(m1, m2).ravel(),
            minlength=1 << n,
        )
        table[0] = 0.0
        np.testing.assert_allclose(
            bogc_ref.dempster_combine(m1, m2), table / table.sum(), rtol=1e-14, atol=1e-17
        )
