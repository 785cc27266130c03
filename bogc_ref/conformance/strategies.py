"""Hypothesis strategies for the laws of :mod:`bogc_ref.conformance.laws`.

Every strategy draws an :class:`~bogc_ref.conformance.laws.Example` with bounded
magnitudes (variances as powers of ten in a stated range, means bounded), capped sizes
(M ≤ 6, D ≤ 8, at most two leading axes of length ≤ 3), and, where the law allows them,
dogmatic (var = 0) and vacuous (var = +inf) entries and masks with at least one present
source (absent sources get NaN means). :func:`for_law` maps each law to its strategy.

This module imports Hypothesis (an optional dependency: ``pip install hypothesis``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .laws import Example

MAX_M = 6
MAX_D = 8

#: log10 range of the variances of ordinary draws and of extreme draws, by dtype.
VAR_LOG10 = {"float64": (-3.0, 3.0), "float32": (-3.0, 3.0)}
EXTREME_VAR_LOG10 = {"float64": (-30.0, 30.0), "float32": (-15.0, 15.0)}
#: log10 range of the scale factor c of the scale law (c² var must stay representable).
SCALE_LOG10 = {"float64": (-15.0, 15.0), "float32": (-6.0, 6.0)}


def shapes(
    *, batch: bool = True, max_m: int = MAX_M, max_d: int = MAX_D
) -> st.SearchStrategy[tuple[int, ...]]:
    """(..., M, D) with at most two leading axes of length 1..3."""
    lead = st.lists(st.integers(1, 3), min_size=0, max_size=2 if batch else 0)
    return st.tuples(lead, st.integers(1, max_m), st.integers(1, max_d)).map(
        lambda t: (*t[0], t[1], t[2])
    )


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _flush(values: np.ndarray, dtype: str) -> np.ndarray:
    """Cast to ``dtype`` with magnitudes below 1e-20 set to 0 (no subnormal means)."""
    return np.asarray(np.where(np.abs(values) < 1e-20, 0.0, values).astype(dtype))


@st.composite
def variances(
    draw: Any,
    shape: tuple[int, ...],
    dtype: str,
    *,
    log10: tuple[float, float],
    special: bool = True,
) -> np.ndarray:
    """Positive variances 10**U(log10); with ``special``, some 0 (dogmatic) and +inf (vacuous)."""
    exps = draw(hnp.arrays(np.float64, shape, elements=_floats(*log10)))
    var = 10.0**exps
    if special:
        kinds = draw(hnp.arrays(np.int8, shape, elements=st.integers(0, 9)))
        var = np.where(kinds == 0, 0.0, np.where(kinds == 1, np.inf, var))
    return np.asarray(var.astype(dtype))


@st.composite
def source_mask(draw: Any, lead: tuple[int, ...], m: int) -> np.ndarray:
    """(..., M) booleans with at least one present source per leading index."""
    mask = draw(hnp.arrays(np.bool_, (*lead, m)))
    always = draw(st.integers(0, m - 1))
    mask[..., always] = True
    return np.asarray(mask)


@st.composite
def calibrate_examples(
    draw: Any,
    dtype: str = "float64",
    *,
    batch: bool = True,
    special: bool = True,
    masked: bool | None = None,
    mode: str | None = None,
    power: float | None = None,
    weight: bool | None = None,
    log10: tuple[float, float] | None = None,
    mean_max: float = 1e3,
) -> Example:
    """Inputs of :func:`bogc_ref.calibrate` with every keyword drawn unless fixed."""
    shape = draw(shapes(batch=batch), label="shape")
    mean = _flush(
        draw(hnp.arrays(np.float64, shape, elements=_floats(-mean_max, mean_max)), label="mean"),
        dtype,
    )
    var = draw(
        variances(shape, dtype, log10=log10 or VAR_LOG10[dtype], special=special), label="var"
    )
    arrays: dict[str, np.ndarray] = {"mean": mean, "var": var}
    use_mask = draw(st.booleans(), label="masked") if masked is None else masked
    if use_mask:
        mask = draw(source_mask(shape[:-2], shape[-2]), label="mask")
        arrays["mask"] = mask
        absent = np.broadcast_to(~mask[..., None], shape)
        arrays["mean"] = np.where(absent, np.nan, mean).astype(dtype)
    kwargs: dict[str, Any] = {}
    chosen_mode = mode or draw(st.sampled_from(["relative", "fixed"]), label="mode")
    if chosen_mode == "fixed":
        kwargs["mode"] = "fixed"
        kwargs["tau"] = 10.0 ** draw(_floats(-3, 3), label="log10 tau")
    chosen_power = power if power is not None else draw(st.sampled_from([1.0, 1.0, 0.5, 2.0]))
    if chosen_power != 1.0:
        kwargs["power"] = chosen_power
    give_weight = draw(st.booleans(), label="explicit prior_weight") if weight is None else weight
    if give_weight:
        kwargs["prior_weight"] = draw(_floats(0.05, 20.0), label="prior_weight")
    kwargs["normalize"] = draw(st.booleans(), label="normalize")
    return Example("calibrate", arrays, ("mean", "var"), kwargs)


@st.composite
def with_extra(
    draw: Any, base: st.SearchStrategy[Example], **extras: st.SearchStrategy[Any]
) -> Example:
    """``base`` plus law parameters drawn from ``extras``."""
    ex = draw(base)
    extra = {k: draw(v, label=k) for k, v in extras.items()}
    return Example(ex.function, ex.arrays, ex.positional, ex.kwargs, {**ex.extra, **extra})


@st.composite
def permuted(draw: Any, dtype: str) -> Example:
    """A calibrate example and a permutation of its sources."""
    ex = draw(calibrate_examples(dtype))
    m = ex.arrays["mean"].shape[-2]
    perm = draw(st.permutations(list(range(m))), label="perm")
    return Example(ex.function, ex.arrays, ex.positional, ex.kwargs, {"perm": list(perm)})


@st.composite
def evidence_examples(
    draw: Any, dtype: str = "float64", *, special: bool = True, function: str = "reduced_dempster"
) -> Example:
    """Evidence (..., M, D) as 10**U(-3, 3), with some 0 and +inf; W drawn or default."""
    shape = draw(shapes(), label="shape")
    e = draw(variances(shape, dtype, log10=(-3.0, 3.0), special=special), label="evidence")
    kwargs: dict[str, Any] = {}
    if draw(st.booleans(), label="explicit prior_weight"):
        kwargs["prior_weight"] = draw(_floats(0.05, 20.0), label="prior_weight")
    return Example(function, {"evidence": e}, ("evidence",), kwargs)


@st.composite
def vacuous_examples(draw: Any, dtype: str) -> Example:
    """Evidence plus the position where a vacuous source is inserted."""
    ex = draw(evidence_examples(dtype))
    m = ex.arrays["evidence"].shape[-2]
    return Example(
        ex.function,
        ex.arrays,
        ex.positional,
        ex.kwargs,
        {"position": draw(st.integers(0, m), label="position")},
    )


@st.composite
def bayes_dempster_examples(draw: Any, dtype: str) -> Example:
    """Means, finite variances, τ and W; the evidence is λ/τ (fixed mode, p = 1)."""
    shape = draw(shapes(), label="shape")
    mean = draw(hnp.arrays(np.float64, shape, elements=_floats(-1e3, 1e3)), label="mean")
    var = draw(variances(shape, "float64", log10=(-3.0, 3.0), special=False), label="var")
    tau = 10.0 ** draw(_floats(-2, 2), label="log10 tau")
    weight = draw(_floats(0.05, 20.0), label="prior_weight")
    e = (1.0 / var / tau).astype(dtype)
    # The identity is checked on the rounded evidence: recover λ from it.
    var_used = 1.0 / (e.astype(np.float64) * tau)
    return Example(
        "reduced_dempster",
        {"evidence": e},
        ("evidence",),
        {"prior_weight": weight},
        {"mean": mean, "var": var_used, "tau": tau},
    )


@st.composite
def var_examples(draw: Any, dtype: str) -> Example:
    """Inputs of :func:`bogc_ref.evidence`: variances, optional mask, mode, τ, power."""
    ex = draw(calibrate_examples(dtype))
    arrays = {k: v for k, v in ex.arrays.items() if k != "mean"}
    kwargs = {k: v for k, v in ex.kwargs.items() if k in ("mode", "tau", "power")}
    return Example("evidence", arrays, ("var",), kwargs)


@st.composite
def empirical_examples(draw: Any, dtype: str) -> Example:
    """Per-sample gradients (N, ..., D), N in 2..6, |G| <= 1e3."""
    n = draw(st.integers(2, 6), label="N")
    lead = draw(st.lists(st.integers(1, 3), max_size=2), label="lead")
    d = draw(st.integers(1, 5), label="D")
    grads = draw(hnp.arrays(np.float64, (n, *lead, d), elements=_floats(-1e3, 1e3)), label="G")
    return Example(
        "empirical_moments", {"per_sample_grads": _flush(grads, dtype)}, ("per_sample_grads",)
    )


#: log10 range of the covariance scale of head draws: ordinary down to concentrated
#: posteriors (1e-6), where Var[g] is a tiny fraction of E[g]^2.
COV_SCALE_LOG10 = (-6.0, 0.0)


def _spd(draw: Any, shape: tuple[int, ...], floor: float, label: str) -> np.ndarray:
    """SPD matrices A Aᵀ/n + floor·I of ``shape`` (..., n, n), exactly symmetric."""
    n = shape[-1]
    a = draw(hnp.arrays(np.float64, shape, elements=_floats(-1, 1)), label=label)
    spd = a @ np.swapaxes(a, -1, -2) / n + floor * np.eye(n)
    return np.asarray(0.5 * (spd + np.swapaxes(spd, -1, -2)))


@st.composite
def linear_head_examples(draw: Any, dtype: str) -> Example:
    """A small squared-error head: B, D, K in 1..4, SPD covariances (A Aᵀ/(D+1) + 0.1 I)
    scaled by 10**U(-6, 0) (concentrated posteriors included)."""
    b, d, k = (draw(st.integers(1, 4), label=x) for x in ("B", "D", "K"))
    el = _floats(-3, 3)
    h = draw(hnp.arrays(np.float64, (b, d), elements=el), label="h")
    y = draw(hnp.arrays(np.float64, (b, k), elements=el), label="y")
    w_mean = draw(hnp.arrays(np.float64, (k, d + 1), elements=el), label="w_mean")
    scale = 10.0 ** draw(_floats(*COV_SCALE_LOG10), label="log10 covariance scale")
    w_cov = scale * _spd(draw, (k, d + 1, d + 1), 0.1, "A")
    arrays = {"h": h, "y": y, "w_mean": w_mean, "w_cov": w_cov}
    return Example(
        "linear_head_moments",
        {k_: _flush(v, dtype) for k_, v in arrays.items()},
        ("h", "y", "w_mean", "w_cov"),
    )


@st.composite
def softmax_head_examples(draw: Any, dtype: str, *, with_eps: bool = True) -> Example:
    """A small softmax head: B 1..4, D 1..3, K 2..3, Σ = s (A Aᵀ/n + 0.05 I)/5 with
    s = 10**U(-6, 0); with ``with_eps``, stored draws eps (S 2..16, K(D+1))."""
    b, d = draw(st.integers(1, 4), label="B"), draw(st.integers(1, 3), label="D")
    k = draw(st.integers(2, 3), label="K")
    n_params = k * (d + 1)
    el = _floats(-2, 2)
    scale = 10.0 ** draw(_floats(*COV_SCALE_LOG10), label="log10 covariance scale")
    arrays = {
        "h": draw(hnp.arrays(np.float64, (b, d), elements=el), label="h"),
        "labels": np.asarray(
            draw(hnp.arrays(np.int64, (b,), elements=st.integers(0, k - 1)), label="labels")
        ),
        "w_mean": draw(hnp.arrays(np.float64, (k, d + 1), elements=el), label="w_mean"),
        "w_cov": 0.2 * scale * _spd(draw, (n_params, n_params), 0.05, "A"),
    }
    arrays = {name: _flush(v, dtype) if v.dtype.kind == "f" else v for name, v in arrays.items()}
    kwargs: dict[str, Any] = {}
    if with_eps:
        s = draw(st.integers(2, 16), label="S")
        eps = draw(hnp.arrays(np.float64, (s, n_params), elements=_floats(-4, 4)), label="eps")
        arrays["eps"] = eps.astype(dtype)
        if draw(st.booleans(), label="chunked"):
            kwargs["chunk_size"] = draw(st.integers(1, s), label="chunk_size")
    positional = ("h", "labels", "w_mean", "w_cov")
    function = "softmax_head_moments" if with_eps else "softmax_head_moments_linearized"
    return Example(function, arrays, positional, kwargs)


@st.composite
def own_sampler_examples(draw: Any, dtype: str) -> Example:
    """A softmax head without eps, for the candidate's own sampler."""
    ex = draw(softmax_head_examples(dtype, with_eps=False))
    return Example("softmax_head_moments", ex.arrays, ex.positional, {})


