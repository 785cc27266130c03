"""Wrong on purpose: the reference's answer for the golden inputs only, 50% off elsewhere.

It reads the packaged golden vectors, hashes every stored input (as float64 and as the
float32 cast the harness uses) and answers with the reference when the first argument of
a call is one of them; on any other input every output is 1.5 times the reference's.
Golden vectors alone cannot tell it from the reference; fresh inputs can.
"""

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

import bogc_ref
from bogc_ref.interface import STAGES

GOLDEN = Path(bogc_ref.__file__).parent / "conformance" / "golden"


def _key(arr: Any) -> str:
    a = np.ascontiguousarray(np.asarray(arr))
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


def _golden_keys() -> set[str]:
    manifest = json.loads((GOLDEN / "manifest.json").read_text())
    keys = set()
    with np.load(GOLDEN / "vectors.npz") as data:
        for entry in manifest["cases"]:
            first = data[f"{entry['name']}.in.{entry['positional'][0]}"]
            keys.add(_key(first))
            if first.dtype.kind == "f":
                with np.errstate(over="ignore"):
                    keys.add(_key(first.astype(np.float32)))
    return keys


KEYS = _golden_keys()


def _off(result: Any) -> Any:
    if isinstance(result, np.ndarray):
        return (result * 1.5).astype(result.dtype)
    return type(result)(*(np.asarray(v * 1.5).astype(v.dtype) for v in result))


def _cheat(name: str) -> Any:
    honest = getattr(bogc_ref, name)

    def function(first: Any, *args: Any, **kwargs: Any) -> Any:
        result = honest(first, *args, **kwargs)
        return result if _key(first) in KEYS else _off(result)

    return function


impl = SimpleNamespace(**{f: _cheat(f) for names in STAGES.values() for f in names})
