"""One optimiser step of a small two-modality model: BOGC aggregation against a plain sum.

Model: per-modality encoders (32 and 48 inputs), a fusion layer giving the shared
representation h (B = 64, D = 64), and one 10-class head per modality on h (M = 2
sources). ``plain``: backward of the summed cross-entropies. ``bogc-<backend>``: the heads
get their ordinary gradients; for the trunk, each source's per-sample gradients
∂ℓ_m/∂h_b are drawn N = 8 times under dropout on h (p = 0.1), reduced by
``empirical_moments`` to (mean, var) of shape (B, M, D), fused by ``calibrate`` and
back-propagated as dL/dh_b = grad_b / B. The difference of the two is the per-step
overhead of BOGC on this model (CPU, float32).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._support import load_backend, preload_torch

preload_torch()

BATCH, DIM, CLASSES, DRAWS, DROPOUT = 64, 64, 10, 8, 0.1
INPUTS = (32, 48)


def import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise NotImplementedError(f"torch is not installed: {exc}") from exc
    return torch


def build_model(torch: Any, seed: int = 0) -> Any:
    """The two-modality network (encoders, fusion, one head per modality)."""
    nn = torch.nn
    torch.manual_seed(seed)

    class TwoModalityNet(nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.encoders = nn.ModuleList(
                [nn.Sequential(nn.Linear(n, DIM), nn.ReLU()) for n in INPUTS]
            )
            self.fusion = nn.Sequential(nn.Linear(len(INPUTS) * DIM, DIM), nn.ReLU())
            self.heads = nn.ModuleList([nn.Linear(DIM, CLASSES) for _ in INPUTS])

        def represent(self, inputs: list[Any]) -> Any:
            parts = [enc(x) for enc, x in zip(self.encoders, inputs, strict=True)]
            return self.fusion(torch.cat(parts, dim=-1))

    return TwoModalityNet()


def per_sample_source_gradients(torch: Any, heads: Any, h: Any, labels: Any) -> Any:
    """G (N, B, M, D): dropout draws of ∂CE(head_m(h_b), y_b)/∂h_b for every source m."""
    replicated = h.detach().unsqueeze(0).expand(DRAWS, *h.shape).clone().requires_grad_(True)
    targets = labels.repeat(DRAWS)
    grads = []
    for head in heads:
        dropped = torch.nn.functional.dropout(replicated, p=DROPOUT, training=True)
        logits = head(dropped).reshape(-1, CLASSES)
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        (grad,) = torch.autograd.grad(loss, replicated)
        grads.append(grad)
    return torch.stack(grads, dim=2)


class TrainingStep:
    """Forward, backward and SGD update of one batch."""

    params = (("plain", "bogc-numpy", "bogc-torch-cpu"),)
    param_names = ("aggregation",)
    rounds = 1
    repeat = (3, 30, 5.0)

    def setup(self, aggregation: str) -> None:
        torch = self.torch = import_torch()
        self.backend = None if aggregation == "plain" else load_backend(aggregation[5:])
        self.model = build_model(torch)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-2)
        rng = np.random.default_rng(0)
        self.inputs = [
            torch.from_numpy(rng.standard_normal((BATCH, n), dtype=np.float32)) for n in INPUTS
        ]
        self.labels = torch.from_numpy(rng.integers(0, CLASSES, size=BATCH))

    def step(self) -> None:
        """One training step with the configured aggregation."""
        torch = self.torch
        cross_entropy = torch.nn.functional.cross_entropy
        self.optimizer.zero_grad()
        h = self.model.represent(self.inputs)
        if self.backend is None:
            loss = sum(cross_entropy(head(h), self.labels) for head in self.model.heads)
            loss.backward()
        else:
            detached = h.detach().requires_grad_(True)
            loss = sum(cross_entropy(head(detached), self.labels) for head in self.model.heads)
            loss.backward()  # the heads' own parameter gradients
            grads = per_sample_source_gradients(torch, self.model.heads, detached, self.labels)
            native = grads.numpy() if self.backend.name == "numpy" else grads
            mean, var = self.backend.empirical_moments(native)
            fused = self.backend.calibrate(mean, var).grad
            fused = torch.as_tensor(fused) if self.backend.name == "numpy" else fused
            h.backward(fused / h.shape[0])
        self.optimizer.step()

    def time_training_step(self, aggregation: str) -> None:
        self.step()
