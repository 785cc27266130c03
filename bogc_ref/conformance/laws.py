r"""The laws of BOGC, written once, checked on any implementation.

Each law is a function ``law(impl, example)``: ``impl`` has the interface's function names
and takes and returns NumPy arrays (an :class:`~bogc_ref.conformance.adapter.Adapter`, or
the reference module :mod:`bogc_ref` itself); ``example`` is an :class:`Example` drawn by
:mod:`bogc_ref.conformance.strategies`. A law that does not hold raises AssertionError
with what was expected, what came back, and a copy-pasteable reproduction.

Some laws compare the candidate with the reference on the same inputs; the others are
identities of the spec that the candidate must satisfy on its own (permutation and scale
equivariance, masses in [0, 1] summing to 1, the calibrated gradient inside the hull of
the means and 0, masking equals removing, the vacuous opinion as identity, the Bayesian
posterior mean). Tolerances come from :mod:`~bogc_ref.conformance.tolerances`.

This module does not import Hypothesis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import bogc_ref

from .compare import compare_array, plain
from .tolerances import (
    eps,
    evidence_tolerance,
    rtol_for,
    stage1_kappa,
    stage1_term_scales,
    stage3_tolerance,
)

FIELDS = ("grad", "belief", "uncertainty", "evidence")


@dataclass(frozen=True)
class Example:
    """Inputs of one law: named arrays, scalar keywords and law-specific extras."""

    function: str
    arrays: dict[str, np.ndarray]
    positional: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dtype(self) -> str:
        """The float dtype of the first positional array."""
        return self.arrays[self.positional[0]].dtype.name

    def args(self) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Fresh copies of the positional arrays and the keywords (array ones included)."""
        args = [self.arrays[k].copy() for k in self.positional]
        kwargs = {k: v.copy() for k, v in self.arrays.items() if k not in self.positional}
        kwargs.update(self.kwargs)
        return args, kwargs

    def call(self, impl: Any) -> Any:
        """``impl.<function>(*args, **kwargs)`` on copies of the inputs."""
        args, kwargs = self.args()
        return getattr(impl, self.function)(*args, **kwargs)

    def code(self, impl: Any, law: str | None = None) -> str:
        """Python source that rebuilds the inputs and reruns ``law`` on ``impl``, printing
        what it measured (without ``law``: makes the call and prints the result).

        Uses only documented API (``open_candidate``, :class:`Example`, :func:`check_law`)
        and runs on every NumPy the project supports.
        """
        spec = getattr(impl, "spec", "backend:numpy")
        lines = [
            "import numpy as np",
            "from bogc_ref.conformance.laws import Example, check_law",
            "from bogc_ref.conformance.loading import open_candidate",
            f"impl = open_candidate({spec!r})",
            "arrays = {",
        ]
        lines += [f"    {name!r}: {array_code(arr)}," for name, arr in self.arrays.items()]
        lines.append("}")
        kwargs = ", ".join(f"{k!r}: {value_code(v)}" for k, v in self.kwargs.items())
        extra = ", ".join(f"{k!r}: {value_code(v)}" for k, v in self.extra.items())
        lines.append(
            f"example = Example({self.function!r}, arrays, {self.positional!r}, "
            f"{{{kwargs}}}, {{{extra}}})"
        )
        if law is None:
            lines.append("print(example.call(impl))")
        else:
            lines.append(f"print(check_law({law!r}, impl, example) or 'the law holds')")
        return "\n".join(lines)


def value_code(value: object) -> str:
    """Source of a keyword or law parameter: arrays by :func:`array_code`, numbers plainly."""
    if isinstance(value, np.ndarray):
        return array_code(value)
    if isinstance(value, np.generic):
        return repr(value.item())
    if isinstance(value, list | tuple):
        return repr(type(value)(value_code(v) for v in value)).replace("'", "")
    return repr(value)


def array_code(arr: np.ndarray) -> str:
    """``np.array(...)`` source that rebuilds ``arr`` exactly (NaN and inf included)."""
    text = repr(arr.tolist()).replace("nan", "np.nan").replace("inf", "np.inf")
    # dtype by its string name: ``np.bool`` does not exist on NumPy 1.26.
    return f"np.array({text}, dtype={arr.dtype.name!r})"


#: Separates a law's message from its reproduction snippet.
REPRODUCE = "\nreproduce:\n"