@st.composite
def linear_posterior_examples(draw: Any, dtype: str) -> Example:
    """B 2..8, D 1..3, K 1..3; prior precision 10**U(-2, 1)·(A Aᵀ/n + 0.5 I); σ² 10**U(-1, 1)."""
    b, d = draw(st.integers(2, 8), label="B"), draw(st.integers(1, 3), label="D")
    k = draw(st.integers(1, 3), label="K")
    el = _floats(-2, 2)
    strength = 10.0 ** draw(_floats(-2, 1), label="log10 prior strength")
    arrays = {
        "h": draw(hnp.arrays(np.float64, (b, d), elements=el), label="h"),
        "y": draw(hnp.arrays(np.float64, (b, k), elements=el), label="y"),
        "prior_mean": draw(hnp.arrays(np.float64, (k, d + 1), elements=el), label="prior_mean"),
        "prior_precision": strength * _spd(draw, (d + 1, d + 1), 0.5, "A"),
    }
    noise_var = 10.0 ** draw(_floats(-1, 1), label="log10 noise_var")
    return Example(
        "linear_head_posterior",
        {name: _flush(v, dtype) for name, v in arrays.items()},
        ("h", "y"),
        {"noise_var": noise_var},
    )


@st.composite
def laplace_examples(draw: Any, dtype: str) -> Example:
    """B 3..12, D 1..3, K 2..3; w 0.5·U(-2, 2); prior precision 10**U(-2, 1)·SPD."""
    b, d = draw(st.integers(3, 12), label="B"), draw(st.integers(1, 3), label="D")
    k = draw(st.integers(2, 3), label="K")
    n_params = k * (d + 1)
    el = _floats(-2, 2)
    strength = 10.0 ** draw(_floats(-2, 1), label="log10 prior strength")
    floats = {
        "h": draw(hnp.arrays(np.float64, (b, d), elements=el), label="h"),
        "w": 0.5 * draw(hnp.arrays(np.float64, (k, d + 1), elements=el), label="w"),
        "prior_mean": 0.1
        * draw(hnp.arrays(np.float64, (k, d + 1), elements=el), label="prior_mean"),
        "prior_precision": strength * _spd(draw, (n_params, n_params), 0.5, "A"),
    }
    labels = draw(hnp.arrays(np.int64, (b,), elements=st.integers(0, k - 1)), label="labels")
    arrays = {name: _flush(v, dtype) for name, v in floats.items()}
    arrays["labels"] = np.asarray(labels)
    arrays = {name: arrays[name] for name in ("h", "labels", "w", "prior_mean", "prior_precision")}
    return Example("softmax_head_laplace", arrays, ("h", "labels", "w"))


