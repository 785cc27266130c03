r"""Experiment 3: where the sources share parameters, does calibrating their gradients help?

Four families (model × data), each with its conditions (see :mod:`.shared_data` and
:mod:`.shared_models`):

- ``controlled-trunk``: M = 3 modalities of a latent (D = 24, K = 4) through ONE network
  24 → 32 → 4; conditions ``sigma=<s>`` for s in ``sigmas``, ``imbalanced``, ``label-noise``,
  ``missing``;
- ``controlled-head``: the same data through three encoders and ONE shared linear head;
- ``digits-trunk`` / ``digits-head``: the six views of the UCI Multiple Features digits,
  projected into a shared trunk, or encoded into a shared head; ``clean`` and ``corrupted``.

Methods: see :mod:`.shared_methods`. Protocol, per family:

1. *Learning rate.* Adam; for every method and every learning rate of ``lr_grid``, one run on
   the tuning split (seed ``tune_seed``, the family's tuning condition: ``sigma=<tune_sigma>``
   or ``corrupted``); the pick maximises the fused accuracy on that split's validation part.
   A pick at either end of the grid is flagged in the output.
2. *Evaluation.* For every condition, seed 0..seeds−1 (one split per seed, shared by every
   method) and method: one run at the method's learning rate; fused test accuracy (and, for
   the controlled data, the accuracy on the noise-free latent given to every modality).
3. *Statistics.* Per method the mean over seeds with a 95% t-interval; against ``sum`` the
   paired per-seed differences, their mean and 95% t-interval, and how many seeds are > 0.
4. *Cost.* Wall time per training step (mean over the evaluation runs, ``threads`` torch
   threads) and the peak additional tensor memory of ``memory_steps`` steps
   (:mod:`.memory`).

Runs are deterministic for a seed: ``torch.manual_seed(seed)`` before building the model, a
seeded generator for the batches, ``torch.use_deterministic_algorithms(True)``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .memory import peak_tensor_bytes
from .report import progress, save_json, t_interval
from .shared_data import (
    CONTROLLED,
    REAL,
    ControlledData,
    Part,
    RealData,
    Split,
    controlled_split,
    real_split,
)
from .shared_methods import METHODS, make_step
from .shared_models import SharedHead, SharedTrunk

FAMILIES = ("controlled-trunk", "controlled-head", "digits-trunk", "digits-head")


@dataclass
class SharedParamsConfig:
    """Settings of experiment 3 (defaults: the documented run)."""

    seeds: int = 5
    families: tuple[str, ...] = FAMILIES
    sigmas: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
    controlled_conditions: tuple[str, ...] = CONTROLLED
    real_conditions: tuple[str, ...] = REAL
    tune_sigma: float = 4.0
    methods: tuple[str, ...] = METHODS
    lr_grid: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    epochs: int = 15
    batch_size: int = 64
    hidden: int = 32
    rep_dim: int = 16
    real_epochs: int = 12
    real_batch_size: int = 100
    real_project_to: int = 16
    real_hidden: int = 16
    real_rep_dim: int = 8
    tune_seed: int = 1000
    memory_steps: int = 2
    threads: int = 1
    controlled: ControlledData = field(default_factory=ControlledData)
    real: RealData = field(default_factory=RealData)

    def __post_init__(self) -> None:
        for f in self.families:
            if f not in FAMILIES:
                raise ValueError(f"families: unknown family {f!r}; expected one of {FAMILIES}")
        for m in self.methods:
            if m not in METHODS:
                raise ValueError(f"methods: unknown method {m!r}; expected one of {METHODS}")
        if "sum" not in self.methods:
            raise ValueError("methods: must include 'sum', the baseline of the paired differences")
        if not self.lr_grid:
            raise ValueError("lr_grid: needs at least one learning rate")

    def conditions(self, family: str) -> list[str]:
        """The family's conditions, in table order."""
        if family.startswith("controlled"):
            return [f"sigma={s:g}" for s in self.sigmas] + list(self.controlled_conditions)
        return list(self.real_conditions)

    def tune_condition(self, family: str) -> str:
        """The condition the learning rate is tuned on."""
        if family.startswith("controlled"):
            return f"sigma={self.tune_sigma:g}"
        return "corrupted"

    def methods_for(self, family: str) -> list[str]:
        """The methods that apply to the family's model."""
        return [m for m in self.methods if m != "bogc-repr" or family.endswith("head")]


@contextmanager
def _deterministic(threads: int) -> Iterator[None]:
    previous = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.set_num_threads(previous[1])


class _Splits:
    """The splits of every (data, condition, seed), built on first use and kept."""

    def __init__(self, cfg: SharedParamsConfig) -> None:
        self.cfg = cfg
        self._cache: dict[tuple[str, str, int], Split] = {}
        self._digits: Any = None

    def get(self, family: str, condition: str, seed: int) -> Split:
        data = family.split("-")[0]
        key = (data, condition, seed)
        if key not in self._cache:
            if data == "controlled":
                self._cache[key] = controlled_split(self.cfg.controlled, condition, seed)
            else:
                if self._digits is None:
                    from .mfeat import load_mfeat

                    self._digits = load_mfeat()
                views, labels = self._digits.views, self._digits.labels
                self._cache[key] = real_split(views, labels, self.cfg.real, condition, seed)
        return self._cache[key]