def fail(law: str, impl: Any, example: Example, message: str) -> AssertionError:
    """The AssertionError of a law that does not hold, with its reproduction."""
    return AssertionError(f"{law}: {message}{REPRODUCE}{example.code(impl, law)}")


def _check(
    law: str, impl: Any, example: Example, name: str, got: Any, ref: Any, **tol: Any
) -> None:
    comparison = compare_array(name, np.asarray(got), np.asarray(ref), **tol)
    if not comparison.ok:
        raise fail(law, impl, example, comparison.reason)


def _present(example: Example) -> np.ndarray:
    shape = example.arrays[example.positional[0]].shape
    mask = example.arrays.get("mask")
    if mask is None:
        return np.ones(shape, dtype=bool)
    return np.broadcast_to(mask[..., None], shape)


def calibrate_rtol(example: Example, var: np.ndarray | None = None) -> float:
    """rtol of a calibrate example (κ from its variances and power)."""
    var = example.arrays["var"] if var is None else var
    return _evidence_rtol(example, var, "calibrate")


def _evidence_rtol(example: Example, var: np.ndarray, stage: str) -> float:
    return evidence_tolerance(
        var,
        example.dtype,
        stage,
        power=example.kwargs.get("power", 1.0),
        mode=example.kwargs.get("mode", "relative"),
        present=_present(example),
    ).rtol


def grad_scale(mean: np.ndarray, present: np.ndarray) -> np.ndarray:
    """``S_d = max over present sources of |μ_md|`` (the grad's atol is rtol · S)."""
    clean = np.where(present, np.abs(np.nan_to_num(mean.astype(np.float64), nan=0.0)), 0.0)
    return np.asarray(np.max(clean, axis=-2))


def _compare_fields(
    law: str,
    impl: Any,
    example: Example,
    got: Any,
    ref: Any,
    rtol: float,
    atols: dict[str, Any],
) -> None:
    """Compare each field named in ``atols`` of two result tuples, with that field's atol."""
    for name, atol in atols.items():
        _check(
            law,
            impl,
            example,
            name,
            getattr(got, name),
            getattr(ref, name),
            rtol=rtol,
            atol=atol,
            dtype=np.dtype(example.dtype),
        )


def _compare_calibration(
    law: str, impl: Any, example: Example, got: Any, ref: Any, rtol: float, scale: np.ndarray
) -> None:
    tiny = float(np.finfo(np.dtype(example.dtype)).tiny)
    special = {"grad": rtol * scale, "evidence": tiny}
    atols = {name: special.get(name, rtol) for name in FIELDS}
    _compare_fields(law, impl, example, got, ref, rtol, atols)


# --- calibrate -------------------------------------------------------------------------


def calibrate_matches_reference(
    impl: Any, example: Example, law: str = "calibrate_matches_reference"
) -> None:
    """Every output of calibrate equals the reference's within the tolerance policy."""
    got = example.call(impl)
    ref = example.call(bogc_ref)
    scale = grad_scale(example.arrays["mean"], _present(example))
    _compare_calibration(law, impl, example, got, ref, calibrate_rtol(example), scale)


def calibrate_dtype_and_shape(impl: Any, example: Example) -> None:
    """Outputs keep the input dtype; grad (..., D), belief and evidence (..., M, D), u (..., D)."""
    got = example.call(impl)
    shape = example.arrays["mean"].shape
    expected = {
        "grad": shape[:-2] + shape[-1:],
        "belief": shape,
        "uncertainty": shape[:-2] + shape[-1:],
        "evidence": shape,
    }
    for name, want in expected.items():
        arr = getattr(got, name)
        if arr.dtype != np.dtype(example.dtype) or arr.shape != want:
            raise fail(
                "calibrate_dtype_and_shape",
                impl,
                example,
                f"{name}: got {arr.dtype}{arr.shape}, expected {example.dtype}{want}",
            )


