r"""Experiment 1: how close is each aggregation's update to the true gradient, as noise grows?

Problem (linear regression seen through M modalities, D parameters). Inputs
:math:`x \sim N(0, I_D)`, targets :math:`y = x\cdot\theta^* + \epsilon`,
:math:`\epsilon \sim N(0, 0.1^2)`. Modality m observes the input corrupted in its own block
of dimensions :math:`N_m` (the D dimensions split into M equal blocks):
:math:`x_m = x + s\,\xi \odot 1_{N_m}`, :math:`\xi \sim N(0, I)`, and its per-sample loss is
:math:`\ell_m = \tfrac12 (x_m\cdot\theta - y)^2`. The clean objective
:math:`L(\theta) = \tfrac12 E(x\cdot\theta - y)^2` has the known gradient
:math:`\nabla L = \theta - \theta^*`.

At a random point :math:`\theta = \theta^* + N(0, I)` and a batch of B samples, each
modality's per-sample gradients come from ``torch.func`` (the parameter-level integration);
every aggregation turns them into one update u, compared with :math:`\nabla L` by cosine
similarity and relative error :math:`\lVert u - \nabla L\rVert / \lVert\nabla L\rVert`.
The sum of gradients has the cosine of the mean and M times its scale, so only the mean is
listed. The noise level s grows from 0; each level is repeated ``reps`` times.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..training import parameters as param_level
from .aggregations import bogc_kwargs, matrix_aggregator, torchjd_aggregators
from .report import progress, save_json, write_markdown


@dataclass
class GradientQualityConfig:
    """Settings of experiment 1 (defaults: the documented run)."""

    n_modalities: int = 3
    dim: int = 12
    batch: int = 64
    reps: int = 50
    noise_levels: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    seed: int = 0
    methods: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.dim % self.n_modalities:
            raise ValueError(
                f"dim: must be a multiple of n_modalities={self.n_modalities}, got {self.dim}"
            )
        if not self.methods:
            self.methods = ("mean", "bayesagg", "bogc", *torchjd_aggregators())


def one_trial(cfg: GradientQualityConfig, noise: float, rng: np.random.Generator) -> dict[str, Any]:
    """One random problem at noise level ``noise``: cosine and relative error per method."""
    m, d, b = cfg.n_modalities, cfg.dim, cfg.batch
    theta_star = rng.standard_normal(d)
    theta = theta_star + rng.standard_normal(d)
    x = rng.standard_normal((b, d))
    y = x @ theta_star + 0.1 * rng.standard_normal(b)
    block = d // m
    xs = np.repeat(x[:, None, :], m, axis=1)
    for k in range(m):
        xs[:, k, k * block : (k + 1) * block] += noise * rng.standard_normal((b, block))
    true_grad = torch.from_numpy(theta - theta_star)

    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(theta)[None, :])

    def loss_fn(params: Any, xs_: Tensor, y_: Tensor) -> Tensor:
        pred = torch.func.functional_call(model, dict(params), (xs_,))[:, 0]  # (M,)
        return 0.5 * (pred - y_) ** 2

    batch = (torch.from_numpy(xs), torch.from_numpy(y))
    results: dict[str, Any] = {}
    per_sample = param_level.per_sample_source_grads(loss_fn, dict(model.named_parameters()), batch)
    means = per_sample.mean(dim=0)  # (M, D)
    for name in cfg.methods:
        if name in ("bogc", "bayesagg"):
            update = param_level.calibrated_param_grads(
                model, loss_fn, batch, accumulate=False, **bogc_kwargs(name)
            ).grad
        else:
            update = matrix_aggregator(name)(means)
        results[name] = _scores(update.to(torch.float64), true_grad)
    return results


def _scores(update: Tensor, target: Tensor) -> dict[str, float]:
    cos = float(update @ target / (update.norm() * target.norm()).clamp_min(1e-300))
    rel = float((update - target).norm() / target.norm())
    return {"cosine": cos, "rel_error": rel}


def run(cfg: GradientQualityConfig, out_dir: Path, *, show_progress: bool = True) -> dict[str, Any]:
    """Run every noise level and repetition; write results.json, results.md and a plot."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    start = time.perf_counter()
    raw: dict[str, dict[str, dict[str, list[float]]]] = {
        name: {str(s): {"cosine": [], "rel_error": []} for s in cfg.noise_levels}
        for name in cfg.methods
    }
    jobs = [(s, r) for s in cfg.noise_levels for r in range(cfg.reps)]
    for noise, _ in progress(jobs, "gradient quality", show_progress):
        trial = one_trial(cfg, noise, rng)
        for name, scores in trial.items():
            for key, value in scores.items():
                raw[name][str(noise)][key].append(value)
    summary = {
        name: {
            level: {
                f"{key}_{stat}": float(fn(values))
                for key, values in metrics.items()
                for stat, fn in (("mean", np.mean), ("std", np.std))
            }
            for level, metrics in levels.items()
        }
        for name, levels in raw.items()
    }
    result = {
        "experiment": "gradient-quality",
        "config": asdict(cfg),
        "seconds": time.perf_counter() - start,
        "summary": summary,
    }
    save_json(out_dir / "results.json", result)
    _table(cfg, summary, out_dir / "results.md")
    _plot(cfg, summary, out_dir / "gradient_quality.png")
    return result


def _table(cfg: GradientQualityConfig, summary: dict[str, Any], path: Path) -> None:
    header = ["method", *[f"s={s:g}" for s in cfg.noise_levels]]
    blocks = []
    for key, title in (
        ("cosine", "Cosine similarity to the true gradient (higher is better)"),
        ("rel_error", "Relative error ‖u − ∇L‖/‖∇L‖ (lower is better)"),
    ):
        rows = [
            [
                name,
                *[
                    f"{summary[name][str(s)][key + '_mean']:.3f} ± "
                    f"{summary[name][str(s)][key + '_std']:.3f}"
                    for s in cfg.noise_levels
                ],
            ]
            for name in cfg.methods
        ]
        blocks.append((title, header, rows))
    write_markdown(
        path,
        "Gradient quality vs modality noise s (mean ± std over "
        f"{cfg.reps} problems, B = {cfg.batch}, D = {cfg.dim}, "
        f"M = {cfg.n_modalities})",
        blocks,
    )


def _plot(cfg: GradientQualityConfig, summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    levels = list(cfg.noise_levels)
    for name in cfg.methods:
        for ax, key in zip(axes, ("cosine", "rel_error"), strict=True):
            mean = np.array([summary[name][str(s)][key + "_mean"] for s in levels])
            ax.plot(levels, mean, marker="o", label=name)
    axes[0].set(xlabel="noise std s in each modality's noisy block", ylabel="cosine to ∇L")
    axes[1].set(xlabel="noise std s", ylabel="relative error", yscale="log")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
