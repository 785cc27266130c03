"""The calibrate pipeline on tensors: two passes over memory, compiled when it pays.

Pass 1 (relative mode only, :func:`reference_log_var`) is one reduction over each
leading index: the mean of ``log var`` over present, informative entries, in float64. On
the CPU it reads the exponent and significand bits (:mod:`._torch_log_mean`, one
logarithm per block of entries instead of one per entry) and falls back to a logarithm
per entry when an entry is 0, subnormal, infinite or NaN; on other devices it takes the
logarithm per entry (no device-to-host read between the passes). Pass 2
(:func:`calibrate_core`) is one fused elementwise loop over D that, for each dimension,
reads the M means and variances, forms the evidence (for p = 1 a ratio of variances, no
log or exp; else in the log domain), fuses it (:mod:`._torch_fusion`) and stores the
gradient (plus belief, uncertainty and evidence when the full result is asked for)
straight into the output tensors: the caller's ``out=`` or fresh ones
(:func:`empty_results`). With ``check`` the same loop also reduces one "bad input" flag
(NaN or ±inf in a present mean, NaN or a negative variance in a present source).

Compilation policy: with ``torch.compile`` available and ``BOGC_TORCH_COMPILE`` not
"0", inputs of at least :data:`COMPILE_MIN_ELEMENTS` entries run compiled graphs,
cached per function and configuration (M, dtype, device type, options); if compiling
fails the reason is logged on the ``bogc_ref.backends.torch`` logger and that
configuration runs eagerly from then on. Small inputs always run eagerly (same code,
same results up to rounding).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, TypeVar

import torch

from bogc_ref._results import Calibration

from ._torch_common import compute_dtype, new_empty, saturate_exp
from ._torch_fusion import (
    fuse,
    fuse_ratios,
    mean_log_var,
    ratio_evidence,
    ratios,
    raw_log_evidence,
)
from ._torch_log_mean import LAYOUTS, LogVarMean, mean_log_var_by_bits

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
    linear: bool = False  # power 1: evidence as a ratio of variances (see linear_evidence)


class CoreScalars(NamedTuple):
    """The scalar parameters of the method."""

    power: float
    log_tau: float
    log_w: float
    weight: float = 1.0
    inv_tau: float = 1.0  # 1/τ, the reference variance of the fixed mode


def linear_evidence(
    power: float, tau: float | None, dtype: torch.dtype, weight: float = 1.0
) -> bool:
    """Whether pass 2 may use the ratio form of :func:`._torch_fusion.fuse_ratios`.

    It needs p = 1, a prior weight W and, in fixed mode, a reference variance 1/τ that
    are normal finite numbers of the compute dtype (the log domain handles any τ and W;
    W = 1e300 in float32 would be inf, and inf / inf a NaN).
    """
    if power != 1.0:
        return False
    info = torch.finfo(compute_dtype(dtype))
    if not info.tiny <= weight <= info.max:
        return False
    if tau is None:
        return True
    return info.tiny <= 1.0 / tau <= info.max


def empty_results(mean: torch.Tensor, want_all: bool) -> tuple[torch.Tensor, ...]:
    """Fresh (grad,) or (grad, belief, uncertainty, evidence) tensors for ``mean`` (..., M, D),
    from :func:`._torch_common.new_empty` (huge pages for large CPU outputs)."""
    shape = tuple(mean.shape)
    grad = new_empty((*shape[:-2], shape[-1]), mean)
    if not want_all:
        return (grad,)
    return grad, new_empty(shape, mean), new_empty(tuple(grad.shape), mean), new_empty(shape, mean)


class Targets(NamedTuple):
    """Where :func:`calibrate_core` writes: grad, then (full result only) each source's
    (..., D) view of belief, uncertainty, each source's view of evidence.

    Per-source views (taken outside the compiled graph) let the fused loop store every
    output directly; writing slices of one (..., M, D) tensor inside the graph would
    become a scatter over (M, D) that recomputes the fusion once per source.
    """

    grad: torch.Tensor
    belief: tuple[torch.Tensor, ...] = ()
    uncertainty: torch.Tensor | None = None
    evidence: tuple[torch.Tensor, ...] = ()


def targets_of(out: tuple[torch.Tensor, ...]) -> Targets:
    """The :class:`Targets` of (grad,) or (grad, belief, uncertainty, evidence)."""
    if len(out) == 1:
        return Targets(out[0])
    grad, belief, uncertainty, evidence = out
    return Targets(grad, belief.unbind(-2), uncertainty, evidence.unbind(-2))


def calibrate_core(
    mean: torch.Tensor,
    var: torch.Tensor,
    present: torch.Tensor | None,
    log_ref: torch.Tensor | None,
    scalars: CoreScalars,
    options: CoreOptions,
    out: Targets,
) -> torch.Tensor | None:
    r"""Evidence, fusion and :math:`\hat g_d = \sum_m \hat b_{md}\mu_{md}` (or the normalised
    :math:`\sum_m e_{md}\mu_{md}/\sum_n e_{nd}`) for ``mean``, ``var`` of shape (..., M, D).

    ``log_ref`` is pass 1's :math:`\overline{\log var}` (..., 1) (relative mode; None in
    fixed mode). Writes grad, or (grad, belief, uncertainty, evidence), into ``out``.
    Everything is computed in the compute dtype and cast to ``options.out_dtype``.
    Returns the 0-d bad-input flag if ``options.check``, else None.

    ``options.linear`` (p = 1): :math:`e_m = v_\mathrm{ref}/v_m` with
    :math:`v_\mathrm{ref} = \exp\overline{\log v}` (relative) or :math:`1/\tau` (fixed),
    fused by :func:`._torch_fusion.fuse_ratios`; otherwise the log domain of
    :func:`._torch_fusion.fuse`.
    """
    cdt = compute_dtype(var.dtype)
    out_dtype = options.out_dtype
    m_range = range(options.n_sources)
    p_m = [present[..., m].unsqueeze(-1) if present is not None else None for m in m_range]
    vs = [var[..., m, :].to(cdt) for m in m_range]
    mus = [mean[..., m, :].to(cdt) for m in m_range]
    if options.linear:
        ref_var = torch.exp(log_ref).to(cdt) if log_ref is not None else scalars.inv_tau
        r = ratios(vs, p_m, ref_var)
        fused = fuse_ratios(r, scalars.weight, want_weights=options.normalize)
        evidence = lambda: ratio_evidence(r, ref_var, out_dtype)  # noqa: E731
    else:
        log_ref_c = log_ref.to(cdt) if log_ref is not None else None
        raw = [
            raw_log_evidence(v, log_ref_c, p, scalars.power, scalars.log_tau)
            for v, p in zip(vs, p_m, strict=True)
        ]
        fused = fuse(raw, scalars.log_w, want_weights=options.normalize)
        evidence = lambda: [saturate_exp(x, out_dtype) for x in raw]  # noqa: E731
    weights = fused.weights if options.normalize else fused.belief
    mus = [mu if p is None else torch.where(p, mu, 0.0) for mu, p in zip(mus, p_m, strict=True)]
    grad = weights[0] * mus[0]
    for w, mu in zip(weights[1:], mus[1:], strict=True):
        grad = grad + w * mu
    out.grad.copy_(grad)
    if out.uncertainty is not None:
        out.uncertainty.copy_(fused.uncertainty)
        for target, value in zip(out.belief, fused.belief, strict=True):
            target.copy_(value)
        for target, value in zip(out.evidence, evidence(), strict=True):
            target.copy_(value)
    if not options.check:
        return None
    # NaN fails both comparisons: var NaN or < 0, mean NaN or ±inf (vectorised compares).
    ok = [(v >= 0) & (mu.abs() < math.inf) for v, mu in zip(vs, mus, strict=True)]
    if present is not None:
        ok = [o | ~present[..., m].unsqueeze(-1) for m, o in enumerate(ok)]
    all_ok = ok[0]
    for o in ok[1:]:
        all_ok = all_ok & o
    return ~all_ok.all()


T = TypeVar("T")

_COMPILED: dict[Hashable, Callable[..., Any]] = {}
_FAILED: dict[Hashable, str] = {}


def compile_enabled() -> bool:
    """False when ``BOGC_TORCH_COMPILE=0`` or ``torch.compile`` is missing."""
    return os.environ.get("BOGC_TORCH_COMPILE", "1") != "0" and hasattr(torch, "compile")


def _call(function: Callable[..., T], key: Hashable, compiled: bool, *args: Any) -> T:
    """``function(*args)``, through its compiled graph (cached under ``key``) if ``compiled``.

    A compilation failure is logged once per key; that key runs eagerly from then on.
    """
    if compiled and compile_enabled() and key not in _FAILED:
        try:
            if key not in _COMPILED:
                _COMPILED[key] = torch.compile(function, dynamic=False)
            result: T = _COMPILED[key](*args)
            return result
        except Exception as exc:  # compiler missing, toolchain error, unsupported device
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            _FAILED[key] = reason
            LOGGER.warning("torch.compile failed for %s; running eagerly (%s)", key, reason)
    return function(*args)


def _log_mean_by_bits(var: torch.Tensor, present: torch.Tensor | None) -> LogVarMean:
    return mean_log_var_by_bits(var.to(compute_dtype(var.dtype)), present)


def _log_mean_by_finite_bits(var: torch.Tensor, present: torch.Tensor | None) -> LogVarMean:
    return mean_log_var_by_bits(var.to(compute_dtype(var.dtype)), present, infinite=False)


def _log_mean_by_logs(var: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
    return mean_log_var(var.to(compute_dtype(var.dtype)), present)


def reference_log_var(
    var: torch.Tensor,
    present: torch.Tensor | None,
    compiled: bool = False,
    by_bits: bool = True,
) -> torch.Tensor:
    r"""Pass 1: :math:`\overline{\log var}` (..., 1) in float64 for ``var`` (..., M, D) of any
    float dtype, over present, informative entries (0 where there are none).

    On the CPU with ``by_bits``, :func:`._torch_log_mean.mean_log_var_by_bits`, first for
    positive normal finite entries only, then with +inf left out; if an entry of a present
    source is neither (and on other devices, or without ``by_bits``)
    :func:`._torch_fusion.mean_log_var`.
    ``compiled``: through ``torch.compile``.
    """
    device = var.device.type
    usable_layout = compute_dtype(var.dtype) in LAYOUTS and var.shape[-1] > 0
    if by_bits and device == "cpu" and usable_layout:
        for function, key in (
            (_log_mean_by_finite_bits, "log-mean-finite-bits"),  # the common case, cheapest
            (_log_mean_by_bits, "log-mean-bits"),  # + inf (no information) left out
        ):
            from_bits = _call(function, (key, device), compiled, var, present)
            if bool(from_bits.usable):
                return from_bits.mean
    return _call(_log_mean_by_logs, ("log-mean", device), compiled, var, present)


def run_core(
    mean: torch.Tensor,
    var: torch.Tensor,
    present: torch.Tensor | None,
    scalars: CoreScalars,
    options: CoreOptions,
    *,
    out: tuple[torch.Tensor, ...] | None = None,
    compile_mode: str = "auto",
    log_mean: str = "auto",
) -> tuple[torch.Tensor, ...]:
    """Pass 1 (:func:`reference_log_var`, relative mode) then :func:`calibrate_core`, compiled
    or eager, into ``out`` (fresh tensors if None).

    Returns ``out``'s tensors, then the bad-input flag if ``options.check``.
    ``compile_mode``: "auto" (compiled for large inputs when enabled), "always" or
    "never". A compilation failure is logged once per configuration and falls back to
    the eager path, which gives the same results up to rounding. ``log_mean``: "auto" (pass 1
    from the bits on the CPU) or "logs" (one logarithm per entry), see
    :func:`reference_log_var`.
    """
    if log_mean not in ("auto", "logs"):
        raise ValueError(f"log_mean: expected 'auto' or 'logs', got {log_mean!r}")
    if out is None:
        out = empty_results(mean, options.want_all)
    compiled = compile_mode == "always" or (
        compile_mode == "auto" and var.numel() >= COMPILE_MIN_ELEMENTS
    )
    by_bits = log_mean == "auto"
    device = var.device.type
    targets = targets_of(out)
    if options.relative and not by_bits:  # both passes in one graph: one compiled call
        key: Hashable = ("calibrate, log-mean", options, device)
        flag = _call(
            _calibrate_by_logs, key, compiled, mean, var, present, scalars, options, targets
        )
    else:
        log_ref = reference_log_var(var, present, compiled, by_bits) if options.relative else None
        key = ("calibrate", options, device)
        flag = _call(
            calibrate_core, key, compiled, mean, var, present, log_ref, scalars, options, targets
        )
    return out if flag is None else (*out, flag)


def _calibrate_by_logs(
    mean: torch.Tensor,
    var: torch.Tensor,
    present: torch.Tensor | None,
    scalars: CoreScalars,
    options: CoreOptions,
    out: Targets,
) -> torch.Tensor | None:
    """Pass 1 by one logarithm per entry (:func:`_log_mean_by_logs`), then
    :func:`calibrate_core`: one function, so that compiled it is one graph and one call."""
    log_ref = _log_mean_by_logs(var, present)
    return calibrate_core(mean, var, present, log_ref, scalars, options, out)


def compile_failures() -> dict[Hashable, str]:
    """Configurations whose compilation failed, with the logged reason."""
    return dict(_FAILED)


def scalars_for(tau: float | None, power: float, weight: float) -> CoreScalars:
    """The scalar parameters, logs and 1/τ taken once on the host."""
    log_tau = math.log(tau) if tau is not None else 0.0
    inv_tau = 1.0 / tau if tau is not None else 1.0
    return CoreScalars(power, log_tau, math.log(weight), weight, inv_tau)


def checked_out(
    out: object, want_all: bool, mean: torch.Tensor, inputs: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, ...]:
    """The tensors of ``out``: calibrate's Calibration (``want_all``) or calibrate_grad's grad.

    Each must be a tensor of the result's shape, ``mean``'s dtype and device, and overlap
    neither an input nor another output: TypeError or ValueError naming ``out`` and the field.
    """
    if want_all and not isinstance(out, Calibration):
        raise TypeError(
            "out: expected a Calibration of tensors (grad, belief, uncertainty, evidence), "
            f"got {type(out).__name__}"
        )
    lead, (m, d) = tuple(mean.shape[:-2]), tuple(mean.shape[-2:])
    shapes = {"grad": (*lead, d), "belief": (*lead, m, d), "uncertainty": (*lead, d)}
    shapes["evidence"] = shapes["belief"]
    fields = list(shapes) if want_all else ["grad"]
    checked: dict[str, torch.Tensor] = {}
    for field in fields:
        t = getattr(out, field) if want_all else out
        label = f"out.{field}" if want_all else "out"
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{label}: expected a torch.Tensor, got {type(t).__name__}")
        if tuple(t.shape) != shapes[field]:
            raise ValueError(
                f"{label}: shape {tuple(t.shape)}, expected {shapes[field]} for mean of "
                f"shape {tuple(mean.shape)}"
            )
        if t.dtype != mean.dtype:
            raise TypeError(
                f"{label}: dtype {t.dtype}, expected mean's dtype {mean.dtype} "
                f"(shape {tuple(t.shape)})"
            )
        if t.device != mean.device:
            raise ValueError(
                f"{label}: on device {t.device}, expected mean's device {mean.device} "
                f"(shape {tuple(t.shape)})"
            )
        if any(s == 0 and n > 1 for n, s in zip(t.shape, t.stride(), strict=True)):
            raise ValueError(
                f"{label}: has a zero stride (an expanded view: several entries share "
                f"memory), shape {tuple(t.shape)}; pass a tensor that owns its entries"
            )
        for other, u in [*inputs.items(), *checked.items()]:
            if _overlap(t, u):
                raise ValueError(
                    f"{label}: shares memory with {other}; outputs must not alias the "
                    f"inputs or each other (shape {tuple(t.shape)})"
                )
        checked[label] = t
    return tuple(checked.values())


def _overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the memory spans of ``a`` and ``b`` (first to last byte they address) meet."""
    if a.numel() == 0 or b.numel() == 0 or a.device != b.device:
        return False

    def span(t: torch.Tensor) -> tuple[int, int]:
        extent = sum((n - 1) * abs(s) for n, s in zip(t.shape, t.stride(), strict=True))
        return t.data_ptr(), t.data_ptr() + (extent + 1) * t.element_size()

    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1
