"""Right answers, and 300 distinct RuntimeWarnings per call (each printed once by default)."""

import warnings
from typing import Any

import bogc_ref


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    for i in range(300):
        warnings.warn(f"overflow number {i}", RuntimeWarning, stacklevel=1)
    return bogc_ref.calibrate(mean, var, **kwargs)