def build_model(cfg: SharedParamsConfig, family: str, split: Split) -> nn.Module:
    """The family's network for the split's modality widths."""
    widths = [x.shape[1] for x in split.train.xs]
    k = split.n_classes
    if family == "controlled-trunk":
        return SharedTrunk(widths, k, cfg.hidden, None)
    if family == "controlled-head":
        return SharedHead(widths, k, cfg.hidden, cfg.rep_dim)
    if family == "digits-trunk":
        return SharedTrunk(widths, k, cfg.real_hidden, cfg.real_project_to)
    return SharedHead(widths, k, cfg.real_hidden, cfg.real_rep_dim)


def fused_accuracy(model: nn.Module, part: Part) -> float:
    """Accuracy of the fused prediction on a whole part (one batched forward)."""
    with torch.no_grad():
        logits = model(part.xs, part.present)[:, -1]
    return float((logits.argmax(1) == part.labels).float().mean())


def clean_accuracy(model: nn.Module, part: Part) -> float | None:
    """Fused accuracy when every modality sees the noise-free latent (controlled data only)."""
    if part.clean is None:
        return None
    present = torch.ones_like(part.present)
    with torch.no_grad():
        logits = model([part.clean] * len(part.xs), present)[:, -1]
    return float((logits.argmax(1) == part.labels).float().mean())


def _schedule(cfg: SharedParamsConfig, family: str) -> tuple[int, int]:
    if family.startswith("controlled"):
        return cfg.epochs, cfg.batch_size
    return cfg.real_epochs, cfg.real_batch_size


def train_one(
    cfg: SharedParamsConfig, family: str, split: Split, method: str, lr: float, seed: int
) -> dict[str, Any]:
    """Train one network with one method; accuracies, time per step and beliefs per epoch."""
    torch.manual_seed(seed)
    model = build_model(cfg, family, split)
    step = make_step(method, model, len(split.train.xs))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    epochs, batch_size = _schedule(cfg, family)
    train, n_train = split.train, len(split.train)
    seconds, steps, beliefs = 0.0, 0, []
    for _ in range(epochs):
        perm = torch.randperm(n_train, generator=gen)
        epoch_beliefs = []
        for start in range(0, n_train - 1, batch_size):
            idx = perm[start : start + batch_size]
            if len(idx) < 2:
                continue
            xs = [x[idx] for x in train.xs]
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            b = step(xs, train.present[idx], train.source_labels[idx])
            opt.step()
            seconds += time.perf_counter() - t0
            steps += 1
            if b is not None:
                epoch_beliefs.append(b)
        if epoch_beliefs:
            beliefs.append(np.nanmean(np.array(epoch_beliefs), axis=0).tolist())
    return {
        "val_acc": fused_accuracy(model, split.val),
        "test_acc": fused_accuracy(model, split.test),
        "clean_acc": clean_accuracy(model, split.test),
        "seconds_per_step": seconds / max(steps, 1),
        "beliefs": beliefs,
    }


def measure_memory(
    cfg: SharedParamsConfig, family: str, split: Split, method: str, lr: float
) -> int | None:
    """Peak additional tensor bytes of ``memory_steps`` training steps (after one warm-up)."""
    torch.manual_seed(0)
    model = build_model(cfg, family, split)
    step = make_step(method, model, len(split.train.xs))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    _, batch_size = _schedule(cfg, family)
    train = split.train
    idx = torch.arange(min(batch_size, len(train)))
    xs = [x[idx] for x in train.xs]

    def steps(n: int) -> None:
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            step(xs, train.present[idx], train.source_labels[idx])
            opt.step()

    steps(1)
    return peak_tensor_bytes(lambda: steps(cfg.memory_steps))


