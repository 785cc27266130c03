"""Stage 1: gradient distributions, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

import bogc_ref

Z = 5.0  # two-sided normal quantile for the CLT bounds below (fixed seeds, ~6e-7 per entry)


def random_spd(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(size=(n, n))
    return scale * (a @ a.T / n + 0.1 * np.eye(n))


def head_problem(seed: int, b: int = 4, d: int = 3, k: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "h": rng.normal(size=(b, d)),
        "y": rng.normal(size=(b, k)),
        "labels": rng.integers(0, k, size=b),
        "w_mean": rng.normal(size=(k, d + 1)),
    }


def with_bias(h: np.ndarray) -> np.ndarray:
    return np.concatenate([h, np.ones((h.shape[0], 1))], axis=1)


def test_linear_moments_match_monte_carlo() -> None:
    p = head_problem(0)
    h, y, mu = p["h"], p["y"], p["w_mean"]
    k, width = mu.shape
    rng = np.random.default_rng(1)
    cov = np.stack([random_spd(rng, width, 0.2) for _ in range(k)])
    exact = bogc_ref.linear_head_moments(h, y, mu, cov)

    # Direct simulation of g = Σ_k (w_k·h̃ - y_k) w_k[:D] with independent rows.
    s = 200_000
    w = mu + np.einsum("kij,skj->ski", np.linalg.cholesky(cov), rng.normal(size=(s, k, width)))
    residual = np.einsum("skj,bj->sbk", w, with_bias(h)) - y
    g = np.einsum("sbk,skd->sbd", residual, w[..., :-1])
    mc_mean, mc_var = g.mean(0), g.var(0, ddof=1)
    fourth = np.mean((g - mc_mean) ** 4, axis=0)
    assert np.all(np.abs(mc_mean - exact.mean) <= Z * np.sqrt(exact.var / s))
    # Standard error of the sample variance: sqrt((μ4 - σ⁴)/S).
    assert np.all(np.abs(mc_var - exact.var) <= Z * np.sqrt((fourth - mc_var**2) / s))


def ce_loss(h_row: np.ndarray, label: int, w: np.ndarray) -> float:
    logits = w @ np.append(h_row, 1.0)
    return float(-log_softmax(logits)[label])


def test_softmax_gradient_matches_finite_differences() -> None:
    p = head_problem(4, b=3, d=4, k=5)
    h, labels, w = p["h"], p["labels"], p["w_mean"]
    n_params = w.size
    out = bogc_ref.softmax_head_moments_linearized(h, labels, w, np.zeros((n_params, n_params)))
    step = 1e-6
    for b in range(h.shape[0]):
        for i in range(h.shape[1]):
            up, down = h[b].copy(), h[b].copy()
            up[i] += step
            down[i] -= step
            fd = (ce_loss(up, labels[b], w) - ce_loss(down, labels[b], w)) / (2 * step)
            assert out.mean[b, i] == pytest.approx(fd, rel=1e-7, abs=1e-9)
    assert np.all(out.var == 0.0)


def g_of_theta(theta: np.ndarray, h_tilde: np.ndarray, y: np.ndarray, shape: tuple[int, int]):
    w = theta.reshape(shape)
    return (softmax(w @ h_tilde) - y) @ w[:, :-1]


def test_linearized_variance_matches_dense_jacobian() -> None:
    p = head_problem(5, b=3, d=3, k=4)
    h, labels, w = p["h"], p["labels"], p["w_mean"]
    n_params = w.size
    cov = random_spd(np.random.default_rng(6), n_params, 0.3)
    out = bogc_ref.softmax_head_moments_linearized(h, labels, w, cov)
    step = 1e-6
    for b in range(h.shape[0]):
        y = np.eye(w.shape[0])[labels[b]]
        h_tilde = np.append(h[b], 1.0)
        jac = np.empty((h.shape[1], n_params))
        for j in range(n_params):
            e = np.zeros(n_params)
            e[j] = step
            jac[:, j] = (
                g_of_theta(w.ravel() + e, h_tilde, y, w.shape)
                - g_of_theta(w.ravel() - e, h_tilde, y, w.shape)
            ) / (2 * step)
        np.testing.assert_allclose(out.var[b], np.diag(jac @ cov @ jac.T), rtol=1e-6)


def whitened_noise(rng: np.random.Generator, s: int, n: int) -> np.ndarray:
    """Draws whose sample mean is 0 and sample covariance (ddof=1) is exactly I."""
    eps = rng.normal(size=(s, n))
    eps -= eps.mean(0)
    chol = np.linalg.cholesky(np.cov(eps, rowvar=False))
    return np.linalg.solve(chol, eps.T).T


def test_mc_matches_linearized_as_covariance_shrinks() -> None:
    p = head_problem(7, b=3, d=3, k=3)
    h, labels, w = p["h"], p["labels"], p["w_mean"]
    n_params = w.size
    base = random_spd(np.random.default_rng(8), n_params)
    eps = whitened_noise(np.random.default_rng(9), 256, n_params)
    errors = []
    for scale in (1e-2, 1e-3, 1e-4):
        cov = scale**2 * base
        mc = bogc_ref.softmax_head_moments(h, labels, w, cov, eps=eps)
        lin = bogc_ref.softmax_head_moments_linearized(h, labels, w, cov)
        # With whitened draws the sample variance of the linear term is exactly diag(JΣJᵀ),
        # so what is left is the Taylor remainder, O(scale) relative.
        errors.append(np.max(np.abs(mc.var / lin.var - 1.0)))
        np.testing.assert_allclose(mc.mean, lin.mean, rtol=0, atol=10 * scale**2)
    assert errors[2] < 1e-3
    assert errors[1] < errors[0] / 5 and errors[2] < errors[1] / 5


def test_chunked_mc_equals_unchunked() -> None:
    p = head_problem(10)
    n_params = p["w_mean"].size
    cov = random_spd(np.random.default_rng(11), n_params, 0.1)
    eps = np.random.default_rng(12).normal(size=(37, n_params))
    args = (p["h"], p["labels"], p["w_mean"], cov)
    whole = bogc_ref.softmax_head_moments(*args, eps=eps, chunk_size=37)
    for chunk in (1, 5, 36):
        part = bogc_ref.softmax_head_moments(*args, eps=eps, chunk_size=chunk)
        np.testing.assert_allclose(part.mean, whole.mean, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(part.var, whole.var, rtol=1e-12, atol=1e-15)
    # The same numbers from a plain, unstreamed computation with numpy's own variance.
    theta = p["w_mean"].ravel() + eps @ np.linalg.cholesky(cov).T
    y = np.eye(p["w_mean"].shape[0])[p["labels"]]
    g = np.stack(
        [
            np.stack(
                [
                    g_of_theta(t, np.append(hb, 1.0), yb, p["w_mean"].shape)
                    for hb, yb in zip(p["h"], y, strict=True)
                ]
            )
            for t in theta
        ]
    )
    np.testing.assert_allclose(whole.mean, g.mean(0), rtol=1e-12)
    np.testing.assert_allclose(whole.var, g.var(0, ddof=1), rtol=1e-11)


def test_mc_seed_is_deterministic_and_uses_default_rng() -> None:
    p = head_problem(13)
    n_params = p["w_mean"].size
    cov = random_spd(np.random.default_rng(14), n_params, 0.1)
    args = (p["h"], p["labels"], p["w_mean"], cov)
    a = bogc_ref.softmax_head_moments(*args, n_samples=50, seed=3, chunk_size=7)
    b = bogc_ref.softmax_head_moments(*args, n_samples=50, seed=3)
    eps = np.random.default_rng(3).standard_normal((50, n_params))
    c = bogc_ref.softmax_head_moments(*args, eps=eps)
    np.testing.assert_allclose(a.var, c.var, rtol=1e-12)
    np.testing.assert_allclose(b.mean, c.mean, rtol=1e-13)


def test_empirical_moments_unbiased() -> None:
    rng = np.random.default_rng(15)
    g = rng.normal(size=(7, 2, 5))
    out = bogc_ref.empirical_moments(g)
    n = g.shape[0]
    mean = sum(g) / n
    var = sum((row - mean) ** 2 for row in g) / (n * (n - 1))
    np.testing.assert_allclose(out.mean, mean, rtol=1e-14)
    np.testing.assert_allclose(out.var, var, rtol=1e-13)
    # Unbiased for the variance of the mean: averaged over many replicates, sigma²/N.
    reps = rng.normal(scale=2.0, size=(20_000, 4, 3))
    est = np.stack([bogc_ref.empirical_moments(r).var for r in reps])
    target = 4.0 / 4
    se = est.std() / np.sqrt(est.size)
    assert abs(est.mean() - target) < Z * se


def test_conjugate_posterior_matches_dense_solve() -> None:
    p = head_problem(16, b=20, d=3, k=2)
    h, y = p["h"], p["y"]
    rng = np.random.default_rng(17)
    m0 = rng.normal(size=(2, 4))
    p0 = random_spd(rng, 4)
    noise = 0.3
    post = bogc_ref.linear_head_posterior(h, y, prior_mean=m0, prior_precision=p0, noise_var=noise)
    x = with_bias(h)
    for k in range(2):
        # Stack the prior as pseudo-observations and solve the normal equations densely.
        precision = p0 + x.T @ x / noise
        mean = np.linalg.solve(precision, p0 @ m0[k] + x.T @ y[:, k] / noise)
        np.testing.assert_allclose(post.mean[k], mean, rtol=1e-11)
        np.testing.assert_allclose(post.cov[k], np.linalg.inv(precision), rtol=1e-10, atol=1e-14)


def dense_ggn(h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Σ_b J_bᵀ (diag p_b - p_b p_bᵀ) J_b with the explicit logits Jacobian J_b = ∂z/∂θ."""
    k, width = w.shape
    total = np.zeros((w.size, w.size))
    for h_tilde in with_bias(h):
        jac = np.zeros((k, w.size))
        for c in range(k):
            jac[c, c * width : (c + 1) * width] = h_tilde
        prob = softmax(w @ h_tilde)
        total += jac.T @ (np.diag(prob) - np.outer(prob, prob)) @ jac
    return total


