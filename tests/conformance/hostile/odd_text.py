"""Correct, with text a console may not encode: a version holding a lone surrogate (a
non-UTF-8 byte decoded with surrogateescape, as ``os.fsdecode`` gives) and a warning with
a Greek letter; with ``BOGC_TEST_RAISE`` set it raises a message with a lone surrogate on
the 1x1 case. Printing the report used to raise UnicodeEncodeError after the checks.
"""

import os
import warnings
from typing import Any

import numpy as np

import bogc_ref

__version__ = "1.0+" + os.fsdecode(b"\xe9t\xe9")


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    warnings.warn("λ underflow in a dimension", RuntimeWarning, stacklevel=1)
    if os.environ.get("BOGC_TEST_RAISE") and np.shape(mean) == (1, 1):
        raise ValueError("cannot read cache " + os.fsdecode(b"/tmp/\xff.npy"))
    return bogc_ref.calibrate(mean, var, **kwargs)
