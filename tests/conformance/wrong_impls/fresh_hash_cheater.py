"""Wrong on purpose: the reference's answer for the golden inputs and for the fresh inputs of
the suite's fixed seed (FRESH_SEED), 50% off on any other input. A fixed public seed can be
hashed like the golden vectors; a seed drawn for each run cannot."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

import bogc_ref
from bogc_ref.conformance.fresh import fresh_specs
from bogc_ref.interface import STAGES

_SPEC = importlib.util.spec_from_file_location(
    "golden_hash_cheater", Path(__file__).with_name("golden_hash_cheater.py")
)
assert _SPEC is not None and _SPEC.loader is not None
_golden = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_golden)
_key, _off = _golden._key, _golden._off

KEYS = set(_golden.KEYS)
for _spec in fresh_specs():
    _first = _spec.inputs[_spec.positional[0]]
    KEYS.add(_key(_first))
    if _first.dtype.kind == "f":
        with np.errstate(over="ignore", under="ignore"):
            KEYS.add(_key(_first.astype(np.float32)))


def _cheat(name: str) -> Any:
    honest = getattr(bogc_ref, name)

    def function(first: Any, *args: Any, **kwargs: Any) -> Any:
        result = honest(first, *args, **kwargs)
        return result if _key(first) in KEYS else _off(result)

    return function


impl = SimpleNamespace(
    **{f: _cheat(f) for names in STAGES.values() for f in names if f != "dempster_combine"}
)
