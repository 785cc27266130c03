r"""Baseline: the softmax-head Laplace posterior with a dense GGN from per-sample Jacobians.

The logits of sample b are :math:`z_b = W\tilde h_b`, so with θ = vec(W) row-major the
Jacobian :math:`J_b = \partial z_b/\partial\theta = I_K \otimes \tilde h_b^\top` is a
K × K(D+1) matrix. Written out explicitly for every sample, the generalised Gauss-Newton
matrix is :math:`G = \sum_b J_b^\top (\mathrm{diag}\,p_b - p_b p_b^\top) J_b` and the
gradient of :math:`\sum_b \mathrm{CE}_b` is :math:`\sum_b J_b^\top (p_b - y_b)`; the
posterior then follows ``bogc_ref.softmax_head_laplace``:
:math:`\Lambda = P_0 + G`, :math:`\mu = \theta - \Lambda^{-1}(\nabla + P_0(\theta - m_0))`,
:math:`\Sigma = \Lambda^{-1}`. The reference uses the Kronecker structure instead and
never forms J. For the benchmarks only.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.special import softmax


def per_sample_jacobians(h: np.ndarray, n_classes: int) -> np.ndarray:
    """J (B, K, K(D+1)): J[b, k, k(D+1) + j] = h̃_b[j], zero elsewhere."""
    h64 = np.asarray(h, dtype=np.float64)
    n_rows, dim = h64.shape
    h_tilde = np.concatenate([h64, np.ones((n_rows, 1))], axis=1)
    jac = np.zeros((n_rows, n_classes, n_classes, dim + 1))
    classes = np.arange(n_classes)
    jac[:, classes, classes, :] = h_tilde[:, None, :]
    return jac.reshape(n_rows, n_classes, n_classes * (dim + 1))


def dense_ggn(jac: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Σ_b J_bᵀ (diag p_b − p_b p_bᵀ) J_b, (K(D+1), K(D+1)), from J (B, K, P) and p (B, K)."""
    curvature = np.einsum("bk,kl->bkl", probs, np.eye(probs.shape[1])) - np.einsum(
        "bk,bl->bkl", probs, probs
    )
    weighted = curvature @ jac  # (B, K, P)
    return np.tensordot(jac, weighted, axes=([0, 1], [0, 1]))


def dense_laplace_posterior(
    h: np.ndarray,
    labels: np.ndarray,
    w: np.ndarray,
    *,
    prior_mean: np.ndarray,
    prior_precision: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(mean (K, D+1), cov (K(D+1), K(D+1))) in float64, shapes as ``softmax_head_laplace``."""
    theta = np.asarray(w, dtype=np.float64)
    n_classes = theta.shape[0]
    jac = per_sample_jacobians(h, n_classes)
    logits = jac @ theta.ravel()  # (B, K)
    probs = softmax(logits, axis=-1)
    targets = np.eye(n_classes)[np.asarray(labels)]
    p0 = np.asarray(prior_precision, dtype=np.float64)
    precision = p0 + dense_ggn(jac, probs)
    grad = (
        np.einsum("bkp,bk->p", jac, probs - targets)
        + p0 @ (theta - np.asarray(prior_mean, dtype=np.float64)).ravel()
    )
    factor = cho_factor(precision, lower=True)
    mean = theta.ravel() - cho_solve(factor, grad)
    cov = cho_solve(factor, np.eye(precision.shape[0]))
    return mean.reshape(theta.shape), 0.5 * (cov + cov.T)
