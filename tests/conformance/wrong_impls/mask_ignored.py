"""Wrong on purpose: the mask is ignored; absent sources count as present (NaN means → 0)."""

from types import SimpleNamespace
from typing import Any

import numpy as np

import bogc_ref
from bogc_ref.interface import STAGES


def _fill(x: Any) -> Any:
    a = np.asarray(x)
    return np.where(np.isnan(a), 1.0, a).astype(a.dtype)


def evidence(var: Any, *, mask: Any = None, **kwargs: Any) -> Any:
    return bogc_ref.evidence(_fill(var), **kwargs)


def calibrate(mean: Any, var: Any, *, mask: Any = None, **kwargs: Any) -> Any:
    return bogc_ref.calibrate(_fill(mean), _fill(var), **kwargs)


impl = SimpleNamespace(
    **{f: getattr(bogc_ref, f) for names in STAGES.values() for f in names},
)
impl.evidence = evidence
impl.calibrate = calibrate
