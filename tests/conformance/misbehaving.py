"""A candidate that misbehaves in every way the harness must survive (one per function)."""

import time
from types import SimpleNamespace
from typing import Any

import numpy as np

import bogc_ref
from bogc_ref.interface import STAGES


def evidence(var: Any, **kwargs: Any) -> Any:
    return bogc_ref.evidence(var, **kwargs).tolist()  # a Python list: refused


def opinions(e: Any, **kwargs: Any) -> Any:
    belief, u = bogc_ref.opinions(e, **kwargs)
    return bogc_ref.Opinion(np.full_like(belief, np.nan), u)  # NaN


def reduced_dempster(e: Any, **kwargs: Any) -> Any:
    belief, u = bogc_ref.reduced_dempster(e, **kwargs)
    return bogc_ref.Opinion(belief.astype(np.float64), u.astype(np.float64))  # wrong dtype


def empirical_moments(g: Any) -> Any:
    raise RuntimeError("not implemented here")


def linear_head_moments(*args: Any) -> Any:
    mean, var = bogc_ref.linear_head_moments(*args)
    return bogc_ref.Moments(mean[:1], var[:1])  # wrong shape


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    if np.asarray(mean).shape == (1, 1):
        time.sleep(3.0)  # hangs past a short --case-timeout
    return bogc_ref.calibrate(mean, var, **kwargs)


impl = SimpleNamespace(
    **{f: getattr(bogc_ref, f) for names in STAGES.values() for f in names},
)
impl.__dict__.update(
    evidence=evidence,
    opinions=opinions,
    reduced_dempster=reduced_dempster,
    empirical_moments=empirical_moments,
    linear_head_moments=linear_head_moments,
    calibrate=calibrate,
)
