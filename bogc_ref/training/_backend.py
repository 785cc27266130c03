"""The spec functions on torch tensors, and the moments every training integration shares."""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import Tensor


def spec_functions() -> Any:
    """The torch backend (``bogc_ref.backends.get_backend("torch")``): the spec on tensors.

    Imported by name because the ``backends/`` folder is mapped to ``bogc_ref.backends``
    at install time.
    """
    return importlib.import_module("bogc_ref.backends").get_backend("torch")


def reached_moments(per_sample_grads: Tensor) -> tuple[Tensor, Tensor]:
    r"""Empirical moments of per-sample, per-source gradients G (N, M, P), unreached → vacuous.

    ``mean, var = empirical_moments(G)`` (the spec's plain statistic), then
    :math:`v_{mp} = +\infty` wherever :math:`G_{bmp} = 0` for every sample b: a source whose
    per-sample gradients are all exactly zero on a coordinate does not reach it (the coordinate
    is outside its computation graph, or no sample moves it), so it carries no information
    there. Its variance 0 would otherwise make it dogmatic (spec, Stage 3) and pin the
    calibrated gradient of that coordinate to its mean, 0.
    """
    mean, var = spec_functions().empirical_moments(per_sample_grads)
    reached = (per_sample_grads != 0).any(dim=0)
    return mean, torch.where(reached, var, torch.full_like(var, float("inf")))
