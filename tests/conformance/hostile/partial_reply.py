"""Writes the start of a reply to the harness's pipe (a length, one byte) and sleeps.

On the 1x1 case, or while being imported when ``BOGC_TEST_AT_IMPORT`` is set. The harness
used to apply its time limit to the first byte of a reply only, and then wait forever for
the rest. The bytes announce 4 KiB to a reader of a 4-byte length and 1 MiB to one of an
8-byte length: incomplete for both. With ``BOGC_TEST_TRICKLE`` set, one more byte follows
every 10 ms, so the pipe is never quiet for long.
"""

import os
import sys
import time
from typing import Any

import numpy as np

import bogc_ref

START = b"\x00\x00\x10\x00\x00\x00\x00\x00x"


def _start_a_reply_and_hang() -> None:
    fd = int(sys.argv[2])  # the worker's write end (main(sys.argv[1:]))
    os.write(fd, START)
    for _ in range(60_000):
        time.sleep(0.01)
        if os.environ.get("BOGC_TEST_TRICKLE"):
            os.write(fd, b"x")


if os.environ.get("BOGC_TEST_AT_IMPORT"):
    _start_a_reply_and_hang()


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    if np.shape(mean) == (1, 1):
        _start_a_reply_and_hang()
    return bogc_ref.calibrate(mean, var, **kwargs)