def calibrate_permutation_equivariance(impl: Any, example: Example) -> None:
    """Reordering the sources reorders belief and evidence and leaves grad and u unchanged."""
    perm = np.asarray(example.extra["perm"])
    base = example.call(impl)
    arrays = dict(example.arrays)
    arrays["mean"] = example.arrays["mean"][..., perm, :]
    arrays["var"] = example.arrays["var"][..., perm, :]
    if "mask" in arrays:
        arrays["mask"] = example.arrays["mask"][..., perm]
    permuted = Example(example.function, arrays, example.positional, example.kwargs, example.extra)
    got = permuted.call(impl)

    expected = bogc_ref.Calibration(
        grad=base.grad,
        belief=base.belief[..., perm, :],
        uncertainty=base.uncertainty,
        evidence=base.evidence[..., perm, :],
    )

    scale = grad_scale(example.arrays["mean"], _present(example))
    _compare_calibration(
        "calibrate_permutation_equivariance",
        impl,
        permuted,
        got,
        expected,
        calibrate_rtol(example),
        scale,
    )


def calibrate_scale_equivariance(impl: Any, example: Example) -> None:
    r"""Relative mode: ``calibrate(c μ, c² var).grad = c · calibrate(μ, var).grad``.

    Belief, uncertainty and evidence are unchanged (the geometric mean absorbs c²).
    """
    c = float(example.extra["scale"])
    dtype = example.dtype
    base = example.call(impl)
    arrays = dict(example.arrays)
    arrays["mean"] = (example.arrays["mean"].astype(np.float64) * c).astype(dtype)
    arrays["var"] = (example.arrays["var"].astype(np.float64) * c * c).astype(dtype)
    scaled = Example(example.function, arrays, example.positional, example.kwargs, example.extra)
    got = scaled.call(impl)

    expected = base._replace(grad=base.grad.astype(np.float64) * c)

    rtol = max(calibrate_rtol(example), calibrate_rtol(scaled))
    # Rounding the scaled inputs to the dtype perturbs them by eps relative.
    rtol += 4 * eps(dtype) * example.kwargs.get("power", 1.0)
    scale = grad_scale(arrays["mean"], _present(example))
    _compare_calibration("calibrate_scale_equivariance", impl, scaled, got, expected, rtol, scale)


def calibrate_masses(impl: Any, example: Example) -> None:
    """belief and u lie in [0, 1]; ``Σ_m belief + u = 1`` in every dimension."""
    got = example.call(impl)
    rtol = calibrate_rtol(example)
    m = example.arrays["mean"].shape[-2]
    belief = got.belief.astype(np.float64)
    u = got.uncertainty.astype(np.float64)
    slack = rtol
    for name, arr in (("belief", belief), ("uncertainty", u)):
        if np.isnan(arr).any() or (arr < -slack).any() or (arr > 1 + slack).any():
            worst = float(np.nanmax(np.abs(arr - 0.5))) + 0.5 if arr.size else float("nan")
            raise fail(
                "calibrate_masses", impl, example, f"{name} outside [0, 1]: reaches {worst!r}"
            )
    total = belief.sum(axis=-2) + u
    if np.abs(total - 1.0).max() > (m + 1) * rtol:
        raise fail(
            "calibrate_masses",
            impl,
            example,
            f"sum of belief and uncertainty is {plain(total.flat[np.argmax(np.abs(total - 1.0))])}"
            ", expected 1 "
            f"(tolerance {(m + 1) * rtol:.3g})",
        )


def calibrate_grad_in_hull(impl: Any, example: Example) -> None:
    """Each grad dimension lies in [min, max] of {0} and the present sources' means."""
    got = example.call(impl)
    mean = example.arrays["mean"].astype(np.float64)
    present = _present(example)
    low = np.minimum(np.min(np.where(present, mean, np.inf), axis=-2), 0.0)
    high = np.maximum(np.max(np.where(present, mean, -np.inf), axis=-2), 0.0)
    slack = calibrate_rtol(example) * grad_scale(mean, present)
    grad = got.grad.astype(np.float64)
    bad = ~((grad >= low - slack) & (grad <= high + slack))
    if bad.any():
        i = tuple(int(j) for j in np.argwhere(bad)[0])
        raise fail(
            "calibrate_grad_in_hull",
            impl,
            example,
            f"grad{list(i)} = {plain(grad[i])} outside [{plain(low[i])}, {plain(high[i])}]",
        )


