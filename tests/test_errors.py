"""Bad input: every rejection names the argument, what is wrong and where."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import bogc_ref

M3 = np.ones((3, 4))


def with_value(index: tuple[int, ...], value: float, base: np.ndarray = M3) -> np.ndarray:
    arr = base.copy()
    arr[index] = value
    return arr


RNG = np.random.default_rng(0)
H = RNG.normal(size=(3, 2))
Y = RNG.normal(size=(3, 2))
W = RNG.normal(size=(2, 3))
COV_ROWS = np.stack([np.eye(3)] * 2)
COV_FULL = np.eye(6)
LABELS = np.array([0, 1, 1])

# (id, call, exception, pattern): the pattern must name the argument and, where it applies,
# the index and the shape.
CASES: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    (
        "nan-mean",
        lambda: bogc_ref.calibrate(with_value((1, 2), np.nan), M3),
        ValueError,
        r"mean: NaN in a present source at index \(1, 2\) \(1 entry; shape \(3, 4\)\)",
    ),
    (
        "inf-mean",
        lambda: bogc_ref.calibrate(with_value((0, 3), -np.inf), M3),
        ValueError,
        r"mean: infinite value in a present source at index \(0, 3\).*shape \(3, 4\)",
    ),
    (
        "nan-var",
        lambda: bogc_ref.calibrate(M3, with_value((2, 0), np.nan)),
        ValueError,
        r"var: NaN in a present source at index \(2, 0\).*shape \(3, 4\)",
    ),
    (
        "negative-var",
        lambda: bogc_ref.calibrate(M3, with_value((2, 1), -1.0)),
        ValueError,
        r"var: negative variance in a present source at index \(2, 1\).*shape \(3, 4\)",
    ),
    (
        "shape-mismatch",
        lambda: bogc_ref.calibrate(M3, np.ones((3, 5))),
        ValueError,
        r"var: expected shape \(3, 4\) \(the shape of mean\), got \(3, 5\)",
    ),
    (
        "rank",
        lambda: bogc_ref.calibrate(np.ones(4), np.ones(4)),
        ValueError,
        r"mean: expected at least 2 dimensions \(\.\.\., M, D\), got shape \(4,\)",
    ),
    (
        "int-mean",
        lambda: bogc_ref.calibrate(np.ones((3, 4), int), M3),
        TypeError,
        r"mean: expected a float32 or float64 array, got dtype int64 \(shape \(3, 4\)\)",
    ),
    (
        "complex-var",
        lambda: bogc_ref.calibrate(M3, M3.astype(complex)),
        TypeError,
        r"var: expected a float32 or float64 array, got dtype complex128",
    ),
    (
        "half-var",
        lambda: bogc_ref.calibrate(M3, M3.astype(np.float16)),
        TypeError,
        r"var: expected a float32 or float64 array, got dtype float16",
    ),
    (
        "dtype-mismatch",
        lambda: bogc_ref.calibrate(M3, M3.astype(np.float32)),
        TypeError,
        r"var: dtype float32 does not match mean's dtype float64",
    ),
    (
        "mask-dtype",
        lambda: bogc_ref.calibrate(M3, M3, mask=np.ones(3)),
        TypeError,
        r"mask: expected a boolean array, got dtype float64",
    ),
    (
        "mask-shape",
        lambda: bogc_ref.calibrate(M3, M3, mask=np.ones(4, bool)),
        ValueError,
        r"mask: shape \(4,\) does not broadcast to the sources shape \(3,\)",
    ),
    (
        "tau-missing",
        lambda: bogc_ref.calibrate(M3, M3, mode="fixed"),
        ValueError,
        r"tau: required when mode='fixed'",
    ),
    (
        "tau-relative",
        lambda: bogc_ref.calibrate(M3, M3, tau=1.0),
        ValueError,
        r"tau: only used with mode='fixed'",
    ),
    (
        "tau-negative",
        lambda: bogc_ref.evidence(M3, mode="fixed", tau=-1.0),
        ValueError,
        r"tau: must be finite and > 0, got -1.0",
    ),
    (
        "power-zero",
        lambda: bogc_ref.evidence(M3, power=0.0),
        ValueError,
        r"power: must be finite and > 0, got 0.0",
    ),
    (
        "power-nan",
        lambda: bogc_ref.calibrate(M3, M3, power=float("nan")),
        ValueError,
        r"power: must be finite and > 0",
    ),
    (
        "prior-weight",
        lambda: bogc_ref.calibrate(M3, M3, prior_weight=0),
        ValueError,
        r"prior_weight: must be finite and > 0, got 0",
    ),
    (
        "prior-weight-type",
        lambda: bogc_ref.reduced_dempster(M3, prior_weight="2"),
        TypeError,
        r"prior_weight: expected a positive real number, got str",
    ),
    (
        "mode",
        lambda: bogc_ref.calibrate(M3, M3, mode="absolute"),
        ValueError,
        r"mode: expected one of \('relative', 'fixed'\), got 'absolute'",
    ),
    (
        "normalize-type",
        lambda: bogc_ref.calibrate(M3, M3, normalize="yes"),
        TypeError,
        r"normalize: expected a bool, got str",
    ),
    (
        "evidence-negative",
        lambda: bogc_ref.reduced_dempster(with_value((0, 1), -2.0)),
        ValueError,
        r"evidence: negative evidence at index \(0, 1\).*shape \(3, 4\)",
    ),
    (
        "evidence-nan",
        lambda: bogc_ref.opinions(with_value((2, 3), np.nan)),
        ValueError,
        r"evidence: NaN at index \(2, 3\)",
    ),
    (
        "labels-range",
        lambda: bogc_ref.softmax_head_moments_linearized(H, np.array([0, 2, 1]), W, COV_FULL),
        ValueError,
        r"labels: label outside \[0, 2\) at index \(1,\) \(1 entry; shape \(3,\)\)",
    ),
    (
        "labels-float",
        lambda: bogc_ref.softmax_head_laplace(
            H, LABELS.astype(float), W, prior_mean=W, prior_precision=COV_FULL
        ),
        TypeError,
        r"labels: expected integer class labels, got dtype float64",
    ),
    (
        "labels-shape",
        lambda: bogc_ref.softmax_head_moments_linearized(H, LABELS[:2], W, COV_FULL),
        ValueError,
        r"labels: expected shape \(3,\) \(one label per row of h\), got \(2,\)",
    ),
    (
        "w-columns",
        lambda: bogc_ref.linear_head_moments(H, Y, W[:, :2], COV_ROWS),
        ValueError,
        r"w_mean: expected shape \(K, 3\) \(D\+1 columns.*got \(2, 2\)",
    ),
    (
        "w-cov-shape",
        lambda: bogc_ref.linear_head_moments(H, Y, W, COV_FULL),
        ValueError,
        r"w_cov: expected shape \(2, 3, 3\).*got \(6, 6\)",
    ),
    (
        "w-cov-asym",
        lambda: bogc_ref.softmax_head_moments_linearized(
            H, LABELS, W, with_value((0, 5), 0.5, COV_FULL)
        ),
        ValueError,
        r"w_cov: matrix is not symmetric at index \(0, 5\).*shape \(6, 6\)",
    ),
    (
        "h-nan",
        lambda: bogc_ref.linear_head_moments(with_value((1, 1), np.nan, H), Y, W, COV_ROWS),
        ValueError,
        r"h: NaN at index \(1, 1\).*shape \(3, 2\)",
    ),
    (
        "y-rows",
        lambda: bogc_ref.linear_head_moments(H, Y[:2], W, COV_ROWS),
        ValueError,
        r"y: expected 3 rows \(one per row of h\), got shape \(2, 2\)",
    ),
    (
        "noise-var",
        lambda: bogc_ref.linear_head_posterior(
            H, Y, prior_mean=W, prior_precision=np.eye(3), noise_var=0.0
        ),
        ValueError,
        r"noise_var: must be finite and > 0",
    ),
    (
        # No data and a zero (flat) prior: the posterior precision is 0.
        "not-pd",
        lambda: bogc_ref.linear_head_posterior(
            H[:0], Y[:0], prior_mean=W, prior_precision=np.zeros((3, 3)), noise_var=1.0
        ),
        np.linalg.LinAlgError,
        r"prior_precision: the posterior precision .*shape \(3, 3\) is not positive definite",
    ),
    (
        "prior-not-psd",
        lambda: bogc_ref.linear_head_posterior(
            H, Y, prior_mean=W, prior_precision=-10 * np.eye(3), noise_var=1.0
        ),
        np.linalg.LinAlgError,
        r"prior_precision: matrix of shape \(3, 3\) is not positive semi-definite "
        r"\(smallest eigenvalue -10",
    ),
    (
        "eps-and-n",
        lambda: bogc_ref.softmax_head_moments(
            H, LABELS, W, COV_FULL, eps=np.ones((4, 6)), n_samples=4
        ),
        ValueError,
        r"eps, n_samples: pass exactly one",
    ),
    (
        "eps-columns",
        lambda: bogc_ref.softmax_head_moments(H, LABELS, W, COV_FULL, eps=np.ones((4, 5))),
        ValueError,
        r"eps: expected shape \(S, 6\) \(K\(D\+1\) columns\), got \(4, 5\)",
    ),
    (
        "one-sample",
        lambda: bogc_ref.softmax_head_moments(H, LABELS, W, COV_FULL, n_samples=1, seed=0),
        ValueError,
        r"need at least 2 Monte Carlo samples, got 1",
    ),
    (
        "chunk",
        lambda: bogc_ref.softmax_head_moments(
            H, LABELS, W, COV_FULL, n_samples=4, seed=0, chunk_size=0
        ),
        ValueError,
        r"chunk_size: must be >= 1, got 0",
    ),
    (
        "seed-type",
        lambda: bogc_ref.softmax_head_moments(H, LABELS, W, COV_FULL, n_samples=4, seed=1.5),
        TypeError,
        r"seed: expected an int or None, got float",
    ),
    (
        "empirical-n",
        lambda: bogc_ref.empirical_moments(np.ones((1, 3))),
        ValueError,
        r"per_sample_grads: need N >= 2 samples on axis 0 for a variance, got shape \(1, 3\)",
    ),
    (
        "empirical-inf",
        lambda: bogc_ref.empirical_moments(with_value((0, 2), np.inf)),
        ValueError,
        r"per_sample_grads: infinite value at index \(0, 2\)",
    ),
    (
        "laplace-prior-shape",
        lambda: bogc_ref.softmax_head_laplace(
            H, LABELS, W, prior_mean=W[:1], prior_precision=COV_FULL
        ),
        ValueError,
        r"prior_mean: expected shape \(2, 3\) \(that of w\), got \(1, 3\)",
    ),
]


@pytest.mark.parametrize(
    ("call", "exc", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_rejected_with_a_message(
    call: Callable[[], Any], exc: type[Exception], pattern: str
) -> None:
    with pytest.raises(exc, match=pattern):
        call()


def test_masked_sources_may_hold_anything() -> None:
    mean = np.array([[1.0, 2.0], [np.nan, np.inf], [3.0, 4.0]])
    var = np.array([[1.0, 1.0], [np.nan, -1.0], [1.0, 1.0]])
    out = bogc_ref.calibrate(mean, var, mask=np.array([True, False, True]))
    assert np.all(np.isfinite(out.grad)) and np.all(out.belief[1] == 0.0)


def test_mask_broadcasts_over_leading_axes() -> None:
    mean = RNG.normal(size=(5, 3, 4))
    var = RNG.uniform(0.5, 2, size=(5, 3, 4))
    mask = np.array([True, False, True])
    out = bogc_ref.calibrate(mean, var, mask=mask)
    full = bogc_ref.calibrate(mean, var, mask=np.broadcast_to(mask, (5, 3)))
    np.testing.assert_array_equal(out.grad, full.grad)


def test_check_finite_false_skips_value_checks_only() -> None:
    out = bogc_ref.calibrate(with_value((0, 0), np.nan), M3, check_finite=False)
    assert np.isnan(out.grad[0])
    with pytest.raises(ValueError, match="var: expected shape"):
        bogc_ref.calibrate(M3, np.ones((2, 4)), check_finite=False)


# ---------------------------------------------------------------------------- issue 12
# Each test below failed before the input contract was hardened (issue 12).


def test_masked_arrays_are_refused_naming_the_argument() -> None:
    masked = np.ma.masked_array([[1.0, np.nan], [3.0, 4.0]], mask=[[0, 1], [0, 0]])
    with pytest.raises(TypeError, match=r"mean: masked arrays \(numpy.ma\) are not accepted"):
        bogc_ref.calibrate(masked, np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"h: masked arrays"):
        bogc_ref.linear_head_moments(np.ma.masked_array(H), Y, W, COV_ROWS)
    with pytest.raises(TypeError, match=r"mask: masked arrays"):
        bogc_ref.calibrate(M3, M3, mask=np.ma.masked_array(np.ones(3, bool)))
    with pytest.raises(TypeError, match=r"labels: masked arrays"):
        bogc_ref.softmax_head_moments_linearized(H, np.ma.masked_array(LABELS), W, COV_FULL)


@pytest.mark.parametrize(
    "call",
    [
        lambda: bogc_ref.calibrate(np.zeros((0, 3)), np.ones((0, 3))),
        lambda: bogc_ref.evidence(np.ones((2, 0, 3))),
        lambda: bogc_ref.opinions(np.ones((0, 3))),
        lambda: bogc_ref.reduced_dempster(np.ones((0, 3))),
    ],
    ids=["calibrate", "evidence", "opinions", "reduced_dempster"],
)
def test_no_sources_is_an_error_naming_the_sources_axis(call: Callable[[], Any]) -> None:
    with pytest.raises(ValueError, match=r"the sources axis \(axis -2, M\) is empty"):
        call()


def test_empty_dimensions_and_leading_axes_give_empty_results() -> None:
    out = bogc_ref.calibrate(np.ones((2, 0)), np.ones((2, 0)))
    assert out.grad.shape == (0,) and out.belief.shape == (2, 0)
    out = bogc_ref.calibrate(np.ones((0, 2, 3)), np.ones((0, 2, 3)))
    assert out.grad.shape == (0, 3) and out.uncertainty.shape == (0, 3)


def test_covariance_that_is_not_psd_is_refused_with_its_smallest_eigenvalue() -> None:
    with pytest.raises(
        np.linalg.LinAlgError,
        match=r"w_cov\[0\]: matrix of shape \(2, 2\) is not positive semi-definite "
        r"\(smallest eigenvalue -1,",
    ):
        bogc_ref.linear_head_moments([[1.0]], [[0.0]], [[1.0, 0.0]], [[[-1.0, 0.0], [0.0, 0.0]]])
    h, labels, w = np.ones((1, 1)), np.array([0]), np.zeros((2, 2))
    with pytest.raises(np.linalg.LinAlgError, match=r"w_cov: .*smallest eigenvalue -1"):
        bogc_ref.softmax_head_moments_linearized(h, labels, w, -np.eye(4))


def test_zero_covariance_is_a_point_mass_not_an_error() -> None:
    out = bogc_ref.softmax_head_moments(
        np.ones((1, 1)), np.array([0]), np.zeros((2, 2)), np.zeros((4, 4)), n_samples=3, seed=0
    )
    np.testing.assert_array_equal(out.var, [[0.0]])


def test_huge_representation_does_not_give_nan() -> None:
    # Equal rows: p = (1/2, 1/2) exactly, A = 0; var = r_0² + r_1² = 1/2 with Σ = I.
    out = bogc_ref.softmax_head_moments_linearized(
        np.array([[1e200]]), np.array([0]), np.full((2, 2), 0.5), np.eye(4)
    )
    np.testing.assert_allclose(out.var, [[0.5]], rtol=1e-15)
    np.testing.assert_array_equal(out.mean, [[0.0]])


def test_huge_power_saturates_finite_evidence_instead_of_making_it_dogmatic() -> None:
    var = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    e = bogc_ref.evidence(var, mode="fixed", tau=1e-10, power=1e308)
    assert not np.isinf(e).any()
    assert np.all(e == np.finfo(np.float64).max)
    out = bogc_ref.calibrate(np.ones((2, 3)), var, mode="fixed", tau=1e-10, power=1e308)
    np.testing.assert_allclose(out.belief.sum(axis=0) + out.uncertainty, 1.0, rtol=1e-15)
    np.testing.assert_allclose(out.belief, 0.5)  # two saturated sources share equally


def test_no_runtime_warning_escapes_from_an_extreme_valid_call() -> None:
    # pytest turns warnings into errors (pyproject); this call used to overflow noisily.
    var = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    out = bogc_ref.calibrate(np.ones((4, 2)), var, power=1e308, prior_weight=1e-300)
    assert np.all(np.isfinite(out.grad))


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (
            lambda: bogc_ref.softmax_head_moments_linearized(
                H, LABELS[:0], np.zeros((0, 3)), np.zeros((0, 0))
            ),
            r"w_mean: a softmax head needs K >= 1 classes",
        ),
        (
            lambda: bogc_ref.linear_head_posterior(
                np.ones((2, 1)),
                np.ones((2, 1)),
                prior_mean=np.zeros((1, 2)),
                prior_precision=np.eye(2),
                noise_var=1e-320,
            ),
            r"noise_var.*non-finite entries \(float64 overflow\)",
        ),
        (
            lambda: bogc_ref.softmax_head_moments(H, LABELS, W, COV_FULL, n_samples=4, seed=-1),
            r"seed: must be >= 0, got -1",
        ),
    ],
    ids=["K=0", "noise_var=1e-320", "seed=-1"],
)
def test_former_unclear_errors_name_the_argument(call: Callable[[], Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        call()


def test_numpy_matrix_is_read_as_its_plain_array() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        mean = np.asmatrix(RNG.normal(size=(3, 4)))
    var = RNG.uniform(0.5, 2, size=(3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        got = bogc_ref.reduced_dempster(np.asmatrix(var))
    assert type(got.belief) is np.ndarray
    np.testing.assert_array_equal(got.belief, bogc_ref.reduced_dempster(var).belief)
    np.testing.assert_array_equal(
        bogc_ref.calibrate(mean, var).grad, bogc_ref.calibrate(np.asarray(mean), var).grad
    )
    grads = np.asarray(mean)
    expected = bogc_ref.empirical_moments(grads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        matrix = np.asmatrix(grads)
    got_m = bogc_ref.empirical_moments(matrix)
    assert got_m.mean.shape == (4,)
    np.testing.assert_array_equal(got_m.mean, expected.mean)


def test_validation_beyond_memory_names_the_argument() -> None:
    # A zero-cost view of 2**48 entries: any check on it would need 256 TiB, beyond any
    # address space, so the allocation fails at once (it cannot be overcommitted).
    huge = np.broadcast_to(np.float64(1.0), (2**24, 2**24))
    with pytest.raises(MemoryError, match=r"^mean: checking an argument of shape"):
        bogc_ref.calibrate(huge, huge)
    with pytest.raises(MemoryError, match=r"^evidence: checking an argument of shape"):
        bogc_ref.reduced_dempster(huge)


def test_empirical_moments_near_float64_max_neither_warn_nor_overflow_the_mean() -> None:
    g = np.array([[1e308, -1e308], [1.5e308, -1.2e308], [1.2e308, -1.7e308]])
    out = bogc_ref.empirical_moments(g)  # warnings are errors under pytest
    np.testing.assert_allclose(out.mean, [1.2333333333333333e308, -1.3e308], rtol=1e-15)
    scaled = g / 1e307  # var(G)/N = 1e614 var(G/1e307)/N: beyond float64, a correct inf
    assert np.all(np.isinf(out.var)) and np.all(np.var(scaled, axis=0, ddof=1) > 0)
