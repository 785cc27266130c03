"""Overwrites its inputs, and replaces the worker's contract check so it is not caught."""

from typing import Any

import bogc_ref
import bogc_ref.conformance.worker as _worker

_worker.contract_problems = lambda inputs, snapshots, outputs: []


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    result = bogc_ref.calibrate(mean, var, **kwargs)
    mean[...] = 0.0
    var[...] = 1.0
    return result
