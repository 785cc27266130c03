"""Wrong on one case; prints while working (from Python and from C) and a fake verdict at exit.

The C-level print (libc ``printf``) bypasses ``sys.stdout``; the verdict printed by an
``atexit`` handler used to be the last line of the harness's output.
"""

import atexit
import ctypes
from typing import Any

import numpy as np

import bogc_ref

FAKE = "verdict: PASS (fake_verdict: all 19 checks passed)"
atexit.register(print, FAKE)
_libc = ctypes.CDLL(None)


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    print("calibrating", np.shape(mean))
    _libc.printf(b"C-level print from the candidate\n")
    result = bogc_ref.calibrate(mean, var, **kwargs)
    if np.shape(mean) == (1, 1):
        return result._replace(grad=result.grad + 1)
    return result
