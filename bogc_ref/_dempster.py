"""Stage 3: subjective-logic opinions and Dempster's rule of combination.

Frame of discernment Θ = {1..M}: "which source's gradient to follow" in one dimension.
Source m holds a simple support function with mass ``b_m`` on {m} and ``u_m`` on Θ,

    b_m = e_m / (e_m + W),    u_m = W / (e_m + W),

with the non-informative prior weight ``W > 0`` (default M). Combining all M sources by
Dempster's rule gives, in closed form (see docs, "Stage 3"),

    b̂_m = e_m / (W + Σ_n e_n),    û = W / (W + Σ_n e_n).

The closed form is evaluated in the log domain (``log b̂_m = log e_m - log(W + Σ e)``) so
that evidence of any magnitude neither overflows nor loses the smaller sources.
Dogmatic sources (``e = +inf``) follow the equal-dogmatism limit: the set Z of dogmatic
sources in a dimension shares the belief equally, ``b̂_m = 1/|Z|`` on Z, and ``û = 0``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ._results import Opinion
from ._validation import (
    FloatArray,
    float_array,
    memory_named,
    positive_scalar,
    reject_where,
    require_ndim,
    sources_array,
)


def prior_weight_value(prior_weight: object, n_sources: int) -> float:
    """``W``: the given prior weight (> 0), or M, the length of the sources axis."""
    if prior_weight is None:
        return float(n_sources)
    return positive_scalar(prior_weight, "prior_weight")


#: Above this ``log e`` (e > exp(2**50)) a sum of logs no longer resolves log M and W is
#: nothing next to e: such dimensions are fused from the shifted evidence (see huge_shares).
RESOLVABLE_LOG_EVIDENCE = 2.0**50


def huge_shares(finite_log_e: FloatArray) -> tuple[np.ndarray, FloatArray]:
    """Where the largest finite ``log e`` of a dimension exceeds :data:`RESOLVABLE_LOG_EVIDENCE`
    (a huge ``power``): that mask (..., D) and the shares ``e_m / Σ_n e_n`` there, taken
    as ``exp(log e_m - max_n log e_n)`` normalised (exact where ``log(Σ e)`` is not)."""
    top = (
        np.max(finite_log_e, axis=-2)
        if finite_log_e.shape[-2]
        else np.full(finite_log_e.shape[:-2] + finite_log_e.shape[-1:], -np.inf)
    )
    huge = top > RESOLVABLE_LOG_EVIDENCE
    shift = np.where(huge, top, 0.0)[..., None, :]
    with np.errstate(over="ignore", invalid="ignore"):
        shifted = np.where(huge[..., None, :], np.exp(finite_log_e - shift), 0.0)
    total = np.sum(shifted, axis=-2, keepdims=True)
    return huge, shifted / np.where(total > 0, total, 1.0)


def fuse_log_evidence(log_e: FloatArray, prior_weight: float) -> tuple[FloatArray, FloatArray]:
    """Fused (belief, uncertainty) in float64 from ``log e`` of shape (..., M, D).

    ``log e = -inf`` is no evidence, ``+inf`` dogmatic.
    """
    dogmatic = np.isposinf(log_e)
    n_dogmatic = np.count_nonzero(dogmatic, axis=-2)
    finite_log_e = np.where(dogmatic, -np.inf, log_e)
    # log e near -1.8e308 minus a large log overflows to -inf, and exp(-inf) = 0: right.
    with np.errstate(over="ignore"):
        log_total = logsumexp(finite_log_e, axis=-2)
        # log(W + Σ e): stays finite for every log_e, including all -inf (no evidence at all).
        log_denominator = np.logaddexp(np.log(prior_weight), log_total)
        belief = np.exp(finite_log_e - log_denominator[..., None, :])
        uncertainty = np.exp(np.log(prior_weight) - log_denominator)
    huge, shares = huge_shares(finite_log_e)
    if huge.any():
        belief = np.where(huge[..., None, :], shares, belief)
        uncertainty = np.where(huge, 0.0, uncertainty)
    has_dogmatic = n_dogmatic > 0
    if has_dogmatic.any():
        share = dogmatic / np.maximum(n_dogmatic, 1)[..., None, :]
        belief = np.where(has_dogmatic[..., None, :], share, belief)
        uncertainty = np.where(has_dogmatic, 0.0, uncertainty)
    return belief, uncertainty


def _evidence_argument(evidence: object) -> FloatArray:
    arr = sources_array(evidence, "evidence")
    with memory_named("evidence", arr.shape):
        nan, negative = np.isnan(arr), arr < 0
    reject_where(nan, "evidence", "NaN", arr.shape)
    reject_where(negative, "evidence", "negative evidence", arr.shape)
    return arr


def log_of_evidence(evidence: FloatArray) -> FloatArray:
    """``log e`` in float64 (``-inf`` for zero evidence, ``+inf`` for dogmatic)."""
    with np.errstate(divide="ignore"):
        return np.log(evidence.astype(np.float64, copy=False))


def opinions(evidence: object, *, prior_weight: float | None = None) -> Opinion:
    r"""Each source's own simple support opinion.

    .. math::

        b_m = \frac{e_m}{e_m + W}, \qquad u_m = \frac{W}{e_m + W}

    Args:
        evidence: (..., M, D), ``e >= 0``; ``+inf`` gives the dogmatic opinion b = 1, u = 0.
        prior_weight: W > 0; default M (``evidence.shape[-2]``).

    Returns:
        Opinion(belief, uncertainty), both (..., M, D), the dtype of ``evidence``.

    >>> import numpy as np
    >>> opinions(np.array([[2.0], [0.0]])).belief
    array([[0.5],
           [0. ]])
    """
    e = _evidence_argument(evidence)
    w = prior_weight_value(prior_weight, e.shape[-2])
    log_e = log_of_evidence(e)
    dogmatic = np.isposinf(log_e)
    log_denominator = np.logaddexp(np.where(dogmatic, 0.0, log_e), np.log(w))
    belief = np.where(dogmatic, 1.0, np.exp(log_e - log_denominator))
    uncertainty = np.where(dogmatic, 0.0, np.exp(np.log(w) - log_denominator))
    return Opinion(belief.astype(e.dtype), uncertainty.astype(e.dtype))


def reduced_dempster(evidence: object, *, prior_weight: float | None = None) -> Opinion:
    r"""The fused opinion of all M sources: Dempster's rule in closed form.

    .. math::

        \hat b_m = \frac{e_m}{W + \sum_n e_n}, \qquad \hat u = \frac{W}{W + \sum_n e_n}

    Where a set Z of sources is dogmatic (``e = +inf``): :math:`\hat b_m = 1/|Z|` on Z,
    0 elsewhere, and :math:`\hat u = 0`.

    Args:
        evidence: (..., M, D), ``e >= 0`` (float32 or float64).
        prior_weight: W > 0; default M.

    Returns:
        Opinion(belief (..., M, D), uncertainty (..., D)), the dtype of ``evidence``.

    >>> import numpy as np
    >>> fused = reduced_dempster(np.array([[1.0], [3.0]]))
    >>> fused.belief.ravel(), fused.uncertainty
    (array([0.16666667, 0.5       ]), array([0.33333333]))
    """
    e = _evidence_argument(evidence)
    w = prior_weight_value(prior_weight, e.shape[-2])
    belief, uncertainty = fuse_log_evidence(log_of_evidence(e), w)
    return Opinion(belief.astype(e.dtype), uncertainty.astype(e.dtype))


def _mass_argument(mass: object, name: str) -> FloatArray:
    arr = float_array(mass, name)
    require_ndim(arr, name, 1, "(2**n,) indexed by subset bitmask")
    size = arr.shape[0]
    if size < 2 or size & (size - 1):
        raise ValueError(f"{name}: length must be 2**n with n >= 1, got shape {arr.shape}")
    reject_where(~np.isfinite(arr), name, "non-finite mass", arr.shape)
    reject_where(arr < 0, name, "negative mass", arr.shape)
    if arr[0] != 0:
        raise ValueError(f"{name}: index 0 (the empty set) must hold 0, got {arr[0]!r}")
    total = float(np.sum(arr, dtype=np.float64))
    if abs(total - 1.0) > 64 * np.finfo(arr.dtype).eps * size:
        raise ValueError(f"{name}: masses must sum to 1, got {total!r} (shape {arr.shape})")
    return arr


#: Pairs of focal sets whose intersections and products one block holds (16 MiB each).
PAIRS_PER_BLOCK = 1 << 21


def _conjunctive(a: FloatArray, b: FloatArray) -> FloatArray:
    """Unnormalised conjunctive combination: out[A] = Σ_{B ∩ C = A} a[B] b[C] (float64)."""
    size = a.shape[0]
    focal_a, focal_b = np.flatnonzero(a), np.flatnonzero(b)
    mass_b = b[focal_b]
    out = np.zeros(size)
    rows = max(1, PAIRS_PER_BLOCK // max(1, focal_b.size))
    for start in range(0, focal_a.size, rows):
        block = focal_a[start : start + rows]
        intersection = np.bitwise_and.outer(block, focal_b)
        products = np.multiply.outer(a[block], mass_b)
        out += np.bincount(intersection.ravel(), weights=products.ravel(), minlength=size)
    return out


def dempster_combine(m1: object, m2: object) -> FloatArray:
    r"""Dempster's rule for two mass functions over a frame of n elements.

    .. math::

        (m_1 \oplus m_2)(A) = \frac{\sum_{B \cap C = A} m_1(B)\, m_2(C)}
                                   {\sum_{B \cap C \neq \emptyset} m_1(B)\, m_2(C)},
        \qquad A \neq \emptyset

    Subsets are bitmasks: element i of the frame belongs to subset s when bit i of s is
    set; index 0 is the empty set (mass 0) and index ``2**n - 1`` the whole frame.

    Only pairs of focal sets (non-zero masses) are visited, a block of pairs at a time:
    memory O(2**n + ``PAIRS_PER_BLOCK``), time O(``len(F1) * len(F2)``) for F1, F2 the focal
    sets (4**n for masses that are dense over the whole lattice: about 1 s at n = 14 and
    6 s at n = 15 on one core, 49 MiB at most). Every term is a non-negative product, so
    the sums lose nothing to cancellation.

    Args:
        m1, m2: masses of length 2**n, non-negative, summing to 1, with ``m[0] == 0``.

    Returns:
        The combined masses, length 2**n, the common dtype of the inputs.

    Raises:
        ValueError: on total conflict (every product lands on the empty set).

    >>> import numpy as np
    >>> dempster_combine(np.array([0, 0.6, 0, 0.4]), np.array([0, 0, 0.5, 0.5]))
    array([0.        , 0.42857143, 0.28571429, 0.28571429])
    """
    a = _mass_argument(m1, "m1")
    b = _mass_argument(m2, "m2")
    if a.shape != b.shape:
        raise ValueError(f"m2: shape {b.shape} does not match m1's shape {a.shape}")
    if a.dtype != b.dtype:
        raise TypeError(f"m2: dtype {b.dtype} does not match m1's dtype {a.dtype}")
    combined = _conjunctive(a.astype(np.float64), b.astype(np.float64))
    combined[0] = 0.0
    agreement = float(np.sum(combined))
    if agreement <= 0.0:
        raise ValueError("m1, m2: total conflict (no pair of focal sets intersects); undefined")
    return (combined / agreement).astype(a.dtype)
