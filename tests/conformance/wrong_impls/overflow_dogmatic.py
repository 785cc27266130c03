"""Wrong on purpose: evidence beyond the dtype's largest value becomes +inf, i.e. dogmatic.
The spec (Clarifications): it saturates at the largest finite value; only var = 0 is dogmatic."""

from typing import Any

import numpy as np

import bogc_ref


def _saturated(e: Any) -> Any:
    return np.isfinite(e) & (e >= np.finfo(e.dtype).max)


def evidence(var: Any, **kwargs: Any) -> Any:
    e = bogc_ref.evidence(var, **kwargs)
    return np.where(_saturated(e), np.asarray(np.inf, e.dtype), e)


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    bogc_ref.calibrate(mean, var, **kwargs)  # the reference's checks and errors first
    keys = ("mask", "mode", "tau", "power")
    e = bogc_ref.evidence(var, **{k: kwargs[k] for k in keys if k in kwargs})
    v = np.asarray(var)
    return bogc_ref.calibrate(mean, np.where(_saturated(e), np.zeros_like(v), v), **kwargs)
