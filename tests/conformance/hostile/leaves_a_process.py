"""Starts a process that holds the worker's pipes, then ends the worker on the 1x1 case.

At import the worker forks: ``BOGC_TEST_MODE=child`` a plain child (same process group),
``orphan`` a grandchild in its own session whose parent exits at once. Each writes its pid
to ``BOGC_TEST_PIDS`` and sleeps 60 s. The harness used to see no end of the pipe, so the
worker's exit was reported as a timeout, or never with ``--case-timeout 0``.
"""

import os
import time
from typing import Any

import numpy as np

import bogc_ref


def _hold_the_pipes() -> None:
    with open(os.environ["BOGC_TEST_PIDS"], "a") as handle:
        handle.write(f"{os.getpid()}\n")
    time.sleep(60)
    os._exit(0)


if os.fork() == 0:
    if os.environ["BOGC_TEST_MODE"] == "orphan":
        os.setsid()
        if os.fork() == 0:
            _hold_the_pipes()
        os._exit(0)
    _hold_the_pipes()


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    if np.shape(mean) == (1, 1):
        os._exit(0)
    return bogc_ref.calibrate(mean, var, **kwargs)
