r"""Experiment 2: late-fusion training on the UCI Multiple Features digits, by aggregation.

Network. One encoder per view (Linear(d_v, hidden) → ReLU → Linear(hidden, r)), giving
:math:`h = [h_1, \dots, h_V]` (B, V·r); one softmax head per view on its own slice
:math:`h_v`, and one fused softmax head on all of h. The M = V + 1 losses are the
cross-entropies of the V view heads and of the fused head; test accuracy is the fused head's.

Aggregations of the encoders' gradient (the heads are always trained by their own losses):

- ``sum``: back-propagate the sum of the M losses (fixed weights 1);
- ``bogc`` / ``bayesagg``: the representation-level aggregator
  (:class:`bogc_ref.training.RepresentationAggregator`): per-sample
  gradient moments of each head from its Laplace posterior (prior N(0, prior_var I), refreshed
  every ``refresh_every`` steps on the batch), calibrated per sample; a view head reaches only
  its slice (var = +inf elsewhere); ``bayesagg`` is ``normalize=True``;
- ``upgrad``, ``imtlg``, ``jd-mean``: torchjd's ``mtl_backward`` with the M losses on the
  features h, then ``jac_to_grad`` over the encoders' parameters with that aggregator.

Conditions: ``clean``; ``noisy`` (views ``noisy_views`` get additive N(0, noise_std²) on
their standardised features, in training and test); ``missing`` (a fraction of the samples,
training and test, lose one random view: input and representation zeroed, the view's loss
and BOGC source masked for that sample).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..training.representation import RepresentationAggregator, Source
from .aggregations import bogc_kwargs, torchjd_aggregators
from .mfeat import MultiView, load_mfeat
from .report import paired_test, progress, save_json, write_markdown

CONDITIONS = ("clean", "noisy", "missing")


@dataclass
class LateFusionConfig:
    """Settings of experiment 2 (defaults: the documented run)."""

    seeds: int = 5
    epochs: int = 20
    batch_size: int = 128
    hidden: int = 32
    rep_dim: int = 8
    lr: float = 3e-3
    train_fraction: float = 0.6
    noise_std: float = 3.0
    noisy_views: tuple[int, ...] = (1, 3)
    missing_fraction: float = 0.5
    prior_var: float = 1.0
    refresh_every: int = 1
    max_samples: int | None = None
    threads: int = 1
    conditions: tuple[str, ...] = CONDITIONS
    methods: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.methods:
            self.methods = ("sum", "bayesagg", "bogc", *torchjd_aggregators())
        for c in self.conditions:
            if c not in CONDITIONS:
                raise ValueError(
                    f"conditions: unknown condition {c!r}; expected one of {CONDITIONS}"
                )


class LateFusion(nn.Module):
    """One encoder and one head per view, one fused head on the concatenation."""

    def __init__(self, widths: list[int], hidden: int, rep_dim: int, n_classes: int) -> None:
        super().__init__()
        self.rep_dim = rep_dim
        self.encoders = nn.ModuleList(
            nn.Sequential(nn.Linear(w, hidden), nn.ReLU(), nn.Linear(hidden, rep_dim))
            for w in widths
        )
        self.view_heads = nn.ModuleList(nn.Linear(rep_dim, n_classes) for _ in widths)
        self.fused_head = nn.Linear(rep_dim * len(widths), n_classes)

    def represent(self, xs: list[Tensor], present: Tensor) -> Tensor:
        """h (B, V·r); a missing view's slice is 0 (and passes no gradient to its encoder)."""
        parts = [
            enc(x) * present[:, v : v + 1]
            for v, (enc, x) in enumerate(zip(self.encoders, xs, strict=True))
        ]
        return torch.cat(parts, dim=1)

    def slice(self, v: int) -> slice:
        """The columns of h that view v's encoder produces."""
        return slice(v * self.rep_dim, (v + 1) * self.rep_dim)

    def logits(self, h: Tensor) -> list[Tensor]:
        """The V view heads' logits, then the fused head's."""
        views = [head(h[:, self.slice(v)]) for v, head in enumerate(self.view_heads)]
        return [*views, self.fused_head(h)]

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoders.parameters())


