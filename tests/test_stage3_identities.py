"""Stage 3: Dempster's rule, its closed form and the identities of the spec."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import bogc_ref

RTOL = 1e-12
ATOL = 1e-15

evidence_values = st.one_of(st.just(0.0), st.floats(min_value=1e-3, max_value=1e3, allow_nan=False))


@st.composite
def evidence_matrix(draw: st.DrawFn, max_sources: int = 6) -> np.ndarray:
    m = draw(st.integers(1, max_sources), label="M")
    d = draw(st.integers(1, 4), label="D")
    return draw(hnp.arrays(np.float64, (m, d), elements=evidence_values), label="evidence")


@st.composite
def mass_function(draw: st.DrawFn, n: int) -> np.ndarray:
    """A random mass function over a frame of n elements with mass on the whole frame."""
    size = 1 << n
    weights = draw(hnp.arrays(np.float64, size - 1, elements=st.floats(0.0, 1.0)), label="weights")
    weights[-1] += 0.05  # the whole frame (index 2**n - 1) keeps positive mass
    masses = np.concatenate([[0.0], weights / weights.sum()])
    return masses


def support_mass(belief: float, uncertainty: float, source: int, n: int) -> np.ndarray:
    """Simple support function: ``belief`` on {source}, ``uncertainty`` on the frame."""
    masses = np.zeros(1 << n)
    masses[1 << source] += belief
    masses[(1 << n) - 1] += uncertainty
    return masses


@given(evidence_matrix(), st.one_of(st.none(), st.floats(0.1, 10.0)))
def test_closed_form_equals_folded_general_rule(e: np.ndarray, prior_weight: float | None) -> None:
    m, d = e.shape
    w = float(m) if prior_weight is None else prior_weight
    fused = bogc_ref.reduced_dempster(e, prior_weight=prior_weight)
    # With one source the frame would be {1} = Θ; a frame of at least two elements keeps the
    # singleton and the frame apart (the extra element is supported by no source).
    n = max(m, 2)
    singleton_index = [1 << i for i in range(m)]
    for dim in range(d):
        # Each source's simple support opinion, b = e/(e+W), u = W/(e+W), in plain float64.
        sources = [
            support_mass(e[i, dim] / (e[i, dim] + w), w / (e[i, dim] + w), i, n) for i in range(m)
        ]
        folded = functools.reduce(bogc_ref.dempster_combine, sources)
        np.testing.assert_allclose(
            folded[singleton_index], fused.belief[:, dim], rtol=RTOL, atol=ATOL
        )
        np.testing.assert_allclose(folded[-1], fused.uncertainty[dim], rtol=RTOL, atol=ATOL)
        others = np.delete(folded, [0, (1 << n) - 1, *singleton_index])
        assert np.all(others == 0.0)


@given(st.integers(1, 4).flatmap(lambda n: st.tuples(mass_function(n), mass_function(n))))
def test_general_rule_commutative(pair: tuple[np.ndarray, np.ndarray]) -> None:
    m1, m2 = pair
    np.testing.assert_allclose(
        bogc_ref.dempster_combine(m1, m2), bogc_ref.dempster_combine(m2, m1), rtol=1e-13, atol=1e-16
    )


@given(
    st.integers(1, 4).flatmap(
        lambda n: st.tuples(mass_function(n), mass_function(n), mass_function(n))
    )
)
def test_general_rule_associative(triple: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    m1, m2, m3 = triple
    combine = bogc_ref.dempster_combine
    np.testing.assert_allclose(
        combine(combine(m1, m2), m3), combine(m1, combine(m2, m3)), rtol=1e-12, atol=1e-15
    )


@given(st.integers(1, 4).flatmap(mass_function))
def test_vacuous_opinion_is_identity(masses: np.ndarray) -> None:
    vacuous = np.zeros_like(masses)
    vacuous[-1] = 1.0
    np.testing.assert_allclose(bogc_ref.dempster_combine(masses, vacuous), masses, rtol=1e-14)
    np.testing.assert_allclose(bogc_ref.dempster_combine(vacuous, masses), masses, rtol=1e-14)


@given(evidence_matrix(max_sources=5), st.floats(0.1, 10.0))
def test_vacuous_source_leaves_closed_form_unchanged(e: np.ndarray, w: float) -> None:
    with_vacuous = np.concatenate([e, np.zeros((1, e.shape[1]))])
    before = bogc_ref.reduced_dempster(e, prior_weight=w)
    after = bogc_ref.reduced_dempster(with_vacuous, prior_weight=w)
    np.testing.assert_allclose(after.belief[:-1], before.belief, rtol=RTOL, atol=ATOL)
    assert np.all(after.belief[-1] == 0.0)
    np.testing.assert_allclose(after.uncertainty, before.uncertainty, rtol=RTOL)


precisions = st.floats(1e-6, 1e6, allow_nan=False)


@st.composite
def gaussian_sources(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    m = draw(st.integers(1, 6), label="M")
    d = draw(st.integers(1, 5), label="D")
    mean = draw(hnp.arrays(np.float64, (m, d), elements=st.floats(-1e3, 1e3)), label="mean")
    lam = draw(hnp.arrays(np.float64, (m, d), elements=precisions), label="precision")
    return mean, 1.0 / lam


@given(gaussian_sources(), st.floats(1e-3, 1e3), st.one_of(st.none(), st.floats(0.1, 10.0)))
def test_bayesian_posterior_mean_identity(
    sources: tuple[np.ndarray, np.ndarray], tau: float, prior_weight: float | None
) -> None:
    mean, var = sources
    w = mean.shape[0] if prior_weight is None else prior_weight
    out = bogc_ref.calibrate(mean, var, mode="fixed", tau=tau, prior_weight=prior_weight)
    # Posterior of a common g: prior N(0, 1/(W tau)), observations mean_m ~ N(g, var_m).
    lam = 1.0 / var
    posterior_mean = (lam * mean).sum(0) / (w * tau + lam.sum(0))
    np.testing.assert_allclose(
        out.grad,
        posterior_mean,
        rtol=1e-11,
        atol=1e-12 * np.abs(mean).max() + np.finfo(np.float64).tiny,
    )


@given(gaussian_sources(), st.sampled_from(["relative", "fixed"]))
def test_normalize_gives_bayesagg_precision_weighted_mean(
    sources: tuple[np.ndarray, np.ndarray], mode: str
) -> None:
    mean, var = sources
    tau = 2.0 if mode == "fixed" else None
    out = bogc_ref.calibrate(mean, var, mode=mode, tau=tau, normalize=True)  # type: ignore[arg-type]
    lam = 1.0 / var
    weighted = (lam * mean).sum(0) / lam.sum(0)
    np.testing.assert_allclose(
        out.grad, weighted, rtol=1e-11, atol=1e-12 * np.abs(mean).max() + np.finfo(np.float64).tiny
    )


def test_normalize_with_no_evidence_gives_zero() -> None:
    mean = np.array([[1.0, 2.0], [3.0, 4.0]])
    var = np.array([[np.inf, 1.0], [np.inf, 1.0]])
    out = bogc_ref.calibrate(mean, var, normalize=True)
    assert out.grad[0] == 0.0 and out.uncertainty[0] == 1.0
    assert out.grad[1] == pytest.approx(3.0)


def test_dogmatic_rule_shares_belief_equally() -> None:
    e = np.array([[np.inf, 1.0, np.inf], [np.inf, 2.0, 5.0], [3.0, 0.0, np.inf]])
    fused = bogc_ref.reduced_dempster(e)
    np.testing.assert_array_equal(fused.belief[:, 0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(fused.belief[:, 1], [1 / 6, 2 / 6, 0.0], rtol=RTOL)
    np.testing.assert_array_equal(fused.belief[:, 2], [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(fused.uncertainty[[0, 2]], [0.0, 0.0])


@pytest.mark.parametrize("n_dogmatic", [1, 2, 3])
def test_dogmatic_limit_of_tiny_variance(n_dogmatic: int) -> None:
    rng = np.random.default_rng(n_dogmatic)
    mean = rng.normal(size=(4, 3))
    var = rng.uniform(0.5, 2.0, size=(4, 3))
    exact, tiny = var.copy(), var.copy()
    exact[:n_dogmatic] = 0.0
    tiny[:n_dogmatic] = 1e-200
    dogmatic = bogc_ref.calibrate(mean, exact)
    limit = bogc_ref.calibrate(mean, tiny)
    np.testing.assert_allclose(limit.belief, dogmatic.belief, rtol=1e-12, atol=1e-150)
    np.testing.assert_allclose(limit.grad, dogmatic.grad, rtol=1e-12)
    np.testing.assert_allclose(dogmatic.grad, mean[:n_dogmatic].mean(0), rtol=1e-15)
    assert np.all(dogmatic.uncertainty == 0.0)


def test_total_conflict_raises() -> None:
    only_first = np.array([0.0, 1.0, 0.0, 0.0])
    only_second = np.array([0.0, 0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="total conflict"):
        bogc_ref.dempster_combine(only_first, only_second)


@given(evidence_matrix(), st.one_of(st.none(), st.floats(0.1, 10.0)))
def test_opinions_formula(e: np.ndarray, prior_weight: float | None) -> None:
    w = e.shape[0] if prior_weight is None else prior_weight
    own = bogc_ref.opinions(e, prior_weight=prior_weight)
    np.testing.assert_allclose(own.belief, e / (e + w), rtol=RTOL)
    np.testing.assert_allclose(own.uncertainty, w / (e + w), rtol=RTOL)


def test_opinions_of_dogmatic_evidence() -> None:
    own = bogc_ref.opinions(np.array([[np.inf], [0.0]]))
    np.testing.assert_array_equal(own.belief, [[1.0], [0.0]])
    np.testing.assert_array_equal(own.uncertainty, [[0.0], [1.0]])


def test_no_evidence_is_full_uncertainty() -> None:
    fused = bogc_ref.reduced_dempster(np.zeros((3, 2)))
    assert np.all(fused.belief == 0.0) and np.all(fused.uncertainty == 1.0)


def test_dempster_combine_singleton_frame_rejects_bad_masses() -> None:
    with pytest.raises(ValueError, match="m1: index 0"):
        bogc_ref.dempster_combine(np.array([0.5, 0.5]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="m2: masses must sum to 1"):
        bogc_ref.dempster_combine(np.array([0.0, 1.0]), np.array([0.0, 0.5]))
    with pytest.raises(ValueError, match=r"m1: length must be 2\*\*n"):
        bogc_ref.dempster_combine(np.array([0.0, 0.5, 0.5]), np.array([0.0, 0.5, 0.5]))
