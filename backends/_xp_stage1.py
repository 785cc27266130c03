"""Stage 1 written once over a NumPy-compatible namespace ``xp`` (NumPy, CuPy, torch).

Used by the CuPy backend (``xp = cupy``, ``sla = cupyx.scipy.linalg``, matrix products
on cuBLAS) and by the PyTorch backend (``xp`` the adapter of ``_torch_xp``); the tests
also run it with ``xp = numpy``.
Inputs are validated arrays already in the compute dtype; formulas as in the reference
(``bogc_ref._linear_head``, ``bogc_ref._softmax_head``, ``bogc_ref._empirical``). The
only host round-trip is the Cholesky success test (one scalar) of the jitter policy.

The linearized softmax moments, the Laplace fit and the Newton mean also take a stack of
heads of one shape along leading axes (h (..., B, D), weights (..., K, D+1), covariances
(..., K(D+1), K(D+1))), each head computed by the same formulas (the fit where ``sla``
solves stacks of triangular systems, as torch's does): the training integration stacks its
small heads so that they cost one call's operations. The other functions, and every spec
function's public signature, are per head.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from bogc_ref._linalg import JITTER_STEPS
from bogc_ref._softmax_head import LAPLACE_CHUNK_ELEMENTS

#: A prior precision: a matrix P0 (..., K(D+1), K(D+1)), or a float c for P0 = c I (the
#: isotropic prior of the training integration: no K²(D+1)² matrix to read).
PriorPrecision = Any


def augmented(xp: Any, h: Any) -> Any:
    """``h̃ = [h, 1]`` along the last axis (any leading axes)."""
    return xp.concatenate([h, xp.ones((*h.shape[:-1], 1), dtype=h.dtype)], axis=-1)


def swap_last(xp: Any, a: Any) -> Any:
    """The transpose of the last two axes (``.T`` of a matrix, of each matrix of a stack)."""
    return xp.swapaxes(a, -1, -2)


def cholesky_jittered(xp: Any, a: Any, name: str) -> Any:
    """Lower factor with the reference's jitter policy, float64 (see ``bogc_ref._linalg``).

    A namespace may bring its own factorisation as ``xp.cholesky_or_none`` (the factor,
    or None when the matrix is not positive definite): torch does, without exceptions.
    A stack of matrices (leading axes) is factored at once; only where some matrix fails
    does each go through the jitter policy on its own (its name then carries its index).
    """
    factor = getattr(xp, "cholesky_or_none", None)
    if factor is None:

        def factor(matrix: Any) -> Any:
            try:
                chol = xp.linalg.cholesky(matrix)
            except np.linalg.LinAlgError:
                return None
            return chol if all_finite(xp, chol) else None  # CuPy gives NaN on failure

    a64 = xp.asarray(a, dtype=xp.float64)
    if a64.ndim > 2:  # a stack: one factorisation, the jitter policy matrix by matrix if needed
        chol = factor(a64) if all_finite(xp, a64) else None
        if chol is not None:
            return chol
        return xp.stack([jittered(xp, one, f"{name} [{i}]", factor) for i, one in enumerate(a64)])
    return jittered(xp, a64, name, factor)


def all_finite(xp: Any, a: Any) -> bool:
    """Whether every entry of ``a`` is finite: one sum (NaN and ±inf absorb under addition,
    so a finite sum proves it), entry by entry only when the sum is not finite (an
    overflowing sum of finite entries). A namespace may bring its own test as
    ``xp.not_all_finite`` (torch: ``_torch_common.not_all_finite``)."""
    own = getattr(xp, "not_all_finite", None)
    if own is not None:
        return not bool(own(a))
    with np.errstate(over="ignore", invalid="ignore"):  # the sum's overflow is the question
        total = a.sum()
    return bool(xp.isfinite(total)) or bool(xp.isfinite(a).all())


def jittered(xp: Any, a: Any, name: str, factor: Callable[[Any], Any]) -> Any:
    """The jitter policy around ``factor`` (a lower factor of its argument, or None).

    Factor ``a`` (float64); if that fails, ``a + j · mean|diag a| · I`` for ``j`` in
    ``JITTER_STEPS`` in turn; if none factors, ``numpy.linalg.LinAlgError`` with the
    reference's message.
    """
    if not all_finite(xp, a):
        raise ValueError(
            f"{name}: a matrix of shape {tuple(a.shape)} with non-finite entries (float64 "
            "overflow); rescale the inputs"
        )
    chol = factor(a)
    if chol is not None:
        return chol
    scale = float(abs(a.diagonal()).mean()) if a.shape[0] else 0.0
    if scale > 0.0 and np.isfinite(scale):
        eye = xp.eye(a.shape[-1], dtype=a.dtype)
        for step in JITTER_STEPS:
            chol = factor(a + (step * scale) * eye)
            if chol is not None:
                return chol
    finite = bool(xp.isfinite(a).all())
    smallest = float(xp.linalg.eigvalsh(a)[0]) if finite else float("nan")
    raise np.linalg.LinAlgError(
        f"{name}: matrix of shape {tuple(a.shape)} is not positive definite even after a "
        f"relative jitter of {JITTER_STEPS[-1]:g} x mean diagonal (smallest eigenvalue "
        f"{smallest:.3g})"
    )


def psd_factor(xp: Any, a: Any, name: str) -> Any:
    """A lower factor of the covariance ``a`` with the reference's rule
    (``bogc_ref._linalg.psd_factor``): the jitter ladder, the zero factor for the zero
    matrix, else ``LinAlgError`` naming ``name`` and the smallest eigenvalue."""
    a64 = xp.asarray(a, dtype=xp.float64)
    try:
        return cholesky_jittered(xp, a64, name)
    except np.linalg.LinAlgError:
        if not bool((a64 != 0).any()):
            return xp.zeros_like(a64)
        smallest = float(xp.linalg.eigvalsh(a64)[0])
        raise np.linalg.LinAlgError(
            f"{name}: matrix of shape {tuple(a64.shape)} is not positive semi-definite "
            f"(smallest eigenvalue {smallest:.3g}, beyond the jitter of {JITTER_STEPS[-1]:g} "
            "x mean diagonal)"
        ) from None


def cho_solve(xp: Any, sla: Any, chol: Any, rhs: Any) -> Any:
    """``A⁻¹ rhs`` from the lower factor of A (two triangular solves)."""
    half = sla.solve_triangular(chol, rhs, lower=True)
    return sla.solve_triangular(swap_last(xp, chol), half, lower=False)


def cho_inverse(xp: Any, sla: Any, chol: Any) -> Any:
    """``A⁻¹`` from the lower factor L of A, exactly symmetric.

    A linear-algebra namespace may bring its own inverse from the factor as
    ``sla.cholesky_inverse`` (torch: LAPACK ``potri``, which computes one triangle of
    L⁻ᵀL⁻¹ and mirrors it, about half the work of two dense triangular solves against I);
    otherwise two triangular solves against the identity, symmetrised.
    """
    own = getattr(sla, "cholesky_inverse", None)
    if own is not None:
        return own(chol)
    inverse = cho_solve(xp, sla, chol, xp.eye(chol.shape[-1], dtype=chol.dtype))
    return 0.5 * (inverse + swap_last(xp, inverse))


def softmax(xp: Any, logits: Any) -> Any:
    """Row softmax over the last axis, shifted by the row maximum.

    A namespace with its own fused kernel offers it as ``xp.row_softmax`` (torch).
    """
    own = getattr(xp, "row_softmax", None)
    if own is not None:
        return own(logits)
    z = xp.exp(logits - xp.amax(logits, axis=-1)[..., None])
    return z / z.sum(axis=-1)[..., None]


def linear_head_moments(xp: Any, h: Any, y: Any, w_mean: Any, w_cov: Any) -> tuple[Any, Any]:
    r"""Exact moments of the squared-error head (``bogc_ref.linear_head_moments``)."""
    dim = h.shape[1]
    h_tilde = augmented(xp, h)
    rho = h_tilde @ w_mean.T - y
    sigma_h = xp.einsum("kij,bj->bki", w_cov, h_tilde)
    s2 = xp.einsum("bki,bi->bk", sigma_h, h_tilde)
    c = sigma_h[..., :dim]
    a = w_mean[:, :dim]
    sigma2 = xp.diagonal(w_cov, axis1=1, axis2=2)[:, :dim]
    mean = rho @ a + c.sum(axis=1)
    var = (
        (rho * rho) @ sigma2
        + s2 @ (a * a)
        + 2.0 * xp.einsum("bkd,bkd->bd", rho[..., None] * a, c)
        + s2 @ sigma2
        + (c * c).sum(axis=1)
    )
    return mean, var


def softmax_head_moments(
    xp: Any,
    h: Any,
    targets: Any,
    w_mean: Any,
    chol: Any,
    draws: Any,
    count: int,
    chunk: int,
) -> tuple[Any, Any]:
    """Monte Carlo moments with Chan's merge; ``draws(start, size)`` gives ε (size, K(D+1))."""
    h_tilde = augmented(xp, h)
    mu_flat = w_mean.reshape(-1)
    n_rows, n_features = h.shape
    total = 0
    mean = xp.zeros((n_rows, n_features), dtype=h.dtype)
    sq_dev = xp.zeros_like(mean)
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        weights = (mu_flat + draws(start, size) @ chol.T).reshape(size, *w_mean.shape)
        logits = xp.einsum("skj,bj->sbk", weights, h_tilde)
        g = xp.einsum("sbk,skd->sbd", softmax(xp, logits) - targets, weights[..., :-1])
        chunk_mean = g.mean(axis=0)
        chunk_sq_dev = ((g - chunk_mean) ** 2).sum(axis=0)
        delta = chunk_mean - mean
        merged = total + size
        mean = mean + delta * (size / merged)
        sq_dev = sq_dev + chunk_sq_dev + delta * delta * (total * size / merged)
        total = merged
    return mean, sq_dev / (count - 1)


