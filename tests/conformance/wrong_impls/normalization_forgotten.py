"""Wrong on purpose: calibrate ignores ``normalize=True`` (never divides by 1 - u)."""

from types import SimpleNamespace
from typing import Any

import bogc_ref
from bogc_ref.interface import STAGES


def calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    kwargs["normalize"] = False
    return bogc_ref.calibrate(mean, var, **kwargs)


impl = SimpleNamespace(
    **{f: getattr(bogc_ref, f) for names in STAGES.values() for f in names},
)
impl.calibrate = calibrate
