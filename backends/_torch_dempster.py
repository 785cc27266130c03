"""Dempster's rule for two mass functions (:func:`bogc_ref.dempster_combine`) on tensors.

Masses over the subsets of an n-element frame, indexed by bitmask (index 0 the empty set).
The product of every pair of focal sets lands on their intersection, ``B & C``; the
empty-set share is the conflict, renormalised away. Invalid input (and total conflict)
is replayed on the host copies by the reference, which raises its own error.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

import bogc_ref

from ._replay import replay_on_host


def _valid(a: torch.Tensor, b: torch.Tensor) -> bool:
    """One device sync: every structural and value check of the reference holds."""
    size = a.shape[0] if a.ndim == 1 else 0
    if (
        a.ndim != 1
        or b.shape != a.shape
        or a.dtype != b.dtype
        or a.dtype not in (torch.float32, torch.float64)
        or size < 2
        or size & (size - 1)
    ):
        return False
    eps = torch.finfo(a.dtype).eps
    ok = torch.ones((), dtype=torch.bool, device=a.device)
    for m in (a, b):
        total = m.to(torch.float64).sum()
        ok &= torch.isfinite(m).all() & (m >= 0).all() & (m[0] == 0)
        ok &= (total - 1.0).abs() <= 64 * eps * size
    return bool(ok)


def dempster_combine(
    m1: object,
    m2: object,
    tensors: Callable[..., dict[str, torch.Tensor]],
    to_host: Callable[[object], object],
) -> torch.Tensor:
    r""":math:`(m_1 \oplus m_2)(A) = \sum_{B \cap C = A} m_1(B) m_2(C) / (1 - K)`, A ≠ ∅."""
    t = tensors(m1=m1, m2=m2)
    a, b = t["m1"], t["m2"]
    if not _valid(a, b):
        replay_on_host(bogc_ref.dempster_combine, (m1, m2), {}, to_host)
    subsets = torch.arange(a.shape[0], device=a.device)
    intersection = (subsets[:, None] & subsets[None, :]).reshape(-1)
    products = torch.outer(a.to(torch.float64), b.to(torch.float64)).reshape(-1)
    combined = torch.zeros(a.shape[0], dtype=torch.float64, device=a.device)
    combined.index_add_(0, intersection, products)
    combined[0] = 0.0
    agreement = combined.sum()
    if not bool(agreement > 0):
        replay_on_host(bogc_ref.dempster_combine, (m1, m2), {}, to_host)
    return (combined / agreement).to(a.dtype)