class LinearizedCovariance(NamedTuple):
    """The entries of Σ (one head's, or a stack's) in the orders the linearized moments
    contract them, with the blocks ``Σ[(l, j), (m, k)]`` (classes l, m; columns j, k of h̃):

    - ``same_dim`` (..., K², D): ``[(l, m), i] = Σ[(l, i), (m, i)]``, i < D;
    - ``by_r`` (..., K(D+1), K·D): ``[(l, k), (m, i)] = Σ[(l, i), (m, k)]``, i < D;
    - ``by_pairs``, for the quadratic forms ĥᵀΣ_lm ĥ: for narrow heads
      (:data:`FULL_QUAD_MAX_WIDTH`) (..., (D+1)², K²), ``[(j, k), (l, m)] = Σ[(l, j), (m, k)]``,
      read against ĥ ⊗ ĥ; for wider ones (..., D+1, K(K+1)/2 · (D+1)),
      ``[j, (p, k)] = Σ[(l, j), (m, k)]`` over the pairs p = (l, m) with l <= m only (the
      forms are symmetric in l, m), read against ĥ and then ĥ again;
    - ``expand``: None for narrow heads; for wider ones (K(K+1)/2, K²) 0/1, the full K x K
      matrix from its pairs l <= m.

    A function of Σ alone: a caller whose Σ stays fixed over many calls (the training
    integration between two posterior fits) builds it once with
    :func:`linearized_covariance` and passes it to each call.
    """

    same_dim: Any
    by_r: Any
    by_pairs: Any
    expand: Any | None


