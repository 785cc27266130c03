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
    \bar g = S_1 / B, \qquad
    v = \frac{S_2 - S_1^{2}/B}{B(B-1)},

and likewise for the bias with :math:`A` replaced by a column of ones (sums over the batch).
A coordinate that no sample of source m moves (every per-sample value exactly 0: outside
the source's graph, a dead unit) is vacuous, :math:`v = +\infty` (spec, Clarifications), as
in :func:`bogc_ref.training.parameters`. The sums are formed in float64 (two matrix products
per layer and source; M folded into one batched product), and from float32 (or half)
layers every product :math:`\delta a` and its square is exact and nonzero in float64
unless a factor is 0, so :math:`S_2 = 0` exactly where no sample reaches the entry: no
separate count is needed. From float64 layers a square can underflow: entries with
:math:`S_2 = 0` are vacuous when a whole column of :math:`A` or row of :math:`\Delta_m` is 0
(every product is), and otherwise recomputed from their per-sample values (below), which
decides reach exactly.

**Numerics.** :math:`S_2 - S_1^2/B` cancels where the per-sample gradients are nearly equal
(mean much larger than spread): its rounding error is at most about
:math:`B\varepsilon_{64} S_2`. Wherever :math:`S_2 - S_1^2/B < \tau S_2` with
:math:`\tau = 10^{8} B \varepsilon_{64}` (a relative error above about 1e-8 is possible),
those entries (weights and biases alike) are recomputed exactly, two-pass, from the
materialised per-sample values of those entries only. The result agrees with
``empirical_moments`` on materialised gradients to about 1e-8 relative, whatever the data.
From the sums to (mean, var) in the layers' dtype is one elementwise pass over the (M, P)
sums, run through ``torch.compile`` once a training loop repeats the shape
(:func:`bogc_ref.training._backend.compiled_once_repeated`); it reports whether any entry
needs the recomputation, and only then is the (M, P) test repeated to find them.

Memory: the layer inputs and output gradients (B·(in + out) per layer and source), the
(M, P) moments and two float64 (M, P) buffers for the sums, never B·M·P. The two buffers
are kept per thread between calls of the same shape (16·M·P bytes; a training loop
repeats the shape, and fresh pages would be mapped and zeroed every step).
``moments="materialise"`` forms the per-sample gradients
(B, M, P) from the same hooks and calls the spec's ``empirical_moments``: the exact path the
factored one is checked against.

Requirements: the per-sample losses (B, M) must each depend on their own sample only (no
batch normalisation, no batch-level terms), every layer must be called once per forward,
and its input's batch axis must be the first. Inputs (B, in) take the factored sums; inputs
(B, ..., in) with extra (time, position) axes, whose per-sample gradient is a sum of outer
products, are materialised layer by layer (B·out·in numbers for one layer and source).
The output gradients of all M sources come from one backward pass batched over the sources
(``torch.autograd.grad(..., is_grads_batched=True)``); a graph with an operation ``vmap``
cannot batch (it raises a RuntimeError) is differentiated once per source instead.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from ._backend import (
    calibration_dtype,
    compiled_once_repeated,
    reached_moments,
    training_calibrate,
    unchecked_stage1,
    write_grads,
)

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
    if losses.ndim != 2 or losses.shape[0] < 2 or losses.shape[1] < 1:
        raise ValueError(
            "per_sample_losses: expected a (B, M) tensor of per-sample, per-source losses with "
            f"B >= 2 and M >= 1 (the sources axis), got shape {tuple(losses.shape)}"
        )
    missing = [i for i, out in enumerate(recorder.outputs) if out is None]
    if missing:
        raise ValueError(f"layers{missing}: not called by per_sample_losses")
    outputs = [out for out in recorder.outputs if out is not None]
    inputs = [x for x in recorder.inputs if x is not None]
    batch, n_sources = losses.shape
    rows = [_as_rows(x, batch) for x in inputs]
    # Per layer, every source's output gradients: (M, B, T, out).
    deltas = [
        _as_rows(g.flatten(end_dim=1), n_sources * batch).unflatten(0, (n_sources, batch))
        for g in _output_gradients(losses, outputs)
    ]
    if moments == "materialise":
        pieces = [
            piece
            for a, d, layer in zip(rows, deltas, layers, strict=True)
            for piece in _per_sample_pieces(a, d, layer)
        ]
        return reached_moments(torch.cat(pieces, dim=2))  # G (B, M, P)
    return _factored_moments(rows, deltas, layers, calibration_dtype(losses.dtype))


def _output_gradients(losses: Tensor, outputs: list[Tensor]) -> list[Tensor]:
    r"""Each source's gradient of its summed loss at each output: :math:`\partial(\sum_b
    \ell_{mb})/\partial z`, (M, *z.shape) per output z, detached (zeros where no source
    reaches z).

    One backward pass batched over the sources (``is_grads_batched``, one-hot output
    gradients); if the graph holds an operation that cannot be batched (a RuntimeError from
    ``vmap``), one backward pass per source.
    """
    n_sources = losses.shape[1]
    one_hot = torch.eye(n_sources, dtype=losses.dtype, device=losses.device)
    try:
        grads = torch.autograd.grad(
            losses,
            outputs,
            one_hot[:, None, :].expand(n_sources, *losses.shape),
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=True,
        )
    except RuntimeError:
        per_source = [
            torch.autograd.grad(
                losses[:, m].sum(), outputs, retain_graph=m + 1 < n_sources, allow_unused=True
            )
            for m in range(n_sources)
        ]
        grads = tuple(
            torch.stack([torch.zeros_like(out) if g[i] is None else g[i] for g in per_source])
            for i, out in enumerate(outputs)
        )
    return [
        out.new_zeros(n_sources, *out.shape) if g is None else g.detach()
        for g, out in zip(grads, outputs, strict=True)
    ]


def _parameters(layer: nn.Linear) -> list[Tensor]:
    """The layer's weight, then its bias when it has one: the order of P."""
    return [layer.weight] if layer.bias is None else [layer.weight, layer.bias]


def _per_sample_pieces(a: Tensor, delta: Tensor, layer: nn.Linear) -> list[Tensor]:
    """Materialised per-sample gradients of the layer's weight and bias for every source,
    (B, M, out·in) and (B, M, out), from a (B, T, in) and delta (M, B, T, out)."""
    weight = torch.einsum("mbto,bti->bmoi", delta, a).flatten(start_dim=2)
    return [weight] if layer.bias is None else [weight, delta.sum(dim=2).transpose(0, 1)]


class _Piece(NamedTuple):
    """One parameter tensor's block [start, start + size) of P: its float64 sums S1 and S2
    (M, size), and how its per-sample gradients arise, g_mb = δ_mb ⊗ a_b (flattened
    row-major), or g_mb = δ_mb for a bias (``a`` None)."""

    start: int
    s1: Tensor
    s2: Tensor
    delta: Tensor  # (M, B, out), float64
    a: Tensor | None  # (B, in), float64; None for a bias


def _layer_pieces(
    start: int, a: Tensor, delta: Tensor, layer: nn.Linear, s1: Tensor, s2: Tensor
) -> list[_Piece]:
    """The layer's weight (and bias) pieces from a (B, in) and delta (M, B, out), their sums
    written into their blocks of ``s1`` and ``s2`` (M, P): two float64 matrix products for
    the weight, two sums over the batch for the bias."""
    a64, d64 = a.double(), delta.double()
    d64_sq = d64 * d64
    weight = slice(start, start + layer.weight.numel())
    shape = (layer.out_features, layer.in_features)
    torch.matmul(d64.transpose(1, 2), a64, out=s1[:, weight].unflatten(1, shape))
    torch.matmul(d64_sq.transpose(1, 2), a64 * a64, out=s2[:, weight].unflatten(1, shape))
    pieces = [_Piece(start, s1[:, weight], s2[:, weight], d64, a64)]
    if layer.bias is not None:
        bias = slice(weight.stop, weight.stop + layer.out_features)
        torch.sum(d64, dim=1, out=s1[:, bias])
        torch.sum(d64_sq, dim=1, out=s2[:, bias])
        pieces.append(_Piece(bias.start, s1[:, bias], s2[:, bias], d64, None))
    return pieces


_WORKSPACE = threading.local()


def _workspace(n_sources: int, n_params: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Two float64 (M, P) buffers for S1 and S2, kept per thread for the next call of the
    same shape: a training loop repeats it, and fresh buffers of this size are new pages
    that the operating system must map and zero on first write, every step (about 10% of
    the step at P = 74,240). Only the last shape is kept; the sums never leave the call."""
    key = (n_sources, n_params, device)
    cached = getattr(_WORKSPACE, "buffers", None)
    if cached is None or cached[0] != key:
        s1 = torch.empty(n_sources, n_params, dtype=torch.float64, device=device)
        cached = (key, s1, torch.empty_like(s1))
        _WORKSPACE.buffers = cached
    return cached[1], cached[2]


def _factored_moments(
    rows: list[Tensor], deltas: list[Tensor], layers: list[nn.Linear], dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """(mean, var), each (M, P) in ``dtype``: the float64 sums S1 and S2 of every layer
    written into one (M, P) pair, one fused pass from the sums to the moments (compiled
    once a shape repeats), then the exact recomputation of the entries that pass flags (the
    module's Numerics). Layers with several steps per sample are materialised, two-pass."""
    n_sources, batch = deltas[0].shape[:2]
    n_params = sum(p.numel() for layer in layers for p in _parameters(layer))
    s1, s2 = _workspace(n_sources, n_params, deltas[0].device)
    pieces: list[_Piece] = []  # factored
    summed: list[tuple[int, Tensor]] = []  # materialised: (start, per-sample values (M, B, n))
    start = 0
    for a, delta, layer in zip(rows, deltas, layers, strict=True):
        size = sum(p.numel() for p in _parameters(layer))
        if a.shape[1] == 1:
            pieces.extend(_layer_pieces(start, a[:, 0], delta[:, :, 0], layer, s1, s2))
        else:  # several steps per sample: g_b is a sum of outer products
            g = torch.einsum("mbto,bti->mboi", delta.double(), a.double()).flatten(start_dim=2)
            summed.append((start, g))
            if layer.bias is not None:
                summed.append((start + g.shape[2], delta.sum(dim=2).double()))
            s1[:, start : start + size] = 0.0  # placeholders, overwritten below
            s2[:, start : start + size] = 0.0
        start += size
    tolerance = CANCELLATION_DIGITS * batch * torch.finfo(torch.float64).eps
    mean, var, flagged = compiled_once_repeated(
        _moments_from_sums, "linear-moments", s1, s2, batch, tolerance, dtype
    )
    for piece in pieces:
        redo = _imprecise(piece.s1, piece.s2, batch, tolerance) if bool(flagged) else None
        if dtype == torch.float64:
            # Squares of float64 values can underflow: S2 = 0 does not prove that no
            # sample reaches an entry unless a whole row of δ or column of a is zero.
            zero = piece.s2 == 0
            if bool(zero.any()):
                zero &= ~_structurally_unreached(piece)
                redo = zero if redo is None else redo | zero
        if redo is not None and bool(redo.any()):
            _recompute_exactly(var, redo, piece)
    for begin, g in summed:
        piece_mean, piece_var = _two_pass(g)
        mean[:, begin : begin + g.shape[2]] = piece_mean
        var[:, begin : begin + g.shape[2]] = piece_var
    return mean, var


#: Entries whose one-pass sum of squared deviations could have lost more than this factor
#: times float64's rounding (about 1e-8 relative) are recomputed exactly.
CANCELLATION_DIGITS = 1e8


def _moments_from_sums(
    s1: Tensor, s2: Tensor, batch: int, tolerance: float, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One elementwise pass over float64 sums ``s1``, ``s2`` (M, P): :math:`\bar g = S_1/B`
    and :math:`v = (S_2 - S_1^2/B)/(B(B-1))` (+inf where :math:`S_2 = 0`), both cast to
    ``dtype``, and (0-d) whether any entry needs the exact recomputation (:func:`_imprecise`).

    The flag is a reduction, not a mask: compiled, a boolean (M, P) output costs several
    times the rest of the pass, and the mask is needed only when the flag is set.
    """
    ssd = s2 - s1 * s1 * (1.0 / batch)
    var = torch.where(s2 > 0, ssd.clamp_min(0.0) * (1.0 / (batch * (batch - 1))), math.inf)
    flagged = ((ssd < tolerance * s2) | (s2 == math.inf)).any()
    return (s1 * (1.0 / batch)).to(dtype), var.to(dtype), flagged


def _imprecise(s1: Tensor, s2: Tensor, batch: int, tolerance: float) -> Tensor:
    r"""The entries where the one-pass :math:`S_2 - S_1^2/B` may have lost precision
    (:math:`S_2 - S_1^2/B < \text{tolerance}\cdot S_2`) or :math:`S_2` overflowed float64
    (per-sample values beyond about 1e154, whose variance may still be finite)."""
    return (s2 - s1 * s1 * (1.0 / batch) < tolerance * s2) | (s2 == math.inf)


def _structurally_unreached(piece: _Piece) -> Tensor:
    """(M, size) True where a row of δ (every sample) or a column of a is entirely zero."""
    dead_rows = (piece.delta == 0).all(dim=1)  # (M, out)
    if piece.a is None:
        return dead_rows
    dead_cols = (piece.a == 0).all(dim=0)  # (in,)
    return (dead_rows[:, :, None] | dead_cols[None, None, :]).flatten(start_dim=1)


#: Entries recomputed per chunk (B float64 numbers each).
RECOMPUTE_CHUNK = 1 << 14


def _recompute_exactly(var: Tensor, redo: Tensor, piece: _Piece) -> None:
    """``var`` at the piece's ``redo`` entries (M, size) from their materialised per-sample
    values, two-pass (+inf where every sample's value is exactly 0), in chunks."""
    src, col = redo.nonzero(as_tuple=True)
    for lo in range(0, src.numel(), RECOMPUTE_CHUNK):
        s, c = src[lo : lo + RECOMPUTE_CHUNK], col[lo : lo + RECOMPUTE_CHUNK]
        if piece.a is None:
            g = piece.delta[s, :, c]  # (n, B)
        else:
            n_in = piece.a.shape[1]
            g = piece.delta[s, :, c // n_in] * piece.a[:, c % n_in].T
        _, exact = _two_pass(g.T[None])
        var[s, piece.start + c] = exact[0].to(var.dtype)


def _two_pass(g: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of the mean over axis 1 of per-sample values g (M, B, n), two-pass
    (the spec's ``empirical_moments``, with each entry's samples scaled by their largest
    magnitude where the squares overflow); +inf where every sample's value is exactly 0."""
    stage1 = unchecked_stage1()
    samples = g.transpose(0, 1)
    mean, var = stage1.empirical_moments(samples)
    if not bool(torch.isfinite(var).all()):
        mean, var = stage1.empirical_moments_scaled(samples)
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
    write_grads((p for layer in layers for p in _parameters(layer)), result.grad, accumulate)
    return result
