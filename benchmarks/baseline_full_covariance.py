r"""Baseline: the full D×D gradient covariance of every sample, from fourth-order moments.

This is how prior Bayesian gradient-aggregation code (BayesAgg-MTL's exact regression
moments) obtains the per-dimension variance that ``bogc_ref.linear_head_moments`` computes
directly: form :math:`\mathrm{Cov}[g]` of each sample as a D×D matrix, then keep its
diagonal. Written here from the mathematics, for the benchmarks only.

For one output with :math:`w \sim N(\mu, \Sigma)` over :math:`\tilde h`'s D+1 entries,
residual :math:`r = w^\top\tilde h - y` and :math:`g = P w\, r` (P keeps the first D
entries), write :math:`S = \Sigma + \mu\mu^\top = E[ww^\top]` and :math:`A = \tilde h\tilde h^\top`.
Isserlis' theorem (fourth moments of a Gaussian, expanded around its mean) gives

.. math::

    E[w w^\top A w w^\top] &= S (A + A^\top) S + (\mu^\top A \mu)(\Sigma - \mu\mu^\top)
                             + \mathrm{tr}(A\Sigma)\, S, \\
    E[(\tilde h^\top w)\, w w^\top] &= (\tilde h^\top\mu)\, S + \mu(\Sigma\tilde h)^\top
                                       + (\Sigma\tilde h)\mu^\top,

so :math:`E[r^2 ww^\top] = E[ww^\top A ww^\top] - 2y\,E[(\tilde h^\top w)ww^\top] + y^2 S`,
:math:`E[r w] = S\tilde h - y\mu` and
:math:`\mathrm{Cov}[g] = P\,(E[r^2 ww^\top] - E[rw]E[rw]^\top)\,P^\top`, summed over the
independent outputs. The products :math:`S(A + A^\top)S` are evaluated as matrix
products, as that code does: O(D³) per sample and output. That cost is what the
benchmark shows; ``linear_head_moments`` needs O(D²).
"""

from __future__ import annotations

import numpy as np


def sample_gradient_covariance(
    h_tilde: np.ndarray, y: np.ndarray, w_mean: np.ndarray, w_cov: np.ndarray
) -> np.ndarray:
    """Cov[g] (D, D) of one sample: h_tilde (D+1,), y (K,), w_mean (K, D+1), w_cov (K, D+1, D+1)."""
    dim = h_tilde.shape[0] - 1
    outer_h = np.outer(h_tilde, h_tilde)  # A
    total = np.zeros((dim, dim))
    for mu, sigma, target in zip(w_mean, w_cov, y, strict=True):
        mu_mu = np.outer(mu, mu)
        second = sigma + mu_mu  # S = E[w wᵀ]
        fourth = (
            second @ (outer_h + outer_h.T) @ second
            + (mu @ outer_h @ mu) * (sigma - mu_mu)
            + np.trace(outer_h @ sigma) * second
        )
        sigma_h = sigma @ h_tilde
        third = (h_tilde @ mu) * second + np.outer(mu, sigma_h) + np.outer(sigma_h, mu)
        r2_ww = fourth - 2.0 * target * third + target**2 * second  # E[r² w wᵀ]
        r_w = second @ h_tilde - target * mu  # E[r w]
        cov = r2_ww - np.outer(r_w, r_w)
        total += cov[:dim, :dim]
    return total


def full_covariance_moments(
    h: np.ndarray, y: np.ndarray, w_mean: np.ndarray, w_cov: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, var) each (B, D): E[g] and the diagonal of every sample's D×D Cov[g].

    Shapes as ``bogc_ref.linear_head_moments``: h (B, D), y (B, K), w_mean (K, D+1),
    w_cov (K, D+1, D+1). Computes in float64.
    """
    h64 = np.asarray(h, dtype=np.float64)
    y64 = np.asarray(y, dtype=np.float64)
    mu = np.asarray(w_mean, dtype=np.float64)
    cov = np.asarray(w_cov, dtype=np.float64)
    n_rows, dim = h64.shape
    h_tilde = np.concatenate([h64, np.ones((n_rows, 1))], axis=1)
    mean = np.empty((n_rows, dim))
    var = np.empty((n_rows, dim))
    for b in range(n_rows):
        second_h = np.einsum("kij,j->ki", cov, h_tilde[b]) + mu * (mu @ h_tilde[b])[:, None]
        mean[b] = np.sum(second_h - y64[b][:, None] * mu, axis=0)[:dim]
        var[b] = np.diagonal(sample_gradient_covariance(h_tilde[b], y64[b], mu, cov))
    return mean, var
