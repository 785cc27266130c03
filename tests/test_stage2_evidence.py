"""Stage 2: precision to evidence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import gmean

import bogc_ref

positive_vars = st.floats(1e-12, 1e12, allow_nan=False)


@st.composite
def variances(draw: st.DrawFn) -> np.ndarray:
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=5), label="shape")
    return draw(hnp.arrays(np.float64, shape, elements=positive_vars), label="var")


@given(variances(), st.floats(0.25, 3.0))
def test_relative_mode_matches_geometric_mean_formula(var: np.ndarray, power: float) -> None:
    lam = 1.0 / var
    flat = lam.reshape(-1, *lam.shape[-2:])
    ref = np.array([gmean(block, axis=None) for block in flat]).reshape(*lam.shape[:-2], 1, 1)
    expected = (lam / ref) ** power
    np.testing.assert_allclose(bogc_ref.evidence(var, power=power), expected, rtol=1e-11)


@given(variances(), st.floats(1e-6, 1e6), st.floats(0.25, 3.0))
def test_fixed_mode_formula(var: np.ndarray, tau: float, power: float) -> None:
    expected = (1.0 / (var * tau)) ** power
    out = bogc_ref.evidence(var, mode="fixed", tau=tau, power=power)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@given(variances(), st.sampled_from([1e-15, 1e-3, 7.0, 1e15]))
def test_relative_mode_scale_equivariance(var: np.ndarray, scale: float) -> None:
    base = bogc_ref.evidence(var)
    scaled = bogc_ref.evidence(var * scale**2)
    np.testing.assert_allclose(scaled, base, rtol=1e-12)
    rng = np.random.default_rng(0)
    mean = rng.normal(size=var.shape)
    grad = bogc_ref.calibrate(mean, var).grad
    # grad is a sum of terms b_m μ_m: where they cancel, only an absolute error of the
    # terms' size, rtol · max|μ|, is meaningful.
    np.testing.assert_allclose(
        bogc_ref.calibrate(mean * scale, var * scale**2).grad,
        grad * scale,
        rtol=1e-12,
        atol=1e-12 * scale * np.abs(mean).max(),
    )


@given(variances(), st.sampled_from(["relative", "fixed"]), st.data())
def test_evidence_monotone_in_precision(var: np.ndarray, mode: str, data: st.DataObject) -> None:
    tau = 1.0 if mode == "fixed" else None
    e = bogc_ref.evidence(var, mode=mode, tau=tau)  # type: ignore[arg-type]
    # Within one leading index, a larger precision never gets less evidence ...
    lam = 1.0 / var
    block_lam = lam.reshape(-1, lam.shape[-2] * lam.shape[-1])
    block_e = e.reshape(block_lam.shape)
    for row_lam, row_e in zip(block_lam, block_e, strict=True):
        order = np.argsort(row_lam, kind="stable")
        assert np.all(np.diff(row_e[order]) >= -1e-12 * row_e[order][1:])
    # ... and raising one entry's precision never lowers that entry's evidence.
    index = tuple(
        data.draw(st.integers(0, n - 1), label=f"axis{i}") for i, n in enumerate(var.shape)
    )
    sharper = var.copy()
    sharper[index] /= data.draw(st.floats(1.0, 1e6), label="factor")
    assert bogc_ref.evidence(sharper, mode=mode, tau=tau)[index] >= e[index] * (1 - 1e-12)  # type: ignore[arg-type]


def test_special_values_and_mask() -> None:
    var = np.array([[0.0, np.inf, 2.0], [1.0, 4.0, np.nan], [8.0, 1.0, 1.0]])
    mask = np.array([True, False, True])
    e = bogc_ref.evidence(var, mask=mask)
    assert np.isposinf(e[0, 0]) and e[0, 1] == 0.0
    assert np.all(e[1] == 0.0)  # absent: ignored, even its NaN
    informative = np.array([2.0, 8.0, 1.0, 1.0])  # finite positive vars of present sources
    lam_ref = gmean(1.0 / informative)
    np.testing.assert_allclose(e[2], (1.0 / np.array([8.0, 1.0, 1.0])) / lam_ref, rtol=1e-13)


def test_no_informative_entry_gives_zero_except_dogmatic() -> None:
    var = np.array([[0.0, np.inf], [np.inf, np.inf]])
    e = bogc_ref.evidence(var)
    np.testing.assert_array_equal(e, [[np.inf, 0.0], [0.0, 0.0]])


def test_leading_axes_have_their_own_reference() -> None:
    var = np.stack([np.full((2, 3), 1.0), np.full((2, 3), 100.0)])
    np.testing.assert_allclose(bogc_ref.evidence(var), np.ones((2, 2, 3)), rtol=4e-15)


@pytest.mark.parametrize(
    ("dtype", "tiny", "huge"), [(np.float32, 1e-15, 1e15), (np.float64, 1e-300, 1e300)]
)
def test_evidence_saturates_instead_of_becoming_dogmatic(
    dtype: type, tiny: float, huge: float
) -> None:
    var = np.array([[tiny], [huge]], dtype=dtype)
    e = bogc_ref.evidence(var, power=3.0)
    assert np.isfinite(e).all() and e[0, 0] == np.finfo(dtype).max
    out = bogc_ref.calibrate(np.ones_like(var), var, power=3.0)
    assert np.isfinite(out.evidence).all()


@pytest.mark.parametrize("mode, tau", [("relative", None), ("fixed", 0.5)])
def test_evidence_dtype(mode: str, tau: float | None) -> None:
    for dtype in (np.float32, np.float64):
        var = np.ones((2, 3), dtype=dtype)
        assert bogc_ref.evidence(var, mode=mode, tau=tau).dtype == dtype  # type: ignore[arg-type]
