"""The ``numpy`` backend: the reference itself behind the backend interface."""

from __future__ import annotations

from typing import Any

import numpy as np

import bogc_ref


class NumpyBackend:
    """The NumPy reference (float64 internally, input dtype out) as a backend object.

    Every spec function is the reference's own function; ``from_numpy`` is the identity.
    """

    name = "numpy"

    def __init__(self, device: str | None = None) -> None:
        if device not in (None, "cpu"):
            raise ValueError(f"device: the numpy backend runs on 'cpu' only, got {device!r}")
        self.device = "cpu"

    def from_numpy(self, array: Any) -> Any:
        """The array itself (NumPy is the native type)."""
        return np.asarray(array)

    def __repr__(self) -> str:
        return "NumpyBackend(device='cpu')"

    linear_head_moments = staticmethod(bogc_ref.linear_head_moments)
    softmax_head_moments = staticmethod(bogc_ref.softmax_head_moments)
    softmax_head_moments_linearized = staticmethod(bogc_ref.softmax_head_moments_linearized)
    empirical_moments = staticmethod(bogc_ref.empirical_moments)
    linear_head_posterior = staticmethod(bogc_ref.linear_head_posterior)
    softmax_head_laplace = staticmethod(bogc_ref.softmax_head_laplace)
    evidence = staticmethod(bogc_ref.evidence)
    opinions = staticmethod(bogc_ref.opinions)
    reduced_dempster = staticmethod(bogc_ref.reduced_dempster)
    dempster_combine = staticmethod(bogc_ref.dempster_combine)
    calibrate = staticmethod(bogc_ref.calibrate)
