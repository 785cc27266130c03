"""Allocates (and touches) up to 3 GB inside calibrate, well past a --memory-limit of 300M."""

from typing import Any

import numpy as np

import bogc_ref


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    if np.shape(mean) == (1, 1):
        chunks = [np.ones(2**24) for _ in range(24)]  # 24 x 128 MiB
        del chunks
    return bogc_ref.calibrate(mean, var, **kwargs)
