r"""Parameter-level BOGC for ``nn.Linear`` layers without materialising per-sample gradients.

For a linear layer :math:`z_b = W a_b + c` and a per-sample loss :math:`\ell_{mb}` of source m,
the per-sample gradients are an outer product and a vector,

.. math::

    \nabla_W \ell_{mb} = \delta_{mb} a_b^\top, \qquad \nabla_c \ell_{mb} = \delta_{mb},
    \qquad \delta_{mb} = \partial \ell_{mb} / \partial z_b ,

so the sums the empirical moments need (spec, stage 1, item 4) are matrix products of the
layer's inputs :math:`A` (B, in) and output gradients :math:`\Delta_m` (B, out), as in
BackPACK's variance extension:

.. math::

    S_1 = \sum_b g_b = \Delta_m^\top A, \qquad
    S_2 = \sum_b g_b^{2} = (\Delta_m^{\circ 2})^\top A^{\circ 2}, \qquad
    n_{\neq 0} = [\Delta_m \neq 0]^\top [A \neq 0],

    \bar g = S_1 / B, \qquad
    v = \frac{S_2 - S_1^{2}/B}{B(B-1)}, \qquad
    v = +\infty \text{ where } n_{\neq 0} = 0 .

:math:`n_{\neq 0}` counts the samples whose gradient entry is nonzero exactly (a product of
two floats is zero only when a factor is), so a coordinate the source does not reach is
vacuous (spec, Clarifications), as in :func:`bogc_ref.training.parameters`.

**Numerics.** The sums are formed in float64. :math:`S_2 - S_1^2/B` cancels where the
per-sample gradients are nearly equal (mean much larger than spread): its rounding error is
at most about :math:`B\varepsilon S_2`. Wherever :math:`S_2 - S_1^2/B < \tau S_2` with
:math:`\tau = 10^{8} B \varepsilon_{64}` (a relative error above about 1e-8 is possible),
those entries are recomputed exactly, two-pass, from the materialised per-sample values of
those entries only; biases (whose per-sample gradients are :math:`\Delta_m` itself) are
always two-pass. The result agrees with ``empirical_moments`` on materialised gradients to
about 1e-8 relative, whatever the data.

Memory: the layer inputs and output gradients (B·(in + out) per layer and source) and the
(M, P) moments, never B·M·P. ``moments="materialise"`` forms the per-sample gradients
(B, M, P) from the same hooks and calls the spec's ``empirical_moments``: the exact path the
factored one is checked against.

Requirements: the per-sample losses (B, M) must each depend on their own sample only (no
batch normalisation, no batch-level terms), every layer must be called once per forward,
and its input's batch axis must be the first. Inputs (B, in) take the factored sums; inputs
(B, ..., in) with extra (time, position) axes, whose per-sample gradient is a sum of outer
products, are materialised layer by layer (B·out·in numbers for one layer and source).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ._backend import reached_moments, training_calibrate

__all__ = ["calibrated_linear_grads", "linear_source_moments"]

Moments = Literal["factored", "materialise"]


class _Recorder:
    """Forward hooks keeping each layer's input and output of the current forward pass."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        self.inputs: list[Tensor | None] = [None] * len(layers)
        self.outputs: list[Tensor | None] = [None] * len(layers)
        self.handles = [
            layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(layers)
        ]

    def _hook(self, i: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
            if self.outputs[i] is not None:
                raise ValueError(
                    f"layers[{i}]: called more than once in one forward pass; each layer must "
                    "run once per forward"
                )
            self.inputs[i] = args[0].detach()
            self.outputs[i] = output

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _as_rows(x: Tensor, batch: int) -> Tensor:
    """(B, ..., n) → (B, T, n): extra axes are time/position steps summed over."""
    return x.reshape(batch, -1, x.shape[-1])


def linear_source_moments(
    layers: Sequence[nn.Linear],
    per_sample_losses: Callable[[], Tensor],
    *,
    moments: Moments = "factored",
) -> tuple[Tensor, Tensor]:
    """Empirical moments (mean, var), each (M, P), of the sources' per-sample gradients.

    P runs over ``layers`` in order, each layer's weight (row-major) then its bias. A
    coordinate whose per-sample gradients are all exactly zero has var = +inf.

    Args:
        layers: the shared ``nn.Linear`` layers whose parameters are calibrated.
        per_sample_losses: runs the forward pass and returns the per-sample, per-source
            losses (B, M), B >= 2 (called once, with hooks on ``layers``).
        moments: ``"factored"`` (sums from layer inputs and output gradients; default) or
            ``"materialise"`` (per-sample gradients (B, M, P), then ``empirical_moments``).
    """
    if moments not in ("factored", "materialise"):
        raise ValueError(f"moments: expected 'factored' or 'materialise', got {moments!r}")
    layers = list(layers)
    if not layers:
        raise ValueError("layers: expected at least one nn.Linear, got none")
    for i, layer in enumerate(layers):
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"layers[{i}]: expected an nn.Linear, got {type(layer).__name__}")
    recorder = _Recorder(layers)
    try:
        losses = per_sample_losses()
    finally:
        recorder.remove()
    if losses.ndim != 2 or losses.shape[0] < 2:
        raise ValueError(
            "per_sample_losses: expected a (B, M) tensor of per-sample, per-source losses with "
            f"B >= 2, got shape {tuple(losses.shape)}"
        )
    missing = [i for i, out in enumerate(recorder.outputs) if out is None]
    if missing:
        raise ValueError(f"layers{missing}: not called by per_sample_losses")
    outputs = [out for out in recorder.outputs if out is not None]
    inputs = [x for x in recorder.inputs if x is not None]
    batch, n_sources = losses.shape
    rows = [_as_rows(x, batch) for x in inputs]
    per_source = [
        torch.autograd.grad(
            losses[:, m].sum(), outputs, retain_graph=m + 1 < n_sources, allow_unused=True
        )
        for m in range(n_sources)
    ]
    # Per layer, every source's output gradients: (M, B, T, out).
    deltas = [
        torch.stack(
            [
                _as_rows(torch.zeros_like(out) if g[i] is None else g[i].detach(), batch)
                for g in per_source
            ]
        )
        for i, out in enumerate(outputs)
    ]
    if moments == "materialise":
        pieces = [
            piece
            for a, d, layer in zip(rows, deltas, layers, strict=True)
            for piece in _per_sample_pieces(a, d, layer)
        ]
        return reached_moments(torch.cat(pieces, dim=2))  # G (B, M, P)
    pairs = [
        pair
        for a, d, layer in zip(rows, deltas, layers, strict=True)
        for pair in _factored_pieces(a, d, layer)
    ]
    mean = torch.cat([m for m, _ in pairs], dim=1).to(losses.dtype)
    var = torch.cat([v for _, v in pairs], dim=1).to(losses.dtype)
    return mean, var


