"""Inputs shared by the head-based stage-1 functions: representations, weights, labels."""

from __future__ import annotations

import numpy as np

from ._linalg import require_psd
from ._validation import (
    FloatArray,
    float_array,
    labels_array,
    require_finite,
    require_ndim,
    require_shape,
    symmetric,
)


def augmented(h: FloatArray) -> FloatArray:
    """``h̃ = [h, 1]`` in float64: the representation with the bias input appended last."""
    ones = np.ones((*h.shape[:-1], 1), dtype=np.float64)
    return np.concatenate([h.astype(np.float64, copy=False), ones], axis=-1)


def representation(h: object, values: bool = True) -> FloatArray:
    """``h`` (B, D) as a float array, finite if ``values`` (False: the dtype and shape only,
    as the backends check stubs)."""
    arr = float_array(h, "h")
    require_ndim(arr, "h", 2, "(B, D)")
    if values:
        require_finite(arr, "h")
    return arr


def head_weights(w: object, name: str, n_features: int, values: bool = True) -> FloatArray:
    """A head's weight matrix (K, D+1), finite if ``values``."""
    arr = float_array(w, name)
    require_ndim(arr, name, 2, "(K, D+1)")
    if arr.shape[1] != n_features + 1:
        raise ValueError(
            f"{name}: expected shape (K, {n_features + 1}) (D+1 columns, bias last, D = h.shape[1] "
            f"= {n_features}), got {arr.shape}"
        )
    if values:
        require_finite(arr, name)
    return arr


def covariance(
    cov: object,
    name: str,
    shape: tuple[int, ...],
    why: str,
    psd: bool = False,
    values: bool = True,
) -> FloatArray:
    """A finite symmetric covariance (or precision) of the given shape.

    ``psd``: also require positive semi-definiteness (:func:`._linalg.require_psd`, one
    Cholesky factorisation per matrix). ``values=False``: the dtype and shape only.
    """
    arr = float_array(cov, name)
    require_shape(arr, name, shape, why)
    if not values:
        return arr
    require_finite(arr, name)
    symmetric(arr, name)
    if psd:
        require_psd(arr, name)
    return arr


def require_classes(w: FloatArray, name: str) -> None:
    """A softmax head needs K >= 1 classes (rows of ``w``)."""
    if w.shape[0] == 0:
        raise ValueError(f"{name}: a softmax head needs K >= 1 classes (rows), got shape {w.shape}")


def one_hot(labels: object, n_classes: int, n_rows: int) -> FloatArray:
    """One-hot float64 targets (B, K) from integer ``labels`` (B,)."""
    idx = labels_array(labels, "labels", n_classes, n_rows)
    return np.eye(n_classes, dtype=np.float64)[idx]


def shows_invalid_covariance(mean: FloatArray, var: FloatArray) -> bool:
    """True when moments computed from an unchecked covariance show that it may be invalid:
    a NaN anywhere or a negative variance (what a non-finite or indefinite covariance
    causes). The caller then checks the covariance, which names what is wrong with it."""
    return bool(np.isnan(mean).any() or np.isnan(var).any() or (var < 0).any())


def no_overflow_nan(results: tuple[FloatArray, ...], inputs: dict[str, FloatArray]) -> None:
    """ValueError when a result holds NaN although every input is finite.

    With validated, finite inputs a NaN can only come from a float64 overflow inside the
    computation (``inf - inf``, ``0 * inf``); the error names the inputs and their
    largest magnitudes instead of returning it. An overflow that leaves a correct
    ``inf`` (a variance beyond float64's range) is returned as it is.
    """
    if not any(np.isnan(r).any() for r in results):
        return
    sizes = ", ".join(
        f"max |{n}| = {float(np.max(np.abs(a))) if a.size else 0.0:.3g}" for n, a in inputs.items()
    )
    raise ValueError(
        f"{', '.join(inputs)}: the result overflows float64 for these inputs ({sizes}); "
        "rescale them"
    )