def calibrate_mask_equals_removal(impl: Any, example: Example) -> None:
    """With an explicit prior_weight, masking a source equals removing it.

    The removed sources' belief and evidence are 0; every other output matches the call
    on the present sources only. ``example`` has no leading batch axes.
    """
    mask = example.arrays["mask"]
    keep = np.flatnonzero(mask)
    got = example.call(impl)
    arrays = {k: example.arrays[k][keep] for k in ("mean", "var")}
    removed = Example("calibrate", arrays, ("mean", "var"), example.kwargs, example.extra)
    sub = removed.call(impl)
    m, d = example.arrays["mean"].shape
    belief = np.zeros((m, d), dtype=sub.belief.dtype)
    evidence = np.zeros((m, d), dtype=sub.evidence.dtype)
    belief[keep] = sub.belief
    evidence[keep] = sub.evidence

    expected = bogc_ref.Calibration(sub.grad, belief, sub.uncertainty, evidence)
    scale = grad_scale(example.arrays["mean"], _present(example))
    _compare_calibration(
        "calibrate_mask_equals_removal",
        impl,
        example,
        got,
        expected,
        calibrate_rtol(example),
        scale,
    )


def calibrate_extreme_magnitudes(impl: Any, example: Example) -> None:
    """Precisions over 1e-30..1e30 (float64) or 1e-15..1e15 (float32): finite and exact."""
    got = example.call(impl)
    for name in ("grad", "belief", "uncertainty"):
        if not np.all(np.isfinite(getattr(got, name))):
            raise fail("calibrate_extreme_magnitudes", impl, example, f"{name} is not finite")
    calibrate_matches_reference(impl, example, "calibrate_extreme_magnitudes")


def bayes_posterior_mean(
    mean: np.ndarray, var: np.ndarray, tau: float, weight: float, normalize: bool
) -> np.ndarray:
    r"""The Bayesian posterior mean of a common gradient, written independently of the spec's rule.

    Prior :math:`g \sim N(0, 1/(W\tau))`, observations :math:`\mu_m \sim N(g, 1/\lambda_m)`:
    :math:`E[g] = \sum_m \lambda_m\mu_m / (W\tau + \sum_m \lambda_m)`. With ``normalize`` the
    prior drops out: :math:`\sum_m \lambda_m\mu_m / \sum_m\lambda_m` (0 without information).
    """
    with np.errstate(divide="ignore"):
        lam = 1.0 / var.astype(np.float64)
    num = np.sum(lam * mean.astype(np.float64), axis=-2)
    den = np.sum(lam, axis=-2)
    if normalize:
        return np.asarray(np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0))
    return np.asarray(num / (weight * tau + den))


def calibrate_bayes_identity(impl: Any, example: Example) -> None:
    """Fixed mode, p = 1: grad is the Bayesian posterior mean (normalize: precision-weighted)."""
    kw = example.kwargs
    m = example.arrays["mean"].shape[-2]
    weight = kw.get("prior_weight") or float(m)
    got = example.call(impl)
    present = _present(example)
    expected = bayes_posterior_mean(
        np.where(present, example.arrays["mean"], 0.0),
        np.where(present, example.arrays["var"], np.inf),
        kw["tau"],
        weight,
        kw.get("normalize", False),
    )
    rtol = calibrate_rtol(example)
    scale = grad_scale(example.arrays["mean"], _present(example))
    _check(
        "calibrate_bayes_identity",
        impl,
        example,
        "grad",
        got.grad,
        expected,
        rtol=rtol,
        atol=rtol * scale,
        dtype=np.dtype(example.dtype),
    )


# --- stage 3 ---------------------------------------------------------------------------


def _stage3_rtol(example: Example) -> float:
    return stage3_tolerance(example.arrays[example.positional[0]].shape, example.dtype).rtol


def _compare_opinion(law: str, impl: Any, example: Example, got: Any, ref: Any) -> None:
    rtol = _stage3_rtol(example)
    _compare_fields(law, impl, example, got, ref, rtol, {"belief": rtol, "uncertainty": rtol})


def reduced_dempster_matches_reference(impl: Any, example: Example) -> None:
    """The fused opinion equals the reference's."""
    _compare_opinion(
        "reduced_dempster_matches_reference",
        impl,
        example,
        example.call(impl),
        example.call(bogc_ref),
    )


def opinions_matches_reference(impl: Any, example: Example) -> None:
    """Each source's opinion equals the reference's."""
    ex = Example("opinions", example.arrays, example.positional, example.kwargs)
    _compare_opinion("opinions_matches_reference", impl, ex, ex.call(impl), ex.call(bogc_ref))


