"""Replaces the reference's calibrate by its own wrong one, in its own process.

It used to pass with --dtype float32: the harness computed float32 expectations with the
patched ``bogc_ref.calibrate``.
"""

from typing import Any

import bogc_ref

_reference = bogc_ref.calibrate


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    result = _reference(mean, var, **kwargs)
    return result._replace(grad=result.grad * 1.5)


bogc_ref.calibrate = calibrate