def run(
    cfg: SharedParamsConfig, out_dir: Path, *, show_progress: bool = True, resume: bool = False
) -> dict[str, Any]:
    """Tune, evaluate and measure every family; write results.json, results.md and plots.

    Every finished job is appended to ``out_dir/checkpoint.jsonl``; with ``resume`` the jobs
    found there (for the same configuration) are not run again, so a killed run can go on.
    """
    from .shared_report import plot_accuracy_vs_sigma, plot_beliefs, write_tables

    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    splits = _Splits(cfg)
    jobs: list[tuple[Any, ...]] = []
    for family in cfg.families:
        methods = cfg.methods_for(family)
        jobs += [("tune", family, m, lr) for m in methods for lr in cfg.lr_grid]
        jobs += [("memory", family, m) for m in methods]
        jobs += [
            ("eval", family, c, s, m)
            for c in cfg.conditions(family)
            for s in range(cfg.seeds)
            for m in methods
        ]
    tuning: dict[str, dict[str, dict[str, Any]]] = {f: {} for f in cfg.families}
    memory: dict[str, dict[str, int | None]] = {f: {} for f in cfg.families}
    runs: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {
        f: {c: {m: [] for m in cfg.methods_for(f)} for c in cfg.conditions(f)} for f in cfg.families
    }
    checkpoint = _Checkpoint(out_dir / "checkpoint.jsonl", asdict(cfg), resume)
    with _deterministic(cfg.threads):
        for job in progress(jobs, "shared parameters", show_progress):
            kind, family = job[0], job[1]
            value = checkpoint.get(job)
            if kind == "tune":
                _, _, method, lr = job
                if value is None:
                    split = splits.get(family, cfg.tune_condition(family), cfg.tune_seed)
                    value = train_one(cfg, family, split, method, lr, cfg.tune_seed)["val_acc"]
                    checkpoint.add(job, value)
                entry = tuning[family].setdefault(method, {"val_acc": {}})
                entry["val_acc"][f"{lr:g}"] = value
                _pick(cfg, entry)
            elif kind == "memory":
                method = job[2]
                if job not in checkpoint:
                    split = splits.get(family, cfg.tune_condition(family), cfg.tune_seed)
                    lr = tuning[family][method]["lr"]
                    value = measure_memory(cfg, family, split, method, lr)
                    checkpoint.add(job, value)
                memory[family][method] = value
            else:
                _, _, condition, seed, method = job
                if value is None:
                    split = splits.get(family, condition, seed)
                    lr = tuning[family][method]["lr"]
                    value = train_one(cfg, family, split, method, lr, seed)
                    value.update(seed=seed, lr=lr)
                    checkpoint.add(job, value)
                runs[family][condition][method].append(value)
    seconds = time.perf_counter() - start
    result = {
        "experiment": "shared-parameters",
        "config": asdict(cfg),
        "seconds": seconds,
        "torch_threads": cfg.threads,
        "tuning": tuning,
        "memory_bytes": memory,
        "seconds_per_step": _step_times(runs),
        "summary": summarise(runs),
        "runs": runs,
    }
    save_json(out_dir / "results.json", result)
    write_tables(cfg, result, out_dir / "results.md")
    plot_accuracy_vs_sigma(cfg, result, out_dir / "accuracy_vs_sigma.png")
    plot_beliefs(cfg, result, out_dir / "beliefs.png")
    return result


class _Checkpoint:
    """Finished jobs, one JSON line each, after a first line holding the configuration."""

    def __init__(self, path: Path, config: dict[str, Any], resume: bool) -> None:
        self.path = path
        self.done: dict[str, Any] = {}
        header = json.dumps({"config": config}, sort_keys=True, default=str)
        if resume and path.exists():
            lines = path.read_text().splitlines()
            if not lines or lines[0] != header:
                raise ValueError(
                    f"resume: {path} was written with another configuration; remove it or "
                    "run without --resume"
                )
            for line in lines[1:]:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line cut short by a kill: run that job again
                self.done[json.dumps(record["job"])] = record["value"]
        else:
            path.write_text(header + "\n")

    def __contains__(self, job: tuple[Any, ...]) -> bool:
        return json.dumps(list(job)) in self.done

    def get(self, job: tuple[Any, ...]) -> Any:
        return self.done.get(json.dumps(list(job)))

    def add(self, job: tuple[Any, ...], value: Any) -> None:
        self.done[json.dumps(list(job))] = value
        with self.path.open("a") as f:
            f.write(json.dumps({"job": list(job), "value": value}) + "\n")


def _pick(cfg: SharedParamsConfig, entry: dict[str, Any]) -> None:
    """The best validation accuracy so far (first on ties) and whether it sits at an edge."""
    scores = entry["val_acc"]
    best = max(scores, key=lambda k: scores[k])
    index = [f"{lr:g}" for lr in cfg.lr_grid].index(best)
    entry["lr"] = float(best)
    entry["at_edge"] = len(cfg.lr_grid) > 1 and index in (0, len(cfg.lr_grid) - 1)


def _step_times(runs: Any) -> dict[str, dict[str, float]]:
    return {
        family: {
            method: float(
                np.mean([r["seconds_per_step"] for c in by_cond.values() for r in c[method]])
            )
            for method in next(iter(by_cond.values()))
        }
        for family, by_cond in runs.items()
    }


def summarise(runs: Any) -> dict[str, Any]:
    """Per family, condition and method: t-intervals of the accuracies and of the paired
    differences against ``sum`` (with how many seeds are above 0)."""
    summary: dict[str, Any] = {}
    for family, by_cond in runs.items():
        summary[family] = {}
        for condition, by_method in by_cond.items():
            base = by_method["sum"]
            out = {}
            for method, records in by_method.items():
                entry: dict[str, Any] = {}
                for key in ("test_acc", "clean_acc"):
                    values = [r[key] for r in records]
                    if any(v is None for v in values):
                        continue
                    diffs = [v - b[key] for v, b in zip(values, base, strict=True)]
                    entry[key] = {
                        "per_seed": values,
                        **t_interval(values),
                        "minus_sum": {
                            "per_seed": diffs,
                            "above_zero": int(sum(d > 0 for d in diffs)),
                            **t_interval(diffs),
                        },
                    }
                out[method] = entry
            summary[family][condition] = out
    return summary
