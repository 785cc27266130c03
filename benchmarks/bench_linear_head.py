"""Exact linear-head gradient moments against the full-covariance baseline.

B = 128 samples, K = 1 output, D in {64, ..., 512}: ``bogc_ref.linear_head_moments``
(O(B·D²)) against ``baseline_full_covariance`` (every sample's D×D covariance from
fourth-order moments, O(B·D³)). Both give the same (mean, var): tests/test_benchmarks.py.
"""

from __future__ import annotations

import numpy as np

import bogc_ref

from .baseline_full_covariance import full_covariance_moments

N_SAMPLES = 128
N_OUTPUTS = 1


def linear_head_inputs(
    d: int, b: int = N_SAMPLES, k: int = N_OUTPUTS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """h (B, D), y (B, K), w_mean (K, D+1) and a well-conditioned w_cov (K, D+1, D+1)."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((b, d))
    y = rng.standard_normal((b, k))
    w_mean = rng.standard_normal((k, d + 1)) / np.sqrt(d)
    factor = rng.standard_normal((k, d + 1, d + 1)) / (d + 1)
    w_cov = factor @ factor.transpose(0, 2, 1) + 0.01 * np.eye(d + 1)
    return h, y, w_mean, w_cov


class LinearHeadMoments:
    """Per-sample gradient mean and variance of a squared-error head."""

    params = ([64, 128, 256, 512], ["exact", "full-covariance"])
    param_names = ("D", "implementation")
    rounds = 1
    timeout = 300.0
    #: One process per case (asv's default is 2): these cases take seconds a call, and
    #: a second process doubled the suite's share of a full run.
    processes = 1
    repeat = (1, 5, 10.0)

    def setup(self, d: int, implementation: str) -> None:
        self.inputs = linear_head_inputs(d)
        self.moments = (
            bogc_ref.linear_head_moments if implementation == "exact" else full_covariance_moments
        )

    def time_moments(self, d: int, implementation: str) -> None:
        self.moments(*self.inputs)

    def peakmem_moments(self, d: int, implementation: str) -> None:
        self.moments(*self.inputs)
