"""Tables and plots of the shared-parameter benchmark (from the result dictionary only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .report import write_markdown

NAMES = {
    "sum": "sum of losses",
    "bogc": "BOGC, parameter level",
    "bayesagg": "BayesAgg limit (normalize=True)",
    "bogc-repr": "BOGC, representation level",
    "mgda": "MGDA (torchjd)",
    "upgrad": "UPGrad (torchjd)",
    "pcgrad": "PCGrad (torchjd)",
    "imtlg": "IMTL-G (torchjd)",
}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def _interval(stats: dict[str, Any], signed: bool = False) -> str:
    mean = stats["mean"]
    text = f"{100 * mean:+.2f}" if signed else f"{100 * mean:.2f}"
    if stats["half_width"] is not None:
        text += f" ± {100 * stats['half_width']:.2f}"
    return text


def write_tables(cfg: Any, result: dict[str, Any], path: Path) -> None:
    """results.md: learning rates, accuracies, paired differences against sum, cost."""
    blocks = []
    tuning = result["tuning"]
    grid = [f"{lr:g}" for lr in cfg.lr_grid]
    edges = []
    for family in cfg.families:
        rows = []
        for method, entry in tuning[family].items():
            flag = " (grid edge)" if entry["at_edge"] else ""
            rows.append(
                [
                    NAMES.get(method, method),
                    f"{entry['lr']:g}{flag}",
                    *[_pct(entry["val_acc"].get(g)) for g in grid],
                ]
            )
            if entry["at_edge"]:
                edges.append(f"{family}/{method}")
        blocks.append(
            (
                f"{family}: learning rate picked on the validation split of "
                f"{cfg.tune_condition(family)}, seed {cfg.tune_seed} (validation accuracy %)",
                ["method", "picked", *[f"lr={g}" for g in grid]],
                rows,
            )
        )
    summary = result["summary"]
    for family in cfg.families:
        conditions = cfg.conditions(family)
        methods = cfg.methods_for(family)
        acc_rows = [
            [
                NAMES.get(m, m),
                *[_interval(summary[family][c][m]["test_acc"]) for c in conditions],
            ]
            for m in methods
        ]
        blocks.append(
            (
                f"{family}: fused test accuracy (%), mean ± 95% t-interval over {cfg.seeds} seeds",
                ["method", *conditions],
                acc_rows,
            )
        )
        diff_rows = [
            [NAMES.get(m, m), *[_diff_cell(summary[family][c][m]["test_acc"]) for c in conditions]]
            for m in methods
            if m != "sum"
        ]
        blocks.append(
            (
                f"{family}: paired difference against sum (points), mean ± 95% t-interval "
                "[seeds above 0]",
                ["method", *conditions],
                diff_rows,
            )
        )
        if family.startswith("controlled"):
            clean_rows = [
                [
                    NAMES.get(m, m),
                    *[
                        _diff_cell(summary[family][c][m]["clean_acc"])
                        if m != "sum"
                        else _interval(summary[family][c][m]["clean_acc"])
                        for c in conditions
                    ],
                ]
                for m in methods
            ]
            blocks.append(
                (
                    f"{family}: accuracy on the noise-free latent (%; sum: its accuracy, "
                    "others: paired difference against sum)",
                    ["method", *conditions],
                    clean_rows,
                )
            )
    blocks.append(_cost_block(cfg, result))
    notes = [
        f"Seeds 0..{cfg.seeds - 1}; each seed has its own split (train, validation, test), "
        "shared by every method. Intervals: two-sided 95% t-intervals over seeds; paired "
        "differences are taken seed by seed.",
        "",
        (
            "Learning rates at the edge of the grid: " + ", ".join(edges) + "."
            if edges
            else "No learning rate was picked at the edge of the grid."
        ),
        "",
        f"Total wall time {result['seconds']:.0f} s with {cfg.threads} torch thread(s).",
    ]
    write_markdown(path, "Shared-parameter benchmark", blocks, notes)


def _diff_cell(stats: dict[str, Any]) -> str:
    d = stats["minus_sum"]
    return f"{_interval(d, signed=True)} [{d['above_zero']}/{len(d['per_seed'])}]"


def _cost_block(cfg: Any, result: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    header = ["method"]
    for family in cfg.families:
        header += [f"{family} ms/step", f"{family} peak MB"]
    rows = []
    for m in cfg.methods:
        row = [NAMES.get(m, m)]
        for family in cfg.families:
            t = result["seconds_per_step"][family].get(m)
            mem = result["memory_bytes"][family].get(m)
            row.append("n/a" if t is None else f"{1000 * t:.1f}")
            row.append("n/a" if mem is None else f"{mem / 2**20:.2f}")
        rows.append(row)
    return (
        "Cost: wall time per training step (mean over the evaluation runs) and peak additional "
        "tensor memory of a step (torch profiler)",
        header,
        rows,
    )


def plot_accuracy_vs_sigma(cfg: Any, result: dict[str, Any], path: Path) -> None:
    """Fused test accuracy and its paired difference against sum, against σ, with 95% bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = [f for f in cfg.families if f.startswith("controlled")]
    if not families or not cfg.sigmas:
        return
    fig, axes = plt.subplots(
        2, len(families), figsize=(5.5 * len(families), 7), squeeze=False, sharex=True
    )
    sigmas = list(cfg.sigmas)
    colors = {m: f"C{i}" for i, m in enumerate(cfg.methods)}  # the same in both rows
    for col, family in enumerate(families):
        summary = result["summary"][family]
        for m in cfg.methods_for(family):
            for row, key in ((0, None), (1, "minus_sum")):
                if row == 1 and m == "sum":
                    continue
                stats = [summary[f"sigma={s:g}"][m]["test_acc"] for s in sigmas]
                if key:
                    stats = [s[key] for s in stats]
                mean = np.array([100 * s["mean"] for s in stats])
                half = np.array([100 * (s["half_width"] or 0.0) for s in stats])
                ax = axes[row][col]
                ax.plot(sigmas, mean, marker="o", color=colors[m], label=NAMES.get(m, m))
                ax.fill_between(sigmas, mean - half, mean + half, alpha=0.15, color=colors[m])
        axes[0][col].set(title=family, ylabel="fused test accuracy (%)")
        axes[1][col].axhline(0.0, color="black", lw=0.8)
        axes[1][col].set(xlabel="block noise σ of every modality", ylabel="minus sum (points)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_beliefs(cfg: Any, result: dict[str, Any], path: Path) -> None:
    """Average belief of each source over training (BOGC, parameter level), per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "bogc" not in cfg.methods:
        return
    panels = []
    for family in cfg.families:
        for condition in ("imbalanced", "sigma=4", "corrupted"):
            if condition in cfg.conditions(family):
                panels.append((family, condition))
    if not panels:
        return
    n_cols = min(3, len(panels))
    n_rows = -(-len(panels) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.3 * n_rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (family, condition) in zip(axes.flat, panels, strict=False):
        beliefs = np.array([r["beliefs"] for r in result["runs"][family][condition]["bogc"]])
        mean = np.nanmean(beliefs, axis=0)  # (epochs, M + 1)
        epochs = np.arange(1, mean.shape[0] + 1)
        for source in range(mean.shape[1]):
            fused = source == mean.shape[1] - 1
            label = "fused" if fused else f"modality {source + 1}"
            ax.plot(epochs, mean[:, source], "--" if fused else "-", label=label)
        ax.set(title=f"{family}, {condition}", xlabel="epoch", ylabel="average belief b̂")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
