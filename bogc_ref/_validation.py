"""Input validation shared by every public function of the reference.

Every check raises with a message that names the argument, what is wrong and
where (the offending index and the array's shape), so that a user can find the
bad value without a debugger. Nothing here computes any part of the method.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import issymmetric

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

FloatArray = NDArray[np.floating[Any]]

#: Largest temporary (bytes) a value check holds at once: it checks big arrays in blocks.
CHECK_BLOCK_BYTES = 1 << 20


def plain_array(x: object, name: str) -> np.ndarray:
    """``x`` as a plain ``numpy.ndarray`` (no copy when it already is one).

    Masked arrays (``numpy.ma``) are refused with a TypeError: the reference does not
    guess what a masked entry means (use ``mask=`` for absent sources). Other ndarray
    subclasses, ``numpy.matrix`` included, are read as the plain array of their values.
    Anything that NumPy cannot turn into an array (ragged lists) is a TypeError too.
    """
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name}: masked arrays (numpy.ma) are not accepted (shape {x.shape}); pass "
            "np.ma.getdata(x) and mark absent sources with mask=, or fill the masked entries"
        )
    if type(x) is np.ndarray:
        return x
    try:
        return np.asarray(x)
    except (ValueError, TypeError, RuntimeError) as exc:  # RuntimeError: a tensor with a graph
        raise TypeError(f"{name}: cannot be read as an array ({exc})") from None


def float_array(x: object, name: str) -> FloatArray:
    """Return ``x`` as a float32/float64 ndarray; reject every other dtype with TypeError.

    Python floats and lists of floats are accepted and become float64, like NumPy does.
    Integer, boolean, complex and half-precision inputs are rejected rather than cast,
    because a silent cast would hide a caller's mistake. See :func:`plain_array` for
    masked arrays and ndarray subclasses.
    """
    arr = plain_array(x, name)
    if not isinstance(x, np.ndarray | np.generic) and not (
        hasattr(x, "__array__") or hasattr(x, "__dlpack__")
    ):
        if arr.dtype.kind in "iu" or arr.dtype == np.bool_:
            raise TypeError(
                f"{name}: expected a float32 or float64 array, got {arr.dtype} values "
                f"(shape {arr.shape})"
            )
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float64, copy=False)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected a float32 or float64 array, "
            f"got dtype {arr.dtype} (shape {arr.shape})"
        )
    return arr


def require_sources(arr: np.ndarray, name: str) -> None:
    """Raise ValueError when the sources axis (-2) of ``arr`` (..., M, D) is empty (M = 0)."""
    if arr.shape[-2] == 0:
        raise ValueError(
            f"{name}: the sources axis (axis -2, M) is empty, shape {arr.shape}; need M >= 1 "
            "(the default prior weight W = M would be 0)"
        )


def sources_array(x: object, name: str) -> FloatArray:
    """A float array (..., M, D) with M >= 1: the argument of the stage-2 and 3 functions."""
    arr = float_array(x, name)
    require_min_ndim(arr, name, 2, "(..., M, D)")
    require_sources(arr, name)
    return arr


@contextmanager
def memory_named(name: str, shape: tuple[int, ...]) -> Iterator[None]:
    """Re-raise a MemoryError inside the block naming the argument being checked."""
    try:
        yield
    except MemoryError as exc:
        raise MemoryError(
            f"{name}: checking an argument of shape {shape} needs more memory than is "
            f"available ({exc})"
        ) from None


def common_dtype(arrays: Sequence[tuple[str, FloatArray]]) -> np.dtype[Any]:
    """The single float dtype shared by ``arrays``; TypeError naming both arguments otherwise."""
    first_name, first = arrays[0]
    for name, arr in arrays[1:]:
        if arr.dtype != first.dtype:
            raise TypeError(
                f"{name}: dtype {arr.dtype} does not match {first_name}'s dtype {first.dtype}; "
                "pass both as float32 or both as float64"
            )
    return first.dtype


def require_ndim(arr: np.ndarray, name: str, ndim: int, layout: str) -> None:
    """Raise ValueError unless ``arr.ndim == ndim``; ``layout`` spells the expected axes."""
    if arr.ndim != ndim:
        raise ValueError(
            f"{name}: expected {ndim} dimensions {layout}, got shape {arr.shape} ({arr.ndim} dims)"
        )


def require_min_ndim(arr: np.ndarray, name: str, ndim: int, layout: str) -> None:
    """Raise ValueError unless ``arr.ndim >= ndim``."""
    if arr.ndim < ndim:
        raise ValueError(
            f"{name}: expected at least {ndim} dimensions {layout}, got shape {arr.shape}"
        )


def require_shape(arr: np.ndarray, name: str, expected: tuple[int, ...], why: str) -> None:
    """Raise ValueError unless ``arr.shape == expected``; ``why`` explains ``expected``."""
    if arr.shape != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)} ({why}), got {arr.shape}")


def _first_index(bad: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(bad)[0])


def _count(bad: np.ndarray) -> str:
    n = int(np.count_nonzero(bad))
    return "1 entry" if n == 1 else f"{n} entries"


def reject_where(bad: np.ndarray, name: str, what: str, shape: tuple[int, ...]) -> None:
    """Raise ValueError if any entry of the boolean array ``bad`` is set.

    The message gives the first offending index (C order), how many entries are bad
    and the argument's shape.
    """
    if bad.any():
        raise ValueError(
            f"{name}: {what} at index {_first_index(bad)} ({_count(bad)}; shape {shape})"
        )


def require_finite(arr: np.ndarray, name: str, where: np.ndarray | None = None) -> None:
    """Raise ValueError on NaN or ±inf in ``arr`` (only where ``where`` is True, if given).

    Without ``where``, the test is one pass with no temporary: a sum is finite only if every
    term is (NaN and ±inf are absorbing under addition). A finite sum proves the array
    finite; otherwise (a non-finite entry, or finite entries whose sum overflows) the
    entries are tested one by one to name the first bad index.
    """
    if where is None and all_finite(arr):
        return
    for predicate, what in ((np.isnan, "NaN"), (np.isinf, "infinite value")):
        with memory_named(name, arr.shape):
            bad = predicate(arr)
            if where is not None:
                bad &= where
        reject_where(bad, name, what, arr.shape)


def all_finite(arr: np.ndarray) -> bool:
    """True when the sum of ``arr`` is finite, which proves every entry finite (one pass, no
    temporary); False means some entry is NaN or ±inf, or the sum overflowed, or ``arr`` is
    a broadcast view (a zero stride), whose sum would read every repeat of its few values."""
    if arr.size > 1 and 0 in arr.strides:
        return False
    with np.errstate(all="ignore"):
        return bool(np.isfinite(np.sum(arr)))


def positive_scalar(value: object, name: str) -> float:
    """A finite, strictly positive real scalar, or ValueError/TypeError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name}: expected a positive real number, got {type(value).__name__}")
    try:
        out = float(value)
    except OverflowError:  # an int beyond float64's range
        raise ValueError(f"{name}: must be finite and > 0, got an integer beyond float64") from None
    if not np.isfinite(out) or out <= 0.0:
        raise ValueError(f"{name}: must be finite and > 0, got {value!r}")
    return out


