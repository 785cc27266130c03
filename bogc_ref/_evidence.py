"""Stage 2: per-dimension precision turned into dimensionless evidence.

With ``λ = 1/var`` per source and dimension:

* ``mode="relative"`` (default): ``e = (λ / λ_ref)^p`` where ``λ_ref = exp(mean log λ)`` is
  the geometric mean of the finite, positive ``λ`` over the present sources and all
  dimensions of one leading index;
* ``mode="fixed"``: ``e = (λ / τ)^p``.

``var = +inf`` (or an absent source) gives ``λ = 0`` and ``e = 0``; ``var = 0`` gives
``λ = +inf`` and dogmatic evidence ``e = +inf``.

Everything is computed in the log domain, ``log e = p (log λ - log λ_ref)``, in float64,
so precisions from 1e-300 to 1e300 neither overflow nor underflow before the ratio is taken.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ._validation import (
    FloatArray,
    bool_mask,
    memory_named,
    positive_scalar,
    reject_where,
    sources_array,
)

Mode = Literal["relative", "fixed"]
MODES = ("relative", "fixed")


def evidence_params(mode: object, tau: object, power: object) -> tuple[str, float | None, float]:
    """Validate ``mode``, ``tau`` and ``power``; return them as (mode, tau, power)."""
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if mode == "fixed":
        if tau is None:
            raise ValueError("tau: required when mode='fixed' (a prior precision > 0)")
        tau_value: float | None = positive_scalar(tau, "tau")
    else:
        if tau is not None:
            raise ValueError("tau: only used with mode='fixed'; leave it None for mode='relative'")
        tau_value = None
    return str(mode), tau_value, positive_scalar(power, "power")


def present_sources(mask: object, shape: tuple[int, ...]) -> np.ndarray:
    """Boolean array of ``shape`` (..., M, D): True where the source is present."""
    if mask is None:
        return np.broadcast_to(np.True_, shape)  # a read-only view: no memory
    sources = bool_mask(mask, "mask", shape[:-1])
    return np.broadcast_to(sources[..., None], shape)


def check_var(var: np.ndarray, present: np.ndarray) -> None:
    """NaN or a negative variance in a present source is an error (``+inf`` is allowed)."""
    with memory_named("var", var.shape):
        nan, negative = np.isnan(var) & present, (var < 0) & present
    reject_where(nan, "var", "NaN in a present source", var.shape)
    reject_where(negative, "var", "negative variance in a present source", var.shape)


def log_evidence(
    var: FloatArray, present: np.ndarray, mode: str, tau: float | None, power: float
) -> FloatArray:
    """``log e`` in float64, shape (..., M, D): ``-inf`` for no evidence, ``+inf`` for dogmatic.

    Only ``var = 0`` gives ``+inf``: a finite ``log e`` that overflows (a huge ``power``
    or a tiny ``tau``) saturates at float64's largest finite value, so no parameter turns
    a finite evidence into a dogmatic one.
    """
    var64 = np.where(present, var.astype(np.float64, copy=False), np.inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_var = np.log(var64)  # log 0 = -inf; unchecked input may be NaN
        if mode == "relative":
            informative = present & np.isfinite(log_var)
            total = np.sum(np.where(informative, log_var, 0.0), axis=(-2, -1), keepdims=True)
            count = np.count_nonzero(informative, axis=(-2, -1), keepdims=True)
            # log λ_ref = -mean(log var); where nothing is informative λ_ref is never used.
            log_ref_var = total / np.maximum(count, 1)
            log_e = power * (log_ref_var - log_var)
        else:
            assert tau is not None
            log_e = power * (-log_var - np.log(tau))
    finite_overflow = np.isposinf(log_e) & (var64 != 0)
    log_e = np.where(finite_overflow, np.finfo(np.float64).max, log_e)
    return np.where(present, log_e, -np.inf)


def evidence_from_log(log_e: FloatArray, dtype: np.dtype[Any]) -> FloatArray:
    """``exp(log e)`` in ``dtype``, saturating finite evidence at the dtype's largest value.

    Only ``log e = +inf`` (dogmatic) becomes +inf: a finite evidence too large for the
    dtype (possible with a large ``power``) is never mistaken for a dogmatic one.
    """
    big = np.finfo(dtype).max
    with np.errstate(over="ignore"):
        values = np.exp(log_e)
    return np.where(np.isposinf(log_e), np.inf, np.minimum(values, big)).astype(dtype)


def evidence(
    var: object,
    *,
    mask: object = None,
    mode: Mode = "relative",
    tau: float | None = None,
    power: float = 1.0,
) -> FloatArray:
    r"""Evidence of each source in each dimension from its gradient variance.

    .. math::

        \lambda_{md} = 1/\mathrm{var}_{md}, \qquad
        e_{md} = (\lambda_{md} / \lambda_{\mathrm{ref}})^{p}, \qquad
        \lambda_{\mathrm{ref}} = \exp \operatorname{mean}_{(m,d)} \log\lambda_{md}

    for ``mode="relative"`` (the geometric mean runs over present sources and
    finite, positive precisions of one leading index), and
    :math:`e_{md} = (\lambda_{md}/\tau)^p` for ``mode="fixed"``.

    Args:
        var: variances, shape (..., M, D), float32 or float64; ``0`` is dogmatic,
            ``+inf`` carries no information.
        mask: (..., M) booleans, True where the source is present; absent sources
            get evidence 0 whatever their ``var`` holds.
        mode: ``"relative"`` or ``"fixed"``.
        tau: the precision scale τ > 0 of ``mode="fixed"``.
        power: the exponent p > 0.

    Returns:
        evidence, shape (..., M, D), the dtype of ``var``: ``+inf`` where dogmatic,
        ``0`` where absent or ``var = +inf``.

    >>> import numpy as np
    >>> evidence(np.array([[1.0, 4.0], [0.25, 1.0]]))
    array([[1.  , 0.25],
           [4.  , 1.  ]])
    """
    mode_, tau_, power_ = evidence_params(mode, tau, power)
    var_arr = sources_array(var, "var")
    present = present_sources(mask, var_arr.shape)
    check_var(var_arr, present)
    log_e = log_evidence(var_arr, present, mode_, tau_, power_)
    return evidence_from_log(log_e, var_arr.dtype)
