"""Softmax heads of one shape, stacked: one posterior update and one moments call for all.

A representation-level model often has several small softmax heads of the same shape (late
fusion: one 10-class head per view on its r columns). Computed one head at a time, each
costs a few dozen tiny tensor operations whose fixed overhead dominates; stacked along a
leading axis (the stage-1 code of the torch backend takes a stack of heads, see
``backends/_xp_stage1.py``), the whole group costs the operations of one head. Nothing here
computes BOGC: this module only gathers the heads' inputs into stacks, keeps their cached
posteriors stacked, and scatters the stacked moments back into the sources' columns.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ._backend import unchecked_stage1

#: Column selection of one source: a slice (a view of ``h``) or an index tensor (a gather).
Columns = slice | Tensor


def head_bias(head: nn.Linear) -> Tensor:
    """The head's bias, detached (zeros when the head has none)."""
    weight = head.weight.detach()
    return head.bias.detach() if head.bias is not None else weight.new_zeros(weight.shape[0])


@dataclass
class SoftmaxStack:
    """The softmax sources ``members`` (indices into the aggregator's sources), whose heads
    all have ``n_classes`` outputs on ``width - 1`` columns, and their cached posteriors.

    ``mean`` (H, K, width) and ``cov`` (H, K·width, K·width) hold the posteriors of the H
    members, valid where ``fitted`` is True (a member whose source never had a present row
    has none: it stays vacuous).
    """

    members: list[int]
    heads: list[nn.Linear]
    columns: list[Columns]
    n_classes: int
    width: int
    mean: Tensor | None = None
    cov: Tensor | None = None
    fitted: list[bool] = field(default_factory=list)
    _layouts: Any = None
    _flat: tuple[tuple[int, int, torch.device], Tensor] | None = None
    _spacing: dict[int, tuple[int, int] | None] = field(default_factory=dict)

    @property
    def n_params(self) -> int:
        """K(D+1), the size of each head's covariance."""
        return self.n_classes * self.width

    def inputs(self, h: Tensor, targets: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """The members' columns of ``h`` (H, B, D) and their labels (H, B)."""
        h_stack = torch.stack([h[:, cols] for cols in self.columns])
        labels = torch.stack([targets[m] for m in self.members])
        return h_stack, labels

    def weights(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """The heads' current weights W = [weight, bias] (H, K, D+1), bias last."""
        weight = torch.stack([head.weight.detach() for head in self.heads])
        bias = torch.stack([head_bias(head) for head in self.heads])
        return torch.cat([weight, bias[..., None]], dim=-1).to(device, dtype)

    def allocate(self, dtype: torch.dtype, device: torch.device) -> None:
        """Empty posteriors on first use (none fitted)."""
        if self.mean is None or self.mean.dtype != dtype or self.mean.device != device:
            count = len(self.members)
            self.mean = torch.zeros((count, self.n_classes, self.width), dtype=dtype, device=device)
            self.cov = torch.zeros(
                (count, self.n_params, self.n_params), dtype=dtype, device=device
            )
            self.fitted = [False] * count
            self._layouts = None

    def covariances(self, positions: list[int]) -> Tensor:
        """The cached covariances of the members at ``positions`` (no copy for all of them)."""
        assert self.cov is not None
        return pick(self.cov, positions)

    def layouts(self) -> Any:
        """The covariances rearranged for the linearized moments, built once per fit
        (``_xp_stage1.LinearizedCovariance``)."""
        assert self.cov is not None
        if self._layouts is None:
            self._layouts = unchecked_stage1().linearized_covariance(
                self.cov, self.n_classes, self.width
            )
        return self._layouts

    def store(self, positions: list[int], mean: Tensor, cov: Tensor | None = None) -> None:
        """New posterior means (and covariances) of the members at ``positions``.

        Covariances are stored contiguous (LAPACK returns them column-major), so that the
        moments read them by reshaped views every step instead of copying them each time.
        """
        assert self.mean is not None and self.cov is not None
        if positions == list(range(len(self.members))):  # the whole stack: no copy
            self.mean = mean.to(self.mean.dtype)
            if cov is not None:
                self.cov = cov.to(self.cov.dtype).contiguous()
        else:
            self.mean[positions] = mean.to(self.mean.dtype)
            if cov is not None:
                self.cov[positions] = cov.to(self.cov.dtype)
        if cov is not None:
            self._layouts = None
        for i in positions:
            self.fitted[i] = self.fitted[i] or cov is not None

    def posterior(self, position: int) -> tuple[Tensor, Tensor] | None:
        """(mean, cov) of one member (views into the stack), None where it has none."""
        if self.mean is None or self.cov is None or not self.fitted[position]:
            return None
        return self.mean[position], self.cov[position]

    def scatter(self, mean: Tensor, var: Tensor, out_mean: Tensor, out_var: Tensor) -> None:
        """Write the members' moments (H, B, D) into their sources' columns of the
        aggregator's (B, M, D) arrays (members without a posterior are left vacuous): one
        copy into a strided view per array when the members' blocks are evenly spaced, one
        indexed write otherwise, when every member has a posterior."""
        if not all(self.fitted):
            for i, (m, cols) in enumerate(zip(self.members, self.columns, strict=True)):
                if self.fitted[i]:
                    out_mean[:, m, cols] = mean[i]
                    out_var[:, m, cols] = var[i]
            return
        spacing = self._evenly_spaced(out_mean.shape[2])
        n_rows = out_mean.shape[0]
        for values, out in ((mean, out_mean), (var, out_var)):
            if spacing is not None and out.is_contiguous():
                first, step = spacing  # the members' blocks as one strided view of out
                strides = (step, out.stride(0), 1)
                offset = out.storage_offset() + first
                out.as_strided(values.shape, strides, offset).copy_(values)
            else:
                flat = self._flat_columns(out.shape[1], out.shape[2], out.device)
                out.view(n_rows, -1)[:, flat] = values.transpose(0, 1).reshape(n_rows, -1)

    def _evenly_spaced(self, dim: int) -> tuple[int, int] | None:
        """(first, step) when the members' columns are slices (step 1) whose blocks in a row
        of a (B, M, D) array, at m·D + start, are evenly spaced (late fusion's view heads on
        consecutive slices, or one member), else None; found once per width D."""
        if dim not in self._spacing:
            self._spacing[dim] = None
            ranges = [range(dim)[c] for c in self.columns if isinstance(c, slice)]
            if len(ranges) == len(self.columns) and all(r.step == 1 for r in ranges):
                starts = [m * dim + r.start for m, r in zip(self.members, ranges, strict=True)]
                step = starts[1] - starts[0] if len(starts) > 1 else 0
                if all(b - a == step for a, b in itertools.pairwise(starts)):
                    self._spacing[dim] = (starts[0], step)
        return self._spacing[dim]

    def _flat_columns(self, n_sources: int, dim: int, device: torch.device) -> Tensor:
        """The members' entries of a (B, M, D) array's rows flattened to M·D, member by
        member (m·D + each reached column), cached by (M, D, device)."""
        key = (n_sources, dim, device)
        if self._flat is None or self._flat[0] != key:
            columns = torch.arange(dim, device=device)
            pairs = zip(self.members, self.columns, strict=True)
            flat = torch.cat([m * dim + columns[cols] for m, cols in pairs])
            self._flat = (key, flat)
        return self._flat[1]


def pick(stacked: Tensor, positions: list[int]) -> Tensor:
    """``stacked[positions]`` along the leading axis; the tensor itself (no copy) where the
    positions are all of it, in order."""
    return stacked if positions == list(range(stacked.shape[0])) else stacked[positions]


def stack_sources(
    kinds: Sequence[str], heads: Sequence[nn.Linear], columns: Sequence[Columns], dim: int
) -> list[SoftmaxStack]:
    """The softmax sources grouped by head shape (K, D+1), in order of first appearance."""
    groups: dict[tuple[int, int], SoftmaxStack] = {}
    for m, (kind, head, cols) in enumerate(zip(kinds, heads, columns, strict=True)):
        if kind != "softmax":
            continue
        n_cols = len(range(dim)[cols]) if isinstance(cols, slice) else int(cols.numel())
        key = (head.out_features, n_cols + 1)
        if key not in groups:
            groups[key] = SoftmaxStack([], [], [], head.out_features, n_cols + 1)
        group = groups[key]
        group.members.append(m)
        group.heads.append(head)
        group.columns.append(cols)
    return list(groups.values())


def row_groups(rows: Tensor) -> list[tuple[list[int], Tensor | None]]:
    """Positions of a stack that share their present rows: ``rows`` (B, H) bool → a list of
    (positions, row mask), the mask None where every row is present."""
    count = rows.shape[1]
    if bool(rows.all()):
        return [(list(range(count)), None)]
    patterns, inverse = torch.unique(rows.T, dim=0, return_inverse=True)
    which = inverse.tolist()
    return [([i for i in range(count) if which[i] == g], patterns[g]) for g in range(len(patterns))]
