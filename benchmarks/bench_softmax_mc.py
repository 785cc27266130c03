"""Softmax-head Monte Carlo moments: streaming reference against a materialising baseline.

B = 256, K = 10, D = 512, S in {64, 512}, the same stored draws ``eps`` for both:
``bogc_ref.softmax_head_moments`` (chunks of draws, memory independent of S) against
``baseline_materialising_mc`` (one (S, B, K, D) float64 array: 5.4 GB at S = 512).
Both include the Cholesky factorisation of the (5130, 5130) covariance.
"""

from __future__ import annotations

import numpy as np

import bogc_ref

from ._support import require_memory
from .baseline_materialising_mc import materialising_softmax_moments

N_SAMPLES, N_CLASSES, DIM = 256, 10, 512


def softmax_inputs(
    s: int, b: int = N_SAMPLES, k: int = N_CLASSES, d: int = DIM, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """h (B, D), labels (B,), w_mean (K, D+1), w_cov = 0.01 I + U Uᵀ (rank 8), eps (S, K(D+1))."""
    rng = np.random.default_rng(seed)
    n_params = k * (d + 1)
    h = rng.standard_normal((b, d))
    labels = rng.integers(0, k, size=b)
    w_mean = rng.standard_normal((k, d + 1)) / np.sqrt(d)
    low_rank = rng.standard_normal((n_params, 8)) * 0.05
    w_cov = 0.01 * np.eye(n_params) + low_rank @ low_rank.T
    eps = rng.standard_normal((s, n_params))
    return h, labels, w_mean, w_cov, eps


class SoftmaxMonteCarlo:
    """Monte Carlo gradient moments of a softmax head, same eps for both implementations."""

    params = ([64, 512], ["streaming", "materialising"])
    param_names = ("S", "implementation")
    rounds = 1
    timeout = 600.0
    #: One process per case (asv's default is 2): these cases take seconds a call, and
    #: a second process doubled the suite's share of a full run.
    processes = 1
    warmup_time = 0.0
    repeat = (1, 3, 10.0)
    min_run_count = 1

    def setup(self, s: int, implementation: str) -> None:
        if implementation == "materialising":
            per_class_bytes = s * N_SAMPLES * N_CLASSES * DIM * 8
            require_memory(1.2 * per_class_bytes, f"materialising baseline S={s}")
        self.inputs = softmax_inputs(s)

    def _run(self, implementation: str) -> None:
        h, labels, w_mean, w_cov, eps = self.inputs
        if implementation == "streaming":
            bogc_ref.softmax_head_moments(h, labels, w_mean, w_cov, eps=eps)
        else:
            materialising_softmax_moments(h, labels, w_mean, w_cov, eps)

    def time_moments(self, s: int, implementation: str) -> None:
        self._run(implementation)

    def peakmem_moments(self, s: int, implementation: str) -> None:
        self._run(implementation)
