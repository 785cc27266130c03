"""KeyboardInterrupt raised by calibrate: used to end the harness with a traceback."""

from typing import Any

import numpy as np

import bogc_ref


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    if np.shape(mean) == (1, 1):
        raise KeyboardInterrupt
    return bogc_ref.calibrate(mean, var, **kwargs)