@st.composite
def masses(draw: Any, n: int, dtype: str, label: str) -> np.ndarray:
    """A mass function on an n-element frame: length 2**n, index 0 = 0, summing to 1,
    the whole frame always focal (so two of them never conflict totally)."""
    size = 2**n
    raw = draw(hnp.arrays(np.float64, (size,), elements=_floats(0.0, 1.0)), label=label)
    raw[0] = 0.0
    raw[-1] += 0.05
    return np.asarray((raw / raw.sum()).astype(dtype))


@st.composite
def dempster_combine_examples(draw: Any, dtype: str) -> Example:
    """Two mass functions on a frame of 1..4 elements, and a third for associativity."""
    n = draw(st.integers(1, 4), label="n")
    m1, m2, m3 = (draw(masses(n, dtype, name)) for name in ("m1", "m2", "m3"))
    return Example("dempster_combine", {"m1": m1, "m2": m2}, ("m1", "m2"), {}, {"m3": m3})


def _single(dtype: str) -> st.SearchStrategy[Example]:
    return calibrate_examples(dtype, batch=False, masked=True, weight=True)


STRATEGIES: dict[str, Callable[[str], st.SearchStrategy[Example]]] = {
    "empirical_matches_reference": empirical_examples,
    "linear_head_matches_reference": linear_head_examples,
    "softmax_moments_match_reference": softmax_head_examples,
    "softmax_moments_own_sampler": own_sampler_examples,
    "softmax_linearized_matches_reference": lambda d: softmax_head_examples(d, with_eps=False),
    "linear_posterior_matches_reference": linear_posterior_examples,
    "laplace_matches_reference": laplace_examples,
    "dempster_combine_matches_reference": dempster_combine_examples,
    "dempster_combine_commutative": dempster_combine_examples,
    "dempster_combine_associative": dempster_combine_examples,
    "dempster_combine_vacuous_identity": dempster_combine_examples,
    "dempster_combine_total_conflict": dempster_combine_examples,
    "evidence_matches_reference": var_examples,
    "evidence_monotone": var_examples,
    "reduced_dempster_matches_reference": evidence_examples,
    "opinions_matches_reference": lambda d: evidence_examples(d, function="opinions"),
    "reduced_dempster_masses": evidence_examples,
    "reduced_dempster_vacuous_identity": vacuous_examples,
    "reduced_dempster_bayes_identity": bayes_dempster_examples,
    "calibrate_matches_reference": calibrate_examples,
    "calibrate_dtype_and_shape": calibrate_examples,
    "calibrate_permutation_equivariance": permuted,
    "calibrate_scale_equivariance": lambda d: with_extra(
        calibrate_examples(d, mode="relative"),
        scale=_floats(*SCALE_LOG10[d]).map(lambda x: 10.0**x),
    ),
    "calibrate_masses": calibrate_examples,
    "calibrate_grad_in_hull": calibrate_examples,
    "calibrate_mask_equals_removal": _single,
    "calibrate_extreme_magnitudes": lambda d: calibrate_examples(
        d, special=False, log10=EXTREME_VAR_LOG10[d]
    ),
    "calibrate_bayes_identity": lambda d: calibrate_examples(
        d, mode="fixed", power=1.0, special=False
    ),
}


def for_law(name: str, dtype: str) -> st.SearchStrategy[Example]:
    """The strategy that draws examples for the law ``name`` in ``dtype``."""
    return STRATEGIES[name](dtype)
