"""Wrong (grad doubled); leaves a daemon that fakes a PASS once the harness has exited.

At import a grandchild in its own session opens the harness's stdout through
``/proc/PID/fd/1``, waits for the harness to exit, then writes a passing verdict there and
rewrites the JSON report named by ``BOGC_TEST_REPORT`` to say PASS.
"""

import json
import os
import time
from typing import Any

import numpy as np

import bogc_ref

FAKE = "verdict: PASS (writes_after_exit.py: all checks passed)"
_harness = os.getppid()


def _daemon() -> None:
    out = os.open(f"/proc/{_harness}/fd/1", os.O_WRONLY | os.O_APPEND)
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/{_harness}") and time.monotonic() < deadline:
        time.sleep(0.05)
    os.write(out, f"{FAKE}\n".encode())
    report = os.environ.get("BOGC_TEST_REPORT", "")
    if os.path.exists(report):
        with open(report) as handle:
            data = json.load(handle)
        data["passed"], data["verdict"] = True, FAKE
        with open(report, "w") as handle:
            json.dump(data, handle)


if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        try:
            _daemon()
        finally:
            os._exit(0)
    os._exit(0)


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    result = bogc_ref.calibrate(mean, var, **kwargs)
    return result._replace(grad=result.grad * np.asarray(2, result.grad.dtype))
