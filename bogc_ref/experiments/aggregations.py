"""The aggregations compared by the experiments, by name.

- ``mean`` / ``sum``: the plain average (sum) of the sources' gradients (fixed weights).
- ``bayesagg``: BOGC with ``normalize=True``, the BayesAgg-MTL precision-weighted mean.
- ``bogc``: BOGC with the spec's defaults (relative evidence, p = 1, W = M, no normalisation).
- ``upgrad``, ``imtlg``, ``jd-mean``: torchjd's UPGrad, IMTL-G and Mean aggregators
  (present only when ``torchjd`` imports).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def torchjd_aggregators() -> dict[str, Any]:
    """torchjd's aggregators by experiment name; empty when torchjd is not installed."""
    try:
        from torchjd.aggregation import IMTLG, Mean, UPGrad
    except ImportError:
        return {}
    return {"upgrad": UPGrad(), "imtlg": IMTLG(), "jd-mean": Mean()}


def bogc_kwargs(name: str) -> dict[str, Any]:
    """``calibrate`` keyword arguments of a BOGC-family method."""
    if name == "bogc":
        return {}
    if name == "bayesagg":
        return {"normalize": True}
    raise ValueError(f"method: {name!r} is not a BOGC method (expected 'bogc' or 'bayesagg')")


def matrix_aggregator(name: str) -> Callable[[Tensor], Tensor]:
    """A function (M, n) → (n,) of the sources' mean gradients, for the non-BOGC methods."""
    if name == "mean":
        return lambda matrix: matrix.mean(dim=0)
    if name == "sum":
        return lambda matrix: matrix.sum(dim=0)
    jd = torchjd_aggregators()
    if name in jd:
        agg = jd[name]

        def call(matrix: Tensor) -> Tensor:
            with torch.no_grad():
                out: Tensor = agg(matrix)
            return out

        return call
    raise ValueError(f"method: unknown or unavailable aggregation {name!r}")
