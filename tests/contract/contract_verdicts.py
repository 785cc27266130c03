"""Verdicts of the input-contract fuzzer: one outcome class per call (see ``CLASSES``).

:func:`run` calls a :class:`~contract_cases.Case` on an implementation and records its
result, its exception or its RuntimeWarnings; :func:`judge` turns that into a class:
clear error, unclear error (names no argument), foreign exception type, silent NaN,
silent ±inf in a bounded output (or finite evidence turned dogmatic), wrong value (laws,
or the expected answer with dtype-aware tolerances at each output's natural scale),
invalid input accepted, valid input rejected, RuntimeWarning escaping.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from contract_cases import FLOAT_ARGS, POSITIONAL, Case

CLASSES = (
    "ok",
    "clear_error",
    "unclear_error",
    "foreign_exception",
    "silent_nan",
    "silent_inf",
    "wrong_value",
    "invalid_accepted",
    "valid_rejected",
    "runtime_warning",
)
#: Outcome classes that fail the contract.
BAD = frozenset(CLASSES) - {"ok", "clear_error"}


@dataclass
class Outcome:
    cls: str
    detail: str = ""
    result: dict[str, np.ndarray] | None = field(default=None, repr=False)


def _fields(result: Any, to_numpy: Callable[[Any], np.ndarray]) -> dict[str, np.ndarray]:
    if hasattr(result, "_fields"):
        return {k: to_numpy(getattr(result, k)) for k in result._fields}
    return {"out": to_numpy(result)}


def _names_argument(message: str, case: Case) -> bool:
    names = [case.arg] if case.arg else list(case.args) + list(POSITIONAL[case.function])
    names = [n for n in names if n]
    if not case.arg:
        names += ["sources", "mean", "var", "h", "labels", "w_mean", "w_cov", "w"]
    return any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", message) for n in names)


def run(case: Case, impl: Any, to_numpy: Callable[[Any], np.ndarray]) -> Outcome:
    """Run ``case`` on ``impl``; classify exceptions and warnings (values: :func:`judge`)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            raw = case.call(impl)
            result = _fields(raw, to_numpy)
        except Exception as exc:  # every exception is classified, none escapes
            return _error_outcome(case, exc)
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    out = Outcome("ok", result=result)
    if runtime:
        out.detail = f"{runtime[0].category.__name__}: {runtime[0].message}"
    return out


def _error_outcome(case: Case, exc: Exception) -> Outcome:
    detail = f"{type(exc).__name__}: {str(exc)[:200]}"
    if not isinstance(exc, ValueError | TypeError):
        return Outcome("foreign_exception", detail)
    if not _names_argument(str(exc), case):
        return Outcome("unclear_error", detail)
    if case.expect == "valid":
        return Outcome("valid_rejected", detail)
    return Outcome("clear_error", detail)


def _close(a: np.ndarray, b: np.ndarray, rtol: float, floor: float = 0.0) -> bool:
    """``a`` matches ``b`` to ``rtol`` relative to each value and to the largest one, or to
    ``floor`` if larger (the natural scale of the output); inf and NaN in the same places."""
    if a.shape != b.shape:
        return False
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    if not np.array_equal(np.isnan(a64), np.isnan(b64)):
        return False
    inf_a, inf_b = np.isinf(a64), np.isinf(b64)
    if not np.array_equal(inf_a, inf_b) or not np.array_equal(a64[inf_a], b64[inf_b]):
        return False
    fin = np.isfinite(a64)
    if not fin.any():
        return True
    scale = max(np.abs(b64[fin]).max(), floor)
    with np.errstate(over="ignore", invalid="ignore"):
        gap = np.abs(a64[fin] - b64[fin])
        bound = rtol * np.abs(b64[fin]) + rtol * scale
    return bool(np.all(gap <= bound))


def _input_dtype(case: Case) -> np.dtype[Any] | None:
    for n in FLOAT_ARGS[case.function]:
        v = case.args.get(n)
        if isinstance(v, np.ndarray):
            return v.dtype
        if isinstance(v, list):
            return np.dtype(np.float64)
    return None


