"""Wrong on purpose, each attribute only on one region of calibrate's inputs (grad x1.5,
belief x0.9 there, the reference elsewhere): a run that never visits the region passes it.

``many_sources``: M >= 7; ``deep_batch``: three or more leading axes; ``wide``: D > 4096;
``unchecked``: check_finite=False; ``strided``: a mean that is not C-contiguous (read as if it
were zeros, as code that walks the raw buffer of a strided array may).
"""

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

import bogc_ref


def _wrong_when(region: Callable[[Any, Any, dict[str, Any]], bool]) -> SimpleNamespace:
    def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
        result = bogc_ref.calibrate(mean, var, **kwargs)
        if not region(mean, var, kwargs):
            return result
        dtype = result.grad.dtype
        return result._replace(
            grad=result.grad * np.asarray(1.5, dtype), belief=result.belief * np.asarray(0.9, dtype)
        )

    return SimpleNamespace(calibrate=calibrate)


many_sources = _wrong_when(lambda m, v, k: np.shape(m)[-2] >= 7)
deep_batch = _wrong_when(lambda m, v, k: np.ndim(m) >= 5)
wide = _wrong_when(lambda m, v, k: np.shape(m)[-1] > 4096)
unchecked = _wrong_when(lambda m, v, k: k.get("check_finite") is False)


def _strided_calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    if isinstance(mean, np.ndarray) and not mean.flags.c_contiguous:
        mean = np.zeros_like(mean)
    return bogc_ref.calibrate(mean, var, **kwargs)


strided = SimpleNamespace(calibrate=_strided_calibrate)
