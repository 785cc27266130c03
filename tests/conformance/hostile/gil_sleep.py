"""A C call that holds the GIL: libc ``sleep`` through ``ctypes.PyDLL`` inside calibrate.

``short`` holds it 5 s (past a 1 s --case-timeout, yet it used to pass: a thread cannot
interrupt it and the harness's timer needs the GIL too); ``forever`` holds it 10**6 s
(it used to hang the harness).
"""

import ctypes
from types import SimpleNamespace
from typing import Any

import numpy as np

import bogc_ref

_libc = ctypes.PyDLL(None)  # PyDLL: the GIL is held during the call
_libc.sleep.argtypes = [ctypes.c_uint]


def _holding(seconds: int) -> Any:
    def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
        if np.shape(mean) == (1, 1):
            _libc.sleep(seconds)
        return bogc_ref.calibrate(mean, var, **kwargs)

    return calibrate


short = SimpleNamespace(calibrate=_holding(5))
forever = SimpleNamespace(calibrate=_holding(10**6))