def losses(model: LateFusion, h: Tensor, labels: Tensor, present: Tensor) -> list[Tensor]:
    """The M losses: each view head's mean CE over samples where its view is present, then
    the fused head's mean CE."""
    out = []
    for v, logit in enumerate(model.logits(h)):
        ce = F.cross_entropy(logit, labels, reduction="none")
        if v < present.shape[1]:
            weight = present[:, v].to(ce.dtype)
            out.append((ce * weight).sum() / weight.sum().clamp_min(1.0))
        else:
            out.append(ce.mean())
    return out


@dataclass
class Split:
    """Standardised, corrupted train and test views of one seed and condition."""

    train: list[Tensor]
    test: list[Tensor]
    y_train: Tensor
    y_test: Tensor
    present_train: Tensor
    present_test: Tensor


def make_split(data: MultiView, cfg: LateFusionConfig, condition: str, seed: int) -> Split:
    """The seed's split (same for every method), standardised on the training part, then
    corrupted according to ``condition``."""
    rng = np.random.default_rng(seed)
    n = len(data.labels)
    order = rng.permutation(n)
    if cfg.max_samples is not None:
        order = order[: cfg.max_samples]
    n_train = round(cfg.train_fraction * len(order))
    tr, te = order[:n_train], order[n_train:]
    noise_rng = np.random.default_rng([seed, 1])
    n_views = len(data.views)
    train, test = [], []
    for v, x in enumerate(data.views):
        mu, sd = x[tr].mean(0), x[tr].std(0)
        sd = np.where(sd > 1e-8, sd, 1.0)
        a, b = (x[tr] - mu) / sd, (x[te] - mu) / sd
        if condition == "noisy" and v in cfg.noisy_views:
            a = a + cfg.noise_std * noise_rng.standard_normal(a.shape)
            b = b + cfg.noise_std * noise_rng.standard_normal(b.shape)
        train.append(a)
        test.append(b)
    present = np.ones((len(order), n_views), dtype=bool)
    if condition == "missing":
        miss_rng = np.random.default_rng([seed, 2])
        drop = miss_rng.random(len(order)) < cfg.missing_fraction
        which = miss_rng.integers(0, n_views, len(order))
        present[np.flatnonzero(drop), which[drop]] = False
    p_tr, p_te = present[:n_train], present[n_train:]
    for v in range(n_views):
        train[v] = train[v] * p_tr[:, v : v + 1]
        test[v] = test[v] * p_te[:, v : v + 1]
    as_t = [torch.tensor(a, dtype=torch.float32) for a in train]
    as_e = [torch.tensor(b, dtype=torch.float32) for b in test]
    labels = torch.as_tensor(data.labels)
    return Split(as_t, as_e, labels[tr], labels[te], torch.as_tensor(p_tr), torch.as_tensor(p_te))


def accuracy(model: LateFusion, xs: list[Tensor], labels: Tensor, present: Tensor) -> float:
    """The fused head's accuracy."""
    with torch.no_grad():
        logits = model.logits(model.represent(xs, present))[-1]
    return float((logits.argmax(1) == labels).float().mean())


