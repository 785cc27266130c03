"""Two distinct bugs: raises on a single source, 1% off otherwise (two law failures)."""

from typing import Any

import numpy as np

import bogc_ref


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    if np.shape(mean)[-2] == 1:
        raise RuntimeError("one source is not supported")
    result = bogc_ref.calibrate(mean, var, **kwargs)
    return result._replace(grad=result.grad * np.asarray(1.01, result.grad.dtype))
