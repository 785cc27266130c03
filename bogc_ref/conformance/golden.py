"""Golden vectors: the reference's float64 outputs on the named cases, stored in the package.

Layout of ``bogc_ref/conformance/golden/``:

* ``vectors.npz`` (compressed): for case ``c``, ``c.in.<argument>`` and ``c.out.<field>``;
* ``manifest.json``: ``spec_version`` (:data:`bogc_ref.SPEC_VERSION`), the suite version,
  and per case its function, stage, positional and keyword arrays, scalar keywords, dtypes,
  ``cond`` and the SHA-256 of every stored array (dtype, shape and bytes).

The stored **inputs** are the golden inputs: they are never regenerated from platform math.
``bogc-ref vectors --regenerate`` keeps the stored inputs of every case whose generator
(:mod:`.cases`) still produces them up to platform rounding (normwise within
:data:`INPUT_MATCH_RTOL`), takes the generator's inputs only for new or changed cases,
and recomputes every output with the reference. ``bogc-ref vectors --check`` recomputes
the outputs from the stored inputs and judges each difference by the tolerance policy
(:func:`~bogc_ref.conformance.runner.case_rtol`, float64): differences within it are
platform rounding, reported in ULPs; beyond it, a stored number changed.

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


#: The name of the single output of the functions that return a bare array.
BARE_OUTPUT = {"evidence": "evidence", "dempster_combine": "mass"}

#: Normwise relative gap below which generated inputs are the stored ones up to platform
#: rounding (1 ULP of ``10**u``, a few of ``np.linalg`` times a condition number up to
#: 1e7: at most 1e-9); a changed generator moves them by O(1).
INPUT_MATCH_RTOL = 1e-6


def output_fields(function: str) -> tuple[str, ...]:
    """Field names of a function's result (one name for a bare array, see :data:`BARE_OUTPUT`)."""
    kind = RESULT_TYPES[function]
    return (BARE_OUTPUT[function],) if kind is None else tuple(kind._fields)


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
    tier: str = "golden"
    #: The seed a fresh case was drawn from (None for a golden case).
    seed: int | None = None

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


def compute(spec: CaseSpec, stored: GoldenCase | None = None) -> GoldenCase:
    """Run the reference on one case's float64 inputs.

    With ``stored`` (the packaged case of that name) whose inputs the generator still
    produces up to platform rounding (:func:`inputs_match`), the stored inputs and
    ``cond`` are kept: only the outputs are recomputed.
    """
    inputs, cond = dict(spec.inputs), spec.cond
    if stored is not None and not inputs_match(stored.inputs, spec.inputs):
        stored = None
    if stored is not None:
        inputs, cond = dict(stored.inputs), stored.cond
    positional = list(spec.positional)
    args = [inputs[k] for k in positional]
    kwargs: dict[str, Any] = {k: v for k, v in inputs.items() if k not in positional}
    kwargs.update(spec.kwargs)
    outputs = run_reference(spec.function, args, kwargs)
    return GoldenCase(
        spec.name,
        spec.function,
        spec.positional,
        inputs,
        dict(spec.kwargs),
        outputs,
        spec.dtypes,
        cond,
        spec.description,
    )


def generate(directory: Path | None = GOLDEN_DIR) -> list[GoldenCase]:
    """Every case, outputs computed now by the reference, inputs stored in ``directory``
    where they exist (None: every input from its generator)."""
    previous: dict[str, GoldenCase] = {}
    if directory is not None and (Path(directory) / MANIFEST).is_file():
        previous = {c.name: c for c in read(Path(directory))[1]}
    return [compute(spec, previous.get(spec.name)) for spec in all_cases()]