def reduced_dempster_masses(impl: Any, example: Example) -> None:
    """Fused belief and u in [0, 1], summing to 1."""
    got = example.call(impl)
    rtol = _stage3_rtol(example)
    m = example.arrays["evidence"].shape[-2]
    total = got.belief.astype(np.float64).sum(axis=-2) + got.uncertainty
    low = min(float(got.belief.min(initial=0.0)), float(got.uncertainty.min(initial=0.0)))
    if low < -rtol or np.abs(total - 1.0).max(initial=0.0) > (m + 1) * rtol:
        raise fail(
            "reduced_dempster_masses",
            impl,
            example,
            f"masses are not in [0, 1] summing to 1: smallest {low!r}, "
            f"largest |sum - 1| {float(np.abs(total - 1.0).max(initial=0.0))!r}",
        )


def reduced_dempster_vacuous_identity(impl: Any, example: Example) -> None:
    """A source with e = 0 changes nothing (W given explicitly); its belief is 0."""
    e = example.arrays["evidence"]
    at = int(example.extra["position"])
    weight = example.kwargs.get("prior_weight") or float(e.shape[-2])
    base = impl.reduced_dempster(e.copy(), prior_weight=weight)
    zeros = np.zeros_like(e[..., :1, :])
    widened = np.concatenate([e[..., :at, :], zeros, e[..., at:, :]], axis=-2)
    ex = Example(
        "reduced_dempster",
        {"evidence": widened},
        ("evidence",),
        {"prior_weight": weight},
        example.extra,
    )
    got = ex.call(impl)
    expected_belief = np.concatenate(
        [base.belief[..., :at, :], zeros.astype(base.belief.dtype), base.belief[..., at:, :]],
        axis=-2,
    )

    expected = bogc_ref.Opinion(expected_belief, base.uncertainty)
    _compare_opinion("reduced_dempster_vacuous_identity", impl, ex, got, expected)


def reduced_dempster_bayes_identity(impl: Any, example: Example) -> None:
    r"""With ``e_m = λ_m/τ`` and weight W: :math:`\sum_m \hat b_m\mu_m` is the Bayesian
    posterior mean, and :math:`\hat b_m / (1 - \hat u) = \lambda_m / \sum_n\lambda_n`."""
    mean = example.extra["mean"]
    var = example.extra["var"]
    tau = float(example.extra["tau"])
    weight = float(example.kwargs["prior_weight"])
    got = example.call(impl)
    rtol = _stage3_rtol(example) + 4 * eps(example.dtype)
    fused = np.sum(got.belief.astype(np.float64) * mean, axis=-2)
    expected = bayes_posterior_mean(mean, var, tau, weight, False)
    scale = np.max(np.abs(mean), axis=-2)
    _check(
        "reduced_dempster_bayes_identity",
        impl,
        example,
        "sum belief*mean",
        fused,
        expected,
        rtol=rtol,
        atol=rtol * scale,
    )
    lam = 1.0 / var
    # 1 - u equals the sum of the beliefs; that sum keeps its relative precision when the
    # evidence is far below W, where 1 - u rounded in float32 would not.
    belief = got.belief.astype(np.float64)
    share = belief / belief.sum(axis=-2, keepdims=True)
    _check(
        "reduced_dempster_bayes_identity",
        impl,
        example,
        "belief/(1-u)",
        share,
        lam / lam.sum(axis=-2, keepdims=True),
        rtol=rtol,
        atol=rtol,
    )


# --- stage 2 ---------------------------------------------------------------------------


def evidence_matches_reference(impl: Any, example: Example) -> None:
    """Evidence equals the reference's (relative tolerance, +inf and 0 exactly)."""
    got = example.call(impl)
    ref = example.call(bogc_ref)
    rtol = _evidence_rtol(example, example.arrays["var"], "stage2")
    dtype = np.dtype(example.dtype)
    _check(
        "evidence_matches_reference",
        impl,
        example,
        "evidence",
        got,
        ref,
        rtol=rtol,
        atol=float(np.finfo(dtype).tiny),
        dtype=dtype,
    )


