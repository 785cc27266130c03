"""Wrong on purpose: numpy.ma inputs are unwrapped silently, masked means read as 0 and masked
variances as 1 (real data). The spec: honour the mask (masked entries vacuous) or refuse it
with a TypeError naming the argument."""

from typing import Any

import numpy as np

import bogc_ref


def _filled(x: Any, value: float) -> Any:
    return x.filled(value) if isinstance(x, np.ma.MaskedArray) else x


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    return bogc_ref.calibrate(_filled(mean, 0.0), _filled(var, 1.0), **kwargs)


def evidence(var: Any, **kwargs: Any) -> Any:
    return bogc_ref.evidence(_filled(var, 1.0), **kwargs)


def reduced_dempster(evidence: Any, **kwargs: Any) -> Any:
    return bogc_ref.reduced_dempster(_filled(evidence, 1.0), **kwargs)
