"""The benchmark baselines compute what the reference computes, and the asv suite loads.

Each baseline in ``benchmarks/`` is checked against the reference function it is timed
against, and (where a second derivation exists) against an independent formula.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bogc_ref

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.baseline_blas_linear_head import blas_linear_head_moments  # noqa: E402
from benchmarks.baseline_dense_ggn import (  # noqa: E402
    dense_ggn,
    dense_laplace_posterior,
    per_sample_jacobians,
)
from benchmarks.baseline_full_covariance import (  # noqa: E402
    full_covariance_moments,
    sample_gradient_covariance,
)
from benchmarks.baseline_materialising_mc import materialising_softmax_moments  # noqa: E402


def spd(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray:
    a = rng.normal(size=(n, n)) / np.sqrt(n)
    return scale * (a @ a.T + 0.5 * np.eye(n))


def linear_head_case(
    seed: int, b: int, d: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(b, d))
    y = rng.normal(size=(b, k))
    w_mean = rng.normal(size=(k, d + 1))
    w_cov = np.stack([spd(rng, d + 1, 0.3) for _ in range(k)])
    return h, y, w_mean, w_cov


@pytest.mark.parametrize(("seed", "d", "k"), [(0, 1, 1), (1, 5, 3), (2, 12, 2)])
def test_full_covariance_diagonal_equals_linear_head_moments(seed: int, d: int, k: int) -> None:
    h, y, w_mean, w_cov = linear_head_case(seed, 7, d, k)
    mean, var = full_covariance_moments(h, y, w_mean, w_cov)
    ref = bogc_ref.linear_head_moments(h, y, w_mean, w_cov)
    np.testing.assert_allclose(mean, ref.mean, rtol=1e-10, atol=0)
    np.testing.assert_allclose(var, ref.var, rtol=1e-10, atol=0)


@pytest.mark.parametrize(("seed", "d", "k"), [(0, 1, 1), (1, 5, 3), (2, 12, 2)])
def test_blas_baseline_equals_linear_head_moments(seed: int, d: int, k: int) -> None:
    h, y, w_mean, w_cov = linear_head_case(seed, 7, d, k)
    mean, var = blas_linear_head_moments(h, y, w_mean, w_cov)
    ref = bogc_ref.linear_head_moments(h, y, w_mean, w_cov)
    np.testing.assert_allclose(mean, ref.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(var, ref.var, rtol=1e-10, atol=1e-12)


def test_training_cases_run_one_step_each() -> None:
    pytest.importorskip("torch")
    from benchmarks.training_cases import late_fusion_case, trunk_case

    for aggregation in ("plain", "bogc"):
        late_fusion_case(
            aggregation, 8, **({"refresh_every": 2} if aggregation == "bogc" else {})
        )()
    for label in ("plain", "bogc", "bogc-factored"):
        step, n_params = trunk_case(label, 64)
        step()
        assert n_params == 6272


def test_full_covariance_matrix_equals_second_derivation() -> None:
    # Expanding g = (a + z)(ρ + h̃ᵀz) around the mean (z ~ N(0, Σ)) instead gives, with
    # c = (Σh̃)_{:D}, s² = h̃ᵀΣh̃, a = μ_{:D}: Cov = (ρ² + s²)Σ + ρ(acᵀ + caᵀ) + s² aaᵀ + ccᵀ.
    h, y, w_mean, w_cov = linear_head_case(3, 1, 6, 1)
    h_tilde = np.append(h[0], 1.0)
    mu, sigma = w_mean[0], w_cov[0]
    rho = mu @ h_tilde - y[0, 0]
    s2 = h_tilde @ sigma @ h_tilde
    c = (sigma @ h_tilde)[:6]
    a = mu[:6]
    expected = (
        (rho**2 + s2) * sigma[:6, :6]
        + rho * (np.outer(a, c) + np.outer(c, a))
        + s2 * np.outer(a, a)
        + np.outer(c, c)
    )
    got = sample_gradient_covariance(h_tilde, y[0], w_mean, w_cov)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def softmax_case(
    seed: int, b: int, d: int, k: int, s: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(b, d))
    labels = rng.integers(0, k, size=b)
    w_mean = rng.normal(size=(k, d + 1))
    w_cov = spd(rng, k * (d + 1), 0.2)
    eps = rng.standard_normal((s, k * (d + 1)))
    return h, labels, w_mean, w_cov, eps


@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_materialising_mc_equals_streaming_reference(chunk_size: int | None) -> None:
    h, labels, w_mean, w_cov, eps = softmax_case(4, 6, 5, 3, 11)
    mean, var = materialising_softmax_moments(h, labels, w_mean, w_cov, eps)
    ref = bogc_ref.softmax_head_moments(h, labels, w_mean, w_cov, eps=eps, chunk_size=chunk_size)
    np.testing.assert_allclose(mean, ref.mean, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(var, ref.var, rtol=1e-10, atol=1e-14)


def test_materialising_mc_is_the_plain_estimator() -> None:
    # One draw at a time with an explicit loop over samples and classes: the estimator's
    # definition, independent of any vectorisation.
    h, labels, w_mean, w_cov, eps = softmax_case(5, 3, 2, 3, 4)
    chol = np.linalg.cholesky(w_cov)
    grads = np.zeros((4, 3, 2))
    for s in range(4):
        w = (w_mean.ravel() + chol @ eps[s]).reshape(3, 3)
        for b in range(3):
            z = w @ np.append(h[b], 1.0)
            p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
            for k in range(3):
                grads[s, b] += (p[k] - (labels[b] == k)) * w[k, :2]
    mean, var = materialising_softmax_moments(h, labels, w_mean, w_cov, eps)
    np.testing.assert_allclose(mean, grads.mean(0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(var, grads.var(0, ddof=1), rtol=1e-12, atol=1e-14)


def test_dense_ggn_equals_kronecker_ggn() -> None:
    rng = np.random.default_rng(6)
    b, d, k = 9, 4, 3
    h = rng.normal(size=(b, d))
    logits = rng.normal(size=(b, k))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    h_tilde = np.concatenate([h, np.ones((b, 1))], axis=1)
    kron = sum(
        np.kron(np.diag(p[i]) - np.outer(p[i], p[i]), np.outer(h_tilde[i], h_tilde[i]))
        for i in range(b)
    )
    got = dense_ggn(per_sample_jacobians(h, k), p)
    np.testing.assert_allclose(got, kron, rtol=1e-12, atol=1e-14)


def test_dense_laplace_posterior_equals_reference() -> None:
    rng = np.random.default_rng(7)
    b, d, k = 20, 4, 3
    h = rng.normal(size=(b, d))
    labels = rng.integers(0, k, size=b)
    w = rng.normal(size=(k, d + 1))
    m0 = rng.normal(size=(k, d + 1))
    p0 = spd(rng, k * (d + 1), 0.5)
    mean, cov = dense_laplace_posterior(h, labels, w, prior_mean=m0, prior_precision=p0)
    ref = bogc_ref.softmax_head_laplace(h, labels, w, prior_mean=m0, prior_precision=p0)
    np.testing.assert_allclose(mean, ref.mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov, ref.cov, rtol=1e-10, atol=1e-12)


def test_suites_cover_the_issue_grids() -> None:
    from benchmarks import (
        bench_calibrate,
        bench_empirical,
        bench_laplace,
        bench_linear_head,
        bench_softmax_mc,
        bench_training,
        bench_training_step,
    )

    calibrate = bench_calibrate.Calibrate
    assert {"numpy", "torch-cpu", "cupy"} <= set(calibrate.params[0])
    assert list(calibrate.params[1:]) == [
        [2, 3, 6],
        [2**10, 2**16, 2**20, 2**24],
        ["relative", "fixed"],
    ]
    assert bench_linear_head.LinearHeadMoments.params[0] == [64, 128, 256, 512]
    assert bench_linear_head.N_SAMPLES == 128
    assert bench_softmax_mc.SoftmaxMonteCarlo.params[0] == [64, 512]
    assert (bench_softmax_mc.N_SAMPLES, bench_softmax_mc.N_CLASSES, bench_softmax_mc.DIM) == (
        256,
        10,
        512,
    )
    for suite, prefixes in (
        (calibrate, ("time_", "peakmem_")),
        (bench_linear_head.LinearHeadMoments, ("time_", "peakmem_")),
        (bench_softmax_mc.SoftmaxMonteCarlo, ("time_", "peakmem_")),
        (bench_empirical.EmpiricalMoments, ("time_", "peakmem_")),
        (bench_laplace.LaplacePosterior, ("time_", "peakmem_")),
        (bench_training_step.TrainingStep, ("time_",)),
        (bench_training.RepresentationStep, ("time_",)),
        (bench_training.ParameterStep, ("time_",)),
    ):
        for prefix in prefixes:
            assert any(name.startswith(prefix) for name in vars(suite)), (suite, prefix)


def test_training_step_bogc_numpy_runs_and_updates_the_trunk() -> None:
    torch = pytest.importorskip("torch")
    from benchmarks.bench_training_step import TrainingStep

    bench = TrainingStep()
    bench.setup("bogc-numpy")
    before = [p.detach().clone() for p in bench.model.fusion.parameters()]
    bench.step()
    after = list(bench.model.fusion.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(torch.isfinite(p).all() for p in bench.model.parameters())


def test_asv_check_passes() -> None:
    asv = shutil.which("asv", path=str(Path(sys.executable).parent))
    if asv is None:
        pytest.skip("asv is not installed in this environment (pip install -e '.[bench]')")
    proc = subprocess.run(
        [asv, "check", "--python=same"],
        cwd=ROOT / "benchmarks",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No problems found" in proc.stdout, proc.stdout + proc.stderr


def test_roofline_bytes_are_the_arrays_each_call_touches() -> None:
    """The byte counts of roofline.py from the arrays themselves: calibrate_grad reads var
    twice (pass 1, pass 2) and mean once and writes grad; calibrate writes every field."""
    from benchmarks.roofline import CALLS

    m, d = 3, 1000
    mean = np.zeros((m, d), np.float32)
    var = np.ones((m, d), np.float32)
    full = bogc_ref.calibrate(mean, var)
    grad_only = 2 * var.nbytes + mean.nbytes + full.grad.nbytes
    assert CALLS["calibrate_grad"](m, d) == grad_only
    assert CALLS["calibrate"](m, d) == grad_only + sum(
        getattr(full, name).nbytes for name in ("belief", "uncertainty", "evidence")
    )


def test_roofline_runs_and_reports_every_call() -> None:
    """A small run: a copy baseline, and a time and a fraction for every call each backend
    offers (no timing check: the figures are for the reader)."""
    from benchmarks.roofline import report, roofline_rows

    labels = ["numpy", "torch-cpu"] if importlib.util.find_spec("torch") else ["numpy"]
    copy, _, rows = roofline_rows(labels, 2, 1 << 12, repeats=1)
    assert copy.bytes_per_second > 0 and copy.source
    calls = {(row["backend"], row["call"]) for row in rows if "skipped" not in row}
    assert ("numpy", "calibrate") in calls
    if "torch-cpu" in labels:
        assert {("torch-cpu", "calibrate"), ("torch-cpu", "calibrate_grad")} <= calls
    text = report(copy, None, rows, 2, 1 << 12)
    assert all(row["fraction"] > 0 for row in rows if "skipped" not in row)
    assert "minimum bytes only" in text
