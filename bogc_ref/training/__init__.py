"""BOGC inside a PyTorch training loop (needs the ``torch`` extra).

Two integrations, each a thin layer over the spec functions of the torch backend:

* :mod:`bogc_ref.training.representation`: :class:`RepresentationAggregator` calibrates
  dL/dh at a shared representation from head posteriors (stage 1 of the spec);
* :mod:`bogc_ref.training.parameters`: :func:`calibrated_param_grads` calibrates the
  parameters' gradients from per-sample gradients (empirical moments);
* :mod:`bogc_ref.training.linear_moments`: :func:`calibrated_linear_grads`, the same for
  ``nn.Linear`` layers from their inputs and output gradients, without materialising the
  per-sample gradients (about 2M backward passes' cost instead of B·M·P numbers);

plus :mod:`bogc_ref.training.distributed` (gathering rows under ``torch.distributed``) and
:mod:`bogc_ref.training.torchjd_adapter` (BOGC as a torchjd ``Aggregator``; needs torchjd).
"""

from __future__ import annotations

from .linear_moments import calibrated_linear_grads, linear_source_moments
from .parameters import calibrated_param_grads, module_loss_fn, per_sample_source_grads
from .representation import RepresentationAggregator, Source

__all__ = [
    "RepresentationAggregator",
    "Source",
    "calibrated_linear_grads",
    "calibrated_param_grads",
    "linear_source_moments",
    "module_loss_fn",
    "per_sample_source_grads",
]
