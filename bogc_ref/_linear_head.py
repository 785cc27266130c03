"""Stage 1, squared-error head: exact gradient moments and the conjugate posterior."""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_solve

from ._heads import (
    augmented,
    covariance,
    head_weights,
    no_overflow_nan,
    representation,
    shows_invalid_covariance,
)
from ._linalg import cholesky_jittered
from ._results import Moments, Posterior
from ._validation import (
    FloatArray,
    common_dtype,
    float_array,
    positive_scalar,
    require_finite,
    require_ndim,
    require_shape,
)


def _targets(y: object, n_rows: int, values: bool = True) -> FloatArray:
    """Targets ``y`` (B, K), finite if ``values``."""
    arr = float_array(y, "y")
    require_ndim(arr, "y", 2, "(B, K)")
    if arr.shape[0] != n_rows:
        raise ValueError(f"y: expected {n_rows} rows (one per row of h), got shape {arr.shape}")
    if values:
        require_finite(arr, "y")
    return arr


def linear_head_moments(
    h: object, y: object, w_mean: object, w_cov: object, *, check_cov: bool = True
) -> Moments:
    r"""Exact mean and variance of :math:`g = \partial\ell/\partial h` for a squared-error head.

    Loss :math:`\ell = \tfrac12\sum_k r_k^2`, :math:`r_k = w_k\cdot\tilde h - y_k`,
    :math:`\tilde h = [h, 1]`, independent rows :math:`w_k \sim N(\mu_k, \Sigma_k)`.
    With :math:`\rho = \mu_k\cdot\tilde h - y_k`, :math:`s^2 = \tilde h^\top\Sigma_k\tilde h`,
    :math:`c = (\Sigma_k\tilde h)_{1..D}`, :math:`a = \mu_{k,1..D}`,
    :math:`\sigma_i^2 = (\Sigma_k)_{ii}`:

    .. math::

        E[g_i] = \sum_k (\rho a_i + c_i), \qquad
        \mathrm{Var}[g_i] = \sum_k (\rho^2\sigma_i^2 + a_i^2 s^2 + 2\rho a_i c_i
                                   + s^2\sigma_i^2 + c_i^2).

    Each term is the moment of the product :math:`w_{ki}\, r_k` of two jointly Gaussian
    scalars; the cost is O(B K D²) and no D×D covariance of g is formed.

    Args:
        h: representations (B, D).
        y: targets (B, K).
        w_mean: posterior means μ_k as rows (K, D+1), bias last.
        w_cov: posterior covariances Σ_k (K, D+1, D+1).
        check_cov: check that each Σ_k is a covariance (finite, symmetric, positive
            semi-definite), which costs a Cholesky factorisation, O(K D³): more than the
            moments themselves when B < D. ``False`` (an extension of the spec's
            signature): the caller vouches for ``w_cov`` (for example it comes from
            :func:`linear_head_posterior`); the checks then run only when the results show
            an invalid covariance (a NaN, a negative variance), and an invalid ``w_cov``
            that shows in neither gives unspecified results.

    Returns:
        Moments(mean, var), each (B, D), the dtype of ``h``.

    >>> import numpy as np
    >>> m = linear_head_moments(np.array([[1.0]]), np.array([[0.0]]),
    ...                         np.array([[2.0, 0.0]]), np.zeros((1, 2, 2)))
    >>> m.mean, m.var
    (array([[4.]]), array([[0.]]))
    """
    h_arr = representation(h)
    n_rows, dim = h_arr.shape
    y_arr = _targets(y, n_rows)
    mu = head_weights(w_mean, "w_mean", dim)
    k = mu.shape[0]
    if y_arr.shape[1] != k:
        raise ValueError(
            f"y: expected {k} columns (one per row of w_mean), got shape {y_arr.shape}"
        )
    cov_shape = ((k, dim + 1, dim + 1), "(K, D+1, D+1) from w_mean")
    if check_cov:
        cov = covariance(w_cov, "w_cov", *cov_shape, psd=True)
    else:
        cov = covariance(w_cov, "w_cov", *cov_shape, values=False)
    dtype = common_dtype([("h", h_arr), ("y", y_arr), ("w_mean", mu), ("w_cov", cov)])
    with np.errstate(all="ignore"):  # overflow: see no_overflow_nan below
        mean, var = _moments(augmented(h_arr), y_arr, mu.astype(np.float64), cov)
    if not check_cov and shows_invalid_covariance(mean, var):
        covariance(cov, "w_cov", *cov_shape, psd=True)
    no_overflow_nan((mean, var), {"h": h_arr, "y": y_arr, "w_mean": mu, "w_cov": cov})
    with np.errstate(over="ignore"):  # beyond float32's range: inf, the rounded answer
        return Moments(mean.astype(dtype), var.astype(dtype))


