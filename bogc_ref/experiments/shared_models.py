r"""The two shared-parameter networks of the benchmark and their M + 1 losses.

Both read M modalities :math:`x_1, \dots, x_M` with presence flags :math:`p_{bm}` and give
M + 1 logits per sample: one per modality (the *unimodal* sources) and one for the fusion
(the *fused* source). Accuracy is always the fused prediction's.

- :class:`SharedTrunk`: an optional per-modality linear projection :math:`P_m` (needed when the
  modalities have different widths), then ONE trunk T (Linear → ReLU → Linear to K) applied
  to every modality, :math:`z_m = T(P_m x_m)`, and to the masked mean of the projected inputs,
  :math:`z_0 = T(\sum_m p_m P_m x_m / \sum_m p_m)`. Every trunk parameter is reached by every
  source: this is where the sources share parameters.
- :class:`SharedHead`: one encoder per modality :math:`h_m = E_m(x_m)\,p_m` (Linear → ReLU →
  Linear to r) and ONE linear head H on every modality's representation, :math:`z_m = H(h_m)`,
  and on their average :math:`z_0 = H(\tfrac1M \sum_m h_m)` (a missing modality contributes 0).
  Only the head is reached by every source; encoder m is reached by source m and the fused one.

Losses: :math:`\ell_{mb} = p_{bm}\,\mathrm{CE}(z_{mb}, y_{mb})` (m = 1..M) and
:math:`\ell_{0b} = \mathrm{CE}(z_{0b}, y_{0b})`, where :math:`y_{mb}` is the label source m
is trained on (see :class:`.shared_data.Part`); the batch loss of source m is the mean over
the batch, :math:`L_m = \frac1B \sum_b \ell_{mb}`. The fused source is stored last.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call


def _mlp(width: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, out))


class SharedTrunk(nn.Module):
    """Per-modality projections (or none) into one shared trunk; see the module docstring.

    Args:
        widths: input width of each modality.
        n_classes: K.
        hidden: the trunk's hidden width.
        project_to: width of the projections :math:`P_m`; None = no projection (every
            modality must then have the same width).
    """

    def __init__(
        self, widths: Sequence[int], n_classes: int, hidden: int, project_to: int | None
    ) -> None:
        super().__init__()
        if project_to is None and len(set(widths)) != 1:
            raise ValueError(f"widths: must be equal without a projection, got {list(widths)}")
        self.n_modalities = len(widths)
        self.projections = (
            None
            if project_to is None
            else nn.ModuleList(nn.Linear(w, project_to, bias=False) for w in widths)
        )
        self.trunk = _mlp(widths[0] if project_to is None else project_to, hidden, n_classes)

    def forward(self, xs: Sequence[Tensor], present: Tensor) -> Tensor:
        """Logits (B, M + 1, K): the M unimodal predictions, then the fused one."""
        inputs = (
            list(xs)
            if self.projections is None
            else [proj(x) for proj, x in zip(self.projections, xs, strict=True)]
        )
        weight = present.to(inputs[0].dtype)
        stacked = torch.stack(inputs, dim=1) * weight[:, :, None]  # (B, M, d)
        fused = stacked.sum(1) / weight.sum(1, keepdim=True).clamp_min(1.0)
        return self.trunk(torch.cat([stacked, fused[:, None, :]], dim=1))


class SharedHead(nn.Module):
    """Per-modality encoders into one shared linear head; see the module docstring."""

    def __init__(self, widths: Sequence[int], n_classes: int, hidden: int, rep_dim: int) -> None:
        super().__init__()
        self.n_modalities = len(widths)
        self.rep_dim = rep_dim
        self.encoders = nn.ModuleList(_mlp(w, hidden, rep_dim) for w in widths)
        self.head = nn.Linear(rep_dim, n_classes)

    def represent(self, xs: Sequence[Tensor], present: Tensor) -> Tensor:
        """h = [h_1, ..., h_M] (B, M·r); a missing modality's slice is 0."""
        weight = present.to(xs[0].dtype)
        parts = [
            enc(x) * weight[:, m : m + 1]
            for m, (enc, x) in enumerate(zip(self.encoders, xs, strict=True))
        ]
        return torch.cat(parts, dim=1)

    def slice(self, m: int) -> slice:
        """The columns of h that modality m's encoder produces."""
        return slice(m * self.rep_dim, (m + 1) * self.rep_dim)

    def heads(self, h: Tensor) -> Tensor:
        """Logits (B, M + 1, K) from h: H on each slice, then H on the slices' average."""
        slices = h.reshape(h.shape[0], self.n_modalities, self.rep_dim)
        fused = slices.mean(dim=1, keepdim=True)
        return self.head(torch.cat([slices, fused], dim=1))

    def tied_fused_head(self) -> nn.Linear:
        """The fused source as ONE linear map of h: weight [W/M, ..., W/M], H's bias (detached)."""
        w, b = self.head.weight.detach(), self.head.bias.detach()
        tied = nn.Linear(w.shape[1] * self.n_modalities, w.shape[0]).to(w.dtype)
        with torch.no_grad():
            tied.weight.copy_(torch.cat([w / self.n_modalities] * self.n_modalities, dim=1))
            tied.bias.copy_(b)
        return tied

    def forward(self, xs: Sequence[Tensor], present: Tensor) -> Tensor:
        """Logits (B, M + 1, K): the M unimodal predictions, then the fused one."""
        return self.heads(self.represent(xs, present))


def source_losses_from_logits(logits: Tensor, labels: Tensor, present: Tensor) -> Tensor:
    """Per-sample losses (B, M + 1): :math:`p_{bm}\\,CE` for the unimodal sources, CE fused."""
    ce = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")  # (B, M + 1)
    weight = torch.cat([present, torch.ones_like(present[:, :1])], dim=1).to(ce.dtype)
    return ce * weight


def batch_losses(model: nn.Module, xs: Sequence[Tensor], present: Tensor, labels: Tensor) -> Tensor:
    """The M + 1 batch losses :math:`L_m` (mean over the batch)."""
    return source_losses_from_logits(model(xs, present), labels, present).mean(dim=0)


def per_sample_loss_fn(model: nn.Module, n_modalities: int) -> Callable[..., Tensor]:
    """``loss_fn(params, *xs, present, labels) -> (M + 1,)`` for one sample (torch.func)."""

    def loss_fn(params: Mapping[str, Tensor], *sample: Tensor) -> Tensor:
        xs = [x.unsqueeze(0) for x in sample[:n_modalities]]
        present, labels = sample[n_modalities].unsqueeze(0), sample[n_modalities + 1].unsqueeze(0)
        logits = functional_call(model, dict(params), (xs, present))
        return source_losses_from_logits(logits, labels, present)[0]

    return loss_fn
