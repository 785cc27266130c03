"""Golden vectors: the reference's float64 outputs on the named cases, stored in the package.

Layout of ``bogc_ref/conformance/golden/``:

* ``vectors.npz`` (compressed): for case ``c``, ``c.in.<argument>`` and ``c.out.<field>``;
* ``manifest.json``: ``spec_version`` (:data:`bogc_ref.SPEC_VERSION`), the suite version,
  and per case its function, stage, positional and keyword arrays, scalar keywords, dtypes,
  ``cond`` and the SHA-256 of every stored array (dtype, shape and bytes).

Regenerate with ``bogc-ref vectors --regenerate``; ``bogc-ref vectors --check`` recomputes
everything in memory and reports any stored number that would change.

float32 candidates are checked on the stored float64 inputs cast to float32, against the
reference run on those same float32 inputs (not against the float64 outputs: the rounding
of the inputs alone moves the exact answer by more than a float32 tolerance allows).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

import bogc_ref

from ..interface import STAGES
from .adapter import RESULT_TYPES
from .cases import CaseSpec, all_cases

GOLDEN_DIR = Path(__file__).with_name("golden")
VECTORS = "vectors.npz"
MANIFEST = "manifest.json"

#: Version of the conformance suite (cases, laws, tolerances); bump when any changes.
SUITE_VERSION = "1.0"


def stage_of(function: str) -> str:
    """The stage (key of :data:`bogc_ref.interface.STAGES`) a function belongs to."""
    for stage, names in STAGES.items():
        if function in names:
            return stage
    raise KeyError(function)


def output_fields(function: str) -> tuple[str, ...]:
    """Field names of a function's result (``("evidence",)`` for a bare array)."""
    kind = RESULT_TYPES[function]
    return ("evidence",) if kind is None else tuple(kind._fields)


@dataclass(frozen=True)
class GoldenCase:
    """A stored case: float64 inputs and the reference's float64 outputs."""

    name: str
    function: str
    positional: tuple[str, ...]
    inputs: dict[str, np.ndarray]
    kwargs: dict[str, Any]
    outputs: dict[str, np.ndarray]
    dtypes: tuple[str, ...]
    cond: float
    description: str

    @property
    def stage(self) -> str:
        """The stage of :attr:`function`."""
        return stage_of(self.function)

    def call_args(self, dtype: str) -> tuple[list[np.ndarray], dict[str, Any]]:
        """Positional arrays and keywords (array and scalar) with floats cast to ``dtype``."""
        cast = {
            k: (v.astype(dtype) if v.dtype.kind == "f" else v.copy())
            for k, v in self.inputs.items()
        }
        args = [cast[k] for k in self.positional]
        kwargs: dict[str, Any] = {k: v for k, v in cast.items() if k not in self.positional}
        kwargs.update(self.kwargs)
        return args, kwargs

    def expected(self, dtype: str) -> dict[str, np.ndarray]:
        """Reference outputs for ``dtype``: stored (float64) or recomputed on cast inputs."""
        if dtype == "float64":
            return self.outputs
        args, kwargs = self.call_args(dtype)
        return run_reference(self.function, args, kwargs)


def run_reference(function: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, np.ndarray]:
    """The reference's outputs of ``function`` as a dict of field name to array."""
    result = getattr(bogc_ref, function)(*args, **kwargs)
    fields = output_fields(function)
    if RESULT_TYPES[function] is None:
        return {fields[0]: np.asarray(result)}
    return {f: np.asarray(getattr(result, f)) for f in fields}


