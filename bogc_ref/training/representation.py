r"""Representation-level BOGC for PyTorch training: calibrate dL/dh before it reaches the encoders.

Setting. Encoders produce a representation ``h`` (B, D) (for late fusion: the concatenation
of each modality's representation). M sources read it through their own heads, each a
``torch.nn.Linear`` on a set of columns of ``h`` (its *reach*):

- ``kind="linear"``: squared error, per-sample loss :math:`\tfrac12\lVert W\tilde h - y\rVert^2`,
  batch loss the mean over samples;
- ``kind="softmax"``: cross-entropy, batch loss the mean over samples.

Each step, for each source m and sample b, stage 1 of the spec gives the mean and variance of
:math:`g_{mb} = \partial \ell_{mb} / \partial h_b` under a Gaussian posterior over the head:

- linear heads: the conjugate posterior of :func:`bogc_ref.linear_head_posterior` and the exact
  moments of :func:`bogc_ref.linear_head_moments`;
- softmax heads: the Laplace posterior of :func:`bogc_ref.softmax_head_laplace` at the head's
  current weights, then :func:`bogc_ref.softmax_head_moments_linearized` (default) or the Monte
  Carlo :func:`bogc_ref.softmax_head_moments` (``softmax_moments="mc"``).

**Prior.** Every head has the prior :math:`N(0, \texttt{prior\_var}\, I)` over its weights
(bias included), i.e. ``prior_mean = 0`` and ``prior_precision = I / prior_var``; linear heads
also take the noise variance ``noise_var`` (default 1).

**Refresh policy.** The posteriors are fitted on the current batch's *detached*
representation (the rows where the source is present), the batch's targets and, for softmax
heads, the head's current weights, every ``refresh_every`` calls (default 5). In between, the
fitted covariance is reused, and a softmax head's mean is moved every step to the Newton step
of the spec's Laplace fit from the head's current weights on the current batch,
:math:`\mu = \theta - \Sigma\,\nabla_\theta[\sum_b \mathrm{CE}_b + \tfrac12(\theta-m_0)^\top
P_0(\theta-m_0)]` with the cached :math:`\Sigma`; a linear head's conjugate posterior is
reused whole. ``refresh_every=1`` is the spec's posterior at every step.

Cost per step, for a softmax head of K classes on D columns (batch B): the linearized
moments, :math:`O(BK^2(D+1)^2)` (one or two matrix products), and the mean update,
:math:`O(BK(D+1) + K^2(D+1)^2)`; every ``refresh_every`` steps the fit adds the GGN,
:math:`O(BK^2(D+1)^2)`, and the Cholesky factor and inverse, :math:`O(K^3(D+1)^3)`. A window
of R steps between refits costs one fit plus R moment evaluations: linear in R. Softmax
heads of the same shape (K, D) are stacked: their fit, mean update and moments are one call
of the stage-1 code each (with a leading axis over the heads), so that several small heads
(late fusion's one head per view) cost about one head's operations, not one each; the
posterior fits of stacked heads whose present rows differ (missing modalities) are split
into calls by their rows.
Under ``torch.distributed`` with ``distributed=True`` the posterior is fitted on the batch
gathered from every rank (see :mod:`bogc_ref.training.distributed`), so each rank uses
the same, global posterior.

The calibrated gradient :math:`\hat g_b` = ``calibrate(mean_b, var_b, mask=mask_b).grad``
(shape (B, D)) is back-propagated as :math:`\partial L/\partial h_b = \hat g_b / B` through
``h.backward(gradient=...)``. A dimension a source does not reach gets ``mean = 0`` and
``var = +inf`` (no information, evidence 0), never ``var = 0`` (which would be dogmatic); so
does a reached column where a sample's moments are exactly mean 0 and var 0 (a head saturated
so far that p = y exactly: its gradient is a point mass at 0 and moves nothing); a
sample where a source is absent (a missing modality) gets ``mask = False``.

The heads themselves are not touched: train them by their own losses, computed on
``h.detach()``, as usual.

No BOGC mathematics is written here: every formula is one of the spec functions, reached
through the torch backend (:mod:`bogc_ref.backends`).
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ._backend import (
    not_all_finite,
    point_mass_at_zero_is_vacuous,
    spec_functions,
    training_calibrate,
    unchecked_stage1,
)
from ._softmax_stack import Columns, SoftmaxStack, pick, row_groups, stack_sources

Kind = Literal["linear", "softmax"]
Reach = slice | Sequence[int] | None

__all__ = [
    "RepresentationAggregator",
    "Source",
]


@dataclass(frozen=True)
class Source:
    """One loss reading the representation through a linear head.

    Attributes:
        head: the head, ``nn.Linear(len(reach), K)``; its weight and bias form W (K, D_m+1).
        kind: ``"linear"`` (squared error on float targets (B, K)) or ``"softmax"``
            (cross-entropy on integer labels (B,)).
        reach: the columns of ``h`` the head reads (a slice or index list, each column
            once; ``head.in_features`` of them); None = all.
    """

    head: nn.Linear
    kind: Kind
    reach: Reach = None

    def columns(self, dim: int) -> Tensor:
        """The reached column indices as a long tensor, for a representation of width ``dim``."""
        if self.reach is None:
            return torch.arange(dim)
        if isinstance(self.reach, slice):
            return torch.arange(dim)[self.reach]
        idx = torch.as_tensor(list(self.reach), dtype=torch.long)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= dim):
            raise ValueError(f"reach: column indices must lie in [0, {dim}), got {idx.tolist()}")
        values = idx.tolist()
        if len(set(values)) != len(values):
            # dL/dh of a column read twice is the sum of two entries of the head's gradient;
            # one moment per column cannot hold it
            at = next(i for i, c in enumerate(values) if c in values[:i])
            raise ValueError(
                f"reach: column {values[at]} is repeated (at position {at} of {values}); "
                "each column may be read once"
            )
        return idx


class RepresentationAggregator:
    """Calibrated back-propagation of M sources' gradients into a shared representation.

    Args:
        sources: the M sources (heads, kinds, reaches).
        prior_var: variance of the prior :math:`N(0, \\texttt{prior\\_var}\\,I)` over each head.
        noise_var: noise variance :math:`\\sigma^2` of the linear heads' likelihood.
        refresh_every: refit the posteriors every this many calls (1 = every step; in
            between a softmax head's mean follows its current weights, see the module
            docstring).
        softmax_moments: ``"linearized"`` (deterministic, default) or ``"mc"``.
        n_samples: Monte Carlo draws for ``"mc"``; the seed is ``seed + step``.
        distributed: fit the posteriors on the batch gathered from every rank when
            ``torch.distributed`` is initialised.
        dtype: the dtype of the posteriors, moments and calibration (default float64, like
            the reference's internal precision; the gradient is cast back to ``h.dtype``).
            In float32 a saturated softmax sample's variance (exactly ~1e-44) can round below
            zero; roundoff below zero is set to 0 in any dtype (and to +inf where the mean is
            exactly 0 too: see the module docstring).
        **calibrate_kwargs: passed to ``calibrate`` (mode, tau, power, prior_weight, normalize).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        prior_var: float = 1.0,
        noise_var: float = 1.0,
        refresh_every: int = 5,
        softmax_moments: Literal["linearized", "mc"] = "linearized",
        n_samples: int = 64,
        seed: int = 0,
        distributed: bool = True,
        dtype: torch.dtype = torch.float64,
        **calibrate_kwargs: Any,
    ) -> None:
        if not sources:
            raise ValueError("sources: need at least one source, got an empty sequence")
        for i, src in enumerate(sources):
            if src.kind not in ("linear", "softmax"):
                raise ValueError(
                    f"sources[{i}].kind: expected 'linear' or 'softmax', got {src.kind!r}"
                )
        if not 0 < prior_var < math.inf or not 0 < noise_var < math.inf:
            raise ValueError(
                f"prior_var, noise_var: must be finite and > 0, got {prior_var}, {noise_var}"
            )
        try:
            refresh_every = operator.index(refresh_every)  # ints of any kind, not 2.5
        except TypeError:
            raise TypeError(f"refresh_every: expected an int, got {refresh_every!r}") from None
        if refresh_every < 1:
            raise ValueError(f"refresh_every: must be >= 1, got {refresh_every}")
        if softmax_moments not in ("linearized", "mc"):
            raise ValueError(
                f"softmax_moments: expected 'linearized' or 'mc', got {softmax_moments!r}"
            )
        self.sources = list(sources)
        self.prior_var = float(prior_var)
        self.noise_var = float(noise_var)
        self.refresh_every = int(refresh_every)
        self.softmax_moments = softmax_moments
        self.n_samples = int(n_samples)
        self.seed = int(seed)
        self.distributed = distributed
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
        self.dtype = dtype
        self.calibrate_kwargs = calibrate_kwargs
        self.step = 0
        self._posteriors: list[Any] = [None] * len(self.sources)
        # by representation width and device (index reaches are tensors on the device)
        self._stacks: dict[tuple[int, torch.device], list[SoftmaxStack]] = {}
        self._reaches: dict[tuple[int, torch.device], list[Columns]] = {}
        self._bogc = spec_functions()

    def moments(
        self, h: Tensor, targets: Sequence[Tensor], mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample gradient moments of every source: mean, var (B, M, D) and mask (B, M).

        Unreached columns have mean 0 and var +inf; ``mask`` (B, M) marks present sources.
        Refreshes the posteriors according to the policy (see the module docstring).
        """
        n_rows, dim = _check_h(h)
        h = h.detach().to(self.dtype)
        present = _check_mask(mask, n_rows, len(self.sources), h.device)
        if len(targets) != len(self.sources):
            raise ValueError(
                f"targets: expected one target tensor per source ({len(self.sources)}), "
                f"got {len(targets)}"
            )
        targets = _check_targets(self.sources, targets, n_rows, h.dtype)
        refresh = self.step % self.refresh_every == 0
        mean = h.new_zeros((n_rows, len(self.sources), dim))
        var = torch.full_like(mean, float("inf"))
        columns = self._columns(dim, h.device)
        for m, (src, target) in enumerate(zip(self.sources, targets, strict=True)):
            if src.kind != "linear":
                continue
            cols = columns[m]
            h_m = h[:, cols]
            if refresh or self._posteriors[m] is None:
                self._posteriors[m] = self._posterior(src, h_m, target, present[:, m])
            post = self._posteriors[m]
            if post is None:  # no present row anywhere: the source stays vacuous
                continue
            stage1 = unchecked_stage1()
            m_mean, m_var = stage1.linear_head_moments(h_m, target, post.mean, post.cov)
            mean[:, m, cols] = m_mean
            var[:, m, cols] = m_var
        with self._heads_named_on_error():
            for stack in self._softmax_stacks(dim, columns, h.device):
                h_s, labels = stack.inputs(h, targets)
                one_hot = nn.functional.one_hot(labels, stack.n_classes).to(h.dtype)
                self._update_stack(stack, h_s, one_hot, present, refresh)
                stack.scatter(*self._stack_moments(stack, h_s, labels, one_hot), mean, var)
        self.step += 1
        # unreached columns (mean 0, var +inf) are left as they are by the rule
        return mean, point_mass_at_zero_is_vacuous(mean, var), present

    def calibrate(self, h: Tensor, targets: Sequence[Tensor], mask: Tensor | None = None) -> Any:
        """``calibrate(mean, var, mask=mask)`` on this batch's moments: a Calibration (B, ...)."""
        mean, var, present = self.moments(h, targets, mask)
        with self._heads_named_on_error():
            return training_calibrate(mean, var, mask=present, **self.calibrate_kwargs)

    def backward(self, h: Tensor, targets: Sequence[Tensor], mask: Tensor | None = None) -> Any:
        """Back-propagate :math:`\\hat g_b / B` into what produced ``h``; return the Calibration."""
        if not h.requires_grad:
            raise ValueError(
                "h: does not require grad; pass the encoders' output, not a detached copy"
            )
        result = self.calibrate(h, targets, mask)
        grad = result.grad.to(dtype=h.dtype, device=h.device) / h.shape[0]
        h.backward(gradient=grad)
        return result

    # -- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _heads_named_on_error(self) -> Iterator[None]:
        """On a ValueError, first a ValueError naming a softmax head whose weights are not
        finite, if one is (the fit or the moments would otherwise report an overflow of the
        Laplace precision, or a NaN in ``mean``, arguments the caller never passed). The
        heads are read only on that path: nothing is added to a step that succeeds."""
        try:
            yield
        except ValueError:
            for m, src in enumerate(self.sources):
                if src.kind != "softmax":
                    continue
                for name, param in src.head.named_parameters():
                    bad = ~torch.isfinite(param.detach())
                    if bool(bad.any()):
                        index = tuple(int(i) for i in bad.nonzero()[0])
                        raise ValueError(
                            f"sources[{m}].head.{name}: not finite at index {index} "
                            f"(shape {tuple(param.shape)})"
                        ) from None
            raise

    # The posteriors and moments below run the torch backend's stage-1 code without its
    # input checks: h and the targets were checked once in ``moments``, and the posteriors
    # are this class's own (symmetric by construction, finite when their inputs are).
    def _columns(self, dim: int, device: torch.device) -> list[Columns]:
        """Each source's reached columns: a slice (a view of h) or an index tensor, checked
        against its head once per width and device."""
        key = (dim, device)
        if key not in self._reaches:
            for m, src in enumerate(self.sources):
                n_cols = int(src.columns(dim).numel())
                if src.head.in_features != n_cols:
                    raise ValueError(
                        f"sources[{m}].head: in_features = {src.head.in_features}, but its "
                        f"reach gives {n_cols} columns of h (shape (B, {dim}))"
                    )
            self._reaches[key] = [
                src.reach
                if isinstance(src.reach, slice)
                else slice(None)
                if src.reach is None
                else src.columns(dim).to(device)
                for src in self.sources
            ]
        return self._reaches[key]

    def _softmax_stacks(
        self, dim: int, columns: list[Columns], device: torch.device
    ) -> list[SoftmaxStack]:
        """The softmax sources stacked by head shape (built once per width and device)."""
        key = (dim, device)
        if key not in self._stacks:
            self._stacks[key] = stack_sources(
                [src.kind for src in self.sources],
                [src.head for src in self.sources],
                columns,
                dim,
            )
        return self._stacks[key]

    def _update_stack(
        self, stack: SoftmaxStack, h_s: Tensor, one_hot: Tensor, present: Tensor, refresh: bool
    ) -> None:
        """Refit (Laplace) or move (Newton step with the cached covariance) the posteriors of
        a stack's members: one call each for the members that share their present rows."""
        f64, dtype = torch.float64, h_s.dtype
        stack.allocate(dtype, h_s.device)
        precision = 1.0 / self.prior_var  # the prior I / prior_var, as the float c of c I
        weights = stack.weights(f64, h_s.device)
        stage1 = unchecked_stage1()
        for positions, rows in row_groups(present[:, stack.members]):
            h_fit, t_fit = self._fit_rows(rows, pick(h_s, positions), pick(one_hot, positions))
            refit = [i for i in positions if refresh or not stack.fitted[i]]
            move = [i for i in positions if i not in refit]
            if h_fit.shape[1] == 0:  # no present row: no refit; a cached posterior stays
                for i in refit:
                    stack.fitted[i] = False
                continue
            h_fit, t_fit = h_fit.to(f64), t_fit.to(f64)
            for chosen, fit in ((refit, True), (move, False)):
                if not chosen:
                    continue
                at = [positions.index(i) for i in chosen]
                h_at, t_at, w = pick(h_fit, at), pick(t_fit, at), pick(weights, chosen)
                if fit:
                    post_mean, post_cov = stage1.softmax_head_laplace(
                        h_at, t_at, w, torch.zeros_like(w), precision
                    )
                    stack.store(chosen, post_mean, post_cov)
                else:
                    post_mean = stage1.laplace_mean_with_covariance(
                        h_at, t_at, w, torch.zeros_like(w), precision,
                        stack.covariances(chosen).to(f64),
                    )  # fmt: skip
                    stack.store(chosen, post_mean)
        for i, m in enumerate(stack.members):
            post = stack.posterior(i)
            self._posteriors[m] = None if post is None else _Posterior(*post)

    def _stack_moments(
        self, stack: SoftmaxStack, h_s: Tensor, labels: Tensor, one_hot: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The members' moments (H, B, D): the linearized ones in one call, or Monte Carlo
        per member (zero, and left out by ``scatter``, where a member has no posterior)."""
        assert stack.mean is not None and stack.cov is not None
        if self.softmax_moments == "linearized":
            out: tuple[Tensor, Tensor] = unchecked_stage1().softmax_head_moments_linearized(
                h_s, one_hot, stack.mean, stack.cov, clamp=False, layouts=stack.layouts()
            )  # roundoff below 0 is clamped with the point-mass rule at the end of ``moments``
            return out
        mean, var = torch.zeros_like(h_s), torch.zeros_like(h_s)
        for i in range(len(stack.members)):
            if stack.fitted[i]:
                mean[i], var[i] = self._bogc.softmax_head_moments(
                    h_s[i],
                    labels[i],
                    stack.mean[i],
                    stack.cov[i],
                    n_samples=self.n_samples,
                    seed=self.seed + self.step,
                )
        return mean, var

    def _fit_rows(self, rows: Tensor | None, *tensors: Tensor) -> list[Tensor]:
        """The present rows (axis -2; all of them where ``rows`` is None) of each tensor,
        gathered over ranks under DDP."""
        picked = [t if rows is None else t[..., rows, :] for t in tensors]
        if self.distributed:
            from .distributed import gather_rows, is_distributed

            if is_distributed():
                picked = [gather_rows(t.movedim(-2, 0)).movedim(0, -2) for t in picked]
        return picked

    def _posterior(self, src: Source, h_m: Tensor, target: Tensor, rows: Tensor) -> Any:
        """A linear head's conjugate posterior on the present rows (None without any)."""
        h_fit, t_fit = self._fit_rows(rows, h_m, target)
        if h_fit.shape[0] == 0:
            return None
        n_cols = h_m.shape[1] + 1
        k = src.head.out_features
        f64 = torch.float64
        zeros = h_fit.new_zeros((k, n_cols), dtype=f64)
        precision = torch.eye(n_cols, dtype=f64, device=h_m.device) / self.prior_var
        mean, cov = unchecked_stage1().linear_head_posterior(
            h_fit.to(f64), t_fit.to(f64), zeros, precision, self.noise_var
        )
        return _Posterior(mean.to(h_m.dtype), cov.to(h_m.dtype).expand(k, *cov.shape))


@dataclass(frozen=True)
class _Posterior:
    """A (mean, cov) or (mean, var) pair the aggregator computed itself (named fields)."""

    mean: Tensor
    cov: Tensor

    @property
    def var(self) -> Tensor:
        return self.cov


def _check_h(h: Tensor) -> tuple[int, int]:
    if h.ndim != 2:
        raise ValueError(f"h: expected 2 dimensions (B, D), got shape {tuple(h.shape)}")
    if h.shape[0] < 1:
        raise ValueError(f"h: expected at least one row, got shape {tuple(h.shape)}")
    if not h.is_floating_point():
        raise TypeError(f"h: expected a floating-point tensor, got dtype {h.dtype}")
    if bool(not_all_finite(h.detach())):
        index = tuple(int(i) for i in (~torch.isfinite(h.detach())).nonzero()[0])
        raise ValueError(f"h: not finite at index {index} (shape {tuple(h.shape)})")
    return int(h.shape[0]), int(h.shape[1])


def _check_targets(
    sources: Sequence[Source], targets: Sequence[Tensor], n_rows: int, dtype: torch.dtype
) -> list[Tensor]:
    """Each source's target checked by :func:`_check_target`, a tensor shared by several
    sources of one kind and width (late fusion's one label vector) checked once, under the
    first source's index."""
    checked: dict[tuple[int, str, int], Tensor] = {}
    out = []
    for m, (src, target) in enumerate(zip(sources, targets, strict=True)):
        key = (id(target), src.kind, src.head.out_features)
        if key not in checked:
            checked[key] = _check_target(src, target, m, n_rows, dtype)
        out.append(checked[key])
    return out


def _check_target(src: Source, target: Tensor, m: int, n_rows: int, dtype: torch.dtype) -> Tensor:
    """The target of source m, checked once per call: float (B, K) finite targets for a
    linear head (cast to ``dtype``), integer labels (B,) in [0, K) for a softmax head."""
    k = src.head.out_features
    name = f"targets[{m}]"
    if src.kind == "linear":
        if not target.is_floating_point() or tuple(target.shape) != (n_rows, k):
            raise ValueError(
                f"{name}: expected float targets of shape ({n_rows}, {k}) (B, K) for a linear "
                f"head, got dtype {target.dtype} and shape {tuple(target.shape)}"
            )
        bad = ~torch.isfinite(target)
        if bool(bad.any()):
            index = tuple(int(i) for i in bad.nonzero()[0])
            raise ValueError(f"{name}: not finite at index {index} (shape {tuple(target.shape)})")
        return target.to(dtype)
    if target.is_floating_point() or target.dtype == torch.bool or tuple(target.shape) != (n_rows,):
        raise ValueError(
            f"{name}: expected integer labels of shape ({n_rows},) (B,) for a softmax head, "
            f"got dtype {target.dtype} and shape {tuple(target.shape)}"
        )
    low, high = torch.aminmax(target)
    if int(low) < 0 or int(high) >= k:
        first = int(((target < 0) | (target >= k)).nonzero()[0, 0])
        raise ValueError(
            f"{name}: label {int(target[first])} at index {first} is outside [0, {k}) "
            f"(shape {tuple(target.shape)})"
        )
    return target.long()


def _check_mask(mask: Tensor | None, n_rows: int, n_sources: int, device: torch.device) -> Tensor:
    if mask is None:
        return torch.ones((n_rows, n_sources), dtype=torch.bool, device=device)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask: expected a bool tensor (B, M), got dtype {mask.dtype}")
    if tuple(mask.shape) != (n_rows, n_sources):
        raise ValueError(
            f"mask: expected shape ({n_rows}, {n_sources}) (B, M), got {tuple(mask.shape)}"
        )
    return mask.to(device)
