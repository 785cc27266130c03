"""Stage 1 on tensors: gradient moments and head posteriors (inputs already validated).

Formulas and symbols as in the reference modules ``bogc_ref._linear_head``,
``bogc_ref._softmax_head`` and ``bogc_ref._empirical``. Everything is batched over the
B samples (no Python loop over samples); the Monte Carlo moments loop over chunks of
draws only. Moment functions compute in the compute dtype (float32 for float32 and
half inputs, float64 for float64); the posterior fits and every Cholesky factor are
computed in float64, like the reference, and cast back.
"""

from __future__ import annotations

import torch

from ._torch_linalg import cho_inverse_solve, cholesky_jittered


def augmented(h: torch.Tensor) -> torch.Tensor:
    """``h̃ = [h, 1]``: the bias input appended last."""
    return torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)


def linear_head_moments(
    h: torch.Tensor, y: torch.Tensor, w_mean: torch.Tensor, w_cov: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact :math:`E[g_i] = \sum_k(\rho a_i + c_i)` and
    :math:`\mathrm{Var}[g_i] = \sum_k(\rho^2\sigma_i^2 + a_i^2 s^2 + 2\rho a_i c_i
    + s^2\sigma_i^2 + c_i^2)` (see ``bogc_ref.linear_head_moments``), as matrix products.
    """
    dim = h.shape[1]
    h_tilde = augmented(h)
    rho = h_tilde @ w_mean.T - y  # (B, K)
    sigma_h = torch.einsum("kij,bj->bki", w_cov, h_tilde)  # Σ_k h̃, (B, K, D+1)
    s2 = torch.einsum("bki,bi->bk", sigma_h, h_tilde)  # (B, K)
    c = sigma_h[..., :dim]  # (B, K, D)
    a = w_mean[:, :dim]  # (K, D)
    sigma2 = torch.diagonal(w_cov, dim1=1, dim2=2)[:, :dim]  # (K, D)
    mean = rho @ a + c.sum(dim=1)
    var = (
        (rho * rho) @ sigma2
        + s2 @ (a * a)
        + 2.0 * torch.einsum("bk,kd,bkd->bd", rho, a, c)
        + s2 @ sigma2
        + (c * c).sum(dim=1)
    )
    return mean, var


def _gradients(weights: torch.Tensor, h_tilde: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """g = W[:, :D]ᵀ(softmax(W h̃) - y) for draws (S, K, D+1) and every sample: (S, B, D)."""
    logits = torch.einsum("skj,bj->sbk", weights, h_tilde)
    residual = torch.softmax(logits, dim=-1) - targets
    return torch.einsum("sbk,skd->sbd", residual, weights[..., :-1])


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
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Monte Carlo moments, ``chunk`` draws at a time, merged with Chan et al.'s update.

    :math:`\theta_s = \mu + L\varepsilon_s`; chunk statistics (mean, sum of squared
    deviations) are merged as :math:`\bar g \leftarrow \bar g + \delta\, n_c/n`,
    :math:`M_2 \leftarrow M_2 + M_{2,c} + \delta^2 n_a n_c / n`. Memory is
    O(chunk · B · (D + K)). With ``eps`` None, draws come from ``generator`` (or the
    global generator) chunk by chunk.
    """
    cdt = h.dtype
    h_tilde = augmented(h)
    chol = cholesky_jittered(w_cov, "w_cov").to(cdt)
    mu_flat = w_mean.reshape(-1)
    n_params = mu_flat.numel()
    n_rows, n_features = h.shape
    total = 0
    mean = torch.zeros((n_rows, n_features), dtype=cdt, device=h.device)
    sq_dev = torch.zeros_like(mean)
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        if eps is not None:
            draws = eps[start : start + size]
        else:
            draws = torch.randn((size, n_params), generator=generator, dtype=cdt, device=h.device)
        weights = (mu_flat + draws @ chol.T).reshape(size, *w_mean.shape)
        g = _gradients(weights, h_tilde, targets)
        chunk_mean = g.mean(dim=0)
        chunk_sq_dev = ((g - chunk_mean) ** 2).sum(dim=0)
        delta = chunk_mean - mean
        merged = total + size
        mean = mean + delta * (size / merged)
        sq_dev = sq_dev + chunk_sq_dev + delta * delta * (total * size / merged)
        total = merged
    return mean, sq_dev / (count - 1)


def softmax_head_moments_linearized(
    h: torch.Tensor, targets: torch.Tensor, w_mean: torch.Tensor, w_cov: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""mean = g(μ), var = diag(J Σ Jᵀ) in three terms that never form J
    (see ``bogc_ref.softmax_head_moments_linearized`` for the derivation)."""
    n_classes, width = w_mean.shape
    dim = width - 1
    h_tilde = augmented(h)
    blocks = w_cov.reshape(n_classes, width, n_classes, width)
    p = torch.softmax(h_tilde @ w_mean.T, dim=-1)  # (B, K)
    r = p - targets
    a_weights = w_mean[:, :dim]  # (K, D)
    mean = r @ a_weights
    centred = a_weights.T.unsqueeze(0) - (p @ a_weights).unsqueeze(-1)  # (B, D, K)
    jac_a = centred * p.unsqueeze(1)  # (B, D, K)
    same_dim = torch.diagonal(blocks[:, :dim, :, :dim], dim1=1, dim2=3)  # (K, K, D)
    term1 = torch.einsum("bl,bm,lmi->bi", r, r, same_dim)
    cross = torch.einsum("limj,bj->blim", blocks[:, :dim, :, :], h_tilde)  # (B, K, D, K)
    term2 = 2.0 * torch.einsum("bl,bim,blim->bi", r, jac_a, cross)
    sigma_h = torch.einsum("ljmk,bk->bljm", blocks, h_tilde)  # (B, K, D+1, K)
    quad = torch.einsum("bj,bljm->blm", h_tilde, sigma_h)  # (B, K, K)
    term3 = torch.einsum("bil,bim,blm->bi", jac_a, jac_a, quad)
    # Rounding can take the sum below 0 only where the true variance is below its terms'
    # rounding level (a saturated softmax); as in the reference, that is 0.
    return mean, (term1 + term2 + term3).clamp(min=0.0)


def empirical_moments(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`\bar g = \frac1N\sum_n G_n`, :math:`\frac{1}{N(N-1)}\sum_n (G_n - \bar g)^2`."""
    n = g.shape[0]
    mean = g.mean(dim=0)
    var = ((g - mean) ** 2).sum(dim=0) / (n * (n - 1))
    return mean, var


def linear_head_posterior(
    h: torch.Tensor, y: torch.Tensor, m0: torch.Tensor, p0: torch.Tensor, noise_var: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Λ = P0 + H̃ᵀH̃/σ², μ_k = Λ⁻¹(P0 m0_k + H̃ᵀy_k/σ²), Σ = Λ⁻¹ (float64 inputs)."""
    h_tilde = augmented(h)
    precision = p0 + h_tilde.T @ h_tilde / noise_var
    chol = cholesky_jittered(precision, "posterior precision P0 + H̃ᵀH̃/noise_var")
    rhs = p0 @ m0.T + h_tilde.T @ y / noise_var
    mean = cho_inverse_solve(chol, rhs).T
    eye = torch.eye(h_tilde.shape[1], dtype=h_tilde.dtype, device=h.device)
    cov = cho_inverse_solve(chol, eye)
    cov = 0.5 * (cov + cov.T)
    return mean, cov


def softmax_head_laplace(
    h: torch.Tensor,
    targets: torch.Tensor,
    theta: torch.Tensor,
    m0: torch.Tensor,
    p0: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One Newton step with the GGN Λ = P0 + Σ_b (diag p_b − p_b p_bᵀ) ⊗ h̃_b h̃_bᵀ
    (float64 inputs); the Kronecker sum is one (K², B) × (B, (D+1)²) product."""
    n_classes, width = theta.shape
    n_params = n_classes * width
    h_tilde = augmented(h)
    p = torch.softmax(h_tilde @ theta.T, dim=-1)  # (B, K)
    curvature = torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)  # (B, K, K)
    outer = h_tilde.unsqueeze(-1) * h_tilde.unsqueeze(-2)  # (B, D+1, D+1)
    ggn = (curvature.reshape(-1, n_classes**2).T @ outer.reshape(-1, width**2)).reshape(
        n_classes, n_classes, width, width
    )
    precision = p0 + ggn.permute(0, 2, 1, 3).reshape(n_params, n_params)
    grad = ((p - targets).T @ h_tilde).reshape(-1) + p0 @ (theta - m0).reshape(-1)
    chol = cholesky_jittered(precision, "Laplace precision P0 + GGN")
    mean = theta.reshape(-1) - cho_inverse_solve(chol, grad.unsqueeze(-1)).squeeze(-1)
    eye = torch.eye(n_params, dtype=theta.dtype, device=h.device)
    cov = cho_inverse_solve(chol, eye)
    cov = 0.5 * (cov + cov.T)
    return mean.reshape(theta.shape), cov