def _digest(arr: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def compute(spec: CaseSpec) -> GoldenCase:
    """Run the reference on one case's float64 inputs."""
    positional = list(spec.positional)
    args = [spec.inputs[k] for k in positional]
    kwargs: dict[str, Any] = {k: v for k, v in spec.inputs.items() if k not in positional}
    kwargs.update(spec.kwargs)
    outputs = run_reference(spec.function, args, kwargs)
    return GoldenCase(
        spec.name,
        spec.function,
        spec.positional,
        dict(spec.inputs),
        dict(spec.kwargs),
        outputs,
        spec.dtypes,
        spec.cond,
        spec.description,
    )


def generate() -> list[GoldenCase]:
    """Every case, computed now by the reference."""
    return [compute(spec) for spec in all_cases()]


def _arrays(case: GoldenCase) -> dict[str, np.ndarray]:
    out = {f"{case.name}.in.{k}": v for k, v in case.inputs.items()}
    out.update({f"{case.name}.out.{k}": v for k, v in case.outputs.items()})
    return out


def manifest_of(cases: list[GoldenCase]) -> dict[str, Any]:
    """The manifest (plain JSON data) describing ``cases``."""
    entries = []
    for case in cases:
        entries.append(
            {
                "name": case.name,
                "function": case.function,
                "stage": case.stage,
                "description": case.description,
                "positional": list(case.positional),
                "array_kwargs": [k for k in case.inputs if k not in case.positional],
                "kwargs": case.kwargs,
                "outputs": list(case.outputs),
                "dtypes": list(case.dtypes),
                "cond": case.cond,
                "sha256": {k: _digest(v) for k, v in _arrays(case).items()},
            }
        )
    return {
        "spec_version": bogc_ref.SPEC_VERSION,
        "suite_version": SUITE_VERSION,
        "generated_by": f"bogc_ref {bogc_ref.__version__} (bogc_ref.conformance.golden)",
        "input_dtype": "float64",
        "cases": entries,
    }


def write(cases: list[GoldenCase], directory: Path = GOLDEN_DIR) -> None:
    """Write ``vectors.npz`` and ``manifest.json`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for case in cases:
        arrays.update(_arrays(case))
    np.savez_compressed(directory / VECTORS, allow_pickle=False, **arrays)
    text = json.dumps(manifest_of(cases), indent=1, sort_keys=False) + "\n"
    (directory / MANIFEST).write_text(text, encoding="utf-8")


def read(directory: Path = GOLDEN_DIR) -> tuple[dict[str, Any], list[GoldenCase]]:
    """The manifest and the stored cases of ``directory``; verifies every SHA-256."""
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    cases = []
    with np.load(directory / VECTORS, allow_pickle=False) as data:
        for entry in manifest["cases"]:
            name = entry["name"]
            for key, digest in entry["sha256"].items():
                if _digest(data[key]) != digest:
                    raise ValueError(f"golden vectors: {key} does not match its SHA-256")
            names = [*entry["positional"], *entry["array_kwargs"]]
            cases.append(
                GoldenCase(
                    name,
                    entry["function"],
                    tuple(entry["positional"]),
                    {k: data[f"{name}.in.{k}"] for k in names},
                    dict(entry["kwargs"]),
                    {k: data[f"{name}.out.{k}"] for k in entry["outputs"]},
                    tuple(entry["dtypes"]),
                    float(entry["cond"]),
                    entry["description"],
                )
            )
    return manifest, cases


@cache
def stored() -> tuple[dict[str, Any], tuple[GoldenCase, ...]]:
    """The packaged golden vectors (read once per process)."""
    manifest, cases = read()
    return manifest, tuple(cases)


def load_case(name: str) -> GoldenCase:
    """One packaged case by name (for reproduction snippets)."""
    for case in stored()[1]:
        if case.name == name:
            return case
    raise KeyError(f"no golden case named {name!r}")


def drift(directory: Path = GOLDEN_DIR) -> list[str]:
    """Differences between the stored vectors and a regeneration now (empty: none).

    Arrays are compared bitwise (NaN equal to NaN); the manifest's metadata as data.
    """
    manifest, old = read(directory)
    new = generate()
    problems: list[str] = []
    if manifest.get("spec_version") != bogc_ref.SPEC_VERSION:
        problems.append(
            f"spec_version: stored {manifest.get('spec_version')!r}, "
            f"reference {bogc_ref.SPEC_VERSION!r}"
        )
    old_by_name = {c.name: c for c in old}
    new_names = [c.name for c in new]
    for name in old_by_name.keys() - set(new_names):
        problems.append(f"{name}: stored but no longer generated")
    new_entries = {e["name"]: e for e in manifest_of(new)["cases"]}
    old_entries = {e["name"]: e for e in manifest["cases"]}
    for case in new:
        if case.name not in old_by_name:
            problems.append(f"{case.name}: generated but not stored")
            continue
        prev = old_by_name[case.name]
        for key, arr in _arrays(case).items():
            before = _arrays(prev).get(key)
            if before is None:
                problems.append(f"{key}: not stored")
            elif before.shape != arr.shape or before.dtype != arr.dtype:
                problems.append(f"{key}: {before.dtype}{before.shape} -> {arr.dtype}{arr.shape}")
            elif not np.array_equal(before, arr, equal_nan=True):
                changed = ~((before == arr) | (np.isnan(before) & np.isnan(arr)))
                with np.errstate(invalid="ignore"):
                    gap = np.nanmax(np.abs(before.astype(np.float64) - arr)[changed])
                problems.append(
                    f"{key}: {int(changed.sum())} of {arr.size} numbers changed "
                    f"(largest change {gap:.3g})"
                )
        meta = ("function", "positional", "array_kwargs", "kwargs", "outputs", "dtypes", "cond")
        for field_name in meta:
            if old_entries[case.name][field_name] != new_entries[case.name][field_name]:
                problems.append(f"{case.name}: {field_name} changed")
    return problems
