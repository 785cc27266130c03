"""Stage 1 on tensors: the code of ``_xp_stage1`` with torch as its namespace.

Formulas and symbols as in the reference modules ``bogc_ref._linear_head``,
``bogc_ref._softmax_head`` and ``bogc_ref._empirical``; the formulas are written once,
in ``_xp_stage1``, and run here through the adapter of ``_torch_xp``. Everything is
batched over the B samples (and, for the linearized moments, the Laplace fit and the
Newton mean, over any leading axes: a stack of heads); the Monte Carlo moments loop over
chunks of draws only.
Moment functions compute in the compute dtype (float32 for float32 and half inputs,
float64 for float64); the posterior fits and every Cholesky factor are computed in
float64, like the reference, and cast back. Inputs are validated already.
"""

from __future__ import annotations

import torch

from . import _xp_stage1 as xs
from ._torch_xp import TorchLinalg, namespace_of

Pair = tuple[torch.Tensor, torch.Tensor]


def linear_head_moments(
    h: torch.Tensor, y: torch.Tensor, w_mean: torch.Tensor, w_cov: torch.Tensor
) -> Pair:
    """Exact moments of the squared-error head (``bogc_ref.linear_head_moments``)."""
    out: Pair = xs.linear_head_moments(namespace_of(h), h, y, w_mean, w_cov)
    return out


def softmax_head_moments(
    h: torch.Tensor,
    targets: torch.Tensor,
    w_mean: torch.Tensor,
    w_cov: torch.Tensor,
    *,
    eps: torch.Tensor | None,
    count: int,
    generator: torch.Generator | None,
    chunk: int,
) -> Pair:
    r"""Monte Carlo moments, ``chunk`` draws at a time, merged with Chan et al.'s update.

    :math:`\theta_s = \mu + L\varepsilon_s` with :math:`L` the jittered Cholesky factor
    of ``w_cov`` (see ``_xp_stage1.softmax_head_moments``). With ``eps`` None, draws come
    from ``generator`` (or the global generator), one ``randn`` call per chunk.
    """
    cdt = h.dtype
    chol = xs.psd_factor(namespace_of(w_cov), w_cov, "w_cov").to(cdt)
    n_params = chol.shape[0]

    def draws(start: int, size: int) -> torch.Tensor:
        if eps is not None:
            return eps[start : start + size]
        return torch.randn((size, n_params), generator=generator, dtype=cdt, device=h.device)

    out: Pair = xs.softmax_head_moments(
        namespace_of(h), h, targets, w_mean, chol, draws, count, chunk
    )
    return out


def softmax_head_moments_linearized(
    h: torch.Tensor,
    targets: torch.Tensor,
    w_mean: torch.Tensor,
    w_cov: torch.Tensor,
    clamp: bool = True,
    layouts: xs.LinearizedCovariance | None = None,
) -> Pair:
    """mean = g(μ), var = diag(J Σ Jᵀ) (``bogc_ref.softmax_head_moments_linearized``);
    ``clamp`` and ``layouts``: see ``_xp_stage1.softmax_head_moments_linearized``."""
    out: Pair = xs.softmax_head_moments_linearized(
        namespace_of(h), h, targets, w_mean, w_cov, clamp, layouts
    )
    return out


def linearized_covariance(
    w_cov: torch.Tensor, n_classes: int, width: int
) -> xs.LinearizedCovariance:
    """Σ rearranged once for many linearized-moments calls
    (``_xp_stage1.linearized_covariance``)."""
    return xs.linearized_covariance(namespace_of(w_cov), w_cov, n_classes, width)


def empirical_moments(g: torch.Tensor) -> Pair:
    r""":math:`\bar g = \frac1N\sum_n G_n`, :math:`\frac{1}{N(N-1)}\sum_n (G_n - \bar g)^2`."""
    out: Pair = xs.empirical_moments(namespace_of(g), g)
    return out


def empirical_moments_scaled(g: torch.Tensor) -> Pair:
    """Moments with each entry's samples scaled by their largest magnitude first
    (``_xp_stage1.empirical_moments_scaled``), for sums that overflow."""
    out: Pair = xs.empirical_moments_scaled(namespace_of(g), g)
    return out


def linear_head_posterior(
    h: torch.Tensor, y: torch.Tensor, m0: torch.Tensor, p0: torch.Tensor, noise_var: float
) -> Pair:
    r"""Λ = P0 + H̃ᵀH̃/σ², μ_k = Λ⁻¹(P0 m0_k + H̃ᵀy_k/σ²), Σ = Λ⁻¹ (float64 inputs)."""
    out: Pair = xs.linear_head_posterior(namespace_of(h), TorchLinalg, h, y, m0, p0, noise_var)
    return out


def softmax_head_laplace(
    h: torch.Tensor,
    targets: torch.Tensor,
    theta: torch.Tensor,
    m0: torch.Tensor,
    p0: torch.Tensor | float,
) -> Pair:
    r"""One Newton step with the GGN Λ = P0 + Σ_b (diag p_b − p_b p_bᵀ) ⊗ h̃_b h̃_bᵀ
    (float64 inputs; ``bogc_ref.softmax_head_laplace``); ``p0`` a matrix or a float c for
    c I (``_xp_stage1.PriorPrecision``)."""
    out: Pair = xs.softmax_head_laplace(namespace_of(h), TorchLinalg, h, targets, theta, m0, p0)
    return out


def laplace_mean_with_covariance(
    h: torch.Tensor,
    targets: torch.Tensor,
    theta: torch.Tensor,
    m0: torch.Tensor,
    p0: torch.Tensor | float,
    cov: torch.Tensor,
) -> torch.Tensor:
    r"""θ − Σ∇ at weights θ with a cached Laplace covariance Σ (not a spec function: the
    training integration's refresh policy; ``_xp_stage1.laplace_mean_with_covariance``);
    ``p0`` a matrix or a float c for c I."""
    out: torch.Tensor = xs.laplace_mean_with_covariance(
        namespace_of(h), h, targets, theta, m0, p0, cov
    )
    return out
