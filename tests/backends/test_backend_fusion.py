"""calibrate, evidence, opinions and reduced_dempster of each backend against the reference.

Expected values come from the NumPy reference (float64 inside), an independent code
path: the backends compute in the input precision with a different (fused) algorithm.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from backend_cases import to_numpy, tolerance

import bogc_ref

DTYPES = [np.float64, np.float32]


def _inputs(dtype: Any, seed: int = 0, lead: tuple[int, ...] = (2,), m: int = 3, d: int = 40):
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal((*lead, m, d)).astype(dtype)
    var = np.exp(rng.uniform(-6.0, 6.0, (*lead, m, d))).astype(dtype)
    flat_var = var.reshape(-1, m, d)
    flat_var[0, 0, 1] = 0.0  # one dogmatic source
    flat_var[0, 1, 2] = flat_var[0, 2, 2] = 0.0  # two dogmatic sources share
    flat_var[0, :, 3] = np.inf  # vacuous dimension: no evidence at all
    flat_var[-1, 1, 4] = np.inf
    mask = np.ones((*lead, m), dtype=bool)
    mask.reshape(-1, m)[-1, 2] = False
    mean.reshape(-1, m, d)[-1, 2, :] = np.nan  # absent source: its mean is ignored
    return mean, var, mask


def _close(actual: Any, expected: np.ndarray, rtol: float, scale: np.ndarray | None = None):
    got = to_numpy(actual)
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(expected))
    finite = np.isfinite(expected)
    ref_scale = np.abs(expected) if scale is None else scale
    bound = rtol * np.maximum(ref_scale, np.finfo(np.float64).tiny) + rtol * 1e-30
    err = np.abs(np.where(finite, got, 0.0) - np.where(finite, expected, 0.0))
    assert np.all(err[finite] <= bound[finite]), float(np.max((err / bound)[finite]))


KWARGS = [
    {},
    {"normalize": True},
    {"mode": "fixed", "tau": 3.0, "power": 0.5},
    {"prior_weight": 1e-3, "power": 2.0},
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kwargs", KWARGS, ids=["default", "normalize", "fixed", "w-power"])
def test_calibrate_matches_reference(backend: Any, dtype: Any, kwargs: dict[str, Any]) -> None:
    mean, var, mask = _inputs(dtype)
    ref = bogc_ref.calibrate(mean, var, mask=mask, **kwargs)
    out = backend.calibrate(
        backend.from_numpy(mean), backend.from_numpy(var), mask=backend.from_numpy(mask), **kwargs
    )
    # float32: the log-evidence carries |p log var| of magnitude up to ~2p·6·ln10... scaled eps.
    rtol = tolerance(dtype) * (1.0 if dtype == np.float64 else 1.0 + 2 * kwargs.get("power", 1))
    # grad: error relative to Σ_m |b_m μ_m|, the size of the terms that were added.
    terms = np.nansum(
        np.abs(ref.belief.astype(np.float64) * np.where(mask[..., None], mean, 0)), -2
    )
    _close(out.grad, ref.grad, 4 * rtol, scale=terms)
    _close(out.belief, ref.belief, rtol, scale=np.maximum(np.abs(ref.belief), 1e-30))
    _close(out.uncertainty, ref.uncertainty, rtol)
    _close(out.evidence, ref.evidence, 4 * rtol)


def test_calibrate_dogmatic_and_vacuous_exact(backend: Any) -> None:
    mean, var, mask = _inputs(np.float64)
    out = backend.calibrate(
        backend.from_numpy(mean), backend.from_numpy(var), mask=backend.from_numpy(mask)
    )
    belief, unc, grad = (to_numpy(x) for x in (out.belief, out.uncertainty, out.grad))
    np.testing.assert_array_equal(belief[0, :, 1], [1.0, 0.0, 0.0])  # one dogmatic source
    np.testing.assert_array_equal(belief[0, :, 2], [0.0, 0.5, 0.5])  # two share equally
    assert unc[0, 1] == 0.0 and unc[0, 2] == 0.0
    assert unc[0, 3] == 1.0 and grad[0, 3] == 0.0  # no evidence: û = 1, no update
    assert np.all(np.isfinite(grad))  # the absent source's NaN mean never leaks
    assert np.all(belief[1, 2] == 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_calibrate_extreme_precisions(backend: Any, dtype: Any) -> None:
    span = 30 if dtype == np.float64 else 15
    rng = np.random.default_rng(3)
    var = (10.0 ** rng.uniform(-span, span, (3, 64))).astype(dtype)
    mean = rng.standard_normal((3, 64)).astype(dtype)
    ref = bogc_ref.calibrate(mean, var, normalize=True)
    out = backend.calibrate(backend.from_numpy(mean), backend.from_numpy(var), normalize=True)
    grad = to_numpy(out.grad)
    assert np.all(np.isfinite(grad))
    scale = np.sum(np.abs(mean.astype(np.float64)), axis=0)
    rtol = tolerance(dtype) * (1 if dtype == np.float64 else 2 * span)
    _close(out.grad, ref.grad, 4 * rtol, scale=scale)


@pytest.mark.parametrize("dtype", DTYPES)
def test_evidence_and_opinions_match_reference(backend: Any, dtype: Any) -> None:
    _, var, mask = _inputs(dtype, seed=5)
    rtol = tolerance(dtype) * (1 if dtype == np.float64 else 4)
    xv, xm = backend.from_numpy(var), backend.from_numpy(mask)
    _close(backend.evidence(xv, mask=xm), bogc_ref.evidence(var, mask=mask), rtol)
    fixed = {"mode": "fixed", "tau": 0.5, "power": 1.5}
    _close(backend.evidence(xv, **fixed), bogc_ref.evidence(var, **fixed), rtol)
    e = bogc_ref.evidence(var, mask=mask)
    for name in ("opinions", "reduced_dempster"):
        ref = getattr(bogc_ref, name)(e, prior_weight=2.0)
        got = getattr(backend, name)(backend.from_numpy(e), prior_weight=2.0)
        _close(got.belief, ref.belief, rtol, scale=np.maximum(np.abs(ref.belief), 1e-30))
        _close(got.uncertainty, ref.uncertainty, rtol)


BAD_CASES = [
    ("mean", lambda mean, var: (np.where(np.arange(4) == 2, np.nan, mean), var), {}),
    ("mean", lambda mean, var: (np.where(np.arange(4) == 1, np.inf, mean), var), {}),
    ("var", lambda mean, var: (mean, -var), {}),
    ("var", lambda mean, var: (mean, var[:, :3]), {}),
    ("var", lambda mean, var: (mean, var.astype(np.float32)), {}),
    ("mean", lambda mean, var: (mean[0], var[0]), {}),
    ("mask", lambda mean, var: (mean, var), {"mask": np.ones(3, dtype=np.int64)}),
    ("tau", lambda mean, var: (mean, var), {"mode": "fixed"}),
    ("power", lambda mean, var: (mean, var), {"power": -1.0}),
    ("prior_weight", lambda mean, var: (mean, var), {"prior_weight": 0.0}),
    ("normalize", lambda mean, var: (mean, var), {"normalize": 1}),
]


@pytest.mark.parametrize("case", range(len(BAD_CASES)))
def test_bad_input_raises_the_reference_error(backend: Any, case: int) -> None:
    name, make, kwargs = BAD_CASES[case]
    mean, var = make(np.zeros((2, 4)), np.ones((2, 4)))
    with pytest.raises((TypeError, ValueError)) as expected:
        bogc_ref.calibrate(mean, var, **kwargs)
    assert str(expected.value).startswith(name)
    native = {
        k: backend.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()
    }
    with pytest.raises(type(expected.value)) as got:
        backend.calibrate(backend.from_numpy(mean), backend.from_numpy(var), **native)
    assert str(got.value) == str(expected.value)


def test_check_finite_false_skips_the_check(backend: Any) -> None:
    mean = np.array([[1.0, np.nan], [2.0, 3.0]])
    var = np.ones((2, 2))
    out = backend.calibrate(backend.from_numpy(mean), backend.from_numpy(var), check_finite=False)
    grad = to_numpy(out.grad)
    # e = 1 for both sources, W = M = 2: b̂ = 1 / (2 + 2) each, so grad[0] = (1 + 2) / 4.
    assert np.isnan(grad[1]) and grad[0] == pytest.approx(0.75)  # NaN stays where it was


def test_evidence_errors_name_the_argument(backend: Any) -> None:
    var = np.ones((2, 3))
    var[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"^var: NaN in a present source at index \(1, 2\)"):
        backend.evidence(backend.from_numpy(var))
    with pytest.raises(ValueError, match=r"^evidence: negative evidence at index \(0, 0\)"):
        backend.reduced_dempster(backend.from_numpy(-np.ones((2, 3))))


@pytest.mark.parametrize("dtype", DTYPES)
def test_evidence_beyond_the_dtype_range_saturates(backend: Any, dtype: Any) -> None:
    tiny, huge = (1e-300, 1e300) if dtype == np.float64 else (1e-15, 1e15)
    var = np.array([[tiny], [huge]], dtype=dtype)
    got = to_numpy(backend.evidence(backend.from_numpy(var), power=3.0))
    np.testing.assert_array_equal(got, bogc_ref.evidence(var, power=3.0))
    assert got[0, 0] == np.finfo(dtype).max


def _special_dims(var: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Dogmatic, vacuous, all-vacuous, masked and lone-informative dimensions (lead, M, D)."""
    var[0, 0, 0] = 0.0  # one dogmatic source
    var[0, 1:, 1] = 0.0  # two dogmatic sources share
    var[0, :, 2] = np.inf  # no evidence in this dimension
    var[0, 1:, 3] = np.inf  # one informative source alone
    var[0, 2, 4] = 0.0  # dogmatic next to two informative ones
    var[0, 0, 4] = np.inf
    var[1] = np.inf  # a leading index without any informative entry
    var[1, 1, 5] = 0.0  # ... except one dogmatic one
    var[2, 1] = np.finfo(var.dtype).tiny  # the smallest normal variance everywhere
    mask = np.ones(var.shape[:-1], dtype=bool)
    mask[3, 2] = False
    mean[3, 2] = np.nan  # ignored: the source is absent
    var[3, 2, :4] = 0.0  # absent dogmatic sources do not count
    return mask


