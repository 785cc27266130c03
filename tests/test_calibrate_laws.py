"""The reference's own property tests: every packaged law, run on the reference.

The laws and strategies are those of ``bogc_ref.conformance`` (what ``bogc-ref verify
--properties`` runs on third-party code). A second group shows that each kind of law can
fail: small hand-made defects make them raise.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bogc_ref
from bogc_ref.conformance import laws, strategies
from bogc_ref.conformance.laws import LAWS, Example


def _available(name: str) -> bool:
    try:
        from bogc_ref.backends import available_backends
    except ImportError:
        return False
    return name in available_backends()


def _cuda() -> bool:
    if not _available("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())


#: Every implementation the law battery runs over: the reference and each bundled backend.
IMPLEMENTATIONS = [
    pytest.param("reference", id="reference"),
    pytest.param(
        "backend:torch@cpu",
        id="torch-cpu",
        marks=pytest.mark.skipif(not _available("torch"), reason="PyTorch is not installed"),
    ),
    pytest.param(
        "backend:torch@cuda",
        id="torch-cuda",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not _cuda(), reason="no CUDA device")],
    ),
    pytest.param(
        "backend:cupy@cuda",
        id="cupy-cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not _available("cupy"), reason="CuPy with a CUDA device is absent"),
        ],
    ),
]


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "reference":
        yield bogc_ref
        return
    from bogc_ref.conformance.loading import open_candidate

    with open_candidate(request.param) as candidate:  # the backend in its own process
        yield candidate


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("law", LAWS, ids=[law.name for law in LAWS])
@given(data=st.data())
def test_implementation_satisfies_law(
    implementation: Any, law: laws.Law, dtype: str, data: st.DataObject
) -> None:
    example = data.draw(strategies.for_law(law.name, dtype), label=law.name)
    law.check(implementation, example)


def _candidate(**overrides: Any) -> SimpleNamespace:
    base = {f: getattr(bogc_ref, f) for f in bogc_ref.__all__}
    base.update(overrides)
    return SimpleNamespace(**base)


def _example(mean: list[list[float]], var: list[list[float]], **kwargs: Any) -> Example:
    return Example(
        "calibrate",
        {"mean": np.array(mean), "var": np.array(var)},
        ("mean", "var"),
        kwargs,
    )


ORDINARY = _example([[1.0, -2.0, 0.5], [3.0, 2.0, -1.0]], [[1.0, 4.0, 0.5], [2.0, 0.25, 3.0]])


def test_permutation_law_catches_an_order_dependent_candidate() -> None:
    def first_source_favoured(mean: Any, var: Any, **kw: Any) -> Any:
        var = np.array(var)
        var[..., 0, :] /= 2.0
        return bogc_ref.calibrate(mean, var, **kw)

    ex = Example(ORDINARY.function, ORDINARY.arrays, ORDINARY.positional, {}, {"perm": [1, 0]})
    laws.calibrate_permutation_equivariance(bogc_ref, ex)
    with pytest.raises(AssertionError, match="reproduce:"):
        laws.calibrate_permutation_equivariance(_candidate(calibrate=first_source_favoured), ex)


def test_scale_law_catches_an_absolute_threshold() -> None:
    def floored(mean: Any, var: Any, **kw: Any) -> Any:
        return bogc_ref.calibrate(mean, np.maximum(var, 1.0), **kw)

    ex = Example(ORDINARY.function, ORDINARY.arrays, ORDINARY.positional, {}, {"scale": 1e-3})
    laws.calibrate_scale_equivariance(bogc_ref, ex)
    with pytest.raises(AssertionError, match="calibrate_scale_equivariance"):
        laws.calibrate_scale_equivariance(_candidate(calibrate=floored), ex)


def test_hull_and_mass_laws_catch_an_overshoot() -> None:
    def doubled(mean: Any, var: Any, **kw: Any) -> Any:
        out = bogc_ref.calibrate(mean, var, **kw)
        return out._replace(grad=3.0 * out.grad, belief=2.0 * out.belief)

    with pytest.raises(AssertionError, match="outside"):
        laws.calibrate_grad_in_hull(_candidate(calibrate=doubled), ORDINARY)
    with pytest.raises(AssertionError, match="calibrate_masses"):
        laws.calibrate_masses(_candidate(calibrate=doubled), ORDINARY)


def test_mask_law_catches_a_candidate_that_ignores_the_mask() -> None:
    ex = Example(
        "calibrate",
        {
            "mean": np.array([[1.0, 2.0], [np.nan, np.nan], [-1.0, 4.0]]),
            "var": np.array([[1.0, 2.0], [0.5, 0.5], [3.0, 1.0]]),
            "mask": np.array([True, False, True]),
        },
        ("mean", "var"),
        {"prior_weight": 3.0},
    )
    laws.calibrate_mask_equals_removal(bogc_ref, ex)

    def unmasked(mean: Any, var: Any, *, mask: Any = None, **kw: Any) -> Any:
        return bogc_ref.calibrate(np.nan_to_num(mean), var, **kw)

    with pytest.raises(AssertionError, match="calibrate_mask_equals_removal"):
        laws.calibrate_mask_equals_removal(_candidate(calibrate=unmasked), ex)


def test_bayes_identities_catch_a_wrong_prior_weight() -> None:
    ex = _example([[1.0, -2.0], [3.0, 2.0]], [[1.0, 4.0], [2.0, 0.25]], mode="fixed", tau=0.5)
    laws.calibrate_bayes_identity(bogc_ref, ex)

    def w_one(mean: Any, var: Any, **kw: Any) -> Any:
        return bogc_ref.calibrate(mean, var, **{**kw, "prior_weight": 1.0})

    with pytest.raises(AssertionError, match="calibrate_bayes_identity"):
        laws.calibrate_bayes_identity(_candidate(calibrate=w_one), ex)


def test_vacuous_identity_catches_a_candidate_counting_sources() -> None:
    ex = Example(
        "reduced_dempster",
        {"evidence": np.array([[1.0, 2.0], [0.5, 3.0]])},
        ("evidence",),
        {},
        {"position": 1},
    )
    laws.reduced_dempster_vacuous_identity(bogc_ref, ex)

    def w_is_m(e: Any, *, prior_weight: Any = None) -> Any:
        return bogc_ref.reduced_dempster(e)  # drops the explicit W: W becomes M

    with pytest.raises(AssertionError, match="vacuous"):
        laws.reduced_dempster_vacuous_identity(_candidate(reduced_dempster=w_is_m), ex)


def test_bayes_posterior_mean_is_the_conjugate_formula() -> None:
    # One observation, prior N(0, 1/(W tau)): posterior mean = lambda mu / (W tau + lambda).
    got = laws.bayes_posterior_mean(np.array([[2.0]]), np.array([[0.25]]), 0.5, 2.0, False)
    assert got.tolist() == [2.0 * 4.0 / (1.0 + 4.0)]


def test_reproduction_snippet_rebuilds_the_example() -> None:
    ex = Example(
        "calibrate",
        {
            "mean": np.array([[np.nan, np.nan], [1.5, -2.0]], dtype=np.float32),
            "var": np.array([[np.nan, 1.0], [np.inf, 0.0]], dtype=np.float32),
            "mask": np.array([False, True]),
        },
        ("mean", "var"),
        {"normalize": True},
    )
    namespace: dict[str, Any] = {}
    code = ex.code(bogc_ref)
    assert "np.bool" not in code  # absent from NumPy 1.26
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(code, namespace)
    rebuilt = namespace["example"]
    np.testing.assert_array_equal(rebuilt.arrays["mean"], ex.arrays["mean"])
    np.testing.assert_array_equal(rebuilt.arrays["var"], ex.arrays["var"])
    np.testing.assert_array_equal(rebuilt.arrays["mask"], ex.arrays["mask"])
    assert rebuilt.arrays["mean"].dtype == np.float32 and rebuilt.kwargs == ex.kwargs
    assert printed.getvalue().startswith("Calibration(grad=")
