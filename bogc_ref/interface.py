"""The interface an implementation of BOGC provides, by stage.

An implementation is any object (a module, a class instance) whose attributes carry the
reference's function names, argument names and result fields. It may provide a subset:
the conformance harness checks the stages whose functions are present and reports the
others as absent. The bundled backends provide everything.

Arrays go in and come out in the implementation's own array type. An implementation
that does not take NumPy arrays defines ``from_numpy(array) -> native array``; the
harness calls it on every input and reads results back through DLPack or
``__array__`` (never through Python lists).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ._results import Calibration, Moments, Opinion, Posterior

#: The functions of each stage, in the order the harness checks them.
STAGES: dict[str, tuple[str, ...]] = {
    "stage1": (
        "linear_head_moments",
        "softmax_head_moments",
        "softmax_head_moments_linearized",
        "empirical_moments",
        "linear_head_posterior",
        "softmax_head_laplace",
    ),
    "stage2": ("evidence",),
    "stage3": ("opinions", "reduced_dempster", "dempster_combine"),
    "calibrate": ("calibrate",),
}


@runtime_checkable
class Implementation(Protocol):
    """A complete BOGC implementation (every stage). Partial ones omit members."""

    def linear_head_moments(self, h: Any, y: Any, w_mean: Any, w_cov: Any) -> Moments: ...

    def softmax_head_moments(
        self,
        h: Any,
        labels: Any,
        w_mean: Any,
        w_cov: Any,
        *,
        eps: Any = None,
        n_samples: int | None = None,
        seed: int | None = None,
        chunk_size: int | None = None,
    ) -> Moments: ...

    def softmax_head_moments_linearized(
        self, h: Any, labels: Any, w_mean: Any, w_cov: Any
    ) -> Moments: ...

    def empirical_moments(self, per_sample_grads: Any) -> Moments: ...

    def linear_head_posterior(
        self, h: Any, y: Any, *, prior_mean: Any, prior_precision: Any, noise_var: float
    ) -> Posterior: ...

    def softmax_head_laplace(
        self, h: Any, labels: Any, w: Any, *, prior_mean: Any, prior_precision: Any
    ) -> Posterior: ...

    def evidence(
        self,
        var: Any,
        *,
        mask: Any = None,
        mode: str = "relative",
        tau: float | None = None,
        power: float = 1.0,
    ) -> Any: ...

    def opinions(self, evidence: Any, *, prior_weight: float | None = None) -> Opinion: ...

    def reduced_dempster(self, evidence: Any, *, prior_weight: float | None = None) -> Opinion: ...

    def dempster_combine(self, m1: Any, m2: Any) -> Any: ...

    def calibrate(
        self,
        mean: Any,
        var: Any,
        *,
        mask: Any = None,
        mode: str = "relative",
        tau: float | None = None,
        power: float = 1.0,
        prior_weight: float | None = None,
        normalize: bool = False,
        check_finite: bool = True,
    ) -> Calibration: ...
