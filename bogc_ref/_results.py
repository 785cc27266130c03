"""The small named results returned by the public functions."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.floating[Any]]


class Moments(NamedTuple):
    """Per-dimension mean and variance of a source's gradient, each of shape (..., D)."""

    mean: Array
    var: Array


class Posterior(NamedTuple):
    """Gaussian posterior over a head's weights: ``mean`` and covariance ``cov``."""

    mean: Array
    cov: Array


class Opinion(NamedTuple):
    """Subjective-logic opinion: ``belief`` per source (..., M, D) and ``uncertainty``."""

    belief: Array
    uncertainty: Array


class Calibration(NamedTuple):
    """Result of :func:`bogc_ref.calibrate`.

    grad (..., D), belief (..., M, D), uncertainty (..., D), evidence (..., M, D).
    """

    grad: Array
    belief: Array
    uncertainty: Array
    evidence: Array