def evidence_monotone(impl: Any, example: Example) -> None:
    """Within one leading index, a larger precision never gets less evidence."""
    got = np.asarray(example.call(impl), dtype=np.float64)
    var = example.arrays["var"].astype(np.float64)
    present = _present(example)
    rtol = _evidence_rtol(example, var, "stage2")
    lead = var.shape[:-2]
    for index in np.ndindex(*lead):
        v = var[index][present[index]]
        e = got[index][present[index]]
        order = np.argsort(-v, kind="stable")  # increasing precision
        e_sorted = e[order]
        drops = e_sorted[:-1] > e_sorted[1:] * (1 + rtol) + float(np.finfo(np.float64).tiny)
        if drops.any():
            raise fail(
                "evidence_monotone",
                impl,
                example,
                f"evidence decreases with precision at leading index {index}",
            )


# --- stage 1 ---------------------------------------------------------------------------


def _compare_stage1(
    law: str,
    impl: Any,
    example: Example,
    n: int,
    floors: dict[str, float] | None = None,
    cond: Callable[[Any], float] | None = None,
) -> None:
    """Normwise stage-1 comparison; ``floors`` adds an absolute floor per output field;
    ``cond`` gives the condition number of the factored matrix from the reference's result."""
    got = example.call(impl)
    ref = example.call(bogc_ref)
    kappa = stage1_kappa(n, cond(ref) if cond is not None else 1.0)
    rtol = rtol_for(example.dtype, "stage1", kappa).rtol
    floors = floors or {}
    outputs = {name: np.asarray(getattr(ref, name)) for name in ref._fields}
    terms = stage1_term_scales(example.function, example.arrays, outputs)
    atols = {
        name: rtol * np.maximum(float(np.max(np.abs(value), initial=0.0)), terms.get(name, 0.0))
        + floors.get(name, 0.0)
        for name, value in outputs.items()
    }
    _compare_fields(law, impl, example, got, ref, rtol, atols)


def empirical_matches_reference(impl: Any, example: Example) -> None:
    """Empirical mean and variance of the mean (ddof = 1, divided by N) equal the reference's.

    The variance gets an absolute floor of ``rtol² · max G²``: a deviation ``G_n - mean``
    that is exactly 0 (identical samples) can come out as one rounding error of size
    ``rtol · max|G|``, whose square is that floor. A one-pass ``E[G²] - mean²`` errs by
    ``rtol · max G²`` and still fails.
    """
    grads = np.asarray(example.arrays["per_sample_grads"], dtype=np.float64)
    n = grads.shape[0]
    rtol = rtol_for(example.dtype, "stage1", stage1_kappa(n)).rtol
    floor = rtol**2 * float(np.max(grads**2, initial=0.0))
    _compare_stage1("empirical_matches_reference", impl, example, n, {"var": floor})


def linear_head_matches_reference(impl: Any, example: Example) -> None:
    """Squared-error head moments equal the reference's on small random heads."""
    n = example.arrays["h"].shape[1] + 1
    _compare_stage1("linear_head_matches_reference", impl, example, n)


def _head_width(example: Example) -> tuple[int, int]:
    """(K, D+1) of a head example."""
    weights = example.arrays.get("w_mean", example.arrays.get("w"))
    assert weights is not None
    return int(weights.shape[0]), int(weights.shape[1])


def _cov_cond(example: Example) -> float:
    return float(np.linalg.cond(example.arrays["w_cov"].astype(np.float64)))


def softmax_moments_match_reference(impl: Any, example: Example) -> None:
    """Monte Carlo moments with the given ``eps`` equal the reference's (the same draws, so
    the same numbers up to rounding: κ = K(D+1) · cond(Σ), Σ factored by Cholesky)."""
    k, width = _head_width(example)
    cond = _cov_cond(example)
    _compare_stage1(
        "softmax_moments_match_reference", impl, example, k * width, cond=lambda _: cond
    )


def softmax_moments_own_sampler(impl: Any, example: Example) -> None:
    r"""With its own sampler (``n_samples``, ``seed``) the candidate's moments agree with an
    independent harness sample, within the stated statistical bound (see
    :func:`~bogc_ref.conformance.runner.monte_carlo_comparison`), and repeat for a seed."""
    from .runner import monte_carlo_comparison

    args, _ = example.args()
    comparison = monte_carlo_comparison(impl, args, example.dtype, samples=2000, truth=20000)
    if not comparison.ok:
        raise fail("softmax_moments_own_sampler", impl, example, comparison.reason)


def softmax_linearized_matches_reference(impl: Any, example: Example) -> None:
    """Linearized moments equal the reference's (κ = K(D+1), nothing factored)."""
    k, width = _head_width(example)
    _compare_stage1("softmax_linearized_matches_reference", impl, example, k * width)


