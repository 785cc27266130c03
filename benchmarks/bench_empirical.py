"""Empirical (model-free) moments from N per-sample gradients of M = 3 sources, per backend.

``empirical_moments(G)`` with G (N, M, D) float32: mean over N and the variance of the mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._support import BACKENDS, load_backend, preload_torch, synchronize

preload_torch()

N_SOURCES = 3


class EmpiricalMoments:
    """Mean and variance of the mean of per-sample gradients."""

    params = (BACKENDS, [16, 128], [2**12, 2**16])
    param_names = ("backend", "N", "D")
    rounds = 1
    repeat = (3, 20, 4.0)

    def setup(self, label: str, n: int, d: int) -> None:
        self.backend: Any = load_backend(label)
        rng = np.random.default_rng(0)
        grads = rng.standard_normal((n, N_SOURCES, d), dtype=np.float32)
        self.grads = self.backend.from_numpy(grads)

    def _run(self) -> None:
        self.backend.empirical_moments(self.grads)
        synchronize(self.backend)

    def time_empirical_moments(self, label: str, n: int, d: int) -> None:
        self._run()

    def peakmem_empirical_moments(self, label: str, n: int, d: int) -> None:
        self._run()
