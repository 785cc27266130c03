"""Stage 1, model-free: moments of the mean of per-sample gradients."""

from __future__ import annotations

import numpy as np

from ._results import Moments
from ._validation import float_array, require_finite, require_min_ndim


def empirical_moments(per_sample_grads: object) -> Moments:
    r"""Mean of N per-sample gradients and the variance of that mean.

    .. math::

        \bar g = \frac1N \sum_n G_n, \qquad
        \mathrm{var} = \frac{1}{N(N-1)} \sum_n (G_n - \bar g)^2 .

    Args:
        per_sample_grads: G, shape (N, ..., D) with N >= 2, float32 or float64.

    Returns:
        Moments(mean, var), each (..., D), the dtype of ``G``.

    >>> import numpy as np
    >>> empirical_moments(np.array([[1.0], [3.0]]))
    Moments(mean=array([2.]), var=array([1.]))
    """
    g = float_array(per_sample_grads, "per_sample_grads")
    require_min_ndim(g, "per_sample_grads", 2, "(N, ..., D)")
    n = g.shape[0]
    if n < 2:
        raise ValueError(
            f"per_sample_grads: need N >= 2 samples on axis 0 for a variance, got shape {g.shape}"
        )
    require_finite(g, "per_sample_grads")
    g64 = g.astype(np.float64, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: scaled path below
        mean = g64.mean(axis=0)
        var = g64.var(axis=0, ddof=1) / n
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
        mean, var = _scaled_moments(g64)
    with np.errstate(over="ignore"):  # beyond float32's range: inf, the rounded answer
        return Moments(mean.astype(g.dtype), var.astype(g.dtype))


def _scaled_moments(g64: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The moments with each entry's samples divided by their largest magnitude s first.

    Used only when the plain sums overflow float64 (entries near 1e308): the mean
    s·mean(G/s) is then exact to rounding, and the variance s·(s·var(G/s)/N) is a
    correct inf only where it exceeds float64's range.
    """
    n = g64.shape[0]
    size = np.max(np.abs(g64), axis=0)
    size = np.where(size > 0, size, 1.0)
    unit = g64 / size
    with np.errstate(over="ignore"):
        return size * unit.mean(axis=0), size * (size * (unit.var(axis=0, ddof=1) / n))
