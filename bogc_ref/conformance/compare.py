"""Elementwise comparison of a candidate's output with the reference's, under a tolerance.

The rule is the one of :mod:`bogc_ref.conformance.tolerances`:
``|c - r| <= atol + rtol |r|`` on finite entries; non-finite entries must match exactly;
NaN is never accepted; shape and dtype must be those of the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Comparison:
    """Outcome of one comparison.

    ``abs_err`` is ``max |c - r|``; ``rel_err`` is ``max |c - r| / (|r| + atol/rtol)``, the
    error relative to the scale the tolerance uses; ``ratio`` is
    ``max |c - r| / (atol + rtol |r|)`` (at most 1 passes). ``reason`` is empty when ok.
    """

    ok: bool
    abs_err: float
    rel_err: float
    ratio: float
    reason: str = ""


def plain(x: object) -> str:
    """A number as plain text (``0.5``, ``inf``), never ``np.float64(0.5)``."""
    value = float(x)  # type: ignore[arg-type]
    return repr(value) if value == value else "nan"


def failed(reason: str) -> Comparison:
    """A failure that has no numeric error (wrong shape, dtype, NaN, exception)."""
    return Comparison(
        ok=False, abs_err=float("nan"), rel_err=float("nan"), ratio=np.inf, reason=reason
    )


def _index(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def compare_array(
    name: str,
    candidate: np.ndarray,
    reference: np.ndarray,
    *,
    rtol: float,
    atol: float | np.ndarray,
    dtype: np.dtype | None = None,
) -> Comparison:
    """Compare one output array; ``dtype`` is the dtype the candidate must return."""
    if candidate.shape != reference.shape:
        return failed(f"{name}: shape {candidate.shape}, expected {reference.shape}")
    if dtype is not None and candidate.dtype != dtype:
        return failed(f"{name}: dtype {candidate.dtype}, expected {np.dtype(dtype)}")
    if candidate.dtype.kind != "f":
        return failed(f"{name}: dtype {candidate.dtype} is not floating point")
    c = candidate.astype(np.float64)
    r = reference.astype(np.float64)
    nan = np.isnan(c) & ~np.isnan(r)
    if nan.any():
        return failed(
            f"{name}: NaN at index {_index(nan)} ({int(nan.sum())} entries; shape {c.shape})"
        )
    c_finite, r_finite = np.isfinite(c), np.isfinite(r)
    mismatch = (c_finite != r_finite) | (~c_finite & ~r_finite & (c != r) & ~np.isnan(r))
    if mismatch.any():
        i = _index(mismatch)
        return failed(
            f"{name}: non-finite pattern differs at index {i}: "
            f"got {plain(c[i])}, expected {plain(r[i])}"
        )
    both = c_finite & r_finite
    atol_arr = np.broadcast_to(np.asarray(atol, dtype=np.float64), r.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(both, np.abs(c - r), 0.0)
    bound = atol_arr + rtol * np.abs(np.where(both, r, 0.0))
    scale = np.abs(np.where(both, r, 0.0)) + atol_arr / rtol
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio_arr = np.where(diff > 0, diff / bound, 0.0)
        rel_arr = np.where(diff > 0, diff / scale, 0.0)
    abs_err = float(diff.max()) if diff.size else 0.0
    rel_err = float(rel_arr.max()) if diff.size else 0.0
    ratio = float(ratio_arr.max()) if diff.size else 0.0
    if ratio > 1.0:
        i = _index(ratio_arr == ratio)
        return Comparison(
            ok=False,
            abs_err=abs_err,
            rel_err=rel_err,
            ratio=ratio,
            reason=(
                f"{name}: got {plain(c[i])}, expected {plain(r[i])} at index {i} "
                f"(|diff| {diff[i]:.3g} > tolerance {bound[i]:.3g}, rtol {rtol:.3g}: "
                f"{ratio:.3g} x the tolerance; "
                f"{int((ratio_arr > 1).sum())} of {diff.size} entries out of tolerance)"
            ),
        )
    return Comparison(ok=True, abs_err=abs_err, rel_err=rel_err, ratio=ratio)


def merge(comparisons: list[Comparison]) -> Comparison:
    """One comparison for several outputs: the first failure, or the worst errors."""
    for comp in comparisons:
        if not comp.ok:
            return comp
    if not comparisons:
        return Comparison(ok=True, abs_err=0.0, rel_err=0.0, ratio=0.0)
    return Comparison(
        ok=True,
        abs_err=max(c.abs_err for c in comparisons),
        rel_err=max(c.rel_err for c in comparisons),
        ratio=max(c.ratio for c in comparisons),
    )