def require_bool(value: object, name: str) -> None:
    """TypeError naming ``name`` unless ``value`` is a bool (a string or 0 would otherwise
    act by its truth value)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")


def bool_mask(mask: object, name: str, target: tuple[int, ...]) -> np.ndarray:
    """A boolean mask broadcast to ``target`` (TypeError if not bool, ValueError if no fit)."""
    arr = plain_array(mask, name)
    if arr.dtype != np.bool_:
        raise TypeError(
            f"{name}: expected a boolean array, got dtype {arr.dtype} (shape {arr.shape})"
        )
    try:
        return np.broadcast_to(arr, target)
    except ValueError:
        raise ValueError(
            f"{name}: shape {arr.shape} does not broadcast to the sources shape {target} "
            "(the leading axes and M of mean)"
        ) from None


def labels_array(labels: object, name: str, n_classes: int, n_rows: int) -> np.ndarray:
    """Integer class labels of shape (B,) in [0, n_classes)."""
    arr = plain_array(labels, name)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer class labels, got dtype {arr.dtype}")
    require_shape(arr, name, (n_rows,), "one label per row of h")
    reject_where((arr < 0) | (arr >= n_classes), name, f"label outside [0, {n_classes})", arr.shape)
    return arr.astype(np.intp, copy=False)


def symmetric(arr: np.ndarray, name: str) -> None:
    r"""Raise ValueError if the trailing square matrices of ``arr`` are not symmetric.

    Symmetric means :math:`|a_{ij} - a_{ji}| \le 10^3\,\varepsilon \max|a|` per matrix
    (ε of the dtype), so that a product like :math:`F F^\top` passes. A matrix that is
    exactly symmetric and of order 32 or more passes after one comparison pass
    (``scipy.linalg.issymmetric``, one call per matrix); the others are compared in
    blocks of rows, so the check never holds a temporary of more than
    :data:`CHECK_BLOCK_BYTES` (plus one boolean per entry to name the index when it fails).
    ``arr`` should be finite (checked before); a backend whose structural checks run first
    may pass non-finite entries, which give no floating-point warning here.
    """
    if arr.ndim < 2 or arr.size == 0:
        return
    stack = arr.reshape(-1, *arr.shape[-2:])
    if arr.shape[-1] >= 32 and all(issymmetric(matrix) for matrix in stack):
        return
    with memory_named(name, arr.shape), np.errstate(invalid="ignore", over="ignore"):
        scale = np.maximum(np.max(stack, axis=(-2, -1)), -np.min(stack, axis=(-2, -1)))
        tol = 1e3 * np.finfo(arr.dtype).eps * np.where(scale > 0, scale, 1.0)
        n = stack.shape[-1]
        rows = max(1, CHECK_BLOCK_BYTES // max(1, stack.shape[0] * n * arr.itemsize))
        block = np.empty((stack.shape[0], min(rows, n), n), dtype=arr.dtype)
        for start in range(0, n, rows):
            gap = block[:, : min(rows, n - start), :]
            upper = np.swapaxes(stack[:, :, start : start + rows], -1, -2)
            np.subtract(stack[:, start : start + rows, :], upper, out=gap)
            if np.any(np.abs(gap, out=gap) > tol[:, None, None]):
                break
        else:
            return
        bad = np.abs(arr - np.swapaxes(arr, -1, -2)) > tol.reshape(*arr.shape[:-2], 1, 1)
    reject_where(bad, name, "matrix is not symmetric", arr.shape)
