"""The spec functions on torch tensors, and the moments every training integration shares."""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from typing import Any, TypeVar

import torch
from torch import Tensor


def spec_functions() -> Any:
    """The torch backend (``bogc_ref.backends.get_backend("torch")``): the spec on tensors.

    Imported by name because the ``backends/`` folder is mapped to ``bogc_ref.backends``
    at install time.
    """
    return importlib.import_module("bogc_ref.backends").get_backend("torch")


#: Calls with the same input shape after which ``calibrate`` runs through torch.compile.
COMPILE_AFTER_REPEATS = 3

_SEEN: Counter[Hashable] = Counter()
T = TypeVar("T")
_BACKENDS: dict[str, Any] = {}


def repeated(key: Hashable) -> bool:
    """Count one call under ``key``; True from the :data:`COMPILE_AFTER_REPEATS`-th on."""
    _SEEN[key] += 1
    return _SEEN[key] >= COMPILE_AFTER_REPEATS


def compiled_once_repeated(function: Callable[..., T], name: str, *args: Any) -> T:
    """``function(*args)``, through ``torch.compile`` once a training loop repeats the call.

    The call is counted under (``name``, each tensor argument's shape, dtype and device, the
    other arguments' values; lists are looked into); from the
    :data:`COMPILE_AFTER_REPEATS`-th such call on it runs compiled, with the backend's
    policy for it (``BOGC_TORCH_COMPILE=0`` turns compilation off; a failed compilation is
    logged once and runs eagerly from then on: ``backends/_torch_calibrate.py``).
    """
    tensors = [t for a in args for t in (a if isinstance(a, list | tuple) else [a])]
    signature = tuple(
        (tuple(t.shape), t.dtype, t.device) if isinstance(t, Tensor) else t for t in tensors
    )
    device = next(t.device.type for t in tensors if isinstance(t, Tensor))
    call = importlib.import_module("bogc_ref.backends._torch_calibrate")._call
    result: T = call(function, (name, device), repeated((name, signature)), *args)
    return result


def training_calibrate(mean: Tensor, var: Tensor, **kwargs: Any) -> Any:
    """``calibrate`` of the torch backend, compiled once a training loop repeats a shape.

    The backend compiles ``calibrate`` only for inputs of 2^18 entries or more (below that
    a one-off call would not repay the compilation). A training loop calls it with the same
    shapes every step, so here the call is compiled (``compile_mode="always"``) from the
    :data:`COMPILE_AFTER_REPEATS`-th call with a given (shape, dtype, device) on: eager
    calls cost 3-10x the compiled ones at the shapes of the benchmarks (B·M·D of a few
    thousand to a few hundred thousand). ``BOGC_TORCH_COMPILE=0`` turns compilation off, and
    a failed compilation falls back to eager (see ``backends/_torch_calibrate.py``).

    Pass 1 of the relative mode takes one logarithm per entry (``log_mean="logs"``) rather
    than reading the floats' bits: at these sizes, compiled, on one CPU thread, that was
    2-3x faster (0.3-0.45 against 0.9-1.0 ms at 3 x 74,240 float32; about 0.7 ms of a 5.8 ms
    parameter-level step).
    """
    mode = "always" if repeated((tuple(mean.shape), mean.dtype, mean.device)) else "auto"
    if mode not in _BACKENDS:
        backend = importlib.import_module("bogc_ref.backends").get_backend("torch")
        backend.compile_mode = mode
        backend.log_mean = "logs"
        _BACKENDS[mode] = backend
    return _BACKENDS[mode].calibrate(mean, var, **kwargs)


def not_all_finite(t: Tensor) -> Tensor | bool:
    """Some entry of ``t`` is NaN or ±inf: a 0-d bool tensor, or a Python bool on the CPU
    (the torch backend's test, one sum there: ``bogc_ref.backends._torch_common``)."""
    common = importlib.import_module("bogc_ref.backends._torch_common")
    test: Tensor | bool = common.not_all_finite(t)
    return test


def unchecked_stage1() -> Any:
    """The torch backend's stage-1 computations without its input checks (``_torch_stage1``).

    For arrays the training integration produced itself or has checked once (its own
    posteriors, the representation it validated): the backend's public functions would
    check them again on every call, which cost most of the moments' time (a symmetry pass
    over each covariance, finiteness passes over every argument). Inputs must already be in
    the compute dtype, targets one-hot; see ``bogc_ref.backends._torch_stage1``.
    """
    return importlib.import_module("bogc_ref.backends._torch_stage1")


def calibration_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the moments and ``calibrate`` run in for a model in ``dtype``: its own, or
    float32 for half types. A gradient variance leaves float16's range (65504) easily, and
    cast back it would be +inf, which ``calibrate`` reads as *no information*."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def reached_moments(per_sample_grads: Tensor) -> tuple[Tensor, Tensor]:
    r"""Empirical moments of per-sample, per-source gradients G (N, M, P), unreached → vacuous.

    ``mean, var = empirical_moments(G)`` (the spec's plain statistic; half-precision G in
    float32, :func:`calibration_dtype`), then
    :math:`v_{mp} = +\infty` wherever :math:`G_{bmp} = 0` for every sample b: a source whose
    per-sample gradients are all exactly zero on a coordinate does not reach it (the coordinate
    is outside its computation graph, or no sample moves it), so it carries no information
    there. Its variance 0 would otherwise make it dogmatic (spec, Stage 3) and pin the
    calibrated gradient of that coordinate to its mean, 0.
    """
    per_sample_grads = per_sample_grads.to(calibration_dtype(per_sample_grads.dtype))
    mean, var = spec_functions().empirical_moments(per_sample_grads)
    reached = (per_sample_grads != 0).any(dim=0)
    return mean, torch.where(reached, var, torch.full_like(var, float("inf")))


def point_mass_at_zero_is_vacuous(mean: Tensor, var: Tensor) -> Tensor:
    r"""``var`` with :math:`+\infty` wherever ``mean == 0`` and ``var <= 0`` exactly.

    The per-sample analogue of :func:`reached_moments`: a source whose gradient distribution
    for a sample is a point mass at 0 (a softmax head so saturated that p = y exactly, so the
    linearized gradient and its variance vanish; or every Monte Carlo draw giving 0) moves
    nothing there, so it carries no information: vacuous, not dogmatic. Other entries are
    returned with roundoff below zero set to 0.
    """
    still = (var <= 0) & (mean == 0)
    return var.clamp_min(0.0).masked_fill_(still, float("inf"))


def write_grads(params: Iterable[Tensor], flat_grad: Tensor, accumulate: bool) -> None:
    """Split the calibrated gradient (P,) over ``params`` in order into their ``.grad``
    (cast to each parameter's dtype and device); added to an existing ``.grad`` when
    ``accumulate``, else replacing it."""
    offset = 0
    for p in params:
        n = p.numel()
        g = flat_grad[offset : offset + n].reshape(p.shape).to(dtype=p.dtype, device=p.device)
        offset += n
        if accumulate and p.grad is not None:
            p.grad = p.grad + g
        else:
            p.grad = g.clone()