def linear_posterior_matches_reference(impl: Any, example: Example) -> None:
    """The conjugate posterior equals the reference's (κ = (D+1) · cond Λ)."""
    width = example.arrays["prior_mean"].shape[1]
    _compare_stage1(
        "linear_posterior_matches_reference",
        impl,
        example,
        width,
        cond=lambda ref: float(np.linalg.cond(ref.cov[0].astype(np.float64))),
    )


def laplace_matches_reference(impl: Any, example: Example) -> None:
    """The Laplace posterior equals the reference's (κ = K(D+1) · cond Λ)."""
    k, width = _head_width(example)
    _compare_stage1(
        "laplace_matches_reference",
        impl,
        example,
        k * width,
        cond=lambda ref: float(np.linalg.cond(ref.cov.astype(np.float64))),
    )


# --- dempster_combine ------------------------------------------------------------------


def raised(exc: BaseException, qualified_name: str) -> bool:
    """Whether a candidate's exception is a ``qualified_name`` (e.g. "builtins.ValueError").

    Works on the harness's ``CandidateError`` (its ``is_a``) and on an exception raised
    in-process; a worker failure or a boundary violation is never the expected error.
    """
    harness_side = {"WorkerFailure", "ContractViolation"}  # and their subclasses
    if any(cls.__name__ in harness_side for cls in type(exc).__mro__):
        return False
    is_a = getattr(exc, "is_a", None)
    if callable(is_a):
        return bool(is_a(qualified_name))
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}
    return qualified_name in names


