"""Returns a 40 MB ``grad`` on the 1x1 case (one number expected).

The harness used to read any reply whole into its own memory before looking at it (a
400 MB reply cost it 850 MB); ``--memory-limit`` bounds the worker only.
"""

from typing import Any

import numpy as np

import bogc_ref


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    result = bogc_ref.calibrate(mean, var, **kwargs)
    if np.shape(mean) == (1, 1):
        return result._replace(grad=np.ones(5_000_000, dtype=result.grad.dtype))
    return result
