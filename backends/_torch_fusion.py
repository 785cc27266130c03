"""Stage 2 and 3 on tensors: log-evidence and the reduced Dempster rule, per source slice.

The fused calibrate pass works on the M slices ``(..., D)`` of a ``(..., M, D)`` input,
unrolled in Python: under ``torch.compile`` this becomes one loop over D that reads the
M sources of each dimension once. Everything stays in the log domain (see
``bogc_ref._dempster``); with ``c = max(log W, max_m log e_m)``:

    t_m = exp(log e_m - s),  s = max_m log e_m (0 if no evidence),  S = Σ_m t_m
    W + Σ_m e_m = exp(c) · (S exp(s - c) + exp(log W - c))

so every ``exp`` argument is <= 0 (no overflow), one of the two terms is exactly 1
(no underflow of the denominator), and b̂_m = t_m exp(s - c) / den, û = exp(log W - c) / den.
This needs 2 + M exponentials per dimension instead of 2M + 3 for a literal logsumexp.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


def log_ref_precision(var: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
    r"""Pass 1 of the relative mode: :math:`\overline{\log var}` over present, informative entries.

    ``var`` (..., M, D), ``present`` (..., M) or None. Returns (..., 1) in ``var``'s dtype
    (the reference's ``log λ_ref`` negated); the sum is accumulated in float64 so a
    float32 input of 2^26 entries keeps float32 accuracy. 0 where nothing is informative.
    """
    log_var = torch.log(var)
    informative = torch.isfinite(log_var)
    if present is not None:
        informative = informative & present.unsqueeze(-1)
    total = torch.where(informative, log_var, 0.0).to(torch.float64).sum(dim=(-2, -1))
    count = informative.sum(dim=(-2, -1))
    return (total / count.clamp(min=1)).to(var.dtype).unsqueeze(-1)


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
    """
    log_var = torch.log(var)
    raw = power * (log_ref - log_var) if log_ref is not None else power * (-log_var - log_tau)
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
    shift = torch.where(top > -math.inf, top, 0.0)
    t = [torch.exp(f - shift) for f in finite]
    total = t[0]
    for term in t[1:]:
        total = total + term
    c = shift.clamp(min=log_w)
    evidence_scale = torch.exp(shift - c)
    prior_scale = torch.exp(log_w - c)
    inv_den = 1.0 / (total * evidence_scale + prior_scale)
    scale = evidence_scale * inv_den
    belief = [term * scale for term in t]
    uncertainty = prior_scale * inv_den

    n_dogmatic = dogmatic[0].to(total.dtype)
    for d in dogmatic[1:]:
        n_dogmatic = n_dogmatic + d.to(total.dtype)
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
