"""bogc-ref: the reference implementation of Bayesian-Oriented Gradient Calibration.

Stage 1 (gradient distributions), stage 2 (precision to evidence) and stage 3 (the
reduced Dempster-Shafer rule) follow ``BOGC-SPEC.md`` v1; see the docs' derivation.
"""

from ._calibrate import calibrate
from ._dempster import dempster_combine, opinions, reduced_dempster
from ._empirical import empirical_moments
from ._evidence import evidence
from ._linear_head import linear_head_moments, linear_head_posterior
from ._results import Calibration, Moments, Opinion, Posterior
from ._softmax_head import (
    softmax_head_laplace,
    softmax_head_moments,
    softmax_head_moments_linearized,
)

SPEC_VERSION = "1"
__version__ = "0.1.0"

__all__ = [
    "SPEC_VERSION",
    "Calibration",
    "Moments",
    "Opinion",
    "Posterior",
    "calibrate",
    "dempster_combine",
    "empirical_moments",
    "evidence",
    "linear_head_moments",
    "linear_head_posterior",
    "opinions",
    "reduced_dempster",
    "softmax_head_laplace",
    "softmax_head_moments",
    "softmax_head_moments_linearized",
]
