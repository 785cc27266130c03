"""The CuPy backend's stage-1 code (``_xp_stage1``) run with ``xp = numpy`` on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

import bogc_ref
from bogc_ref.backends import _xp_stage1 as xs


def _problem(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    b, d, k = 5, 3, 4
    a = rng.standard_normal((k * (d + 1),) * 2)
    covs = np.stack([np.eye(d + 1) * 0.2] * k)
    return {
        "h": rng.standard_normal((b, d)),
        "y": rng.standard_normal((b, k)),
        "labels": rng.integers(0, k, b),
        "w": rng.standard_normal((k, d + 1)),
        "cov": 0.02 * a @ a.T / a.shape[0] + 0.01 * np.eye(a.shape[0]),
        "covs": covs,
        "eps": rng.standard_normal((21, k * (d + 1))),
    }


def test_xp_stage1_with_numpy_matches_reference() -> None:
    p = _problem()
    k = p["w"].shape[0]
    targets = np.eye(k)[p["labels"]]
    pairs = [
        (
            xs.linear_head_moments(np, p["h"], p["y"], p["w"], p["covs"]),
            bogc_ref.linear_head_moments(p["h"], p["y"], p["w"], p["covs"]),
        ),
        (
            xs.softmax_head_moments_linearized(np, p["h"], targets, p["w"], p["cov"]),
            bogc_ref.softmax_head_moments_linearized(p["h"], p["labels"], p["w"], p["cov"]),
        ),
        (
            xs.softmax_head_moments(
                np,
                p["h"],
                targets,
                p["w"],
                xs.cholesky_jittered(np, p["cov"], "w_cov"),
                lambda start, size: p["eps"][start : start + size],
                21,
                4,
            ),
            bogc_ref.softmax_head_moments(p["h"], p["labels"], p["w"], p["cov"], eps=p["eps"]),
        ),
        (
            xs.linear_head_posterior(
                np, scipy.linalg, p["h"], p["y"], p["w"], np.eye(4) * 0.3, 0.7
            ),
            bogc_ref.linear_head_posterior(
                p["h"], p["y"], prior_mean=p["w"], prior_precision=np.eye(4) * 0.3, noise_var=0.7
            ),
        ),
        (
            xs.softmax_head_laplace(
                np, scipy.linalg, p["h"], targets, p["w"], 0 * p["w"], np.eye(16)
            ),
            bogc_ref.softmax_head_laplace(
                p["h"], p["labels"], p["w"], prior_mean=0 * p["w"], prior_precision=np.eye(16)
            ),
        ),
    ]
    for got, expected in pairs:
        for g, e in zip(got, expected, strict=False):
            e = e[0] if e.ndim == 3 and g.ndim == 2 else e  # shared Σ of the linear posterior
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def test_xp_cholesky_jitter_policy_and_error() -> None:
    singular = np.array([[1.0, 1.0], [1.0, 1.0]])
    chol = xs.cholesky_jittered(np, singular, "a")
    assert np.all(np.isfinite(chol))
    with pytest.raises(np.linalg.LinAlgError, match=r"^a: matrix of shape \(2, 2\)"):
        xs.cholesky_jittered(np, -np.eye(2), "a")


def test_xp_cholesky_names_the_non_finite_matrix_of_a_stack() -> None:
    """The finiteness test before the factorisation (one sum, then entry by entry) names the
    matrix of a stack that overflowed, in NumPy and through torch's namespace; finite
    entries whose sum overflows are factored."""
    torch = pytest.importorskip("torch")
    from bogc_ref.backends._torch_xp import namespace_of

    stack = np.stack([np.eye(3), np.eye(3)])
    stack[1, 2, 0] = stack[1, 0, 2] = np.inf
    huge = np.diag([1e308, 1e308, 1.0])[None]  # finite; its sum overflows
    for xp, wrap in ((np, np.asarray), (namespace_of(torch.zeros(1)), torch.from_numpy)):
        with pytest.raises(ValueError, match=r"^a \[1\]: a matrix of shape \(3, 3\) with non"):
            xs.cholesky_jittered(xp, wrap(stack), "a")
        chol = np.asarray(xs.cholesky_jittered(xp, wrap(huge), "a"))
        np.testing.assert_allclose(chol[0].diagonal(), [1e154, 1e154, 1.0])


@pytest.mark.parametrize("dim", [3, 44])  # head widths on either side of FULL_QUAD_MAX_WIDTH
def test_stacked_heads_equal_one_head_at_a_time(dim: int) -> None:
    """A stack of heads (leading axis) gives each head's own linearized moments and Newton
    mean, as the reference computes them one head at a time; the same with Σ rearranged
    once beforehand (``layouts``, as the training integration passes it)."""
    assert (dim + 1 <= xs.FULL_QUAD_MAX_WIDTH) == (dim == 3)
    rng = np.random.default_rng(dim)
    n_heads, b, k = 3, 6, 4
    width = dim + 1
    h = 2.0 * rng.standard_normal((n_heads, b, dim))
    labels = rng.integers(0, k, (n_heads, b))
    targets = np.eye(k)[labels]
    w = rng.standard_normal((n_heads, k, width))
    a = rng.standard_normal((n_heads, k * width, k * width))
    cov = 0.05 * a @ np.swapaxes(a, 1, 2) / (k * width) + 0.01 * np.eye(k * width)
    p0 = np.eye(k * width) * 0.7
    mean, var = xs.softmax_head_moments_linearized(np, h, targets, w, cov)
    layouts = xs.linearized_covariance(np, cov, k, width)
    assert (layouts.expand is None) == (dim == 3)
    mean_l, var_l = xs.softmax_head_moments_linearized(
        np, h, targets, w, np.full_like(cov, np.nan), layouts=layouts
    )
    newton = xs.laplace_mean_with_covariance(np, h, targets, w, 0 * w, p0, cov)
    for i in range(n_heads):
        one = bogc_ref.softmax_head_moments_linearized(h[i], labels[i], w[i], cov[i])
        np.testing.assert_allclose(mean[i], one.mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(var[i], one.var, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(mean_l[i], one.mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(var_l[i], one.var, rtol=1e-10, atol=1e-12)
        alone = xs.laplace_mean_with_covariance(np, h[i], targets[i], w[i], 0 * w[i], p0, cov[i])
        np.testing.assert_allclose(newton[i], alone, rtol=1e-12, atol=1e-14)


def test_stacked_laplace_fits_equal_the_reference_head_by_head() -> None:
    """The torch backend's Laplace fit of a stack of heads equals the reference per head,
    also when one matrix of the stack needs the jitter policy (then applied to it alone)."""
    torch = pytest.importorskip("torch")
    from bogc_ref.backends import _torch_stage1
    from bogc_ref.backends._torch_xp import namespace_of

    rng = np.random.default_rng(3)
    n_heads, b, dim, k = 3, 7, 2, 3
    h = rng.standard_normal((n_heads, b, dim))
    labels = rng.integers(0, k, (n_heads, b))
    w = rng.standard_normal((n_heads, k, dim + 1))
    p0 = np.eye(k * (dim + 1)) * 0.4
    as_t = torch.from_numpy
    mean, cov = _torch_stage1.softmax_head_laplace(
        as_t(h), as_t(np.eye(k)[labels]), as_t(w), as_t(0 * w), as_t(p0)
    )
    for i in range(n_heads):
        one = bogc_ref.softmax_head_laplace(
            h[i], labels[i], w[i], prior_mean=0 * w[i], prior_precision=p0
        )
        np.testing.assert_allclose(mean[i].numpy(), one.mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cov[i].numpy(), one.cov, rtol=1e-10, atol=1e-12)
    singular = np.array([[1.0, 1.0], [1.0, 1.0]])
    stack = np.stack([np.eye(2) * 2.0, singular])
    xp = namespace_of(as_t(stack))
    got = xs.cholesky_jittered(xp, as_t(stack), "a")
    for i in range(2):
        alone = xs.cholesky_jittered(np, stack[i], "a")
        np.testing.assert_allclose(got[i].numpy(), alone, rtol=1e-12, atol=1e-15)
    with pytest.raises(np.linalg.LinAlgError, match=r"^a \[1\]: matrix of shape \(2, 2\)"):
        xs.cholesky_jittered(xp, as_t(np.stack([np.eye(2), -np.eye(2)])), "a")


@pytest.mark.parametrize("chunk_elements", [1, 2 * 12 * 12, 10**6])
def test_laplace_fit_over_chunks_of_rows_equals_the_reference(
    monkeypatch: pytest.MonkeyPatch, chunk_elements: int
) -> None:
    """The GGN summed over chunks of rows (one row, a few rows, all of them) gives the
    reference's Laplace posterior, for one head and for a stack with a stacked prior."""
    k, dim, b = 3, 3, 30  # chunks of 12 rows (the K²(D+1)² result's size), 24, all 30
    n_params = k * (dim + 1)
    monkeypatch.setattr(xs, "LAPLACE_CHUNK_ELEMENTS", chunk_elements)
    rng = np.random.default_rng(chunk_elements)
    h = 3.0 * rng.standard_normal((2, b, dim))
    labels = rng.integers(0, k, (2, b))
    w = rng.standard_normal((2, k, dim + 1))
    m0 = 0.1 * rng.standard_normal((2, k, dim + 1))
    a = rng.standard_normal((2, n_params, n_params))
    p0 = a @ np.swapaxes(a, 1, 2) / n_params + 0.5 * np.eye(n_params)
    targets = np.eye(k)[labels]
    stacked = xs.softmax_head_laplace(np, scipy.linalg, h, targets, w, m0, p0)
    for i in range(2):
        one = bogc_ref.softmax_head_laplace(
            h[i], labels[i], w[i], prior_mean=m0[i], prior_precision=p0[i]
        )
        alone = xs.softmax_head_laplace(np, scipy.linalg, h[i], targets[i], w[i], m0[i], p0[i])
        for got in (alone, (stacked[0][i], stacked[1][i])):
            np.testing.assert_allclose(got[0], one.mean, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(got[1], one.cov, rtol=1e-10, atol=1e-12)


def test_isotropic_prior_as_a_float_equals_its_matrix() -> None:
    """A prior precision given as the float c (c I, as the training integration passes it)
    gives the Laplace fit and the Newton mean of the matrix c I, stacked or not."""
    rng = np.random.default_rng(5)
    n_heads, b, dim, k, c = 2, 9, 4, 3, 0.37
    n_params = k * (dim + 1)
    h = rng.standard_normal((n_heads, b, dim))
    targets = np.eye(k)[rng.integers(0, k, (n_heads, b))]
    w = rng.standard_normal((n_heads, k, dim + 1))
    m0 = 0.2 * rng.standard_normal((n_heads, k, dim + 1))
    matrix = c * np.eye(n_params)
    for at in (slice(None), 0):
        args = (h[at], targets[at], w[at], m0[at])
        fit = xs.softmax_head_laplace(np, scipy.linalg, *args, c)
        expected = xs.softmax_head_laplace(np, scipy.linalg, *args, matrix)
        for got, want in zip(fit, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
        moved = xs.laplace_mean_with_covariance(np, *args, c, fit[1])
        want_moved = xs.laplace_mean_with_covariance(np, *args, matrix, fit[1])
        np.testing.assert_allclose(moved, want_moved, rtol=1e-13, atol=1e-15)
