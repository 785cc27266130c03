"""Wrong on purpose: empirical_moments uses the biased variance (ddof = 0)."""

from types import SimpleNamespace
from typing import Any

import numpy as np

import bogc_ref
from bogc_ref.interface import STAGES


def empirical_moments(per_sample_grads: Any) -> bogc_ref.Moments:
    g = np.asarray(per_sample_grads)
    n = g.shape[0]
    g64 = g.astype(np.float64)
    return bogc_ref.Moments(
        g64.mean(axis=0).astype(g.dtype), (g64.var(axis=0, ddof=0) / n).astype(g.dtype)
    )


impl = SimpleNamespace(
    **{f: getattr(bogc_ref, f) for names in STAGES.values() for f in names},
)
impl.empirical_moments = empirical_moments
