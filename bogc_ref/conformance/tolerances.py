r"""The tolerance policy of the conformance harness: the one place where it is written.

Every comparison of a candidate's output ``c`` with the reference's ``r`` is elementwise,

.. math::

    |c - r| \le \mathrm{atol} + \mathrm{rtol}\,|r|,

and non-finite entries (``+inf`` for dogmatic evidence, ``0`` for none) must match exactly.

**rtol** comes from a written error model (derived in ``docs/derivation/numerics.md``,
"Error model of the conformance tolerances"): a correct implementation evaluates the
spec's formulas with elementwise operations accurate to a few units in the last place
(logarithms, exponentials, divisions) and with reductions summed **in any order** in the
working precision of the dtype (or better). Each part contributes its own bound:

.. math::

    \mathrm{rtol} = \max\big(\mathrm{floor}[\text{dtype}, \text{stage}],\;
        c[\text{stage}]\,\varepsilon\,\kappa \;+\; R\big)

* κ, the condition factor of the elementwise part: stage 2 and calibrate
  :math:`\kappa = p\,(1 + 2L)`, :math:`L = \max|\ln\lambda|` over the finite positive
  precisions (at least 1): ``ln λ`` and ``ln λ_ref`` taken to within ε relative are off by
  :math:`\varepsilon(|\ln\lambda| + |\ln\lambda_{\mathrm{ref}}|)` in :math:`\ln e`,
  a relative error :math:`p\,\varepsilon\,2L` in ``e``; stage 3 κ = 1; stage 1
  :math:`\kappa = n\cdot\mathrm{cond}`, n the longest reduction in the formulas (D+1,
  K(D+1) or N) and cond the condition number of the factored matrix (the classical
  :math:`n\varepsilon\,\mathrm{cond}` bound of a backward-stable solve).
* R, the reductions of stages 2 and 3 bounded by their **length** and their **condition**:
  a sum of n terms in any order errs by at most :math:`\gamma_{n-1}\sum|x_i|`,
  :math:`\gamma_k = k u/(1 - k u)`, u = ε/2 (:func:`gamma`). The geometric mean of
  relative mode is the mean of the N informative :math:`\ln\mathrm{var}` of a leading
  index, so :math:`R = p\,\gamma_{N-1}\,A` with A the mean of :math:`|\ln\mathrm{var}|`
  (:math:`\sum|x_i| / |\sum x_i|` is the sum's condition number; the bound is absolute in
  :math:`\ln e`, i.e. relative in ``e``). Fusion adds :math:`\gamma_{M+1}` (M + 1
  non-negative terms, condition 1). :data:`REDUCTION_FACTOR` multiplies R: 1, because the
  bound is rigorous (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
  eq. 4.4).

float64 floors are 1e-12 (stages 2, 3 and calibrate) and 1e-11 (stage 1): below them the
bound is made of a few ulps of transcendental functions, whose last bits differ between
platforms. For float32 the floor is ``c · ε₃₂`` and the candidate is compared with the
reference run on the same float32 inputs (computed in float64 inside, so it is the exact
answer for those inputs). Because R is linear in N, plain sequential accumulation
conforms in either dtype: over the 24,576 homoscedastic terms of the largest golden
cases R is 3.7e-11 in float64 and 2.0e-2 in float32.

**atol** makes values near zero comparable, by output:

* ``grad``: :math:`\mathrm{rtol}\cdot S_d`, :math:`S_d = \max_{m\ \mathrm{present}}|\mu_{md}|`.
  :math:`|\hat g_d| \le S_d` (the beliefs sum to at most 1) and a sum of terms of size
  :math:`S_d` is only accurate to :math:`\varepsilon S_d`, however small the sum.
* ``belief``, ``uncertainty``: rtol (masses lie in [0, 1] and sum to 1).
* ``evidence``: the smallest normal number of the dtype (subnormal evidence compares as 0).
* stage-1 outputs: :math:`\mathrm{rtol}\cdot\max|r|` over the output (normwise: a dot
  product is accurate relative to its terms, not to its value).

Monte Carlo with the candidate's own sampler is compared statistically, see
:data:`MC_FAMILY_ALPHA` and :func:`mc_z_threshold`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtri

#: Stages in report order (the keys of :data:`bogc_ref.interface.STAGES`).
STAGE_NAMES = ("stage1", "stage2", "stage3", "calibrate")

#: Lowest rtol by dtype and stage.
FLOORS: dict[str, dict[str, float]] = {
    "float64": {"stage1": 1e-11, "stage2": 1e-12, "stage3": 1e-12, "calibrate": 1e-12},
    "float32": {
        "stage1": 32 * float(np.finfo(np.float32).eps),
        "stage2": 16 * float(np.finfo(np.float32).eps),
        "stage3": 16 * float(np.finfo(np.float32).eps),
        "calibrate": 16 * float(np.finfo(np.float32).eps),
    },
}

#: Multiplier of ε·κ by stage.
ULP_FACTORS: dict[str, float] = {"stage1": 32.0, "stage2": 16.0, "stage3": 16.0, "calibrate": 16.0}

#: Multiplier of the rigorous reduction bound R (see the module docstring).
REDUCTION_FACTOR = 1.0

#: Family-wise false-alarm probability of one statistical Monte Carlo comparison.
MC_FAMILY_ALPHA = 1e-6


@dataclass(frozen=True)
class Tolerance:
    """rtol of one comparison, the κ it was derived from and the reduction bound R."""

    rtol: float
    kappa: float
    reduction: float = 0.0


def eps(dtype: str | np.dtype[Any]) -> float:
    """Machine epsilon of a float dtype."""
    return float(np.finfo(np.dtype(dtype)).eps)


def gamma(n: int, dtype: str | np.dtype[Any]) -> float:
    r""":math:`\gamma_n = n u / (1 - n u)`, u = ε/2: a sum of n + 1 terms in any order errs by
    at most :math:`\gamma_n \sum |x_i|` (Higham, eq. 4.4)."""
    nu = max(0, int(n)) * eps(dtype) / 2.0
    return nu / (1.0 - nu) if nu < 1.0 else float("inf")


def rtol_for(
    dtype: str | np.dtype[Any], stage: str, kappa: float = 1.0, reduction: float = 0.0
) -> Tolerance:
    """``rtol = max(floor[dtype, stage], c[stage] · ε · κ + REDUCTION_FACTOR · R)``."""
    name = np.dtype(dtype).name
    kappa = max(1.0, float(kappa))
    bound = ULP_FACTORS[stage] * eps(name) * kappa + REDUCTION_FACTOR * float(reduction)
    rtol = max(FLOORS[name][stage], bound)
    return Tolerance(rtol=rtol, kappa=kappa, reduction=float(reduction))


def geometric_mean_reduction(
    var: np.ndarray, dtype: str | np.dtype[Any], present: np.ndarray | None = None
) -> float:
    r"""Bound on the error of ln λ_ref from its sum: :math:`\gamma_{N-1} A`.

    Per leading index, N is the number of informative entries (present, finite, > 0) of
    ``var`` (..., M, D) and A the mean of their :math:`|\ln\mathrm{var}|`; the largest over
    the leading indices is returned.
    """
    v = np.asarray(var, dtype=np.float64)
    good = np.isfinite(v) & (v > 0)
    if present is not None:
        good &= present
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(good, np.abs(np.log(np.where(good, v, 1.0))), 0.0)
    counts = np.count_nonzero(good, axis=(-2, -1))
    sums = np.sum(logs, axis=(-2, -1))
    worst = 0.0
    for n, total in zip(np.ravel(counts), np.ravel(sums), strict=True):
        if n > 1:
            worst = max(worst, gamma(int(n) - 1, dtype) * float(total) / float(n))
    return worst


def evidence_tolerance(
    var: np.ndarray,
    dtype: str | np.dtype[Any],
    stage: str,
    *,
    power: float = 1.0,
    mode: str = "relative",
    present: np.ndarray | None = None,
) -> Tolerance:
    """rtol of stage 2 (``stage="stage2"``) or calibrate: κ = p(1 + 2L) and R of the model.

    R is ``p · γ_{N-1} · A`` in relative mode (0 in fixed mode) plus, for calibrate, the
    fusion's ``γ_{M+1}``.
    """
    reduction = 0.0
    if mode == "relative":
        reduction = float(power) * geometric_mean_reduction(var, dtype, present)
    if stage == "calibrate":
        reduction += gamma(np.shape(var)[-2] + 1, dtype)
    return rtol_for(dtype, stage, evidence_kappa(var, power, present), reduction)


def log_magnitude(var: np.ndarray, present: np.ndarray | None = None) -> float:
    """``L = max |ln λ|`` over finite positive precisions (present sources only), at least 1."""
    v = np.asarray(var, dtype=np.float64)
    good = np.isfinite(v) & (v > 0)
    if present is not None:
        good &= present
    if not good.any():
        return 1.0
    return max(1.0, float(np.max(np.abs(np.log(v[good])))))


def stage3_tolerance(shape: tuple[int, ...], dtype: str | np.dtype[Any]) -> Tolerance:
    """rtol of stage 3 on evidence of ``shape`` (..., M, D): κ = 1, R = γ_{M+1}.

    ``dempster_combine`` on masses of length 2**n: R = γ of its 2**n·2**n products
    summed into the agreement (non-negative terms, condition 1).
    """
    if len(shape) == 1:
        return rtol_for(dtype, "stage3", 1.0, gamma(shape[0] * shape[0], dtype))
    return rtol_for(dtype, "stage3", 1.0, gamma(shape[-2] + 1, dtype))


def evidence_kappa(var: np.ndarray, power: float, present: np.ndarray | None = None) -> float:
    """κ of stages 2 and calibrate: ``p (1 + 2L)``."""
    return float(power) * (1.0 + 2.0 * log_magnitude(var, present))


def stage1_kappa(n_reduction: int, cond: float = 1.0) -> float:
    """κ of stage 1: ``n · cond``."""
    return float(n_reduction) * max(1.0, float(cond))


def mc_z_threshold(n_tests: int, alpha: float = MC_FAMILY_ALPHA) -> float:
    r"""Two-sided z bound with a Bonferroni correction over ``n_tests`` comparisons.

    :math:`z = \Phi^{-1}(1 - \alpha / (2 n))`: under a correct sampler, the chance that any
    of the n standardised differences exceeds z is at most α.
    """
    return float(ndtri(1.0 - alpha / (2.0 * max(1, n_tests))))


def mc_standard_errors(
    var_g: np.ndarray, m4_g: np.ndarray, n_candidate: int, n_truth: int
) -> tuple[np.ndarray, np.ndarray]:
    r"""Standard errors of the difference of two independent Monte Carlo estimates.

    For S i.i.d. draws of g with variance :math:`\sigma^2` and fourth central moment
    :math:`\mu_4`, the sample mean has variance :math:`\sigma^2/S` and the unbiased sample
    variance has asymptotic variance :math:`(\mu_4 - \sigma^4)/S`. The candidate's estimate
    (S_c draws) and the harness's (S_t draws) are independent, so the variances add.
    """
    se_mean = np.sqrt(var_g * (1.0 / n_candidate + 1.0 / n_truth))
    spread = np.maximum(m4_g - var_g**2, 0.0)
    se_var = np.sqrt(spread * (1.0 / n_candidate + 1.0 / n_truth))
    return se_mean, se_var


def describe() -> dict[str, Any]:
    """The policy as plain data, for the report and the JSON file."""
    return {
        "formula": (
            "|c - r| <= atol + rtol*|r|; "
            "rtol = max(floor[dtype][stage], c[stage]*eps*kappa + reduction_factor*R)"
        ),
        "reduction_factor": REDUCTION_FACTOR,
        "R": {
            "stage2/calibrate, mode relative": "power * gamma(N-1) * mean|ln var| "
            "(N informative entries of a leading index); gamma(n) = n*u/(1-n*u), u = eps/2",
            "calibrate": "+ gamma(M+1) (fusion)",
            "otherwise": "0",
        },
        "floors": FLOORS,
        "ulp_factors": ULP_FACTORS,
        "kappa": {
            "stage2/calibrate": "power * (1 + 2*max|ln(1/var)|)",
            "stage3": "1",
            "stage1": "n_reduction * cond(factored matrix)",
        },
        "atol": {
            "grad": "rtol * max over present sources of |mean| (per dimension)",
            "belief/uncertainty": "rtol",
            "evidence": "smallest normal number of the dtype",
            "stage1": "rtol * max|reference| over the output",
        },
        "monte_carlo_own_sampler": {
            "family_alpha": MC_FAMILY_ALPHA,
            "bound": "|c - t| <= z * se, z = Phi^-1(1 - alpha/(2n)), se from sigma^2/S and "
            "(mu4 - sigma^4)/S of both estimates",
        },
        "eps": {"float32": eps("float32"), "float64": eps("float64")},
        "nan": "never allowed in an output",
    }


def _inf_norm(x: Any) -> float:
    a = np.asarray(x, dtype=np.float64)
    return float(np.max(np.abs(a), initial=0.0)) if a.size else 0.0


def _linear_head_terms(inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """Componentwise term magnitudes of the squared-error head's moments, (B, D) each."""
    h, y, mu, cov = (
        np.abs(np.asarray(inputs[k], np.float64)) for k in ("h", "y", "w_mean", "w_cov")
    )
    d = h.shape[1]
    h_tilde = np.hstack([h, np.ones((h.shape[0], 1))])
    rho = h_tilde @ mu.T + y  # (B, K): |μ|·|h̃| + |y|
    sigma_h = np.einsum("kij,bj->bki", cov, h_tilde)
    s2 = np.einsum("bki,bi->bk", sigma_h, h_tilde)[..., None]
    c = sigma_h[..., :d]
    a = mu[:, :d]
    sigma2 = np.diagonal(cov, axis1=1, axis2=2)[:, :d]
    r = rho[..., None]
    mean = np.sum(r * a + c, axis=1)
    var = np.sum(r * r * sigma2 + a * a * s2 + 2 * r * a * c + s2 * sigma2 + c * c, axis=1)
    return {"mean": mean, "var": var}


