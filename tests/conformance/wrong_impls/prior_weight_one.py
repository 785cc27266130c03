"""Wrong on purpose: the prior weight W is always 1 (instead of M or the given value)."""

from types import SimpleNamespace
from typing import Any

import bogc_ref
from bogc_ref.interface import STAGES


def _with_w1(name: str) -> Any:
    function = getattr(bogc_ref, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        kwargs["prior_weight"] = 1.0
        return function(*args, **kwargs)

    return wrapped


impl = SimpleNamespace(
    **{f: getattr(bogc_ref, f) for names in STAGES.values() for f in names},
)
for _name in ("opinions", "reduced_dempster", "calibrate"):
    setattr(impl, _name, _with_w1(_name))
