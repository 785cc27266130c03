"""The calibrate pipeline on tensors: two passes over memory, compiled when it pays.

Pass 1 (relative mode only) is one reduction over each leading index: the mean of
``log var`` over present, informative entries (float64 accumulator). Pass 2 is one
fused elementwise loop over D that, for each dimension, reads the M means and
variances, forms the log-evidence, fuses it (:mod:`._torch_fusion`) and writes the
gradient (plus belief, uncertainty and evidence when the full result is asked for).
With ``check`` the same graph also reduces one "bad input" flag (NaN or ±inf in a
present mean, NaN or a negative variance in a present source).

Compilation policy: with ``torch.compile`` available and ``BOGC_TORCH_COMPILE`` not
"0", inputs of at least :data:`COMPILE_MIN_ELEMENTS` entries run a compiled graph,
cached per (M, dtype, device type, options); if compiling fails the reason is logged
on the ``bogc_ref.backends.torch`` logger and that configuration runs eagerly from
then on. Small inputs always run eagerly (same code, same results up to rounding).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import NamedTuple

import torch

from ._torch_common import compute_dtype, saturate_exp
from ._torch_fusion import fuse, log_ref_precision, raw_log_evidence

LOGGER = logging.getLogger("bogc_ref.backends.torch")

#: Inputs with fewer entries (M·D times the leading axes) run eagerly: compiling costs
#: seconds once, the eager path costs microseconds for them.
COMPILE_MIN_ELEMENTS = 1 << 18


class CoreOptions(NamedTuple):
    """Everything that changes the traced graph (one compiled function per value)."""

    n_sources: int
    relative: bool
    normalize: bool
    has_mask: bool
    want_all: bool
    check: bool
    out_dtype: torch.dtype


class CoreScalars(NamedTuple):
    """The scalar parameters of the method."""

    power: float
    log_tau: float
    log_w: float


def calibrate_core(
    mean: torch.Tensor,
    var: torch.Tensor,
    present: torch.Tensor | None,
    scalars: CoreScalars,
    options: CoreOptions,
) -> tuple[torch.Tensor, ...]:
    r"""Evidence, fusion and :math:`\hat g_d = \sum_m \hat b_{md}\mu_{md}` (or the normalised
    :math:`\sum_m e_{md}\mu_{md}/\sum_n e_{nd}`) for ``mean``, ``var`` of shape (..., M, D).

    Returns (grad,) or (grad, belief, uncertainty, evidence), then the bad-input flag if
    ``options.check``. Everything is computed in the compute dtype and cast to
    ``options.out_dtype``.
    """
    cdt = compute_dtype(var.dtype)
    mean = mean.to(cdt)
    var = var.to(cdt)
    out = options.out_dtype
    log_ref = log_ref_precision(var, present) if options.relative else None
    raw: list[torch.Tensor] = []
    mus: list[torch.Tensor] = []
    for m in range(options.n_sources):
        p_m = present[..., m].unsqueeze(-1) if present is not None else None
        raw.append(raw_log_evidence(var[..., m, :], log_ref, p_m, scalars.power, scalars.log_tau))
        mu = mean[..., m, :]
        mus.append(torch.where(p_m, mu, 0.0) if p_m is not None else mu)
    fused = fuse(raw, scalars.log_w, want_weights=options.normalize)
    weights = fused.weights if options.normalize else fused.belief
    grad = weights[0] * mus[0]
    for w, mu in zip(weights[1:], mus[1:], strict=True):
        grad = grad + w * mu
    result: tuple[torch.Tensor, ...] = (grad.to(out),)
    if options.want_all:
        result = (
            *result,
            torch.stack(fused.belief, dim=-2).to(out),
            fused.uncertainty.to(out),
            saturate_exp(torch.stack(raw, dim=-2), out),
        )
    if options.check:
        bad = torch.isnan(var) | (var < 0) | ~torch.isfinite(mean)
        if present is not None:
            bad = bad & present.unsqueeze(-1)
        result = (*result, bad.any())
    return result


Core = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor | None, CoreScalars, CoreOptions],
    tuple[torch.Tensor, ...],
]

_COMPILED: dict[tuple[CoreOptions, str], Core] = {}
_FAILED: dict[tuple[CoreOptions, str], str] = {}


def compile_enabled() -> bool:
    """False when ``BOGC_TORCH_COMPILE=0`` or ``torch.compile`` is missing."""
    return os.environ.get("BOGC_TORCH_COMPILE", "1") != "0" and hasattr(torch, "compile")


def _compiled(options: CoreOptions, device_type: str) -> Core:
    key = (options, device_type)
    if key not in _COMPILED:

        def specialised(
            mean: torch.Tensor,
            var: torch.Tensor,
            present: torch.Tensor | None,
            scalars: CoreScalars,
        ) -> tuple[torch.Tensor, ...]:
            return calibrate_core(mean, var, present, scalars, options)

        compiled = torch.compile(specialised, dynamic=False)

        def call(
            mean: torch.Tensor,
            var: torch.Tensor,
            present: torch.Tensor | None,
            scalars: CoreScalars,
            _options: CoreOptions,
        ) -> tuple[torch.Tensor, ...]:
            out: tuple[torch.Tensor, ...] = compiled(mean, var, present, scalars)
            return out

        _COMPILED[key] = call
    return _COMPILED[key]


def run_core(
    mean: torch.Tensor,
    var: torch.Tensor,
    present: torch.Tensor | None,
    scalars: CoreScalars,
    options: CoreOptions,
    *,
    compile_mode: str = "auto",
) -> tuple[torch.Tensor, ...]:
    """Run :func:`calibrate_core`, compiled or eager.

    ``compile_mode``: "auto" (compiled for large inputs when enabled), "always" or
    "never". A compilation failure is logged once per configuration and falls back to
    the eager path, which gives the same results up to rounding.
    """
    key = (options, var.device.type)
    use_compiled = (
        compile_mode == "always" or (compile_mode == "auto" and var.numel() >= COMPILE_MIN_ELEMENTS)
    ) and compile_mode != "never"
    if use_compiled and compile_enabled() and key not in _FAILED:
        try:
            return _compiled(options, var.device.type)(mean, var, present, scalars, options)
        except Exception as exc:  # compiler missing, toolchain error, unsupported device
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            _FAILED[key] = reason
            LOGGER.warning("torch.compile failed for %s; running eagerly (%s)", options, reason)
    return calibrate_core(mean, var, present, scalars, options)


def compile_failures() -> dict[tuple[CoreOptions, str], str]:
    """Configurations whose compilation failed, with the logged reason."""
    return dict(_FAILED)


def scalars_for(tau: float | None, power: float, weight: float) -> CoreScalars:
    """The scalar parameters, logs taken once on the host."""
    log_tau = math.log(tau) if tau is not None else 0.0
    return CoreScalars(power=power, log_tau=log_tau, log_w=math.log(weight))