def train_one(split: Split, cfg: LateFusionConfig, method: str, seed: int) -> dict[str, Any]:
    """Train one network with one aggregation; per-epoch test accuracy and view beliefs."""
    torch.manual_seed(seed)
    widths = [x.shape[1] for x in split.train]
    n_views = len(widths)
    model = LateFusion(widths, cfg.hidden, cfg.rep_dim, 10)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    agg = None
    if method in ("bogc", "bayesagg"):
        sources = [
            Source(cast(nn.Linear, head), "softmax", model.slice(v))
            for v, head in enumerate(model.view_heads)
        ]
        sources.append(Source(model.fused_head, "softmax"))
        agg = RepresentationAggregator(
            sources,
            prior_var=cfg.prior_var,
            refresh_every=cfg.refresh_every,
            **bogc_kwargs(method),
        )
    jd: Any = torchjd_aggregators().get(method)
    if agg is None and jd is None and method != "sum":
        raise ValueError(f"method: unknown or unavailable aggregation {method!r}")
    n_train = len(split.y_train)
    curve, beliefs = [], []
    for _ in range(cfg.epochs):
        perm = torch.randperm(n_train, generator=gen)
        epoch_beliefs = []
        for start in range(0, n_train, cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            if len(idx) < 2:
                continue
            xs = [x[idx] for x in split.train]
            y, present = split.y_train[idx], split.present_train[idx]
            opt.zero_grad(set_to_none=True)
            h = model.represent(xs, present)
            if method == "sum":
                torch.stack(losses(model, h, y, present)).sum().backward()
            elif agg is not None:
                torch.stack(losses(model, h.detach(), y, present)).sum().backward()
                mask = torch.cat([present, torch.ones_like(present[:, :1])], dim=1)
                cal = agg.backward(h, [y] * (n_views + 1), mask)
                epoch_beliefs.append(_view_beliefs(model, cal.belief, present))
            else:
                from torchjd.autojac import jac_to_grad, mtl_backward

                mtl_backward(losses(model, h, y, present), features=h)
                jac_to_grad(model.encoder_parameters(), jd)
            opt.step()
        curve.append(accuracy(model, split.test, split.y_test, split.present_test))
        if epoch_beliefs:
            beliefs.append(np.mean(epoch_beliefs, axis=0).tolist())
    return {"test_acc": curve[-1], "curve": curve, "beliefs": beliefs}


def _view_beliefs(model: LateFusion, belief: Tensor, present: Tensor) -> list[float]:
    """Average fused belief of each view head over its slice and present samples, then of the
    fused head over all of h."""
    out = []
    for v in range(present.shape[1]):
        b = belief[:, v, model.slice(v)].mean(dim=1)
        out.append(float(b[present[:, v]].mean()) if bool(present[:, v].any()) else float("nan"))
    out.append(float(belief[:, -1, :].mean()))
    return out


def run(cfg: LateFusionConfig, out_dir: Path, *, show_progress: bool = True) -> dict[str, Any]:
    """Every condition × seed × method; writes results.json, results.md and the plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    data = load_mfeat()
    start = time.perf_counter()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        c: {m: [] for m in cfg.methods} for c in cfg.conditions
    }
    timing: dict[str, float] = {m: 0.0 for m in cfg.methods}
    jobs = [(c, s, m) for c in cfg.conditions for s in range(cfg.seeds) for m in cfg.methods]
    split_cache: dict[tuple[str, int], Split] = {}
    for condition, seed, method in progress(jobs, "late fusion", show_progress):
        key = (condition, seed)
        if key not in split_cache:
            split_cache.clear()
            split_cache[key] = make_split(data, cfg, condition, seed)
        t0 = time.perf_counter()
        runs[condition][method].append(train_one(split_cache[key], cfg, method, seed))
        timing[method] += time.perf_counter() - t0
    summary = _summarise(cfg, runs)
    result = {
        "experiment": "late-fusion-mfeat",
        "config": asdict(cfg),
        "seconds": time.perf_counter() - start,
        "seconds_by_method": timing,
        "summary": summary,
        "runs": runs,
    }
    save_json(out_dir / "results.json", result)
    _table(cfg, summary, result["seconds"], timing, out_dir / "results.md")
    _plot_curves(cfg, runs, out_dir / "accuracy_curves.png")
    _plot_beliefs(cfg, runs, data.names, out_dir / "beliefs.png")
    return result


def _summarise(cfg: LateFusionConfig, runs: dict[str, dict[str, list[dict[str, Any]]]]) -> Any:
    summary: dict[str, Any] = {}
    for condition, by_method in runs.items():
        accs = {m: [r["test_acc"] for r in rs] for m, rs in by_method.items()}
        summary[condition] = {
            m: {
                "mean": float(np.mean(a)),
                "std": float(np.std(a, ddof=1)) if len(a) > 1 else 0.0,
                "per_seed": a,
                "bogc_minus_this": paired_test(accs["bogc"], a)
                if "bogc" in accs and m != "bogc"
                else None,
            }
            for m, a in accs.items()
        }
    return summary


def _table(
    cfg: LateFusionConfig, summary: Any, seconds: float, timing: dict[str, float], path: Path
) -> None:
    header = ["method", *cfg.conditions]
    rows = [
        [
            m,
            *[
                f"{summary[c][m]['mean'] * 100:.2f} ± {summary[c][m]['std'] * 100:.2f}"
                for c in cfg.conditions
            ],
        ]
        for m in cfg.methods
    ]
    paired_rows = []
    for m in cfg.methods:
        if m == "bogc" or "bogc" not in cfg.methods:
            continue
        cells = []
        for c in cfg.conditions:
            t = summary[c][m]["bogc_minus_this"]
            p = "n/a" if t["p"] is None else f"{t['p']:.3g}"
            cells.append(f"{t['mean_diff'] * 100:+.2f} (p = {p})")
        paired_rows.append([f"bogc − {m}", *cells])
    notes = [
        f"Fused-head test accuracy (%), mean ± std (ddof=1) over {cfg.seeds} seeds; each seed "
        "has its own split, shared by every method. Paired test: scipy.stats.ttest_rel across "
        "seeds.",
        "",
        f"Wall time {seconds:.0f} s ({cfg.threads} torch threads); per method: "
        + ", ".join(f"{m} {t:.0f} s" for m, t in timing.items())
        + ".",
    ]
    write_markdown(
        path,
        f"Late fusion on UCI Multiple Features ({cfg.epochs} epochs, noisy views "
        f"{list(cfg.noisy_views)} at std {cfg.noise_std}, missing fraction {cfg.missing_fraction})",
        [
            ("Test accuracy (%)", header, rows),
            ("Paired differences, BOGC minus each method (percentage points)", header, paired_rows),
        ],
        notes,
    )


def _plot_curves(cfg: LateFusionConfig, runs: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(cfg.conditions), figsize=(5 * len(cfg.conditions), 4), squeeze=False
    )
    epochs = np.arange(1, cfg.epochs + 1)
    for ax, condition in zip(axes[0], cfg.conditions, strict=True):
        for m in cfg.methods:
            curves = np.array([r["curve"] for r in runs[condition][m]])
            mean = curves.mean(0)
            ax.plot(epochs, mean * 100, label=m)
            ax.fill_between(epochs, curves.min(0) * 100, curves.max(0) * 100, alpha=0.15)
        ax.set(title=condition, xlabel="epoch", ylabel="test accuracy (%)")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_beliefs(cfg: LateFusionConfig, runs: Any, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "bogc" not in cfg.methods:
        return
    fig, axes = plt.subplots(
        1, len(cfg.conditions), figsize=(5 * len(cfg.conditions), 4), squeeze=False
    )
    for ax, condition in zip(axes[0], cfg.conditions, strict=True):
        beliefs = np.array([r["beliefs"] for r in runs[condition]["bogc"]])  # (S, E, V+1)
        mean = np.nanmean(beliefs, axis=0)
        epochs = np.arange(1, mean.shape[0] + 1)
        for v, name in enumerate([*names, "fused head"]):
            style = "--" if v == len(names) else "-"
            noisy = condition == "noisy" and v in cfg.noisy_views
            ax.plot(epochs, mean[:, v], style, label=name + (" (noisy)" if noisy else ""))
        ax.set(title=f"BOGC beliefs, {condition}", xlabel="epoch", ylabel="average belief b̂")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
