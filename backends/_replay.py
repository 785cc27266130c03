"""Errors identical to the reference's, without re-implementing its checks.

Backends validate in two steps. Structural checks (dtypes, shapes, scalar arguments)
run the reference's own validation helpers on *stubs*: zero-strided NumPy arrays with
the argument's dtype and shape, which cost nothing. Value checks (NaN, infinities,
negative variances, symmetry, label range) are one fused reduction on the device whose
single boolean comes back to the host; only when it is set are the arguments copied to
the host and the reference function run on them, which raises the reference's error,
naming the argument, what is wrong, the first bad index and the shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np


def stub(dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray:
    """A read-only array of ``shape`` and ``dtype`` holding zeros, with no memory behind it."""
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)


def replay(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> NoReturn:
    """Run the reference ``func`` on host copies so that it raises its own error.

    Called only after a backend's fused check found a bad value. If the reference does
    not raise, the two checks disagree: that is a backend bug, reported as RuntimeError.
    """
    func(*args, **kwargs)
    raise RuntimeError(
        f"internal error: the backend's value check for {func.__name__} flagged the input "
        "but the reference accepted it; please report this with the input"
    )
