r"""The data of the shared-parameter benchmark: M modalities of one sample, split three ways.

Controlled (generated in-process). A latent input :math:`x = \mu_y + \epsilon \in \mathbb R^D`,
:math:`\epsilon \sim N(0, I)`, with K class means :math:`\mu_k \sim N(0, s^2 I)` drawn once per
seed (``separation`` s). The D dimensions are split into M equal blocks; modality m observes
a copy of the latent with Gaussian noise of standard deviation :math:`\sigma_m` in its own
block :math:`N_m` only:

.. math:: x_m = x + \sigma_m\, \xi \odot 1_{N_m}, \qquad \xi \sim N(0, I).

Conditions (:data:`CONTROLLED`): ``sigma=<s>`` (every modality at :math:`\sigma_m = s`),
``imbalanced`` (:math:`\sigma = (0, 0, 8)`), ``label-noise`` (no input noise; the last
modality's training labels are replaced by uniform random classes with probability
``label_flip``), ``missing`` (every modality at :math:`\sigma = 2`; a fraction
``missing_fraction`` of the samples, in every part of the split, lose one random modality).

Real (the UCI Multiple Features digits of :mod:`.mfeat`). The six views, standardised on the
training part; ``clean``, or ``corrupted``: views ``corrupt_views`` get Gaussian noise of
standard deviation ``corrupt_std`` in a random half of their dimensions (drawn per seed),
in every part of the split. Each view is then reduced to its first ``components`` principal
components (fitted on the training part, after the corruption; a view with fewer dimensions
keeps them all), scaled so that their average training variance is 1. The reduction keeps the
per-sample gradients of the networks small (a few thousand parameters).

Every split (train, validation, test) is a function of the seed only, so every method sees
the same data for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

#: The controlled conditions besides the sweep ``sigma=<s>``.
CONTROLLED = ("imbalanced", "label-noise", "missing")
REAL = ("clean", "corrupted")


@dataclass
class Part:
    """One part of a split: M modality inputs, labels per source, true labels, presence.

    Attributes:
        xs: M float32 tensors (N, d_m).
        source_labels: (N, M + 1) int64, the label each source's loss uses (the M unimodal
            sources, then the fused one); differs from ``labels`` only under label noise.
        labels: (N,) int64, the true labels (what accuracy is measured against).
        present: (N, M) bool, False where a modality is missing.
        clean: the noise-free latent input (N, D) of the controlled data (None for real data).
    """

    xs: list[Tensor]
    source_labels: Tensor
    labels: Tensor
    present: Tensor
    clean: Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Split:
    """Train, validation and test parts of one seed and condition."""

    train: Part
    val: Part
    test: Part
    n_classes: int


@dataclass
class ControlledData:
    """Sizes and constants of the controlled data (defaults: the documented run)."""

    n_modalities: int = 3
    dim: int = 24
    n_classes: int = 4
    separation: float = 0.5
    n_train: int = 640
    n_val: int = 320
    n_test: int = 2000
    label_flip: float = 0.5
    missing_fraction: float = 0.5
    missing_sigma: float = 2.0


def controlled_sigmas(condition: str, m: int, missing_sigma: float = 2.0) -> tuple[float, ...]:
    """The per-modality block noise of a controlled condition."""
    if condition.startswith("sigma="):
        return (float(condition.split("=", 1)[1]),) * m
    if condition == "imbalanced":
        return (0.0,) * (m - 1) + (8.0,)
    if condition == "label-noise":
        return (0.0,) * m
    if condition == "missing":
        return (missing_sigma,) * m
    raise ValueError(
        f"condition: unknown controlled condition {condition!r}; expected 'sigma=<s>' or one "
        f"of {CONTROLLED}"
    )


def controlled_split(cfg: ControlledData, condition: str, seed: int) -> Split:
    """The seed's controlled split under ``condition`` (see the module docstring)."""
    if cfg.dim % cfg.n_modalities:
        raise ValueError(
            f"dim: must be a multiple of n_modalities={cfg.n_modalities}, got {cfg.dim}"
        )
    sigmas = controlled_sigmas(condition, cfg.n_modalities, cfg.missing_sigma)
    rng = np.random.default_rng([seed, 14])
    means = cfg.separation * rng.standard_normal((cfg.n_classes, cfg.dim))
    sizes = (cfg.n_train, cfg.n_val, cfg.n_test)
    parts = []
    for index, n in enumerate(sizes):
        y = rng.integers(0, cfg.n_classes, n)
        x = means[y] + rng.standard_normal((n, cfg.dim))
        block = cfg.dim // cfg.n_modalities
        xs = []
        for m, sigma in enumerate(sigmas):
            xm = x.copy()
            xm[:, m * block : (m + 1) * block] += sigma * rng.standard_normal((n, block))
            xs.append(xm)
        source_labels = np.repeat(y[:, None], cfg.n_modalities + 1, axis=1)
        if condition == "label-noise" and index == 0:
            flip = rng.random(n) < cfg.label_flip
            source_labels[flip, cfg.n_modalities - 1] = rng.integers(0, cfg.n_classes, flip.sum())
        present = _presence(rng, n, cfg.n_modalities, condition, cfg.missing_fraction)
        parts.append(_part(xs, source_labels, y, present, clean=x))
    return Split(parts[0], parts[1], parts[2], n_classes=cfg.n_classes)


