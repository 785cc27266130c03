"""Stage 1, softmax cross-entropy head: Monte Carlo and linearized moments, Laplace posterior.

Weights W (K, D+1), bias last; θ = vec(W) row-major, so θ[k (D+1) + j] = W[k, j].
For one sample with one-hot target y and :math:`p = \\mathrm{softmax}(W\\tilde h)`, the
gradient of the cross-entropy with respect to the representation is

    g(θ) = Σ_k (p_k - y_k) W[k, :D] = W[:, :D]ᵀ (p - y).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import cho_solve
from scipy.special import softmax

from ._heads import (
    augmented,
    covariance,
    head_weights,
    no_overflow_nan,
    one_hot,
    representation,
    require_classes,
    shows_invalid_covariance,
)
from ._linalg import cholesky_jittered, psd_factor
from ._results import Moments, Posterior
from ._validation import (
    FloatArray,
    common_dtype,
    float_array,
    require_finite,
    require_ndim,
)

#: Elements of the per-chunk work arrays that a default chunk may hold (about 32 MiB).
DEFAULT_CHUNK_ELEMENTS = 1 << 22


def _softmax_inputs(
    h: object, labels: object, w_mean: object, w_cov: object, psd: bool, check_cov: bool = True
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, np.dtype[Any]]:
    """h̃, one-hot targets, μ and Σ in float64, and the result dtype; ``w_cov`` is checked
    as a covariance (finite, symmetric, and positive semi-definite if ``psd``) only if
    ``check_cov``, else only its shape and dtype."""
    h_arr = representation(h)
    n_rows, dim = h_arr.shape
    mu = head_weights(w_mean, "w_mean", dim)
    require_classes(mu, "w_mean")
    shape = _cov_shape(mu)
    if check_cov:
        cov = covariance(w_cov, "w_cov", *shape, psd=psd)
    else:
        cov = covariance(w_cov, "w_cov", *shape, values=False)
    targets = one_hot(labels, mu.shape[0], n_rows)
    dtype = common_dtype([("h", h_arr), ("w_mean", mu), ("w_cov", cov)])
    mu64, cov64 = mu.astype(np.float64), cov.astype(np.float64, copy=False)
    return augmented(h_arr), targets, mu64, cov64, dtype


def _cov_shape(mu: FloatArray) -> tuple[tuple[int, int], str]:
    """The shape of Σ over θ = vec(W) for the head weights ``mu`` (K, D+1), and why."""
    return (mu.size, mu.size), "(K(D+1), K(D+1)) from w_mean"


def _gradients(weights: FloatArray, h_tilde: FloatArray, targets: FloatArray) -> FloatArray:
    """g for a stack of weight draws (S, K, D+1) and every sample: shape (S, B, D)."""
    logits = np.einsum("skj,bj->sbk", weights, h_tilde)
    residual = softmax(logits, axis=-1) - targets
    return np.einsum("sbk,skd->sbd", residual, weights[..., :-1])


def _noise(
    eps: object, n_samples: object, seed: object, n_params: int
) -> tuple[int, FloatArray | np.random.Generator]:
    """The number of draws S and either the stored ``eps`` or a seeded generator."""
    if (eps is None) == (n_samples is None):
        raise ValueError("eps, n_samples: pass exactly one (eps for stored noise, or n_samples)")
    if eps is not None:
        arr = float_array(eps, "eps")
        require_ndim(arr, "eps", 2, f"(S, K(D+1)) = (S, {n_params})")
        if arr.shape[1] != n_params:
            raise ValueError(
                f"eps: expected shape (S, {n_params}) (K(D+1) columns), got {arr.shape}"
            )
        require_finite(arr, "eps")
        count = arr.shape[0]
        source: FloatArray | np.random.Generator = arr.astype(np.float64, copy=False)
    else:
        if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer):
            raise TypeError(f"n_samples: expected an int, got {type(n_samples).__name__}")
        count = int(n_samples)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
            raise TypeError(f"seed: expected an int or None, got {type(seed).__name__}")
        if seed is not None and seed < 0:
            raise ValueError(f"seed: must be >= 0, got {seed}")
        source = np.random.default_rng(None if seed is None else int(seed))
    if count < 2:
        raise ValueError(f"eps/n_samples: need at least 2 Monte Carlo samples, got {count}")
    return count, source


def softmax_head_moments(
    h: object,
    labels: object,
    w_mean: object,
    w_cov: object,
    *,
    eps: object = None,
    n_samples: int | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
) -> Moments:
    r"""Monte Carlo mean and variance of :math:`g` under :math:`\theta \sim N(\mu, \Sigma)`.

    .. math::

        \begin{aligned}
        \theta_s &= \mu + L\varepsilon_s, \qquad
        g_s = W_s[:, :D]^\top(\mathrm{softmax}(W_s\tilde h) - y), \\
        \text{mean} &= \frac1S\sum_s g_s, \qquad
        \text{var} = \frac{1}{S-1}\sum_s (g_s - \text{mean})^2,
        \end{aligned}

    with L the lower Cholesky factor of Σ (jitter policy of the docs). Draws are processed
    ``chunk_size`` at a time and merged with Chan et al.'s pairwise update, so memory is
    O(chunk_size · B · (D + K)), never S · B · K · D.

    Args:
        h: representations (B, D).
        labels: (B,) ints in [0, K).
        w_mean: μ as W (K, D+1), bias last.
        w_cov: Σ (K(D+1), K(D+1)) over θ = vec(W) row-major.
        eps: stored standard-normal draws (S, K(D+1)), for exact comparisons.
        n_samples, seed: draw S = n_samples vectors from ``numpy.random.default_rng(seed)``
            (in chunks; the stream equals one draw of shape (S, K(D+1))).
        chunk_size: draws per chunk; default keeps a chunk's arrays near 2**22 elements.

    Returns:
        Moments(mean, var), each (B, D), the dtype of ``h``.
    """
    h_tilde, targets, mu, cov, dtype = _softmax_inputs(h, labels, w_mean, w_cov, psd=False)
    n_params = mu.size
    count, source = _noise(eps, n_samples, seed, n_params)
    n_rows, n_features = h_tilde.shape[0], h_tilde.shape[1] - 1
    if chunk_size is None:
        per_draw = n_rows * (n_features + 2 * mu.shape[0]) + 2 * n_params
        chunk = max(1, min(count, DEFAULT_CHUNK_ELEMENTS // per_draw))
    elif isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise TypeError(f"chunk_size: expected an int, got {type(chunk_size).__name__}")
    elif chunk_size < 1:
        raise ValueError(f"chunk_size: must be >= 1, got {chunk_size}")
    else:
        chunk = int(chunk_size)

    chol = psd_factor(cov, "w_cov")  # also the positive semi-definiteness check
    mu_flat = mu.ravel()
    total = 0
    mean = np.zeros((n_rows, n_features))
    sq_dev = np.zeros((n_rows, n_features))
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        draws: FloatArray = (
            source.standard_normal((size, n_params))
            if isinstance(source, np.random.Generator)
            else source[start : start + size]
        )
        with np.errstate(all="ignore"):  # overflow: see no_overflow_nan below
            weights = (mu_flat + draws @ chol.T).reshape(size, *mu.shape)
            g = _gradients(weights, h_tilde, targets)
            chunk_mean = g.mean(axis=0)
            chunk_sq_dev = np.sum((g - chunk_mean) ** 2, axis=0)
            delta = chunk_mean - mean
            merged = total + size
            mean = mean + delta * (size / merged)
            sq_dev = sq_dev + chunk_sq_dev + delta**2 * (total * size / merged)
        total = merged
    var = sq_dev / (count - 1)
    no_overflow_nan((mean, var), {"h": h_tilde[:, :-1], "w_mean": mu, "w_cov": cov})
    return Moments(mean.astype(dtype), var.astype(dtype))


def softmax_head_moments_linearized(
    h: object, labels: object, w_mean: object, w_cov: object, *, check_cov: bool = True
) -> Moments:
    r"""Deterministic moments of g from its first-order Taylor expansion in θ at μ.

    .. math::

        \text{mean} = g(\mu), \qquad \text{var} = \mathrm{diag}(J \Sigma J^\top),\quad
        J = \partial g / \partial\theta \big|_{\mu}.

    With :math:`r = p - y` and :math:`A_{il} = p_l (W_{li} - \sum_k p_k W_{ki})`, the
    Jacobian is :math:`J_{i,(l,j)} = r_l [i = j] + A_{il}\tilde h_j`, so, writing
    :math:`\Sigma_{(l,j),(l',j')}`, the variance splits into three terms that never form J:

    .. math::

        \mathrm{var}_i = \sum_{l,l'} r_l r_{l'} \Sigma_{(l,i),(l',i)}
          + 2\sum_{l,l'} r_l A_{il'} (\Sigma_{(l,i),(l',\cdot)}\tilde h)
          + \sum_{l,l'} A_{il} A_{il'}\, \tilde h^\top \Sigma_{(l,\cdot),(l',\cdot)} \tilde h .

    Cost O(B K² D²). Agrees with :func:`softmax_head_moments` as Σ → 0. The third term
    is taken with :math:`\tilde h` scaled by its largest entry (the scale folded into A),
    so a saturated softmax (A = 0) next to a huge h gives 0, not ``0 · inf``. ``w_cov``
    must be positive semi-definite (ValueError naming it and its smallest eigenvalue).

    Args:
        h: representations (B, D).
        labels: (B,) ints in [0, K).
        w_mean: μ as W (K, D+1), bias last.
        w_cov: Σ (K(D+1), K(D+1)) over θ = vec(W) row-major.
        check_cov: check that Σ is a covariance, as :func:`linear_head_moments` does
            (``False``: the caller vouches for it; see there).

    Returns:
        Moments(mean, var), each (B, D), the dtype of ``h``.
    """
    h_tilde, targets, mu, cov, dtype = _softmax_inputs(
        h, labels, w_mean, w_cov, psd=True, check_cov=check_cov
    )
    with np.errstate(all="ignore"):  # overflow: see no_overflow_nan below
        mean, var = _linearized(h_tilde, targets, mu, cov)
    if not check_cov and shows_invalid_covariance(mean, var):
        covariance(w_cov, "w_cov", *_cov_shape(mu), psd=True)
    # diag(JΣJᵀ) >= 0 for a covariance Σ; the three-term sum can round below 0 only where
    # the true variance is below the rounding level of its terms (a saturated softmax): 0.
    var = np.maximum(var, 0.0)
    no_overflow_nan((mean, var), {"h": h_tilde[:, :-1], "w_mean": mu, "w_cov": cov})
    with np.errstate(over="ignore"):  # beyond float32's range: inf, the rounded answer
        return Moments(mean.astype(dtype), var.astype(dtype))


def _linearized(
    h_tilde: FloatArray, targets: FloatArray, mu: FloatArray, cov: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The three-term linearized moments of :func:`softmax_head_moments_linearized`, the
    variance before rounding below zero is set to zero (see there)."""
    n_classes, width = mu.shape
    dim = width - 1
    blocks = cov.reshape(n_classes, width, n_classes, width)  # Σ[(l,j),(l',j')]
    p = softmax(h_tilde @ mu.T, axis=-1)  # (B, K)
    r = p - targets
    a_weights = mu[:, :dim]  # (K, D)
    mean = r @ a_weights
    centred = a_weights.T[None, :, :] - (p @ a_weights)[:, :, None]  # (B, D, K)
    jac_a = centred * p[:, None, :]  # A, (B, D, K)

    same_dim = np.einsum("limi->lmi", blocks[:, :dim, :, :dim])  # (K, K, D)
    term1 = np.einsum("bl,bm,lmi->bi", r, r, same_dim)
    cross = np.einsum("limj,bj->blim", blocks[:, :dim, :, :], h_tilde)  # (B, K, D, K)
    term2 = 2.0 * np.einsum("bl,bim,blim->bi", r, jac_a, cross)
    # h̃ = s ĥ with s = max|h̃_b| >= 1 (the bias entry is 1): quad = s² ĥᵀΣĥ, s² folded into A.
    size = np.max(np.abs(h_tilde), axis=1)  # (B,)
    unit = h_tilde / size[:, None]
    quad = np.einsum("bj,ljmk,bk->blm", unit, blocks, unit, optimize=True)  # (B, K, K)
    scaled_a = jac_a * size[:, None, None]
    term3 = np.einsum("bil,bim,blm->bi", scaled_a, scaled_a, quad)
    return mean, term1 + term2 + term3


def softmax_head_laplace(
    h: object,
    labels: object,
    w: object,
    *,
    prior_mean: object,
    prior_precision: object,
) -> Posterior:
    r"""Laplace (generalised Gauss-Newton) posterior of a softmax head, one Newton step.

    .. math::

        \Lambda = P_0 + \sum_b (\mathrm{diag}\,p_b - p_b p_b^\top)
                  \otimes \tilde h_b \tilde h_b^\top,
        \qquad
        \mu = \theta - \Lambda^{-1}\Big(\nabla_\theta \sum_b \mathrm{CE}_b + P_0(\theta - m_0)\Big),
        \qquad \Sigma = \Lambda^{-1},

    with :math:`\nabla_\theta \sum_b \mathrm{CE}_b = \mathrm{vec}\big((P - Y)^\top \tilde H\big)`.
    The GGN is accumulated from its Kronecker factors over chunks of samples (never the
    dense per-sample Jacobian): extra memory O(B K + K²(D+1)²) plus a fixed chunk of
    ``LAPLACE_CHUNK_ELEMENTS``; Λ is factored by Cholesky with the jitter policy of
    the docs.

    Args:
        h: representations (B, D).
        labels: (B,) ints in [0, K).
        w: the expansion point θ as W (K, D+1).
        prior_mean: :math:`m_0` (K, D+1).
        prior_precision: :math:`P_0` (K(D+1), K(D+1)).

    Returns:
        Posterior(mean (K, D+1), cov (K(D+1), K(D+1))), the dtype of ``h``.
    """
    h_arr = representation(h)
    n_rows, dim = h_arr.shape
    theta = head_weights(w, "w", dim)
    require_classes(theta, "w")
    m0 = head_weights(prior_mean, "prior_mean", dim)
    if m0.shape != theta.shape:
        raise ValueError(f"prior_mean: expected shape {theta.shape} (that of w), got {m0.shape}")
    n_params = theta.size
    p0 = covariance(
        prior_precision,
        "prior_precision",
        (n_params, n_params),
        "(K(D+1), K(D+1)) from w",
        psd=True,
    )
    targets = one_hot(labels, theta.shape[0], n_rows)
    dtype = common_dtype([("h", h_arr), ("w", theta), ("prior_mean", m0), ("prior_precision", p0)])

    h_tilde = augmented(h_arr)
    theta64 = theta.astype(np.float64)
    p0_64 = p0.astype(np.float64)
    with np.errstate(all="ignore"):  # overflow: caught by the finiteness tests below
        p = softmax(h_tilde @ theta64.T, axis=-1)  # (B, K)
        precision = p0_64 + _ggn(p, h_tilde)
        residual = theta64 - m0.astype(np.float64)
        grad = ((p - targets).T @ h_tilde).ravel() + p0_64 @ residual.ravel()
    chol = cholesky_jittered(precision, "h, prior_precision: the Laplace precision P0 + GGN")
    with np.errstate(all="ignore"):
        mean = theta64.ravel() - cho_solve((chol, True), grad, check_finite=False)
        cov = cho_solve((chol, True), np.eye(n_params), check_finite=False)
        cov = 0.5 * (cov + cov.T)
    no_overflow_nan((mean, cov), {"h": h_arr, "w": theta, "prior_precision": p0})
    with np.errstate(over="ignore"):
        return Posterior(mean.reshape(theta.shape).astype(dtype), cov.astype(dtype))


#: Elements of one chunk's (rows, K, K, D+1) work array in the Laplace GGN (8 MiB),
#: unless the K²(D+1)² result itself is larger.
LAPLACE_CHUNK_ELEMENTS = 1 << 20


def _ggn(p: FloatArray, h_tilde: FloatArray) -> FloatArray:
    r"""GGN :math:`\sum_b (\mathrm{diag}\,p_b - p_b p_b^\top) \otimes \tilde h_b \tilde h_b^\top`
    as a (K(D+1), K(D+1)) matrix, θ row-major; GGN[k,i,l,j] = Σ_b C_b[k,l] h̃_bi h̃_bj,
    summed over each chunk of samples by one matrix product."""
    n_rows, width = h_tilde.shape
    k = p.shape[1]
    eye = np.eye(k)
    per_row = k * k * width
    rows = max(1, max(per_row * width, LAPLACE_CHUNK_ELEMENTS) // per_row)
    ggn = np.zeros((k, width, k, width))
    for start in range(0, n_rows, rows):
        pc, hc = p[start : start + rows], h_tilde[start : start + rows]
        curvature = pc[:, :, None] * eye - pc[:, :, None] * pc[:, None, :]  # (rows, K, K)
        weighted = curvature[..., None] * hc[:, None, None, :]  # (rows, K, K, D+1)
        block = weighted.reshape(len(hc), -1).T @ hc  # (K K (D+1), D+1), no copy of weighted
        ggn += block.reshape(k, k, width, width).transpose(0, 2, 1, 3)
    return ggn.reshape(k * width, k * width)
