"""Every output is 7.0, in an ndarray subclass whose subtraction returns zeros.

It used to pass most golden calibrate cases: the comparison computed ``c - r`` with the
subclass's ``__sub__`` (and its ``astype`` kept the subclass).
"""

from typing import Any

import numpy as np

import bogc_ref


class Liar(np.ndarray):
    def __sub__(self, other: Any) -> Any:  # type: ignore[override]
        return np.zeros(np.shape(self))

    __rsub__ = __sub__

    def astype(self, dtype: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    result = bogc_ref.calibrate(mean, var, **kwargs)
    return type(result)(*(np.full_like(x, 7.0).view(Liar) for x in result))
