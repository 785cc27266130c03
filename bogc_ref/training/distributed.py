r"""What BOGC needs from ``torch.distributed`` (DistributedDataParallel training).

Under DDP each rank sees B_r samples of a global batch of :math:`B = \sum_r B_r`. Two parts of
the representation-level method are per-sample and stay local: the gradient moments of each
sample and their calibration (the relative evidence of the spec is normalised per sample).
What must be global is the posterior over each head: the conjugate posterior depends on the
batch through :math:`\tilde H^\top\tilde H` and :math:`\tilde H^\top Y`, the Laplace posterior
through the GGN :math:`\sum_b (\mathrm{diag}\,p_b - p_b p_b^\top)\otimes\tilde h_b\tilde h_b^\top`
and the gradient :math:`\sum_b (p_b - y_b)\otimes\tilde h_b`, all sums over the global batch.

Rather than re-deriving those sums outside the spec functions, the aggregator gathers the
detached rows the posterior is fitted on (:func:`gather_rows`: (B_r, ...) on each rank →
(B, ...) on every rank, rank order) and calls the spec's posterior function on them. The
result is exactly the posterior of the global batch, identical on every rank; it costs
B·(D+K) numbers per head per refresh instead of (D+1)² + (D+1)K for an all-reduce of the
statistics, which is smaller for the batch and representation sizes of last-layer heads.

The local calibrated gradient is divided by the local B_r; DDP's gradient averaging over the
W ranks then turns it into :math:`\sum_b J_b^\top \hat g_b / B` when every rank holds the same
B_r (as ``DistributedSampler`` arranges), the single-process update on the global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_reduce_sum", "gather_rows", "is_distributed"]


def is_distributed() -> bool:
    """True when ``torch.distributed`` is available, initialised and has more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_rows(tensor: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """Concatenate every rank's ``tensor`` along dim 0, in rank order; the same on every rank.

    Ranks may hold different numbers of rows (they are padded for the collective and trimmed);
    the other dimensions and the dtype must agree. Without an initialised process group the
    tensor is returned unchanged.
    """
    if not is_distributed():
        return tensor
    world = dist.get_world_size(group)
    local = tensor.detach().contiguous()
    size = torch.tensor([local.shape[0]], dtype=torch.long, device=local.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size, group=group)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([part[:count] for part, count in zip(parts, counts, strict=True)], dim=0)


def all_reduce_sum(tensor: Tensor, group: dist.ProcessGroup | None = None) -> Tensor:
    """The sum of ``tensor`` over ranks (a new tensor; the input is left unchanged)."""
    out = tensor.detach().clone()
    if is_distributed():
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
    return out
