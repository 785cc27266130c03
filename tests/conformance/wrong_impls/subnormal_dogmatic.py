"""Wrong on purpose: λ = 1/var computed naively in the input's dtype, so a subnormal variance
(1/var overflows) is taken for var = 0, a dogmatic source. The spec: only var = 0 is dogmatic."""

from typing import Any

import numpy as np

import bogc_ref


def _dogmatic_when_overflowing(var: Any) -> Any:
    v = np.asarray(var)
    with np.errstate(divide="ignore", over="ignore"):
        precision = 1 / v
    return np.where(np.isinf(precision) & (v > 0), np.zeros_like(v), v)


def evidence(var: Any, **kwargs: Any) -> Any:
    return bogc_ref.evidence(_dogmatic_when_overflowing(var), **kwargs)


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    return bogc_ref.calibrate(mean, _dogmatic_when_overflowing(var), **kwargs)
