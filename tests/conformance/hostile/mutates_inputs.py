"""Right answers, but it overwrites its inputs (mean and var) after computing them."""

from typing import Any

import bogc_ref


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    result = bogc_ref.calibrate(mean, var, **kwargs)
    mean[...] = 0.0
    var[...] = 1.0
    return result
