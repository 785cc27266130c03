r"""Parameter-level BOGC from per-sample gradients (``torch.func``), for shared parameters.

When no head isolates a source's influence (the shared parameters sit anywhere in the
network), each source's gradient distribution is taken model-free from its per-sample
gradients (stage 1, item 4 of the spec). For M sources with per-sample losses
:math:`\ell_{m}(\theta; x_b)`, flattened over the P selected parameters:

.. math::

    G_{bm} = \nabla_\theta \ell_m(\theta; x_b) \in \mathbb R^P, \qquad
    (\bar g_m, v_m) = \texttt{empirical\_moments}(G), \qquad
    \hat g = \texttt{calibrate}(\bar g, v, \texttt{mask}).\texttt{grad},

so :math:`\bar g_m` is the gradient of source m's mean loss and :math:`v_m` the variance of
that mean. A coordinate where all of a source's per-sample gradients are exactly zero (it is
outside the source's computation graph, or no sample moves it) is vacuous for that source
(:math:`v_m = +\infty`), never dogmatic. The per-sample Jacobians come from
``torch.func.vmap(torch.func.jacrev(...))``; memory is B·M·P numbers, so keep this to the
shared parameters. For ``nn.Linear`` layers,
:func:`bogc_ref.training.linear_moments.calibrated_linear_grads` computes the same moments
from the layers' inputs and output gradients without materialising them (checked against
this path in the tests), at a small fraction of the time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from ._backend import reached_moments, spec_functions, write_grads

__all__ = ["calibrated_param_grads", "module_loss_fn", "per_sample_source_grads"]

#: ``loss_fn(params, *sample) -> (M,)``: every source's loss on ONE sample (no batch axis).
LossFn = Callable[..., Tensor]


def per_sample_source_grads(
    loss_fn: LossFn, params: Mapping[str, Tensor], batch: Sequence[Tensor]
) -> Tensor:
    """Per-sample, per-source gradients flattened over ``params``: G of shape (B, M, P).

    Args:
        loss_fn: ``loss_fn(params, *sample)`` returning the M losses of one sample; write it
            with ``torch.func.functional_call(module, params, ...)``.
        params: the parameters to differentiate (name → tensor), in the order of P.
        batch: tensors with the batch on dim 0; ``loss_fn`` sees one row of each.
    """
    if not batch:
        raise ValueError("batch: expected at least one tensor with the batch on dim 0")
    detached = {name: p.detach() for name, p in params.items()}
    jac = vmap(jacrev(loss_fn), in_dims=(None, *([0] * len(batch))))(detached, *batch)
    rows = [jac[name].flatten(start_dim=2) for name in detached]
    return torch.cat(rows, dim=2)


def calibrated_param_grads(
    module: nn.Module,
    loss_fn: LossFn,
    batch: Sequence[Tensor],
    *,
    params: Sequence[str] | None = None,
    mask: Tensor | None = None,
    accumulate: bool = True,
    **calibrate_kwargs: Any,
) -> Any:
    """Calibrate the sources' gradients over ``module``'s shared parameters and store them.

    Computes G with :func:`per_sample_source_grads`, ``empirical_moments(G)`` (mean, var
    (M, P), with var = +inf where a source's per-sample gradients are all exactly zero) and
    ``calibrate(mean, var, mask=mask, **calibrate_kwargs)``; the calibrated gradient (P,) is
    written (added when ``accumulate``) to each selected parameter's ``.grad``.

    Args:
        module: the model; ``loss_fn`` calls it through ``functional_call``.
        loss_fn: ``loss_fn(params, *sample) -> (M,)``, see :func:`per_sample_source_grads`.
        batch: tensors with the batch (B >= 2) on dim 0.
        params: names of the shared parameters (default: every parameter requiring grad).
        mask: (M,) bool, True = source present in this batch.

    Returns:
        The ``Calibration`` of the flattened parameters (grad (P,), belief (M, P), ...).
    """
    named = dict(module.named_parameters())
    names = [n for n, p in named.items() if p.requires_grad] if params is None else list(params)
    if not names:
        raise ValueError("params: expected at least one parameter to calibrate, got none")
    for name in names:
        if name not in named:
            raise ValueError(f"params: {name!r} is not a parameter of the module")
    selected = {name: named[name] for name in names}
    grads = per_sample_source_grads(loss_fn, selected, batch)
    mean, var = reached_moments(grads)
    result = spec_functions().calibrate(mean, var, mask=mask, **calibrate_kwargs)
    write_grads(selected.values(), result.grad, accumulate)
    return result


def module_loss_fn(module: nn.Module, sources: Callable[..., Tensor]) -> LossFn:
    """``loss_fn`` for a module called on the sample's first tensor.

    ``sources(output, *rest)`` maps the module's output on one sample (batch of 1 added and
    removed here) and the sample's other tensors to the M losses.
    """

    def loss_fn(p: Mapping[str, Tensor], x: Tensor, *rest: Tensor) -> Tensor:
        out = functional_call(module, dict(p), (x.unsqueeze(0),))
        return sources(out, *(r.unsqueeze(0) for r in rest))

    return loss_fn