def judge(
    case: Case,
    outcome: Outcome,
    reference: dict[str, np.ndarray] | None = None,
    half_ok: bool = False,
) -> Outcome:
    """The final class of a call that returned (or raised): expectations, values, warnings.

    ``reference``: the values the call must reproduce (the reference's answer to the same
    call for a backend, or the answer to ``case.base``), compared with a dtype-aware
    tolerance.
    """
    expect = case.expect
    if expect == "invalid_or_half":
        expect = "either" if half_ok else "invalid"
    if outcome.result is None:
        if outcome.cls == "valid_rejected" and expect != "valid":
            return replace(outcome, cls="clear_error")
        return outcome
    result = outcome.result
    if expect == "invalid":
        return Outcome("invalid_accepted", f"{case.mutation} accepted", result)
    for name, value in result.items():
        if value.dtype.kind == "f" and np.isnan(value).any():
            return Outcome("silent_nan", f"NaN in {name}", result)
    for name in case.bounded:
        if name in result and np.isinf(result[name]).any():
            return Outcome("silent_inf", f"inf in {name}", result)
    if "evidence" in result and case.function in ("calibrate", "evidence"):
        var = np.asarray(case.args["var"], dtype=np.float64) if not isinstance(
            case.args["var"], np.ma.MaskedArray) else None  # fmt: skip
        if var is not None and np.any(np.isposinf(result["evidence"]) & (var > 0)):
            return Outcome("silent_inf", "finite evidence became +inf (dogmatic)", result)
    dtype = _input_dtype(case)
    if dtype is not None and dtype.kind == "f" and dtype in (np.float32, np.float64):
        for name, value in result.items():
            if value.dtype != dtype:
                return Outcome("wrong_value", f"{name} has dtype {value.dtype}, not {dtype}")
    law = _laws(case, result)
    if law:
        return Outcome("wrong_value", law, result)
    power = case.args.get("power", 1.0)
    # p·log λ amplifies the rounding of log λ (1e-16) by p: beyond p = 1e15 the answer is
    # ill-conditioned (κ of the conformance tolerances) and only the laws are checked.
    amplified = isinstance(power, float) and math.isfinite(power) and power > 1e15
    if reference is not None and case.expect != "either" and not amplified:
        rtol = 1e-6 if all(v.dtype == np.float64 for v in result.values()) else 2e-3
        if "cov" in reference and reference["cov"].size:  # posteriors: rounding times cond(Λ)
            cov = reference["cov"].astype(np.float64)
            with np.errstate(all="ignore"):
                cond = float(np.linalg.cond(cov.reshape(-1, *cov.shape[-2:])[0]))
            rtol = max(rtol, 1e-14 * cond) if np.isfinite(cond) else math.inf
        for name, value in result.items():
            floor = _scale(case, reference, name)
            if name in reference and not _close(value, reference[name], rtol, floor):
                return Outcome("wrong_value", f"{name} differs from the reference", result)
    if outcome.detail:
        return Outcome("runtime_warning", outcome.detail, result)
    return Outcome("ok", "", result)


def _scale(case: Case, reference: dict[str, np.ndarray], name: str) -> float:
    """The natural size of output ``name``, below which differences are rounding: 1 for
    masses; for gradient moments the size of one draw's gradient (|W| for a softmax head,
    whose softmax in float32 resolves only 6e-8) and its square for variances."""
    if name in ("belief", "uncertainty"):
        return 1.0
    if name == "grad":  # Σ_m b_m μ_m: beliefs are masses, so errors scale with max |μ|
        mean = np.asarray(case.args["mean"], dtype=np.float64)
        finite = mean[np.isfinite(mean)]
        return float(np.max(np.abs(finite))) if finite.size else 0.0
    size = 0.0
    if case.function.startswith("softmax_head_moments"):
        w = np.asarray(case.args["w_mean"], dtype=np.float64)
        size = float(np.max(np.abs(w))) if w.size else 0.0
    if "mean" in reference and reference["mean"].size:
        finite = reference["mean"][np.isfinite(reference["mean"])].astype(np.float64)
        size = max(size, float(np.max(np.abs(finite))) if finite.size else 0.0)
    return size**2 if name == "var" else size if name == "mean" else 0.0


def _laws(case: Case, r: dict[str, np.ndarray]) -> str:
    """Identities every answer satisfies (beliefs are masses, variances non-negative)."""
    tol = 1e-2 if _input_dtype(case) == np.float16 else 1e-5
    if "belief" in r and "uncertainty" in r:
        b, u = r["belief"].astype(np.float64), r["uncertainty"].astype(np.float64)
        if np.any(b < -tol) or np.any(b > 1 + tol) or np.any(u < -tol) or np.any(u > 1 + tol):
            return "belief or uncertainty outside [0, 1]"
        if case.function in ("calibrate", "reduced_dempster"):
            total = b.sum(axis=-2) + u
            if total.size and np.any(np.abs(total - 1.0) > tol):
                return "fused masses do not sum to 1"
    if "var" in r and np.any(r["var"] < 0):
        return "negative variance"
    if case.function == "dempster_combine":
        out = r["out"]
        if np.any(out < 0) or abs(float(out.sum()) - 1.0) > tol:
            return "combined masses are not a mass function"
    if case.function == "calibrate" and "grad" in r:
        mean = np.asarray(case.args["mean"], dtype=np.float64)
        if mean.size and mean.shape[-2] and np.all(np.isfinite(mean)):
            bound = np.abs(mean).max(axis=-2) * (1 + tol)
            if np.any(np.abs(r["grad"].astype(np.float64)) > bound + 1e-300):
                return "grad outside the range of the means"
    return ""
