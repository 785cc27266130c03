"""The calibrate call: evidence (stage 2), fusion (stage 3) and the calibrated gradient."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ._dempster import fuse_log_evidence, huge_shares, prior_weight_value
from ._evidence import (
    Mode,
    check_var,
    evidence_from_log,
    evidence_params,
    log_evidence,
    present_sources,
)
from ._results import Calibration
from ._validation import (
    FloatArray,
    common_dtype,
    float_array,
    memory_named,
    reject_where,
    require_bool,
    require_min_ndim,
    require_shape,
    require_sources,
)


def calibrate(
    mean: object,
    var: object,
    *,
    mask: object = None,
    mode: Mode = "relative",
    tau: float | None = None,
    power: float = 1.0,
    prior_weight: float | None = None,
    normalize: bool = False,
    check_finite: bool = True,
) -> Calibration:
    r"""Fuse M sources' gradient distributions into one calibrated gradient.

    With evidence :math:`e_{md}` from :func:`~bogc_ref.evidence` and the fused opinion
    :math:`\hat b_{md} = e_{md} / (W + \sum_n e_{nd})`,
    :math:`\hat u_d = W / (W + \sum_n e_{nd})` of :func:`~bogc_ref.reduced_dempster`:

    .. math::

        \hat g_d = \sum_m \hat b_{md}\, \mu_{md}
        \quad (\texttt{normalize=False}), \qquad
        \hat g_d = \frac{\sum_m \hat b_{md}\, \mu_{md}}{1 - \hat u_d}
        \quad (\texttt{normalize=True};\ \hat g_d = 0 \text{ where } \hat u_d = 1).

    Args:
        mean: gradient means μ, shape (..., M, D), float32 or float64.
        var: gradient variances, same shape and dtype; ``0`` is dogmatic, ``+inf`` vacuous.
        mask: (..., M) booleans, True = present. An absent source counts as
            ``var = +inf`` and its mean is ignored (it may be NaN).
        mode: ``"relative"`` (default) or ``"fixed"``, see :func:`~bogc_ref.evidence`.
        tau: the precision scale τ > 0 of ``mode="fixed"``.
        power: the exponent p > 0 of the evidence mapping.
        prior_weight: W > 0; default M, the length of the sources axis (masked or not).
        normalize: divide by :math:`1 - \hat u` (the BayesAgg-MTL precision-weighted mean).
        check_finite: reject NaN in a present source, ±inf in a present mean and a
            negative variance. Shapes and dtypes are always checked.

    Returns:
        Calibration(grad (..., D), belief (..., M, D), uncertainty (..., D),
        evidence (..., M, D)), all in the dtype of ``mean``.

    >>> import numpy as np
    >>> mean = np.array([[1.0, -2.0], [3.0, 2.0]])
    >>> var = np.array([[1.0, 1.0], [1.0, np.inf]])
    >>> calibrate(mean, var).grad
    array([ 1.        , -0.66666667])
    """
    mode_, tau_, power_ = evidence_params(mode, tau, power)
    mean_arr = float_array(mean, "mean")
    var_arr = float_array(var, "var")
    dtype = common_dtype([("mean", mean_arr), ("var", var_arr)])
    require_min_ndim(mean_arr, "mean", 2, "(..., M, D)")
    require_shape(var_arr, "var", mean_arr.shape, "the shape of mean")
    require_sources(mean_arr, "mean")
    present = present_sources(mask, mean_arr.shape)
    require_bool(check_finite, "check_finite")
    if check_finite:
        with memory_named("mean", mean_arr.shape):
            nan, inf = np.isnan(mean_arr) & present, np.isinf(mean_arr) & present
        reject_where(nan, "mean", "NaN in a present source", mean_arr.shape)
        reject_where(inf, "mean", "infinite value in a present source", mean_arr.shape)
        check_var(var_arr, present)
    weight = prior_weight_value(prior_weight, mean_arr.shape[-2])
    require_bool(normalize, "normalize")

    log_e = log_evidence(var_arr, present, mode_, tau_, power_)
    belief, uncertainty = fuse_log_evidence(log_e, weight)
    mu = np.where(present, mean_arr.astype(np.float64, copy=False), 0.0)
    grad = _weighted_sum(mu, belief, log_e) if normalize else np.sum(belief * mu, axis=-2)
    return Calibration(
        grad=grad.astype(dtype),
        belief=belief.astype(dtype),
        uncertainty=uncertainty.astype(dtype),
        evidence=evidence_from_log(log_e, dtype),
    )


def _weighted_sum(mu: FloatArray, belief: FloatArray, log_e: FloatArray) -> FloatArray:
    r""":math:`\sum_m \hat b_m \mu_m / (1 - \hat u) = \sum_m e_m \mu_m / \sum_n e_n`.

    Taken as :math:`\sum_m \exp(\log e_m - \log\sum_n e_n)\, \mu_m`, which stays exact when
    every evidence is far below W (where :math:`1 - \hat u` would round to 0). Dogmatic
    dimensions use the dogmatic beliefs, whose sum is already 1; a dimension without any
    evidence gives 0.
    """
    dogmatic = np.isposinf(log_e)
    finite_log_e = np.where(dogmatic, -np.inf, log_e)
    with np.errstate(invalid="ignore", over="ignore"):  # exp(-inf) = 0 is right
        log_total = logsumexp(finite_log_e, axis=-2)
        weights = np.exp(finite_log_e - log_total[..., None, :])
    weights = np.where(np.isneginf(log_total)[..., None, :], 0.0, weights)
    huge, shares = huge_shares(finite_log_e)
    if huge.any():
        weights = np.where(huge[..., None, :], shares, weights)
    weights = np.where(dogmatic.any(axis=-2, keepdims=True), belief, weights)
    return np.sum(weights * mu, axis=-2)