def _combine(impl: Any, m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
    return np.asarray(impl.dempster_combine(m1.copy(), m2.copy()))


def _compare_masses(
    law: str, impl: Any, example: Example, got: np.ndarray, expected: np.ndarray, factor: float
) -> None:
    rtol = factor * stage3_tolerance(example.arrays["m1"].shape, example.dtype).rtol
    _check(law, impl, example, "mass", got, expected, rtol=rtol, atol=rtol)


def dempster_combine_matches_reference(impl: Any, example: Example) -> None:
    """The combined masses equal the reference's."""
    got = example.call(impl)
    _compare_masses(
        "dempster_combine_matches_reference", impl, example, got, example.call(bogc_ref), 1.0
    )


def dempster_combine_commutative(impl: Any, example: Example) -> None:
    """m1 ⊕ m2 = m2 ⊕ m1."""
    m1, m2 = example.arrays["m1"], example.arrays["m2"]
    got = _combine(impl, m2, m1)
    _compare_masses("dempster_combine_commutative", impl, example, got, _combine(impl, m1, m2), 2.0)


def dempster_combine_associative(impl: Any, example: Example) -> None:
    """(m1 ⊕ m2) ⊕ m3 = m1 ⊕ (m2 ⊕ m3) (m3 in the example's ``extra``)."""
    m1, m2 = example.arrays["m1"], example.arrays["m2"]
    m3 = np.asarray(example.extra["m3"]).astype(m1.dtype)
    left = _combine(impl, _combine(impl, m1, m2), m3)
    right = _combine(impl, m1, _combine(impl, m2, m3))
    _compare_masses("dempster_combine_associative", impl, example, left, right, 4.0)


def dempster_combine_vacuous_identity(impl: Any, example: Example) -> None:
    """The vacuous mass function (all mass on the whole frame) is the identity."""
    m1 = example.arrays["m1"]
    vacuous = np.zeros_like(m1)
    vacuous[-1] = 1
    got = _combine(impl, m1, vacuous)
    _compare_masses("dempster_combine_vacuous_identity", impl, example, got, m1, 1.0)


def dempster_combine_total_conflict(impl: Any, example: Example) -> None:
    """Two categorical masses on disjoint singletons conflict totally: ValueError."""
    m1 = example.arrays["m1"]
    if m1.shape[0] < 4:
        return  # a frame of one element has no disjoint non-empty subsets
    first = np.zeros_like(m1)
    second = np.zeros_like(m1)
    first[1], second[2] = 1, 1  # {element 0} and {element 1}
    conflict = Example("dempster_combine", {"m1": first, "m2": second}, ("m1", "m2"))
    try:
        got = conflict.call(impl)
    except Exception as exc:
        if raised(exc, "builtins.ValueError"):
            return
        raise fail(
            "dempster_combine_total_conflict",
            impl,
            conflict,
            f"total conflict raised {getattr(exc, 'type_name', type(exc).__name__)}: {exc}, "
            "expected ValueError",
        ) from None
    raise fail(
        "dempster_combine_total_conflict",
        impl,
        conflict,
        f"total conflict returned a result ({np.asarray(got).tolist()}) instead of ValueError",
    )


@dataclass(frozen=True)
class Law:
    """A named law: its stage, the functions it calls and the check."""

    name: str
    stage: str
    needs: tuple[str, ...]
    check: Callable[[Any, Example], None]


LAWS: tuple[Law, ...] = tuple(
    Law(check.__name__, stage, needs, check)
    for stage, needs, check in (
        ("stage1", ("empirical_moments",), empirical_matches_reference),
        ("stage1", ("linear_head_moments",), linear_head_matches_reference),
        ("stage1", ("softmax_head_moments",), softmax_moments_match_reference),
        ("stage1", ("softmax_head_moments",), softmax_moments_own_sampler),
        ("stage1", ("softmax_head_moments_linearized",), softmax_linearized_matches_reference),
        ("stage1", ("linear_head_posterior",), linear_posterior_matches_reference),
        ("stage1", ("softmax_head_laplace",), laplace_matches_reference),
        ("stage2", ("evidence",), evidence_matches_reference),
        ("stage2", ("evidence",), evidence_monotone),
        ("stage3", ("reduced_dempster",), reduced_dempster_matches_reference),
        ("stage3", ("opinions",), opinions_matches_reference),
        ("stage3", ("reduced_dempster",), reduced_dempster_masses),
        ("stage3", ("reduced_dempster",), reduced_dempster_vacuous_identity),
        ("stage3", ("reduced_dempster",), reduced_dempster_bayes_identity),
        ("stage3", ("dempster_combine",), dempster_combine_matches_reference),
        ("stage3", ("dempster_combine",), dempster_combine_commutative),
        ("stage3", ("dempster_combine",), dempster_combine_associative),
        ("stage3", ("dempster_combine",), dempster_combine_vacuous_identity),
        ("stage3", ("dempster_combine",), dempster_combine_total_conflict),
        ("calibrate", ("calibrate",), calibrate_matches_reference),
        ("calibrate", ("calibrate",), calibrate_dtype_and_shape),
        ("calibrate", ("calibrate",), calibrate_permutation_equivariance),
        ("calibrate", ("calibrate",), calibrate_scale_equivariance),
        ("calibrate", ("calibrate",), calibrate_masses),
        ("calibrate", ("calibrate",), calibrate_grad_in_hull),
        ("calibrate", ("calibrate",), calibrate_mask_equals_removal),
        ("calibrate", ("calibrate",), calibrate_extreme_magnitudes),
        ("calibrate", ("calibrate",), calibrate_bayes_identity),
    )
)


LAWS_BY_NAME: dict[str, Law] = {law.name: law for law in LAWS}


def check_law(name: str, impl: Any, example: Example) -> str:
    """Run the law ``name`` on one example: "" when it holds, else what it measured.

    This is what reproduction snippets call; ``impl`` is anything with the interface's
    function names (an ``open_candidate`` result, the :mod:`bogc_ref` module).
    """
    try:
        LAWS_BY_NAME[name].check(impl, example)
    except AssertionError as exc:
        return str(exc).split(REPRODUCE)[0]
    return ""


#: The laws the fresh tier also runs (no Hypothesis) on draws of :func:`fresh_law_examples`.
FRESH_LAWS = (
    "dempster_combine_commutative",
    "dempster_combine_associative",
    "dempster_combine_vacuous_identity",
    "dempster_combine_total_conflict",
)


def fresh_law_examples(dtype: str, seed: int) -> dict[str, list[Example]]:
    """Deterministic examples of :data:`FRESH_LAWS`: mass functions on frames of 1..5."""
    from .fresh import random_mass

    rng = np.random.default_rng([seed, 7])
    examples = []
    for n in (1, 2, 3, 4, 5, 3):
        m1, m2, m3 = (random_mass(rng, n).astype(dtype) for _ in range(3))
        examples.append(
            Example("dempster_combine", {"m1": m1, "m2": m2}, ("m1", "m2"), {}, {"m3": m3})
        )
    return {name: examples for name in FRESH_LAWS}