RANGE_KWARGS = [
    {},
    {"normalize": True},
    {"prior_weight": 1e-6},
    {"prior_weight": 1e6, "normalize": True},
    {"mode": "fixed", "tau": 2.5},
    {"mode": "fixed", "tau": 1e-40},  # 1/τ beyond float32: the log-domain fallback
    {"power": 0.5},
]


@pytest.fixture(scope="module")
def torch_candidate() -> Iterator[Any]:
    """The torch backend as the conformance harness sees it (one worker process)."""
    from bogc_ref.conformance.loading import open_candidate

    with open_candidate("backend:torch@cpu") as candidate:
        yield candidate


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kwargs", RANGE_KWARGS, ids=lambda k: ",".join(map(str, k.items())))
def test_calibrate_over_the_whole_spec_range(
    torch_candidate: Any, dtype: str, kwargs: dict[str, Any]
) -> None:
    """Every output against the reference under the conformance tolerances (law
    ``calibrate_matches_reference``), precisions log-uniform over the spec's range, with
    every special kind of dimension. p = 1 takes the variance-ratio path of pass 2."""
    from bogc_ref.conformance import laws

    span = 30 if dtype == "float64" else 15
    rng = np.random.default_rng(11)
    var = (10.0 ** rng.uniform(-span, span, (4, 3, 96))).astype(dtype)
    mean = (rng.standard_normal((4, 3, 96)) * 10.0 ** rng.uniform(-3, 3, (4, 3, 96))).astype(dtype)
    mask = _special_dims(var, mean)
    example = laws.Example("calibrate", {"mean": mean, "var": var, "mask": mask},
                           ("mean", "var"), dict(kwargs))  # fmt: skip
    laws.calibrate_matches_reference(torch_candidate, example)