def linearized_covariance(xp: Any, w_cov: Any, n_classes: int, width: int) -> LinearizedCovariance:
    """Σ (..., K(D+1), K(D+1)) rearranged for :func:`softmax_head_moments_linearized`."""
    lead = tuple(w_cov.shape[:-2])
    n_lead, dim = len(lead), width - 1
    blocks = w_cov.reshape(*lead, n_classes, width, n_classes, width)  # [l, j, m, k]
    axes = tuple(range(n_lead))
    l_ax, j_ax, m_ax, k_ax = (n_lead + i for i in range(4))
    same_dim = xp.diagonal(blocks[..., :dim, :, :dim], axis1=-3, axis2=-1)  # (..., K, K, D)
    by_r = xp.transpose(blocks[..., :dim, :, :], (*axes, l_ax, k_ax, m_ax, j_ax))
    same_dim = same_dim.reshape(*lead, n_classes * n_classes, dim)
    by_r = by_r.reshape(*lead, n_classes * width, n_classes * dim)
    if width <= FULL_QUAD_MAX_WIDTH:
        by_lm = xp.transpose(blocks, (*axes, j_ax, k_ax, l_ax, m_ax))
        by_lm = by_lm.reshape(*lead, width * width, n_classes * n_classes)
        return LinearizedCovariance(same_dim, by_r, xp.ascontiguousarray(by_lm), None)
    # rows j, then the class pairs (l, m) with columns k; the pairs l <= m taken whole
    by_j = xp.transpose(blocks, (*axes, j_ax, l_ax, m_ax, k_ax)).reshape(
        *lead, width, n_classes * n_classes, width
    )
    by_j = take(xp, by_j, upper_positions(n_classes), axis=-2)
    n_pairs = n_classes * (n_classes + 1) // 2
    return LinearizedCovariance(
        same_dim,
        by_r,
        xp.ascontiguousarray(by_j).reshape(*lead, width, n_pairs * width),
        take(xp, xp.eye(n_pairs, dtype=w_cov.dtype), symmetric_index(n_classes), axis=-1),
    )