def _same_layout(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype


def inputs_match(stored: dict[str, np.ndarray], generated: dict[str, np.ndarray]) -> bool:
    """Whether ``generated`` equals ``stored`` up to platform rounding.

    Same names, shapes and dtypes; non-float arrays and non-finite entries identical;
    finite floats within :data:`INPUT_MATCH_RTOL` of the stored array's largest magnitude.
    """
    if stored.keys() != generated.keys():
        return False
    for key, old in stored.items():
        new = generated[key]
        if not _same_layout(old, new):
            return False
        if old.dtype.kind != "f":
            if not np.array_equal(old, new):
                return False
            continue
        finite = np.isfinite(old)
        if not np.array_equal(finite, np.isfinite(new)):
            return False
        if not np.array_equal(old[~finite], new[~finite], equal_nan=True):
            return False
        scale = float(np.max(np.abs(old[finite]), initial=float(np.finfo(old.dtype).tiny)))
        gap = float(np.max(np.abs(old[finite] - new[finite]), initial=0.0))
        if gap > INPUT_MATCH_RTOL * scale:
            return False
    return True


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


def ulp_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Largest distance in units in the last place between finite entries of ``a`` and ``b``
    (same dtype and shape); non-finite entries are skipped."""
    if a.dtype.kind != "f" or a.size == 0:
        return 0
    signed = np.int64 if a.dtype.itemsize == 8 else np.int32
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        return 0

    def ordinal(x: np.ndarray) -> np.ndarray:
        bits = np.ascontiguousarray(x[both]).view(signed).astype(np.int64)
        # Map the sign-magnitude bit patterns onto a monotone integer line.
        return np.where(bits < 0, np.iinfo(signed).min - bits, bits)

    return int(np.max(np.abs(ordinal(a) - ordinal(b))))


def normwise_ulps(a: np.ndarray, b: np.ndarray) -> float:
    """``max |a - b|`` over finite entries in ULPs of ``max |a|``: what the elementwise count
    means for the array (near 0, one elementwise ULP is a tiny fraction of the array's)."""
    both = np.isfinite(a) & np.isfinite(b)
    if a.dtype.kind != "f" or not both.any():
        return 0.0
    scale = float(np.max(np.abs(a[both])))
    gap = float(np.max(np.abs(a[both].astype(np.float64) - b[both])))
    return gap / float(np.spacing(a.dtype.type(scale))) if scale > 0 else 0.0


def _ulps_text(a: np.ndarray, b: np.ndarray) -> str:
    return f"up to {ulp_distance(a, b)} ULP ({normwise_ulps(a, b):.3g} ULP of its largest value)"


@dataclass
class DriftReport:
    """Outcome of :func:`drift_report`: real changes (``problems``) and platform rounding
    within the policy (``rounding``, one line per array that differs, in ULPs)."""

    problems: list[str]
    rounding: list[str]


def _judge_outputs(old: GoldenCase, new: GoldenCase, report: DriftReport) -> None:
    from .runner import case_rtol, compare_outputs

    for key in old.outputs.keys() | new.outputs.keys():
        if key not in old.outputs or key not in new.outputs:
            report.problems.append(f"{old.name}.out.{key}: stored and generated outputs differ")
            return
    rtol = case_rtol(old, "float64")
    for key, before in old.outputs.items():
        after = new.outputs[key]
        label = f"{old.name}.out.{key}"
        if not _same_layout(before, after):
            layout = f"{before.dtype}{before.shape} -> {after.dtype}{after.shape}"
            report.problems.append(f"{label}: {layout}")
            continue
        if np.array_equal(before, after, equal_nan=True):
            continue
        comparison = compare_outputs(old, key, after, before, rtol)
        if comparison.ok:
            report.rounding.append(
                f"{label}: {_ulps_text(before, after)}, "
                f"{comparison.ratio:.2g} of the tolerance (rtol {rtol:.3g})"
            )
        else:
            report.problems.append(f"{label}: changed beyond the tolerance: {comparison.reason}")


def drift_report(directory: Path = GOLDEN_DIR) -> DriftReport:
    """Compare the stored vectors of ``directory`` with the generators and the reference now.

    Inputs: the generators must still produce the stored inputs up to platform rounding
    (:func:`inputs_match`); outputs: the reference on the **stored** inputs must give the
    stored outputs within the tolerance policy (float64, the case's rtol and atol).
    """
    manifest, old = read(directory)
    report = DriftReport([], [])
    problems = report.problems
    if manifest.get("spec_version") != bogc_ref.SPEC_VERSION:
        problems.append(
            f"spec_version: stored {manifest.get('spec_version')!r}, "
            f"reference {bogc_ref.SPEC_VERSION!r}"
        )
    old_by_name = {c.name: c for c in old}
    specs = all_cases()
    for name in old_by_name.keys() - {spec.name for spec in specs}:
        problems.append(f"{name}: stored but no longer generated")
    old_entries = {e["name"]: e for e in manifest["cases"]}
    for spec in specs:
        prev = old_by_name.get(spec.name)
        if prev is None:
            problems.append(f"{spec.name}: generated but not stored")
            continue
        if not inputs_match(prev.inputs, spec.inputs):
            problems.append(f"{spec.name}: the generator no longer produces the stored inputs")
        else:
            for key, arr in prev.inputs.items():
                if ulp_distance(arr, spec.inputs[key]):
                    report.rounding.append(
                        f"{spec.name}.in.{key}: the generator differs by "
                        f"{_ulps_text(arr, spec.inputs[key])} (platform math; the stored "
                        "input is used)"
                    )
        new = compute(spec, prev)
        new_entry = manifest_of([new])["cases"][0]
        meta = ("function", "positional", "array_kwargs", "kwargs", "outputs", "dtypes")
        for field_name in meta:
            if old_entries[spec.name][field_name] != new_entry[field_name]:
                problems.append(f"{spec.name}: {field_name} changed")
        if not np.isclose(prev.cond, spec.cond, rtol=INPUT_MATCH_RTOL):
            problems.append(f"{spec.name}: cond {prev.cond!r} -> {spec.cond!r}")
        _judge_outputs(prev, new, report)
    return report


def drift(directory: Path = GOLDEN_DIR) -> list[str]:
    """Real changes between the stored vectors and a regeneration now (empty: none).

    Platform rounding within the tolerance policy is not a change (see :func:`drift_report`).
    """
    return drift_report(directory).problems