def stage1_term_scales(
    function: str, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]
) -> dict[str, Any]:
    r"""The magnitude of the terms each stage-1 output is summed from (its atol is rtol times
    this, or times max|output| when larger).

    A sum is accurate relative to its terms, not to its value: where the terms cancel
    (a saturated softmax, a zero representation), the output is tiny and its error is
    still ε times the terms (n = D+1 below):

    * ``linear_head_moments``, componentwise (arrays (B, D)): the spec's formulas evaluated
      on absolute values, :math:`|\rho| \to |\mu||\tilde h| + |y|`,
      :math:`c \to |\Sigma||\tilde h|`, :math:`s^2 \to |\tilde h|^\top|\Sigma||\tilde h|`;
      every variance term carries a covariance factor, so a one-pass
      :math:`E[g^2] - E[g]^2`, whose error is ε·E[g]², stays far outside for concentrated
      posteriors;
    * ``softmax_head_moments`` (stored eps): weights
      :math:`W \lesssim \mu + \sqrt{K n \Sigma}\,\max|\varepsilon|`, mean 2W (the residual
      p − y has 1-norm at most 2), var :math:`2W(\sqrt{\max\mathrm{var}} + 2W\varepsilon)`
      (the two-pass error of a sample variance whose draws are each off by 2Wε);
    * ``softmax_head_moments_linearized``: mean 2μ, var :math:`(2 + 4 n \mu h)^2\Sigma`
      (the 1-norm of a Jacobian row squared times the covariance);
    * others (posteriors: solves, normwise; empirical moments): none beyond max|output|.
    """
    if function == "linear_head_moments":
        return _linear_head_terms(inputs)
    if function == "softmax_head_moments":
        n_params = inputs["w_cov"].shape[0]
        eps_max = _inf_norm(inputs["eps"]) if "eps" in inputs else 6.0
        w = _inf_norm(inputs["w_mean"]) + np.sqrt(n_params * _inf_norm(inputs["w_cov"])) * eps_max
        # Each draw's g is off by ε·2W, so its deviations are too: (2W)²ε on top.
        unit = eps(np.asarray(outputs["var"]).dtype)
        spread = np.sqrt(_inf_norm(outputs["var"])) + 2 * w * unit
        return {"mean": 2 * w, "var": float(2 * w * spread)}
    if function == "softmax_head_moments_linearized":
        n = inputs["h"].shape[1] + 1
        mu, h = _inf_norm(inputs["w_mean"]), max(1.0, _inf_norm(inputs["h"]))
        return {"mean": 2 * mu, "var": (2 + 4 * n * mu * h) ** 2 * _inf_norm(inputs["w_cov"])}
    return {}