#: Head widths D+1 up to which the quadratic forms ĥᵀΣ_lm ĥ are one product of ĥ ⊗ ĥ over
#: all K² pairs of classes; wider heads multiply ĥ by Σ's rows for the K(K+1)/2 pairs l <= m,
#: take the dot with ĥ, and expand the pairs by a second, small product (about the same
#: arithmetic for half the pairs, without forming ĥ ⊗ ĥ). Whole moments call, B = 128,
#: K = 10, one thread: all pairs 37% faster at D+1 = 9 (6 heads stacked), 14% at 17 and
#: 8% at 25; the pairs through Σ's rows 5% faster at 33, 14% at 49 and 22% at 97.
FULL_QUAD_MAX_WIDTH = 32


@functools.lru_cache(maxsize=64)
def upper_positions(n: int) -> np.ndarray:
    """The flat positions l·n + m of the pairs l <= m of an n x n matrix, row by row."""
    first, second = np.triu_indices(n)
    return first * n + second


@functools.lru_cache(maxsize=64)
def symmetric_index(n: int) -> np.ndarray:
    """For each (l, m) of an n x n matrix, row-major, the position of (min, max) among the
    pairs of :func:`upper_positions`."""
    position = np.zeros((n, n), dtype=np.int64)
    first, second = np.triu_indices(n)
    position[first, second] = np.arange(first.size)
    position[second, first] = np.arange(first.size)
    return position.reshape(-1)


def take(xp: Any, a: Any, indices: np.ndarray, axis: int) -> Any:
    """``numpy.take(a, indices, axis)`` with host (NumPy) indices; a namespace may bring its
    own as ``xp.take_host`` (torch: on the tensor's device)."""
    own = getattr(xp, "take_host", None)
    if own is not None:
        return own(a, indices, axis)
    return xp.take(a, xp.asarray(indices), axis=axis)


