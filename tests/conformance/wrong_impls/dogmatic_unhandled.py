"""Wrong on purpose: var = 0 is clipped to a tiny positive number (no dogmatic rule)."""

from types import SimpleNamespace
from typing import Any

import numpy as np

import bogc_ref
from bogc_ref.interface import STAGES


def _clip(var: Any) -> Any:
    v = np.asarray(var)
    return np.where(v == 0, np.finfo(v.dtype).tiny, v).astype(v.dtype)


def evidence(var: Any, **kwargs: Any) -> Any:
    return bogc_ref.evidence(_clip(var), **kwargs)


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    return bogc_ref.calibrate(mean, _clip(var), **kwargs)


impl = SimpleNamespace(
    **{f: getattr(bogc_ref, f) for names in STAGES.values() for f in names},
)
impl.evidence = evidence
impl.calibrate = calibrate