def test_kronecker_ggn_matches_dense() -> None:
    p = head_problem(18, b=6, d=2, k=3)
    w = p["w_mean"]
    p0 = np.eye(w.size)
    post = bogc_ref.softmax_head_laplace(
        p["h"], p["labels"], w, prior_mean=np.zeros_like(w), prior_precision=p0
    )
    np.testing.assert_allclose(np.linalg.inv(post.cov) - p0, dense_ggn(p["h"], w), atol=1e-10)


def test_laplace_mean_is_one_newton_step() -> None:
    p = head_problem(19, b=8, d=2, k=3)
    h, labels, w = p["h"], p["labels"], p["w_mean"]
    rng = np.random.default_rng(20)
    m0 = rng.normal(size=w.shape)
    p0 = random_spd(rng, w.size)

    def objective(theta: np.ndarray) -> float:
        data = sum(
            ce_loss(hb, lb, theta.reshape(w.shape)) for hb, lb in zip(h, labels, strict=True)
        )
        diff = theta - m0.ravel()
        return data + 0.5 * diff @ p0 @ diff

    step = 1e-6
    grad = np.array(
        [
            (objective(w.ravel() + step * e) - objective(w.ravel() - step * e)) / (2 * step)
            for e in np.eye(w.size)
        ]
    )
    precision = p0 + dense_ggn(h, w)
    expected = w.ravel() - np.linalg.solve(precision, grad)
    post = bogc_ref.softmax_head_laplace(h, labels, w, prior_mean=m0, prior_precision=p0)
    np.testing.assert_allclose(post.mean.ravel(), expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(post.cov, np.linalg.inv(precision), rtol=1e-9, atol=1e-12)


def test_near_singular_covariance_uses_jitter() -> None:
    p = head_problem(21)
    n_params = p["w_mean"].size
    v = np.random.default_rng(22).normal(size=(n_params, 2))
    rank_two = v @ v.T  # positive semi-definite, singular
    out = bogc_ref.softmax_head_moments(
        p["h"], p["labels"], p["w_mean"], rank_two, n_samples=64, seed=0
    )
    assert np.all(np.isfinite(out.var))


def test_indefinite_covariance_raises_linalg_error() -> None:
    p = head_problem(23)
    n_params = p["w_mean"].size
    cov = -np.eye(n_params)
    with pytest.raises(np.linalg.LinAlgError, match=r"w_cov: matrix of shape \(\d+, \d+\)"):
        bogc_ref.softmax_head_moments(p["h"], p["labels"], p["w_mean"], cov, n_samples=4, seed=0)