def softmax_head_moments_linearized(
    xp: Any,
    h: Any,
    targets: Any,
    w_mean: Any,
    w_cov: Any,
    clamp: bool = True,
    layouts: LinearizedCovariance | None = None,
) -> tuple[Any, Any]:
    """Linearized moments (``bogc_ref.softmax_head_moments_linearized``).

    ``clamp``: a variance rounded below 0 is 0, as in the reference (``False``: the sum as
    it is, for a caller that tests it for an invalid covariance first). ``layouts``: Σ
    already rearranged by :func:`linearized_covariance` (``w_cov`` is then not read).

    Any leading axes are a stack of heads computed at once (h (..., B, D), targets
    (..., B, K), w_mean (..., K, D+1), w_cov (..., K(D+1), K(D+1))): the training
    integration stacks heads of one shape, so that a few tiny heads cost one call's
    operations instead of one call each. Every formula is per head, as without them.

    Three matrix products carry the cost, O(B K² (D+1)²) in all (term 1 over the pairs of
    classes, along_r over r ⊗ ĥ, the quadratic forms ĥᵀΣ_lm ĥ over ĥ ⊗ ĥ or, for wider
    heads, over ĥ and Σ's rows (see :class:`LinearizedCovariance`)), with terms 2
    and 3 summed in one pass: var_i = term1_i + Σ_m A'_mi (2 along_r_mi + (quad A')_mi),
    A' = s A (quad is symmetric).
    """
    *lead, n_classes, width = w_mean.shape
    dim = width - 1
    n_rows = h.shape[-2]
    if layouts is None:
        layouts = linearized_covariance(xp, w_cov, n_classes, width)
    h_tilde = augmented(xp, h)
    p = softmax(xp, h_tilde @ swap_last(xp, w_mean))
    r = p - targets
    a_weights = w_mean[..., :dim]
    term1 = (r[..., :, :, None] * r[..., :, None, :]).reshape(
        *lead, n_rows, n_classes * n_classes
    ) @ layouts.same_dim
    # h̃ = s ĥ, s = max|h̃_b| >= 1: the contractions use ĥ and s is folded into the Jacobian
    # (as the reference), so a saturated softmax (A = 0) next to a huge h gives 0, not 0 · inf.
    size = xp.amax(abs(h_tilde), axis=-1)
    unit = h_tilde / size[..., None]
    # jac_a[b, l, i] = s_b (a_li - (p_b a)_i) p_bl: the Jacobian of g through p, per unit ĥ.
    # (..., B, K, D): classes before dimensions, so that every elementwise pass runs along D
    # and the sum over classes adds whole rows.
    jac_a = (a_weights[..., None, :, :] - (p @ a_weights)[..., :, None, :]) * (
        (p * size[..., None])[..., :, :, None]
    )
    # 2 along_r[b, m, i] = Σ_{l,k} 2 r_bl Σ[(l, i), (m, k)] ĥ_bk
    twice_along_r = (
        ((2.0 * r)[..., :, :, None] * unit[..., :, None, :]).reshape(
            *lead, n_rows, n_classes * width
        )
        @ layouts.by_r
    ).reshape(*lead, n_rows, n_classes, dim)
    # quad[b, l, m] = ĥ_bᵀ Σ_lm ĥ_b: narrow heads as ĥ ⊗ ĥ against all pairs (l, m); wider
    # ones as ĥ against Σ's rows for the pairs l <= m, a dot with ĥ again, then all pairs
    if layouts.expand is None:
        quad = (unit[..., :, :, None] * unit[..., :, None, :]).reshape(
            *lead, n_rows, width * width
        ) @ layouts.by_pairs
    else:
        n_pairs = layouts.expand.shape[-2]
        rows = (unit @ layouts.by_pairs).reshape(*lead, n_rows, n_pairs, width)
        quad = (rows @ unit[..., :, :, None])[..., 0] @ layouts.expand
    quad = quad.reshape(*lead, n_rows, n_classes, n_classes)
    var = term1 + (jac_a * (twice_along_r + quad @ jac_a)).sum(axis=-2)
    return (r @ a_weights), (xp.maximum(var, 0.0) if clamp else var)


def empirical_moments(xp: Any, g: Any) -> tuple[Any, Any]:
    """Mean of the N per-sample gradients and the variance of that mean."""
    n = g.shape[0]
    mean = g.mean(axis=0)
    return mean, ((g - mean) ** 2).sum(axis=0) / (n * (n - 1))