def _parameters(layer: nn.Linear) -> list[Tensor]:
    """The layer's weight, then its bias when it has one: the order of P."""
    return [layer.weight] if layer.bias is None else [layer.weight, layer.bias]


def _per_sample_pieces(a: Tensor, delta: Tensor, layer: nn.Linear) -> list[Tensor]:
    """Materialised per-sample gradients of the layer's weight and bias for every source,
    (B, M, out·in) and (B, M, out), from a (B, T, in) and delta (M, B, T, out)."""
    weight = torch.einsum("mbto,bti->bmoi", delta, a).flatten(start_dim=2)
    return [weight] if layer.bias is None else [weight, delta.sum(dim=2).transpose(0, 1)]


def _factored_pieces(a: Tensor, delta: Tensor, layer: nn.Linear) -> list[tuple[Tensor, Tensor]]:
    """(mean, var), each (M, n), of the layer's weight (flattened) and bias, float64."""
    weight = _weight_moments(a, delta)
    if layer.bias is None:
        return [weight]
    return [weight, _two_pass(delta.sum(dim=2).double())]


def _weight_moments(a: Tensor, delta: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of the mean of g_mb = Σ_t δ_mbt a_btᵀ, each (M, out·in), from sums
    of matrix products (a (B, T, in), delta (M, B, T, out))."""
    batch = delta.shape[1]
    if a.shape[1] != 1:  # several steps per sample: g_b is a sum of outer products
        g = torch.einsum("mbto,bti->mboi", delta.double(), a.double())
        return _two_pass(g.flatten(start_dim=2))
    a64, d64 = a[:, 0].double(), delta[:, :, 0].double()  # (B, in), (M, B, out)
    d64_t = d64.transpose(1, 2)  # (M, out, B)
    s1 = d64_t @ a64  # (M, out, in)
    s2 = (d64_t * d64_t) @ (a64 * a64)
    if a.dtype == torch.float64 or delta.dtype == torch.float64:
        # Squares of float64 values can underflow to 0: count the nonzero products instead.
        reached = ((d64_t != 0).double() @ (a64 != 0).double()) > 0
    else:
        # Squares of float32 (or half) values cannot underflow in float64, and a sum of
        # nonnegative numbers is 0 only when every term is: S2 > 0 exactly where reached.
        reached = s2 > 0
    ssd = torch.addcmul(s2, s1, s1, value=-1.0 / batch)  # Σ_b (g_b − ḡ)², one pass
    suspect = ssd < s2.mul_(1e8 * batch * torch.finfo(torch.float64).eps)
    if bool(suspect.any()):  # cancellation could exceed ~1e-8 relative: redo those exactly
        src, rows, cols = suspect.nonzero(as_tuple=True)
        exact = d64[src, :, rows].T * a64[:, cols]  # (B, n_suspect): only those entries
        ssd[src, rows, cols] = ((exact - exact.mean(dim=0)) ** 2).sum(dim=0)
    var = ssd.clamp_min_(0.0).div_(batch * (batch - 1)).masked_fill_(~reached, float("inf"))
    return s1.div_(batch).flatten(start_dim=1), var.flatten(start_dim=1)


def _two_pass(g: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of the mean over axis 1 of per-sample values g (M, B, n), two-pass;
    +inf where every sample's value is exactly 0."""
    batch = g.shape[1]
    mean = g.mean(dim=1)
    var = ((g - mean[:, None]) ** 2).sum(dim=1).div_(batch * (batch - 1))
    return mean, var.masked_fill_(~(g != 0).any(dim=1), float("inf"))


def calibrated_linear_grads(
    layers: Sequence[nn.Linear],
    per_sample_losses: Callable[[], Tensor],
    *,
    mask: Tensor | None = None,
    accumulate: bool = True,
    moments: Moments = "factored",
    **calibrate_kwargs: Any,
) -> Any:
    """Calibrate the sources' gradients over ``layers``' parameters and store them in ``.grad``.

    ``mean, var = linear_source_moments(layers, per_sample_losses, moments=moments)``, then
    ``calibrate(mean, var, mask=mask, **calibrate_kwargs)``; the calibrated gradient (P,)
    is written (added when ``accumulate``) to each weight's and bias's ``.grad``.

    Args:
        layers: the shared ``nn.Linear`` layers.
        per_sample_losses: runs the forward pass, returns the losses (B, M).
        mask: (M,) bool, True = source present in this batch.
        moments: ``"factored"`` (default) or ``"materialise"``, see
            :func:`linear_source_moments`.

    Returns:
        The ``Calibration`` of the flattened parameters (grad (P,), belief (M, P), ...).
    """
    mean, var = linear_source_moments(layers, per_sample_losses, moments=moments)
    result = training_calibrate(mean, var, mask=mask, **calibrate_kwargs)
    offset = 0
    for layer in layers:
        for p in _parameters(layer):
            n = p.numel()
            g = result.grad[offset : offset + n].reshape(p.shape).to(dtype=p.dtype)
            offset += n
            if accumulate and p.grad is not None:
                p.grad = p.grad + g
            else:
                p.grad = g.clone()
    return result