def _presence(
    rng: np.random.Generator, n: int, m: int, condition: str, fraction: float
) -> NDArray[np.bool_]:
    present = np.ones((n, m), dtype=bool)
    if condition == "missing":
        drop = rng.random(n) < fraction
        which = rng.integers(0, m, n)
        present[np.flatnonzero(drop), which[drop]] = False
    return present


def _part(
    xs: list[NDArray[np.float64]],
    source_labels: NDArray[np.int64],
    y: NDArray[np.int64],
    present: NDArray[np.bool_],
    clean: NDArray[np.float64] | None = None,
) -> Part:
    """Tensors of one part; a missing modality's input is zeroed."""
    tensors = [
        torch.tensor(x * present[:, m : m + 1], dtype=torch.float32) for m, x in enumerate(xs)
    ]
    return Part(
        xs=tensors,
        source_labels=torch.as_tensor(source_labels, dtype=torch.int64),
        labels=torch.as_tensor(y, dtype=torch.int64),
        present=torch.as_tensor(present),
        clean=None if clean is None else torch.tensor(clean, dtype=torch.float32),
    )


@dataclass
class RealData:
    """Split and corruption of the digits (defaults: the documented run)."""

    train_fraction: float = 0.5
    val_fraction: float = 0.2
    corrupt_views: tuple[int, ...] = (1, 3)
    corrupt_std: float = 4.0
    corrupt_share: float = 0.5
    components: int = 16
    max_samples: int | None = None


def real_split(
    views: list[NDArray[np.float64]],
    labels: NDArray[np.int64],
    cfg: RealData,
    condition: str,
    seed: int,
) -> Split:
    """The seed's split of the digits under ``condition`` (``clean`` or ``corrupted``)."""
    if condition not in REAL:
        raise ValueError(f"condition: unknown real-data condition {condition!r}; expected {REAL}")
    rng = np.random.default_rng([seed, 15])
    order = rng.permutation(len(labels))
    if cfg.max_samples is not None:
        order = order[: cfg.max_samples]
    n_train = round(cfg.train_fraction * len(order))
    n_val = round(cfg.val_fraction * len(order))
    index = (order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])
    per_part: list[list[NDArray[np.float64]]] = [[], [], []]
    for v, x in enumerate(views):
        mu, sd = x[index[0]].mean(0), x[index[0]].std(0)
        sd = np.where(sd > 1e-8, sd, 1.0)
        dims = rng.permutation(x.shape[1])[: round(cfg.corrupt_share * x.shape[1])]
        for p, rows in enumerate(index):
            z = (x[rows] - mu) / sd
            if condition == "corrupted" and v in cfg.corrupt_views:
                z[:, dims] += cfg.corrupt_std * rng.standard_normal((len(rows), len(dims)))
            per_part[p].append(z)
        reduced = _principal_components([part[v] for part in per_part], cfg.components)
        for p in range(3):
            per_part[p][v] = reduced[p]
    n_classes = int(labels.max()) + 1
    parts = []
    for p, rows in enumerate(index):
        y = labels[rows]
        source_labels = np.repeat(y[:, None], len(views) + 1, axis=1)
        present = np.ones((len(rows), len(views)), dtype=bool)
        parts.append(_part(per_part[p], source_labels, y, present))
    return Split(parts[0], parts[1], parts[2], n_classes=n_classes)


def _principal_components(parts: list[NDArray[np.float64]], k: int) -> list[NDArray[np.float64]]:
    """Every part projected on the first k principal axes of parts[0] (the training part),
    centred on its mean and scaled to an average training variance of 1."""
    train = parts[0]
    mu = train.mean(0)
    _, _, vt = np.linalg.svd(train - mu, full_matrices=False)
    axes = vt[: min(k, vt.shape[0])].T
    projected = [(x - mu) @ axes for x in parts]
    scale = np.sqrt(np.mean(projected[0].var(0)))
    return [x / scale for x in projected]
