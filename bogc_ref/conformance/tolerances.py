r"""The tolerance policy of the conformance harness: the one place where it is written.

Every comparison of a candidate's output ``c`` with the reference's ``r`` is elementwise,

.. math::

    |c - r| \le \mathrm{atol} + \mathrm{rtol}\,|r|,

and non-finite entries (``+inf`` for dogmatic evidence, ``0`` for none) must match exactly.

**rtol** depends on the dtype, the stage and a condition factor κ of the inputs:

.. math::

    \mathrm{rtol} = \max\big(\mathrm{floor}[\text{dtype}, \text{stage}],\;
                             c[\text{stage}] \cdot \varepsilon_{\text{dtype}} \cdot \kappa\big)

* stage 2 and calibrate: :math:`\kappa = p\,(1 + 2L)`, :math:`L = \max|\ln\lambda|` over the
  finite positive precisions (at least 1). An implementation that takes :math:`\ln\lambda` and
  the log of the geometric mean to within ε relative has an absolute error
  :math:`\varepsilon(|\ln\lambda| + |\ln\lambda_{\mathrm{ref}}|)` in :math:`\ln e`, i.e. a
  relative error :math:`p\,\varepsilon\,2L` in ``e``: the input's magnitude enters here.
* stage 3: κ = 1 (a ratio of sums of M non-negative numbers).
* stage 1: :math:`\kappa = n\cdot\mathrm{cond}`, n the longest reduction in the formulas
  (D+1, K(D+1) or N) and cond the condition number of the matrix that is factored (the
  posterior precision or the covariance of a Monte Carlo case; 1 when nothing is factored).
  This is the classical :math:`n\varepsilon\,\mathrm{cond}` bound of a backward-stable solve.

float64 floors are 1e-12 (stages 2, 3 and calibrate) and 1e-11 (stage 1): a float64
candidate that evaluates the same formulas differs from the float64-internal reference by a
few ulps times κ, far below the floor for well-conditioned inputs, so the floor is what a
conforming candidate meets; ``c`` lets ill-conditioned cases (extreme magnitudes,
near-singular posteriors) widen it by exactly their condition factor. For float32 the
floor is ``c · ε₃₂`` and the candidate is compared with the reference run on the same
float32 inputs (computed in float64 inside, so it is the exact answer for those inputs).

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

#: Family-wise false-alarm probability of one statistical Monte Carlo comparison.
MC_FAMILY_ALPHA = 1e-6


@dataclass(frozen=True)
class Tolerance:
    """rtol of one comparison and the κ it was derived from."""

    rtol: float
    kappa: float


def eps(dtype: str | np.dtype[Any]) -> float:
    """Machine epsilon of a float dtype."""
    return float(np.finfo(np.dtype(dtype)).eps)


def rtol_for(dtype: str | np.dtype[Any], stage: str, kappa: float = 1.0) -> Tolerance:
    """``rtol = max(floor[dtype, stage], c[stage] · ε · κ)``."""
    name = np.dtype(dtype).name
    kappa = max(1.0, float(kappa))
    rtol = max(FLOORS[name][stage], ULP_FACTORS[stage] * eps(name) * kappa)
    return Tolerance(rtol=rtol, kappa=kappa)


def log_magnitude(var: np.ndarray, present: np.ndarray | None = None) -> float:
    """``L = max |ln λ|`` over finite positive precisions (present sources only), at least 1."""
    v = np.asarray(var, dtype=np.float64)
    good = np.isfinite(v) & (v > 0)
    if present is not None:
        good &= present
    if not good.any():
        return 1.0
    return max(1.0, float(np.max(np.abs(np.log(v[good])))))


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
            "|c - r| <= atol + rtol*|r|; rtol = max(floor[dtype][stage], c[stage]*eps*kappa)"
        ),
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
