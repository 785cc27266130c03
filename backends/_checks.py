"""What each spec function checks, written once for every array backend.

One function per spec function takes zero-cost *stubs* of the array arguments (see
``_replay.stub``: NumPy arrays with the argument's dtype and shape, keyed by argument
name), runs the reference's own validation helpers on them (dtypes, shapes, scalar
arguments) and returns a :class:`Checked`: the sizes the backend needs, and a
description of the value checks still due (which arrays must be finite, which matrix
symmetric, the label range, which variances non-negative), which each backend evaluates
with its own array operations (``_replay.validate``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from bogc_ref._dempster import prior_weight_value
from bogc_ref._heads import covariance, head_weights, representation, require_classes
from bogc_ref._linear_head import _targets
from bogc_ref._softmax_head import DEFAULT_CHUNK_ELEMENTS, _noise
from bogc_ref._validation import (
    bool_mask,
    common_dtype,
    float_array,
    labels_array,
    positive_scalar,
    require_bool,
    require_min_ndim,
    require_shape,
    require_sources,
    sources_array,
)

#: Stubs of a call's array arguments, keyed by argument name.
Stubs = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Checked:
    """Sizes found by a structural check, and the value checks still due.

    ``finite``: arrays that must hold no NaN or infinity. ``symmetric``: the matrix that
    must be symmetric (the reference's tolerance, 1e3 eps · max|a|). ``n_classes``: when
    > 0, ``labels`` must lie in [0, n_classes). ``nonnegative``: the array (variances or
    evidence) that must hold no NaN and no negative entry, where its sources are present.
    ``same_dtype``: float arguments that must share one dtype (backends whose stubs map
    half types to float32 test this on the arrays themselves). ``psd``: the covariance that
    must be positive semi-definite (``bogc_ref._linalg.require_psd``). ``count``, ``chunk``:
    Monte Carlo draws and draws per chunk. ``noise_var``: the checked noise variance.
    """

    finite: tuple[str, ...] = ()
    symmetric: str | None = None
    n_classes: int = 0
    nonnegative: str | None = None
    same_dtype: tuple[str, ...] = ()
    psd: str | None = None
    count: int = 0
    chunk: int = 0
    noise_var: float = 0.0


def draws_per_chunk(
    chunk_size: object, count: int, n_rows: int, dim: int, k: int, n_params: int
) -> int:
    """Draws per chunk: the reference's default (about 2**22 elements) or ``chunk_size``."""
    if chunk_size is None:
        per_draw = n_rows * (dim + 2 * k) + 2 * n_params
        return max(1, min(count, DEFAULT_CHUNK_ELEMENTS // per_draw))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise TypeError(f"chunk_size: expected an int, got {type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size: must be >= 1, got {chunk_size}")
    return int(chunk_size)


# ---------------------------------------------------------------------------- stage 1
def linear_head_moments(s: Stubs, check_cov: bool = True) -> Checked:
    """h (B, D), y (B, K), w_mean (K, D+1), w_cov (K, D+1, D+1), one float dtype; the
    values of ``w_cov`` only if ``check_cov`` (:func:`covariance_checks`)."""
    hs = representation(s["h"], values=False)
    ys = _targets(s["y"], hs.shape[0], values=False)
    mu = head_weights(s["w_mean"], "w_mean", hs.shape[1], values=False)
    if ys.shape[1] != mu.shape[0]:
        raise ValueError("y: columns do not match w_mean's rows")
    k, d1 = mu.shape
    cov = covariance(s["w_cov"], "w_cov", (k, d1, d1), "(K, D+1, D+1)", values=False)
    common_dtype([("h", hs), ("y", ys), ("w_mean", mu), ("w_cov", cov)])
    names = ("h", "y", "w_mean", "w_cov")
    return covariance_checks(Checked(finite=names[:3], same_dtype=names), "w_cov", check_cov)


def check_cov_keyword(check_cov: bool) -> dict[str, object]:
    """The ``check_cov`` keyword as replay arguments (``{}`` for the default, so that a
    reference without the keyword is replayed as the spec writes it)."""
    return {} if check_cov else {"check_cov": False}


def covariance_checks(checked: Checked, name: str, check: bool, psd: bool = True) -> Checked:
    """``checked`` plus the value checks of the covariance ``name`` when ``check``: finite,
    symmetric, and positive semi-definite if ``psd``."""
    if not check:
        return checked
    return replace(
        checked,
        finite=(*checked.finite, name),
        symmetric=name,
        psd=name if psd else checked.psd,
    )


def _softmax_inputs(s: Stubs, weight: str) -> tuple[int, int, int]:
    """(B, D, K) from h (B, D), ``weight`` (K, D+1) and labels (B,)."""
    hs = representation(s["h"], values=False)
    n_rows, dim = hs.shape
    mu = head_weights(s[weight], weight, dim, values=False)
    require_classes(mu, weight)
    labels_array(s["labels"], "labels", mu.shape[0], n_rows)
    return n_rows, dim, mu.shape[0]


def _softmax_with_covariance(s: Stubs) -> tuple[int, int, int, int]:
    """(B, D, K, K(D+1)) for h, labels, w_mean and w_cov (K(D+1), K(D+1))."""
    n_rows, dim, k = _softmax_inputs(s, "w_mean")
    n_params = k * (dim + 1)
    cov = covariance(s["w_cov"], "w_cov", (n_params, n_params), "(K(D+1), K(D+1))", values=False)
    common_dtype([("h", s["h"]), ("w_mean", s["w_mean"]), ("w_cov", cov)])
    return n_rows, dim, k, n_params


_SOFTMAX_FLOATS = ("h", "w_mean", "w_cov")


def softmax_head_moments(s: Stubs, n_samples: object, seed: object, chunk_size: object) -> Checked:
    """The linearized checks, plus the noise (``eps`` stub if given) and the chunk size."""
    n_rows, dim, k, n_params = _softmax_with_covariance(s)
    count, _ = _noise(s.get("eps"), n_samples, seed, n_params)
    chunk = draws_per_chunk(chunk_size, count, n_rows, dim, k, n_params)
    finite = ("h", "w_mean", *(("eps",) if "eps" in s else ()))
    checked = Checked(
        finite=finite, n_classes=k, same_dtype=_SOFTMAX_FLOATS, count=count, chunk=chunk
    )
    return covariance_checks(checked, "w_cov", True, psd=False)  # factored while computing


def softmax_head_moments_linearized(s: Stubs, check_cov: bool = True) -> Checked:
    """h (B, D), labels (B,) in [0, K), w_mean (K, D+1), w_cov (K(D+1), K(D+1)); the
    values of ``w_cov`` only if ``check_cov``."""
    _, _, k, _ = _softmax_with_covariance(s)
    checked = Checked(finite=("h", "w_mean"), n_classes=k, same_dtype=_SOFTMAX_FLOATS)
    return covariance_checks(checked, "w_cov", check_cov)


def empirical_moments(s: Stubs) -> Checked:
    """per_sample_grads (N, ..., D) with N >= 2."""
    arr = float_array(s["per_sample_grads"], "per_sample_grads")
    require_min_ndim(arr, "per_sample_grads", 2, "(N, ..., D)")
    if arr.shape[0] < 2:
        raise ValueError("per_sample_grads: need N >= 2")
    return Checked(finite=("per_sample_grads",))


def linear_head_posterior(s: Stubs, noise_var: object) -> Checked:
    """h (B, D), y (B, K), prior_mean (K, D+1), prior_precision (D+1, D+1), noise_var > 0."""
    hs = representation(s["h"], values=False)
    n_rows, dim = hs.shape
    ys = _targets(s["y"], n_rows, values=False)
    m0 = head_weights(s["prior_mean"], "prior_mean", dim, values=False)
    require_shape(m0, "prior_mean", (ys.shape[1], dim + 1), "(K, D+1)")
    p0 = covariance(
        s["prior_precision"], "prior_precision", (dim + 1, dim + 1), "D+1", values=False
    )
    checked_noise = positive_scalar(noise_var, "noise_var")
    common_dtype([("h", hs), ("y", ys), ("prior_mean", m0), ("prior_precision", p0)])
    names = ("h", "y", "prior_mean", "prior_precision")
    return Checked(
        finite=names,
        symmetric="prior_precision",
        same_dtype=names,
        psd="prior_precision",
        noise_var=checked_noise,
    )


def softmax_head_laplace(s: Stubs) -> Checked:
    """h, labels, w (K, D+1), prior_mean like w, prior_precision (K(D+1), K(D+1))."""
    _, dim, k = _softmax_inputs(s, "w")
    m0 = head_weights(s["prior_mean"], "prior_mean", dim, values=False)
    if m0.shape != (k, dim + 1):
        raise ValueError("prior_mean: shape differs from w's")
    n_params = k * (dim + 1)
    p0 = covariance(
        s["prior_precision"], "prior_precision", (n_params, n_params), "KD", values=False
    )
    common_dtype([("h", s["h"]), ("w", s["w"]), ("prior_mean", m0), ("prior_precision", p0)])
    names = ("h", "w", "prior_mean", "prior_precision")
    return Checked(
        finite=names,
        symmetric="prior_precision",
        n_classes=k,
        same_dtype=names,
        psd="prior_precision",
    )


# ---------------------------------------------------------------------------- stage 2, 3
def evidence(s: Stubs) -> Checked:
    """var (..., M, D) and an optional mask broadcasting to (..., M)."""
    arr = sources_array(s["var"], "var")
    if "mask" in s:
        bool_mask(s["mask"], "mask", arr.shape[:-1])
    return Checked(nonnegative="var")


def evidence_argument(s: Stubs) -> Checked:
    """evidence (..., M, D): no NaN, no negative entry."""
    sources_array(s["evidence"], "evidence")
    return Checked(nonnegative="evidence")


def calibrate(s: Stubs) -> Checked:
    """mean and var (..., M, D) of one dtype, an optional mask; values checked later."""
    ms = float_array(s["mean"], "mean")
    vs = float_array(s["var"], "var")
    common_dtype([("mean", ms), ("var", vs)])
    require_min_ndim(ms, "mean", 2, "(..., M, D)")
    require_shape(vs, "var", ms.shape, "the shape of mean")
    require_sources(ms, "mean")
    if "mask" in s:
        bool_mask(s["mask"], "mask", ms.shape[:-1])
    return Checked(same_dtype=("mean", "var"))


def calibrate_keywords(
    mask: object,
    mode: str,
    tau: float | None,
    power: float,
    prior_weight: float | None,
    normalize: bool,
    check_finite: bool,
) -> dict[str, object]:
    """calibrate's keyword arguments as a dict, for replaying the reference."""
    return {
        "mask": mask, "mode": mode, "tau": tau, "power": power,
        "prior_weight": prior_weight, "normalize": normalize, "check_finite": check_finite,
    }  # fmt: skip


def calibrate_scalars(
    prior_weight: object, n_sources: int, normalize: object, values_first: Callable[[], None]
) -> float:
    """The prior weight W (see ``prior_weight_value``) after checking ``normalize`` is a bool.

    On a bad scalar, ``values_first()`` runs before the error propagates: the reference
    checks the values before these two, so a bad value must be reported first.
    """
    try:
        weight = prior_weight_value(prior_weight, n_sources)
        require_bool(normalize, "normalize")
    except (TypeError, ValueError):
        values_first()
        raise
    return weight
