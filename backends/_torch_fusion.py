"""Stage 2 and 3 on tensors: log-evidence and the reduced Dempster rule, per source slice.

The fused calibrate pass works on the M slices ``(..., D)`` of a ``(..., M, D)`` input,
unrolled in Python: under ``torch.compile`` this becomes one loop over D that reads the
M sources of each dimension once. Everything stays in the log domain (see
``bogc_ref._dempster``); with ``c = max(log W, max_m log e_m)``:

    t_m = exp(log e_m - s),  s = max_m log e_m (log W if no evidence),  S = Σ_m t_m
    W + Σ_m e_m = exp(c) · (S exp(s - c) + exp(log W - c))

so every ``exp`` argument is <= 0 (no overflow), one of the two terms is exactly 1
(no underflow of the denominator), and b̂_m = t_m exp(s - c) / den, û = exp(log W - c) / den.
This needs 2 + M exponentials per dimension instead of 2M + 3 for a literal logsumexp.

For power p = 1 (the default) no transcendental is needed at all: the evidence is a
ratio of variances, e_m = v_ref / v_m, and :func:`fuse_ratios` works with
r_m = v_min / v_m <= 1 (see :class:`Ratios`), which neither overflows nor underflows the
denominator.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


def mean_log_var(var: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
    r"""Pass 1 of the relative mode: :math:`\overline{\log var}` over present, informative entries.

    ``var`` (..., M, D), ``present`` (..., M) or None. Returns (..., 1) in float64 (the
    reference's ``log λ_ref`` negated); the sum is accumulated in float64 so a float32
    input of 2^26 entries keeps float32 accuracy. 0 where nothing is informative.
    """
    log_var = torch.log(var)
    informative = torch.isfinite(log_var)
    if present is not None:
        informative = informative & present.unsqueeze(-1)
    total = torch.where(informative, log_var, 0.0).to(torch.float64).sum(dim=(-2, -1))
    count = informative.sum(dim=(-2, -1))
    return (total / count.clamp(min=1)).unsqueeze(-1)


def raw_log_evidence(
    var: torch.Tensor,
    log_ref: torch.Tensor | None,
    present: torch.Tensor | None,
    power: float,
    log_tau: float,
) -> torch.Tensor:
    r"""``log e`` elementwise: :math:`p(\overline{\log var} - \log var)` (relative, ``log_ref``
    given) or :math:`p(-\log var - \log\tau)` (fixed); ``-inf`` where ``present`` is False.

    ``var = 0`` gives ``+inf`` (dogmatic), ``var = +inf`` gives ``-inf`` (no evidence).
    Only ``var = 0`` is dogmatic: a finite ``log e`` that overflows (a huge ``power``, a
    tiny τ) saturates at the dtype's largest finite value, as in the reference.
    """
    log_var = torch.log(var)
    info = torch.finfo(var.dtype)  # p = 1e308 in float32 is not inf, p = 1e-308 not 0 (0 * inf)
    power = min(max(power, info.tiny), info.max)
    raw = power * (log_ref - log_var) if log_ref is not None else power * (-log_var - log_tau)
    raw = torch.where((raw == math.inf) & (var != 0), torch.finfo(raw.dtype).max, raw)
    if present is not None:
        raw = torch.where(present, raw, -math.inf)
    return raw


class Fused(NamedTuple):
    """Per-source fused beliefs, the uncertainty, and the normalised weights' pieces."""

    belief: list[torch.Tensor]
    uncertainty: torch.Tensor
    weights: list[torch.Tensor]  # Σ_n e_n-normalised weights (normalize=True), dogmatic-aware


def fuse(raw: list[torch.Tensor], log_w: float, want_weights: bool) -> Fused:
    r"""The reduced Dempster rule from each source's ``log e`` slice (``+inf`` = dogmatic).

    .. math::

        \hat b_m = e_m / (W + \textstyle\sum_n e_n), \qquad \hat u = W / (W + \sum_n e_n),

    and where a set Z of sources is dogmatic, :math:`\hat b_m = [m \in Z]/|Z|`, û = 0.
    ``weights`` (only if ``want_weights``) are :math:`e_m/\sum_n e_n` (0 without evidence),
    the dogmatic shares where some source is dogmatic.
    """
    dogmatic = [r == math.inf for r in raw]
    finite = [torch.where(d, -math.inf, r) for d, r in zip(dogmatic, raw, strict=True)]
    top = finite[0]
    for f in finite[1:]:
        top = torch.maximum(top, f)
    shift = torch.where(top > -math.inf, top, log_w)  # no evidence: the prior term is 1
    t = [torch.exp(f - shift) for f in finite]
    total = _sum(t)
    c = shift.clamp(min=log_w)
    evidence_scale = torch.exp(shift - c)
    prior_scale = torch.exp(log_w - c)
    inv_den = 1.0 / (total * evidence_scale + prior_scale)
    scale = evidence_scale * inv_den
    belief = [term * scale for term in t]
    return _dogmatic_rule(dogmatic, t, total, belief, prior_scale * inv_den, want_weights)


class Ratios(NamedTuple):
    r"""Power-1 evidence :math:`e_m = v_\mathrm{ref}/v_m` in a form that cannot overflow.

    ``var``: :math:`v_m` where the source is present with :math:`0 < v_m < \infty`, else
    ``+inf``; ``dogmatic``: present with :math:`v_m = 0`. With :math:`v_\min = \min_m v_m`
    over those finite entries (:math:`v_\mathrm{ref}` where there is none): ``ratio``
    :math:`r_m = v_\min / v_m \in [0, 1]` and ``scale`` :math:`s = v_\mathrm{ref}/v_\min`,
    so :math:`e_m = s\,r_m`.
    """

    var: list[torch.Tensor]
    dogmatic: list[torch.Tensor]
    ratio: list[torch.Tensor]
    scale: torch.Tensor


def ratios(
    var: list[torch.Tensor], present: list[torch.Tensor | None], ref_var: torch.Tensor | float
) -> Ratios:
    """:class:`Ratios` from each source's ``var`` slice and present flag (None: present)."""
    informative: list[torch.Tensor] = []
    dogmatic: list[torch.Tensor] = []
    for v, p in zip(var, present, strict=True):
        v_eff = torch.where(p, v, math.inf) if p is not None else v
        informative.append(torch.where(v_eff > 0, v_eff, math.inf))
        dogmatic.append(v_eff == 0)
    v_min = informative[0]
    for v in informative[1:]:
        v_min = torch.minimum(v_min, v)
    v_min = torch.where(v_min < math.inf, v_min, ref_var)
    return Ratios(informative, dogmatic, [v_min / v for v in informative], divide(ref_var, v_min))


def divide(numerator: torch.Tensor | float, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator`` by a true division, also for a Python number over a tensor,
    which torch evaluates as ``numerator * (1 / denominator)``: that reciprocal overflows to
    +inf for a subnormal denominator (1 / 1e-39 in float32) whose quotient is finite."""
    if not isinstance(numerator, torch.Tensor):
        numerator = torch.tensor(numerator, dtype=denominator.dtype, device=denominator.device)
    return numerator / denominator


def fuse_ratios(r: Ratios, weight: float, want_weights: bool) -> Fused:
    r"""The reduced Dempster rule for power-1 evidence, from :class:`Ratios`.

    Numerator and denominator of :math:`e_m / (W + \sum_n e_n)` divided by the scale
    :math:`s = v_\mathrm{ref}/v_\min` leave terms that cannot overflow:

    .. math::

        x = W / s, \quad
        \hat b_m = \frac{r_m}{x + \sum_n r_n}, \quad
        \hat u = \frac{x}{x + \sum_n r_n} \ (1 \text{ where } x = \infty),

    so :math:`x = \infty` (evidence below the dtype's range) gives û = 1, b̂ = 0 and
    :math:`x = 0` gives û = 0, :math:`\hat b_m = r_m / \sum_n r_n`. Dogmatic sources as in
    :func:`fuse`; ``weights`` are :math:`r_m / \sum_n r_n`.
    """
    total = _sum(r.ratio)
    x = divide(weight, r.scale)  # W is a normal number of the dtype (see linear_evidence)
    inv_den = 1.0 / (x + total)
    belief = [term * inv_den for term in r.ratio]
    uncertainty = torch.where(x < math.inf, x * inv_den, 1.0)
    return _dogmatic_rule(r.dogmatic, r.ratio, total, belief, uncertainty, want_weights)


def ratio_evidence(
    r: Ratios, ref_var: torch.Tensor | float, out_dtype: torch.dtype
) -> list[torch.Tensor]:
    r"""Each source's power-1 evidence :math:`v_\mathrm{ref}/v_m` (..., D) in ``out_dtype``:
    ``+inf`` only where dogmatic, finite values saturating at the dtype's largest one.

    Divided directly, not as :math:`s\,r_m`: :math:`r_m` underflows to 0 where
    :math:`v_\min / v_m` is below the dtype's range although :math:`e_m` is not.
    """
    big = torch.finfo(out_dtype).max
    return [
        torch.where(d, math.inf, divide(ref_var, v).clamp(max=big)).to(out_dtype)
        for v, d in zip(r.var, r.dogmatic, strict=True)
    ]


def _sum(terms: list[torch.Tensor]) -> torch.Tensor:
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _dogmatic_rule(
    dogmatic: list[torch.Tensor],
    t: list[torch.Tensor],
    total: torch.Tensor,
    belief: list[torch.Tensor],
    uncertainty: torch.Tensor,
    want_weights: bool,
) -> Fused:
    r"""Overrides beliefs with the dogmatic shares :math:`[m \in Z]/|Z|` (û = 0) where Z is
    not empty; ``t`` (any positive multiple of the evidence, total ``Σ t``) gives ``weights``.
    """
    n_dogmatic = _sum([d.to(total.dtype) for d in dogmatic])
    has_dogmatic = n_dogmatic > 0
    inv_dogmatic = 1.0 / n_dogmatic.clamp(min=1.0)
    share = [d.to(total.dtype) * inv_dogmatic for d in dogmatic]
    belief = [torch.where(has_dogmatic, s, b) for s, b in zip(share, belief, strict=True)]
    uncertainty = torch.where(has_dogmatic, 0.0, uncertainty)
    weights: list[torch.Tensor] = []
    if want_weights:
        inv_total = torch.where(total > 0, 1.0 / total, 0.0)
        weights = [
            torch.where(has_dogmatic, s, term * inv_total) for s, term in zip(share, t, strict=True)
        ]
    return Fused(belief, uncertainty, weights)
