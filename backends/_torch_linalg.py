"""Cholesky with the reference's jitter policy (``bogc_ref._linalg``), on tensors.

Factor ``A``; if that fails, add ``j · mean|diag A| · I`` for ``j`` in
``JITTER_STEPS`` in turn; if none factors, raise ``numpy.linalg.LinAlgError`` with the
reference's message. Always in float64, like the reference. Each attempt costs one
device-to-host sync of the factorisation's status (the success path: exactly one).
"""

from __future__ import annotations

import numpy as np
import torch

from bogc_ref._linalg import JITTER_STEPS


def cholesky_jittered(a: torch.Tensor, name: str) -> torch.Tensor:
    """Lower factor ``L`` (float64) with ``L Lᵀ = a + jitter·I`` (jitter policy above)."""
    a = a.to(torch.float64)
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info.item()) == 0:
        return chol
    diag = torch.diagonal(a)
    scale = float(diag.abs().mean()) if diag.numel() else 0.0
    if scale > 0.0 and np.isfinite(scale):
        eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        for step in JITTER_STEPS:
            chol, info = torch.linalg.cholesky_ex(a + (step * scale) * eye)
            if int(info.item()) == 0:
                return chol
    finite = bool(torch.isfinite(a).all())
    smallest = float(torch.linalg.eigvalsh(a)[0]) if finite else float("nan")
    raise np.linalg.LinAlgError(
        f"{name}: matrix of shape {tuple(a.shape)} is not positive definite even after a "
        f"relative jitter of {JITTER_STEPS[-1]:g} x mean diagonal (smallest eigenvalue "
        f"{smallest:.3g})"
    )


def cho_inverse_solve(chol: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``A⁻¹ rhs`` from the lower factor of ``A``."""
    return torch.cholesky_solve(rhs, chol, upper=False)
