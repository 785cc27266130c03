"""Inputs shared by the head-based stage-1 functions: representations, weights, labels."""

from __future__ import annotations

import numpy as np

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


def representation(h: object) -> FloatArray:
    """``h`` (B, D) as a finite float array."""
    arr = float_array(h, "h")
    require_ndim(arr, "h", 2, "(B, D)")
    require_finite(arr, "h")
    return arr


def head_weights(w: object, name: str, n_features: int) -> FloatArray:
    """A head's weight matrix (K, D+1), finite."""
    arr = float_array(w, name)
    require_ndim(arr, name, 2, "(K, D+1)")
    if arr.shape[1] != n_features + 1:
        raise ValueError(
            f"{name}: expected shape (K, {n_features + 1}) (D+1 columns, bias last, D = h.shape[1] "
            f"= {n_features}), got {arr.shape}"
        )
    require_finite(arr, name)
    return arr


def covariance(cov: object, name: str, shape: tuple[int, ...], why: str) -> FloatArray:
    """A finite symmetric covariance (or precision) of the given shape."""
    arr = float_array(cov, name)
    require_shape(arr, name, shape, why)
    require_finite(arr, name)
    symmetric(arr, name)
    return arr


def one_hot(labels: object, n_classes: int, n_rows: int) -> FloatArray:
    """One-hot float64 targets (B, K) from integer ``labels`` (B,)."""
    idx = labels_array(labels, "labels", n_classes, n_rows)
    return np.eye(n_classes, dtype=np.float64)[idx]
