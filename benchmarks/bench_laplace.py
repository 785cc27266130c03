"""Laplace posterior of a softmax head: Kronecker GGN (reference) against a dense GGN.

B = 256, K = 10, D in {16, 32, 64}: ``bogc_ref.softmax_head_laplace`` against
``baseline_dense_ggn`` (explicit per-sample Jacobians J_b of shape K × K(D+1)). Both
factor the same K(D+1) × K(D+1) precision and return the same posterior.
"""

from __future__ import annotations

import numpy as np

import bogc_ref

from .baseline_dense_ggn import dense_laplace_posterior

N_SAMPLES, N_CLASSES = 256, 10


def laplace_inputs(
    d: int, b: int = N_SAMPLES, k: int = N_CLASSES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """h (B, D), labels (B,), w and prior_mean (K, D+1), prior_precision = I."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((b, d))
    labels = rng.integers(0, k, size=b)
    w = rng.standard_normal((k, d + 1)) / np.sqrt(d)
    return h, labels, w, np.zeros((k, d + 1)), np.eye(k * (d + 1))


class LaplacePosterior:
    """One Newton step and the posterior covariance of a softmax head."""

    params = ([16, 32, 64], ["kronecker", "dense"])
    param_names = ("D", "implementation")
    rounds = 1
    repeat = (2, 10, 5.0)

    def setup(self, d: int, implementation: str) -> None:
        self.inputs = laplace_inputs(d)
        self.posterior = (
            bogc_ref.softmax_head_laplace
            if implementation == "kronecker"
            else dense_laplace_posterior
        )

    def _run(self) -> None:
        h, labels, w, prior_mean, prior_precision = self.inputs
        self.posterior(h, labels, w, prior_mean=prior_mean, prior_precision=prior_precision)

    def time_posterior(self, d: int, implementation: str) -> None:
        self._run()

    def peakmem_posterior(self, d: int, implementation: str) -> None:
        self._run()
