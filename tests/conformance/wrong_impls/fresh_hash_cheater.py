"""Wrong on purpose: the reference's answer for the golden inputs and for the fresh inputs of
the suite's fixed seed (FRESH_SEED), 50% off on any other input. A fixed public seed can be
hashed like the golden vectors; a seed drawn for each run cannot."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from bogc_ref.conformance.fresh import fresh_specs
from bogc_ref.interface import STAGES

_SPEC = importlib.util.spec_from_file_location(
    "golden_hash_cheater", Path(__file__).with_name("golden_hash_cheater.py")
)
assert _SPEC is not None and _SPEC.loader is not None
_golden = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_golden)
_key = _golden._key

KEYS = _golden.KEYS  # the golden cheater's own set, extended: its _cheat reads it
for _spec in fresh_specs():
    _first = _spec.inputs[_spec.positional[0]]
    KEYS.add(_key(_first))
    if _first.dtype.kind == "f":
        with np.errstate(over="ignore", under="ignore"):
            KEYS.add(_key(_first.astype(np.float32)))

impl = SimpleNamespace(
    **{f: _golden._cheat(f) for names in STAGES.values() for f in names if f != "dempster_combine"}
)
