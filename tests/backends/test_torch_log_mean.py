"""Pass 1 on the CPU from exponent and significand bits (``_torch_log_mean``), against
float64 logarithms of the same inputs, and the fallback to one logarithm per entry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from backend_cases import TORCH

torch = pytest.importorskip("torch", reason="PyTorch is not installed")

from bogc_ref.backends import _torch_calibrate  # noqa: E402
from bogc_ref.backends._torch_log_mean import BLOCK, mean_log_var_by_bits  # noqa: E402

pytestmark = pytest.mark.skipif(not TORCH, reason="PyTorch is not installed")

TINY32 = float(np.finfo(np.float32).tiny)
MAX32 = float(np.finfo(np.float32).max)


def _exact_mean_log(var: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """Σ log v / count over present sources, each log taken in float64 (math.fsum)."""
    lead = var.shape[:-2]
    out = np.zeros(lead)
    for index in np.ndindex(*lead):
        rows = var[index]
        keep = present[index] if present is not None else np.ones(rows.shape[0], bool)
        logs = [math.log(float(x)) for row in rows[keep] for x in row]
        out[index] = math.fsum(logs) / max(len(logs), 1)
    return out


def _log_uniform(shape: tuple[int, ...], low: float, high: float, seed: int) -> np.ndarray:
    return np.exp(np.random.default_rng(seed).uniform(low, high, shape))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "shape",
    [(3, 1), (3, BLOCK - 1), (3, BLOCK), (2, 5 * BLOCK + 17), (2, 4, 3 * BLOCK + 1)],
    ids=lambda s: "x".join(map(str, s)),
)
def test_mean_log_matches_float64_logs(dtype: str, shape: tuple[int, ...]) -> None:
    var = _log_uniform(shape, -80.0, 80.0, seed=len(shape) + shape[-1]).astype(dtype)
    got = mean_log_var_by_bits(torch.from_numpy(var), None)
    assert bool(got.usable)
    assert got.mean.dtype == torch.float64 and tuple(got.mean.shape) == (*shape[:-2], 1)
    # Error bound: B roundings of float64 per block product, about 1e-14 in the mean.
    np.testing.assert_allclose(got.mean[..., 0].numpy(), _exact_mean_log(var), rtol=0, atol=1e-13)


def test_extreme_exponents_are_exact_in_the_exponent_sum() -> None:
    """The smallest normal and the largest finite float32 together, in one block (terms of
    ±88 cancel: a few float64 roundings of them, 1e-14, is the error to expect)."""
    var = np.array([[TINY32, MAX32, 1.0, 2.0**-126, 2.0**127]], dtype=np.float32)
    got = mean_log_var_by_bits(torch.from_numpy(var), None)
    assert bool(got.usable)
    np.testing.assert_allclose(float(got.mean), _exact_mean_log(var)[()], rtol=0, atol=1e-13)


@pytest.mark.parametrize(
    "value",
    [0.0, -0.0, 1e-40, -math.inf, math.nan, -math.nan, -1.0],
    ids=["0", "-0", "subnormal", "-inf", "nan", "-nan", "negative"],
)
def test_entries_outside_positive_normals_make_the_sums_unusable(value: float) -> None:
    var = np.full((3, 2 * BLOCK), 0.5, dtype=np.float32)
    var[1, BLOCK + 3] = value
    assert not bool(mean_log_var_by_bits(torch.from_numpy(var), None).usable)
    # A masked-out source does not count, whatever it holds.
    present = torch.tensor([True, False, True])
    got = mean_log_var_by_bits(torch.from_numpy(var), present)
    assert bool(got.usable)
    np.testing.assert_allclose(float(got.mean), math.log(0.5), rtol=1e-15)


def test_mask_per_leading_index_and_nothing_present() -> None:
    var = _log_uniform((2, 3, 300), -5.0, 5.0, seed=3).astype(np.float32)
    present = np.array([[True, False, True], [False, False, False]])
    got = mean_log_var_by_bits(torch.from_numpy(var), torch.from_numpy(present))
    expected = _exact_mean_log(var, present)
    assert expected[1] == 0.0
    np.testing.assert_allclose(got.mean[..., 0].numpy(), expected, rtol=0, atol=1e-13)


def test_cpu_pass_one_reads_bits_and_falls_back_to_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Positive normal inputs never take a logarithm per entry; a zero sends the call to the
    per-entry logarithms (dogmatic entries excluded), with the same answer as those give."""
    calls: list[str] = []
    by_logs = _torch_calibrate._log_mean_by_logs

    def counting(var: torch.Tensor, present: torch.Tensor | None) -> torch.Tensor:
        calls.append("logs")
        return by_logs(var, present)

    monkeypatch.setattr(_torch_calibrate, "_log_mean_by_logs", counting)
    var = _log_uniform((3, 1000), -30.0, 30.0, seed=5).astype(np.float32)
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        v = torch.from_numpy(var).to(dtype).clamp(min=1e-3, max=1e3)  # normal in float16
        got = _torch_calibrate.reference_log_var(v, None)
        assert calls == [], dtype
        np.testing.assert_allclose(
            float(got), _exact_mean_log(v.double().numpy())[()], rtol=0, atol=1e-13
        )
    var[1, 3] = math.inf  # no information: left out, still read from the bits
    got = _torch_calibrate.reference_log_var(torch.from_numpy(var), None)
    assert calls == []
    finite = np.delete(var.ravel(), 1000 + 3)
    np.testing.assert_allclose(float(got), np.log(finite.astype(np.float64)).mean(), rtol=1e-6)
    var[2, 7] = 0.0
    got = _torch_calibrate.reference_log_var(torch.from_numpy(var), None)
    assert calls == ["logs"]
    informative = np.delete(var.ravel(), [1000 + 3, 2 * 1000 + 7])
    np.testing.assert_allclose(float(got), np.log(informative.astype(np.float64)).mean(), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_infinite_variances_are_left_out_not_unusable(dtype: str) -> None:
    """var = +inf (λ = 0, e.g. a coordinate a source does not reach) carries no scale: the
    mean runs over the finite entries only, as the per-entry logarithms give, and a source
    that is +inf everywhere adds nothing."""
    var = _log_uniform((2, 3, 2 * BLOCK + 5), -40.0, 40.0, seed=11).astype(dtype)
    var[0, 1, 7] = var[0, 1, BLOCK + 2] = var[1, 0, -1] = np.inf
    var[1, 2, :] = np.inf
    got = mean_log_var_by_bits(torch.from_numpy(var), None)
    assert bool(got.usable)
    expected = np.array([np.log(v[np.isfinite(v)].astype(np.float64)).mean() for v in var])
    np.testing.assert_allclose(got.mean[..., 0].numpy(), expected, rtol=0, atol=1e-13)
    by_logs = _torch_calibrate._log_mean_by_logs(torch.from_numpy(var), None)
    np.testing.assert_allclose(got.mean.numpy(), by_logs.numpy(), rtol=0, atol=1e-6)
    present = torch.tensor([[True, False, True], [True, True, False]])
    got = mean_log_var_by_bits(torch.from_numpy(var), present)
    rows = [v[k] for v, k in zip(var, present.numpy(), strict=True)]
    expected = np.array([np.log(r[np.isfinite(r)].astype(np.float64)).mean() for r in rows])
    np.testing.assert_allclose(got.mean[..., 0].numpy(), expected, rtol=0, atol=1e-13)
    everything = np.full((3, 4), np.inf, dtype=dtype)
    nothing = mean_log_var_by_bits(torch.from_numpy(everything), None)
    assert bool(nothing.usable) and float(nothing.mean) == 0.0


def test_log_mean_logs_takes_one_logarithm_per_entry(bit_reads: list[str]) -> None:
    """``TorchBackend.log_mean = "logs"`` skips the bits on the CPU, same calibration."""
    from bogc_ref.backends import get_backend

    calls = bit_reads
    gen = np.random.default_rng(12)
    mean = torch.from_numpy(gen.normal(size=(3, 500)))
    var = torch.from_numpy(_log_uniform((3, 500), -20.0, 20.0, seed=12))
    var[1, :50] = math.inf
    auto, logs = get_backend("torch"), get_backend("torch")
    logs.log_mean = "logs"
    expected = auto.calibrate(mean, var)
    assert calls == ["finite bits", "bits"]  # +inf: the finite-only reading gives up
    got = logs.calibrate(mean, var)
    assert calls == ["finite bits", "bits"]
    for field in ("grad", "belief", "uncertainty", "evidence"):
        torch.testing.assert_close(
            getattr(got, field), getattr(expected, field), rtol=1e-12, atol=0
        )
    logs.log_mean = "bits please"
    with pytest.raises(ValueError, match="log_mean"):
        logs.calibrate(mean, var)
