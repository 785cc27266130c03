"""Allocates and touches up to 3 GiB inside calibrate, well past a --memory-limit of 300M.

128 MiB at a time with a short pause between, so that even a busy machine's harness sees
the memory grow (it reads it every 20 ms) long before the machine runs out.
"""

import time
from typing import Any

import numpy as np

import bogc_ref


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    if np.shape(mean) == (1, 1):
        chunks = []
        for _ in range(24):
            chunks.append(np.ones(2**24))  # 128 MiB, every page written
            time.sleep(0.05)
        del chunks
    return bogc_ref.calibrate(mean, var, **kwargs)
