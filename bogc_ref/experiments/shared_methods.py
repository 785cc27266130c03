r"""One training step per aggregation of the M + 1 sources' gradients (shared-parameter benchmark).

Each step fills the parameters' ``.grad`` from a batch and returns the average belief of each
source (BOGC methods) or None:

- ``sum``: back-propagate :math:`\sum_m L_m` (fixed weights 1);
- ``bogc`` / ``bayesagg``: parameter level, :func:`bogc_ref.training.calibrated_param_grads`
  over every parameter (per-sample gradients, empirical moments, unreached coordinates
  vacuous, ``calibrate``; ``bayesagg`` is ``normalize=True``); the belief of source m is the
  average of :math:`\hat b_m` over the parameters;
- ``bogc-repr``: representation level, only for :class:`.shared_models.SharedHead`: the shared
  head is trained by the summed losses on ``h.detach()``; the encoders get the calibrated
  :math:`\partial L/\partial h` of :class:`bogc_ref.training.RepresentationAggregator`, with
  source m the shared head on its slice of h and the fused source the tied head
  ``[W/M, ..., W/M]`` on all of h (Laplace posteriors, linearized moments); its belief of
  source m is averaged over the source's columns and the samples where it is present;
- ``mgda``, ``upgrad``, ``pcgrad``, ``imtlg``: torchjd's ``autojac.backward`` of the M + 1
  losses, then ``jac_to_grad`` with that aggregator.

Missing modalities: at parameter level a sample without modality m contributes a zero
per-sample gradient to source m (calibration happens on the batch, so there is no per-sample
mask); at representation level source m is masked for that sample (the spec's ``mask``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..training.parameters import calibrated_param_grads
from ..training.representation import RepresentationAggregator, Source
from .aggregations import bogc_kwargs, torchjd_aggregator
from .shared_models import (
    SharedHead,
    batch_losses,
    per_sample_loss_fn,
    source_losses_from_logits,
)

#: Every method, in table order.
METHODS = ("sum", "bogc", "bayesagg", "bogc-repr", "mgda", "upgrad", "pcgrad", "imtlg")
#: Methods whose step records beliefs.
BOGC_METHODS = ("bogc", "bayesagg", "bogc-repr")

#: ``step(xs, present, labels) -> beliefs per source (M + 1) or None``; fills ``.grad``.
Step = Callable[[Sequence[Tensor], Tensor, Tensor], list[float] | None]


def applies(method: str, model: nn.Module) -> bool:
    """Whether ``method`` can train ``model`` (the representation level needs a SharedHead)."""
    return method != "bogc-repr" or isinstance(model, SharedHead)


def make_step(method: str, model: nn.Module, n_modalities: int) -> Step:
    """The step function of ``method`` for ``model``; ValueError when it does not apply."""
    if method == "sum":
        return _sum_step(model)
    if method in ("bogc", "bayesagg"):
        return _param_step(model, n_modalities, bogc_kwargs(method))
    if method == "bogc-repr":
        if not isinstance(model, SharedHead):
            raise ValueError(
                "method: 'bogc-repr' needs a SharedHead model (a shared representation)"
            )
        return _repr_step(model, bogc_kwargs("bogc"))
    aggregator = torchjd_aggregator(method)
    if aggregator is None:
        raise ValueError(f"method: unknown or unavailable aggregation {method!r}")
    return _jd_step(model, aggregator)


def _sum_step(model: nn.Module) -> Step:
    def step(xs: Sequence[Tensor], present: Tensor, labels: Tensor) -> None:
        batch_losses(model, xs, present, labels).sum().backward()

    return step


def _param_step(model: nn.Module, n_modalities: int, kwargs: dict[str, Any]) -> Step:
    loss_fn = per_sample_loss_fn(model, n_modalities)

    def step(xs: Sequence[Tensor], present: Tensor, labels: Tensor) -> list[float]:
        result = calibrated_param_grads(
            model, loss_fn, (*xs, present, labels), accumulate=False, **kwargs
        )
        belief: Tensor = result.belief  # (M + 1, P)
        return [float(b) for b in belief.mean(dim=1)]

    return step


def _repr_step(model: SharedHead, kwargs: dict[str, Any]) -> Step:
    n = model.n_modalities
    tied = model.tied_fused_head()
    sources = [Source(model.head, "softmax", model.slice(m)) for m in range(n)]
    sources.append(Source(tied, "softmax"))
    # Head posteriors refitted every step: the setting of the figures in docs/experiments.md
    # (the aggregator's own default refits every 5 steps).
    aggregator = RepresentationAggregator(sources, refresh_every=1, **kwargs)

    def step(xs: Sequence[Tensor], present: Tensor, labels: Tensor) -> list[float]:
        with torch.no_grad():
            fresh = model.tied_fused_head()
            tied.weight.copy_(fresh.weight)
            tied.bias.copy_(fresh.bias)
        h = model.represent(xs, present)
        logits = model.heads(h.detach())
        source_losses_from_logits(logits, labels, present).mean(dim=0).sum().backward()
        mask = torch.cat([present, torch.ones_like(present[:, :1])], dim=1)
        result = aggregator.backward(h, [labels[:, m] for m in range(n + 1)], mask)
        belief: Tensor = result.belief  # (B, M + 1, D)
        out = []
        for m in range(n):
            rows = present[:, m]
            per_sample = belief[:, m, model.slice(m)].mean(dim=1)
            out.append(float(per_sample[rows].mean()) if bool(rows.any()) else float("nan"))
        out.append(float(belief[:, n, :].mean()))
        return out

    return step


def _jd_step(model: nn.Module, aggregator: Any) -> Step:
    from torchjd.autojac import backward, jac_to_grad

    params = [p for p in model.parameters() if p.requires_grad]

    def step(xs: Sequence[Tensor], present: Tensor, labels: Tensor) -> None:
        backward(batch_losses(model, xs, present, labels), inputs=params)
        jac_to_grad(params, aggregator)

    return step