def empirical_moments_scaled(xp: Any, g: Any) -> tuple[Any, Any]:
    """:func:`empirical_moments` with each entry's samples divided by their largest magnitude
    first (``bogc_ref._empirical._scaled_moments``): no overflow short of the result's own."""
    size = xp.amax(abs(g), axis=0)
    size = size + (size == 0)  # 1 where every sample is 0
    mean, var = empirical_moments(xp, g / size)
    return size * mean, size * (size * var)


def linear_head_posterior(
    xp: Any, sla: Any, h: Any, y: Any, m0: Any, p0: Any, noise_var: float
) -> tuple[Any, Any]:
    """Conjugate posterior (float64 inputs), ``bogc_ref.linear_head_posterior``."""
    h_tilde = augmented(xp, h)
    chol = cholesky_jittered(
        xp,
        p0 + h_tilde.T @ h_tilde / noise_var,
        "h, noise_var, prior_precision: the posterior precision P0 + H̃ᵀH̃/noise_var",
    )
    mean = cho_solve(xp, sla, chol, p0 @ m0.T + h_tilde.T @ y / noise_var).T
    return mean, cho_inverse(xp, sla, chol)


def softmax_head_laplace(
    xp: Any, sla: Any, h: Any, targets: Any, theta: Any, m0: Any, p0: PriorPrecision
) -> tuple[Any, Any]:
    """One Newton step with the Kronecker-structured GGN (float64 inputs).

    Any leading axes are a stack of heads fitted at once (h (..., B, D), targets (..., B, K),
    theta and m0 (..., K, D+1), p0 (K(D+1), K(D+1)) or a stack of them, or a float c for
    c I: :data:`PriorPrecision`), as in :func:`softmax_head_moments_linearized`; every
    formula is per head.
    """
    lead = theta.shape[:-2]
    h_tilde = augmented(xp, h)
    p = softmax(xp, h_tilde @ swap_last(xp, theta))
    precision = laplace_precision(xp, p, h_tilde, p0)
    grad = laplace_gradient(xp, h_tilde, p, targets, theta, m0, p0)
    chol = cholesky_jittered(xp, precision, "h, prior_precision: the Laplace precision P0 + GGN")
    mean = theta.reshape(*lead, -1) - cho_solve(xp, sla, chol, grad[..., None])[..., 0]
    return mean.reshape(theta.shape), cho_inverse(xp, sla, chol)


