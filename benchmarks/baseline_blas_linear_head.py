"""The squared-error head's exact moments written as matrix products only (BLAS GEMMs).

The same formula as ``bogc_ref.linear_head_moments`` (spec, stage 1, item 1): with
:math:`\\tilde H` (B, D+1), the products :math:`C_k = \\tilde H\\Sigma_k` (B, D+1) are one GEMM
per output, :math:`s^2_{bk} = \\sum_j C_{kbj}\\tilde h_{bj}`, and the five variance terms are
products of (B, K) and (K, D) matrices. This is what "the same formula through BLAS" means
in ``targets.py``: the floor the readable reference is measured against.
"""

from __future__ import annotations

import numpy as np


def blas_linear_head_moments(
    h: np.ndarray, y: np.ndarray, w_mean: np.ndarray, w_cov: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, var), each (B, D), float64."""
    dim = h.shape[1]
    h_tilde = np.concatenate([h, np.ones((h.shape[0], 1))], axis=1)
    rho = h_tilde @ w_mean.T - y  # (B, K)
    a = w_mean[:, :dim]
    sigma2 = np.diagonal(w_cov, axis1=1, axis2=2)[:, :dim]
    mean = rho @ a
    var = (rho * rho) @ sigma2
    s2 = np.empty_like(rho)
    for k in range(w_mean.shape[0]):
        c = h_tilde @ w_cov[k]  # Σ_k symmetric: (Σ_k h̃_b)ᵀ as rows, one GEMM
        s2[:, k] = np.einsum("bj,bj->b", c, h_tilde)
        ck = c[:, :dim]
        mean += ck
        var += ck * ck + 2.0 * rho[:, k : k + 1] * a[k] * ck
    var += s2 @ (a * a) + s2 @ sigma2
    return mean, var
