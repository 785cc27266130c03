"""A segmentation fault inside calibrate (reading address 0 through ctypes)."""

import ctypes
from typing import Any

import numpy as np

import bogc_ref


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    if np.shape(mean) == (1, 1):
        ctypes.string_at(0)
    return bogc_ref.calibrate(mean, var, **kwargs)
