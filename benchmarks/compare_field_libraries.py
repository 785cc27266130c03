"""BackPACK and Opacus against the factored moments, on the parameter-level trunk model.

Not part of the suite (the libraries are not dependencies): install them into a separate
environment with the project (``pip install backpack-for-pytorch==1.7.1 opacus==1.6.0`` and
``pip install --no-deps -e .``), then run ``python benchmarks/compare_field_libraries.py``
from the repository root. Prints, for the trunk MLP of ``training_cases.py`` (P = 74,240,
B = 64, M = 3, float32, one torch thread), the time of the sources' moments (mean and
variance of the mean of the per-sample gradients) by each route and the largest relative
difference of its variance from the two-pass statistic on materialised gradients:

* ``linear_source_moments`` (factored, this project) and its ``materialise`` option;
* BackPACK's ``Variance`` (one-pass E[g²] − E[g]², rescaled to the variance of the mean),
  one forward per source (BackPACK frees its stored layer inputs after a backward);
* Opacus's grad sampler (per-sample gradients by hooks, ``loss_reduction="sum"``), then
  the two-pass moments; one forward per source as well.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def median_ms(func: Callable[[], Any], repeats: int = 15) -> float:
    import numpy as np

    func()
    func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main() -> int:
    import torch
    from backpack import backpack, extend
    from backpack.extensions import Variance
    from opacus import GradSampleModule

    from benchmarks.training_cases import (
        N_CLASSES,
        TRUNK_BATCH,
        TRUNK_INPUT,
        TRUNK_SOURCES,
        per_sample_losses,
        trunk_model,
    )
    from bogc_ref.training.linear_moments import linear_source_moments

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = trunk_model(256)
    batch, n_sources = TRUNK_BATCH, TRUNK_SOURCES
    x = torch.randn(batch, TRUNK_INPUT)
    y = torch.randint(0, N_CLASSES, (batch, n_sources))
    layers = [model.trunk[0], model.trunk[2]]

    def factored() -> Any:
        return linear_source_moments(layers, lambda: per_sample_losses(model(x), y))

    def materialised() -> Any:
        return linear_source_moments(
            layers, lambda: per_sample_losses(model(x), y), moments="materialise"
        )

    extended = extend(model)

    def with_backpack() -> Any:
        means, variances = [], []
        for m in range(n_sources):
            losses = per_sample_losses(extended(x), y)
            extended.zero_grad()
            with backpack(Variance()):
                losses[:, m].mean().backward()
            params = [p for layer in layers for p in (layer.weight, layer.bias)]
            means.append(torch.cat([p.grad.flatten() for p in params]))
            # Variance of the per-sample gradients of the mean loss (ddof 0): rescale to the
            # variance of the mean of the per-sample gradients of the losses (ddof 1).
            variances.append(
                torch.cat([p.variance.flatten() for p in params]) * batch**2 / (batch - 1)
            )
        return torch.stack(means), torch.stack(variances)

    twin = trunk_model(256)
    twin.load_state_dict(model.state_dict())
    sampler = GradSampleModule(twin, loss_reduction="sum")
    twin_layers = [sampler._module.trunk[0], sampler._module.trunk[2]]

    def with_opacus() -> Any:
        rows = []
        for m in range(n_sources):
            losses = per_sample_losses(sampler(x), y)
            sampler.zero_grad(set_to_none=True)
            losses[:, m].sum().backward()
            params = [p for layer in twin_layers for p in (layer.weight, layer.bias)]
            rows.append(torch.cat([p.grad_sample.reshape(batch, -1) for p in params], dim=1))
        grads = torch.stack(rows, dim=1)
        return grads.mean(0), grads.var(0) / batch

    _, exact = materialised()
    reached = torch.isfinite(exact) & (exact > 0)

    def worst(var: torch.Tensor) -> str:
        rel = (var - exact).abs()[reached] / exact[reached]
        return f"{float(rel.max()):.1e} (median {float(rel.median()):.1e})"

    unreached = int((~torch.isfinite(exact)).sum())
    print(f"torch {torch.__version__}, one thread; {unreached} unreached coordinates (var +inf)")
    for name, func in (
        ("factored (linear_source_moments)", factored),
        ("materialised (moments='materialise')", materialised),
        ("BackPACK Variance", with_backpack),
        ("Opacus grad sampler + two-pass", with_opacus),
    ):
        _, var = func()
        zero_where_unreached = int((var[~torch.isfinite(exact)] == 0).sum())
        print(
            f"{name:38s} {median_ms(func):8.2f} ms   max relative difference of var "
            f"{worst(var)}; var 0 (dogmatic) on {zero_where_unreached} unreached coordinates"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