def _moments(
    h_tilde: FloatArray, y_arr: FloatArray, mu64: FloatArray, cov: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The exact moments of :func:`linear_head_moments` (float64, validated inputs)."""
    dim = h_tilde.shape[1] - 1
    cov64 = cov.astype(np.float64, copy=False)
    rho = h_tilde @ mu64.T - y_arr  # (B, K)
    # Σ_k h̃_b for every b and k, (B, K, D+1): one matrix product H̃ Σ_kᵀ per output (BLAS).
    sigma_h = np.matmul(h_tilde, cov64.transpose(0, 2, 1)).transpose(1, 0, 2)
    s2 = np.einsum("bki,bi->bk", sigma_h, h_tilde)  # h̃ᵀΣ_k h̃, (B, K)
    c = sigma_h[..., :dim]  # (B, K, D)
    a = mu64[:, :dim]  # (K, D)
    sigma2 = np.diagonal(cov64, axis1=1, axis2=2)[:, :dim]  # (K, D)

    mean = rho @ a + c.sum(axis=1)
    rho_ = rho[..., None]
    s2_ = s2[..., None]
    var = np.sum(
        rho_**2 * sigma2 + a**2 * s2_ + 2.0 * rho_ * a * c + s2_ * sigma2 + c**2,
        axis=1,
    )
    return mean, var


def linear_head_posterior(
    h: object,
    y: object,
    *,
    prior_mean: object,
    prior_precision: object,
    noise_var: float,
) -> Posterior:
    r"""Conjugate Gaussian posterior of a linear head with Gaussian noise.

    Prior :math:`w_k \sim N(m_{0k}, P_0^{-1})`, likelihood
    :math:`y_k \mid w_k \sim N(\tilde H w_k, \sigma^2 I)`:

    .. math::

        \Lambda = P_0 + \tilde H^\top \tilde H / \sigma^2, \qquad
        \mu_k = \Lambda^{-1}(P_0 m_{0k} + \tilde H^\top y_k / \sigma^2), \qquad
        \Sigma_k = \Lambda^{-1}.

    Λ is factored by Cholesky with the jitter policy of the docs (``_linalg``).

    Args:
        h: representations (B, D).
        y: targets (B, K).
        prior_mean: :math:`m_0` (K, D+1).
        prior_precision: :math:`P_0` (D+1, D+1), shared by the K outputs.
        noise_var: :math:`\sigma^2 > 0`.

    Returns:
        Posterior(mean (K, D+1), cov (K, D+1, D+1)), the dtype of ``h``.

    >>> import numpy as np
    >>> post = linear_head_posterior(np.array([[1.0], [2.0]]), np.array([[2.0], [4.0]]),
    ...     prior_mean=np.zeros((1, 2)), prior_precision=1e-9 * np.eye(2), noise_var=1.0)
    >>> np.round(post.mean, 6)
    array([[2., 0.]])
    """
    h_arr = representation(h)
    n_rows, dim = h_arr.shape
    y_arr = _targets(y, n_rows)
    k = y_arr.shape[1]
    m0 = head_weights(prior_mean, "prior_mean", dim)
    require_shape(m0, "prior_mean", (k, dim + 1), "(K, D+1), K = y.shape[1]")
    p0 = covariance(prior_precision, "prior_precision", (dim + 1, dim + 1), "(D+1, D+1)", psd=True)
    sigma2 = positive_scalar(noise_var, "noise_var")
    dtype = common_dtype([("h", h_arr), ("y", y_arr), ("prior_mean", m0), ("prior_precision", p0)])

    h_tilde = augmented(h_arr)
    p0_64 = p0.astype(np.float64)
    with np.errstate(all="ignore"):  # overflow: caught by the finiteness tests below
        precision = p0_64 + h_tilde.T @ h_tilde / sigma2
        rhs = p0_64 @ m0.astype(np.float64).T + h_tilde.T @ y_arr.astype(np.float64) / sigma2
    chol = cholesky_jittered(
        precision, "h, noise_var, prior_precision: the posterior precision P0 + H̃ᵀH̃/noise_var"
    )
    if not np.all(np.isfinite(rhs)):
        raise ValueError(
            f"h, y, noise_var: H̃ᵀy/noise_var overflows float64 (noise_var = {sigma2!r}, "
            f"max |y| = {float(np.max(np.abs(y_arr))):.3g}); rescale the inputs"
        )
    with np.errstate(all="ignore"):
        mean = cho_solve((chol, True), rhs, check_finite=False).T
        cov = cho_solve((chol, True), np.eye(dim + 1), check_finite=False)
        cov = 0.5 * (cov + cov.T)
    no_overflow_nan((mean, cov), {"h": h_arr, "y": y_arr, "noise_var": np.array(sigma2)})
    with np.errstate(over="ignore"):
        covs = np.broadcast_to(cov, (k, dim + 1, dim + 1)).astype(dtype)
        return Posterior(mean.astype(dtype), covs)
