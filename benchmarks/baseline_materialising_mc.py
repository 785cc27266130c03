r"""Baseline: softmax-head Monte Carlo moments with every draw materialised at once.

The direct way to write the estimator of ``bogc_ref.softmax_head_moments``: draw all S
weight samples :math:`\theta_s = \mu + L\varepsilon_s`, form the per-class terms
:math:`(p_{sbk} - y_{bk})\, W_s[k, :D]` as one (S, B, K, D) array, sum over k to get
:math:`g_{sb}`, then take the sample mean and the unbiased (ddof = 1) sample variance over
s. Memory O(S·B·K·D): what the streaming reference avoids. For the benchmarks only.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax


def materialising_softmax_moments(
    h: np.ndarray,
    labels: np.ndarray,
    w_mean: np.ndarray,
    w_cov: np.ndarray,
    eps: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, var) each (B, D), float64, for stored draws ``eps`` (S, K(D+1)).

    Shapes as ``bogc_ref.softmax_head_moments``: h (B, D), labels (B,), w_mean (K, D+1),
    w_cov (K(D+1), K(D+1)), θ = vec(W) row-major.
    """
    h64 = np.asarray(h, dtype=np.float64)
    mu = np.asarray(w_mean, dtype=np.float64)
    n_rows, dim = h64.shape
    n_classes = mu.shape[0]
    h_tilde = np.concatenate([h64, np.ones((n_rows, 1))], axis=1)
    chol = np.linalg.cholesky(np.asarray(w_cov, dtype=np.float64))
    draws = np.asarray(eps, dtype=np.float64)
    weights = (mu.ravel() + draws @ chol.T).reshape(draws.shape[0], n_classes, dim + 1)
    probs = softmax(np.einsum("skj,bj->sbk", weights, h_tilde), axis=-1)
    residual = probs - np.eye(n_classes)[np.asarray(labels)]  # (S, B, K)
    per_class = residual[..., None] * weights[:, None, :, :dim]  # (S, B, K, D), all at once
    grads = per_class.sum(axis=2)  # (S, B, D)
    return grads.mean(axis=0), grads.var(axis=0, ddof=1)
