"""os._exit(0) inside calibrate: no exception, no cleanup, the process is just gone."""

import os
from typing import Any

import numpy as np

import bogc_ref


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    if np.shape(mean) == (1, 1):
        os._exit(0)
    return bogc_ref.calibrate(mean, var, **kwargs)