def laplace_precision(xp: Any, p: Any, h_tilde: Any, p0: PriorPrecision) -> Any:
    r"""Λ = P0 + GGN (..., K(D+1), K(D+1)), θ row-major, with

    .. math::

        \mathrm{GGN}[(l, j), (m, k)] = \sum_b C_b[l, m]\, \tilde h_{bj} \tilde h_{bk},
        \qquad C_b = \mathrm{diag}\, p_b - p_b p_b^\top,

    each sample's curvature :math:`C_b` formed first, as in the reference (a difference of
    two sums over samples, :math:`\sum_b \mathrm{diag}(p_b) \otimes \tilde h_b \tilde
    h_b^\top - \sum_b (p_b \otimes \tilde h_b)(p_b \otimes \tilde h_b)^\top`, loses the
    small curvature of saturated samples to the rounding of the large terms at large
    :math:`|h|`); with :math:`\tilde h_b = s_b \hat h_b`, :math:`s_b = \max|\tilde h_b|`, the
    products are :math:`(C_b s_b s_b) \hat h_{bj} \hat h_{bk}`, finite unless a term is
    not. :math:`C_b` is symmetric, so the sum is one product over its pairs l <= m,
    (K(K+1)/2, B) by (B, (D+1)²), summed over chunks of rows (each chunk's work arrays
    within ``LAPLACE_CHUNK_ELEMENTS``), and spread to the full matrix by one gather. Any
    leading axes are a stack of heads.
    """
    *lead, n_rows, n_classes = p.shape
    width = h_tilde.shape[-1]
    n_params = n_classes * width
    rows = max(1, LAPLACE_CHUNK_ELEMENTS // (width * width + n_classes * n_classes))
    eye = xp.eye(n_classes, dtype=p.dtype)
    by_pairs: Any = None  # (..., K(K+1)/2, (D+1)²)
    for start in range(0, max(n_rows, 1), rows):
        pc, hc = p[..., start : start + rows, :], h_tilde[..., start : start + rows, :]
        curvature = pc[..., :, :, None] * eye - pc[..., :, :, None] * pc[..., :, None, :]
        class_pairs = take(
            xp, curvature.reshape(*lead, -1, n_classes * n_classes), upper_positions(n_classes), -1
        )
        # h̃ = s ĥ, s = max|h̃_b| >= 1, s² folded into C_b one factor at a time: no
        # intermediate overflows unless a term of the sum itself does
        size = xp.amax(abs(hc), axis=-1)[..., None]
        unit = hc / size
        outer = (unit[..., :, :, None] * unit[..., :, None, :]).reshape(*lead, -1, width * width)
        term = swap_last(xp, class_pairs * size * size) @ outer
        by_pairs = term if by_pairs is None else by_pairs + term
    flat = by_pairs.reshape(*lead, by_pairs.shape[-2] * by_pairs.shape[-1])
    precision = take(xp, flat, ggn_positions(n_classes, width), -1)
    precision = precision.reshape(*lead, n_params, n_params)
    add_prior_precision(precision, p0)
    return precision


@functools.lru_cache(maxsize=64)
def ggn_positions(n_classes: int, width: int) -> np.ndarray:
    """For each entry [(l, j), (m, k)] of a K(D+1) x K(D+1) GGN, row-major, its position in
    the flattened (K(K+1)/2, (D+1)²) array over the pairs of classes (min(l, m), max(l, m))
    (those of :func:`upper_positions`) and the columns (j, k)."""
    classes = symmetric_index(n_classes).reshape(n_classes, 1, n_classes, 1)
    rows, columns = np.arange(width).reshape(1, width, 1, 1), np.arange(width)
    return (classes * (width * width) + rows * width + columns).reshape(-1)


def laplace_gradient(
    xp: Any, h_tilde: Any, p: Any, targets: Any, theta: Any, m0: Any, p0: PriorPrecision
) -> Any:
    """∇_θ [Σ_b CE_b + ½(θ − m0)ᵀP0(θ − m0)] = vec((P − Y)ᵀH̃) + P0 vec(θ − m0), θ row-major
    (any leading axes: a stack of heads)."""
    lead = theta.shape[:-2]
    data = (swap_last(xp, p - targets) @ h_tilde).reshape(*lead, -1)
    return data + prior_times(p0, (theta - m0).reshape(*lead, -1))


def prior_times(p0: PriorPrecision, x: Any) -> Any:
    """P0 x for vectors x (..., n): a matrix-vector product, or c x where P0 = c I."""
    if isinstance(p0, float):
        return p0 * x
    return (p0 @ x[..., None])[..., 0]


def add_prior_precision(precision: Any, p0: PriorPrecision) -> None:
    """``precision += P0`` in place; for P0 = c I, c added to the diagonal only."""
    if isinstance(p0, float):
        n = precision.shape[-1]
        precision.reshape(*precision.shape[:-2], n * n)[..., :: n + 1] += p0
    else:
        precision += p0


def laplace_mean_with_covariance(
    xp: Any, h: Any, targets: Any, theta: Any, m0: Any, p0: PriorPrecision, cov: Any
) -> Any:
    """The Laplace mean θ − Σ∇ (the Newton step of ``softmax_head_laplace``) at new weights
    θ with a given covariance Σ (an earlier fit's): O(B K (D+1) + K²(D+1)²), no solve.
    Any leading axes are a stack of heads, as in :func:`softmax_head_moments_linearized`."""
    lead = theta.shape[:-2]
    h_tilde = augmented(xp, h)
    p = softmax(xp, h_tilde @ swap_last(xp, theta))
    grad = laplace_gradient(xp, h_tilde, p, targets, theta, m0, p0)
    step = (cov @ grad[..., None])[..., 0]
    return (theta.reshape(*lead, -1) - step).reshape(theta.shape)
