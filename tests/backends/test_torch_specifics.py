"""PyTorch-only promises: half-precision policy, no autograd, compiled == eager, grad-only,
``out=``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np
import pytest
from backend_cases import TORCH

import bogc_ref

torch = pytest.importorskip("torch", reason="PyTorch is not installed")

from bogc_ref.backends import _torch_calibrate, get_backend  # noqa: E402

pytestmark = pytest.mark.skipif(not TORCH, reason="PyTorch is not installed")


def _inputs(d: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mean = rng.standard_normal((3, d)).astype(np.float32)
    var = np.exp(rng.uniform(-2, 2, (3, d))).astype(np.float32)
    var[1, 0] = 0.0
    var[:, 1] = np.inf
    return mean, var


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_inputs_compute_in_float32_and_return_their_dtype(half: str) -> None:
    backend = get_backend("torch")
    dtype = getattr(torch, half)
    mean, var = _inputs()
    m16, v16 = torch.from_numpy(mean).to(dtype), torch.from_numpy(var).to(dtype)
    out = backend.calibrate(m16, v16)
    assert all(x.dtype == dtype for x in out)
    # Policy: the same as float32 on the upcast inputs, rounded once to the half dtype.
    ref = bogc_ref.calibrate(m16.float().numpy(), v16.float().numpy())
    for got, expected in zip(out, ref, strict=True):
        want = torch.from_numpy(expected).to(dtype).float().numpy()
        np.testing.assert_allclose(got.float().numpy(), want, rtol=1e-2, atol=1e-3)


def test_half_moments_beyond_the_half_range_are_an_error_not_vacuous() -> None:
    """float16 per-sample gradients, every one finite, whose variance of the mean is
    2.3e5..8.6e5 (beyond float16's 65504): cast back, var would be +inf, which calibrate
    reads as *no information* and drops the source. The backend raises instead, naming the
    argument; moments within the range keep their dtype."""
    backend = get_backend("torch")
    torch.manual_seed(0)
    g = (300 + 2000 * torch.randn(8, 2, 3)).half()
    assert bool(torch.isfinite(g).all())
    with pytest.raises(ValueError, match=r"^per_sample_grads: the result's var at index"):
        backend.empirical_moments(g)
    small = (g / 64).half()
    mean, var = backend.empirical_moments(small)
    assert mean.dtype == var.dtype == torch.float16
    want = bogc_ref.empirical_moments(small.float().numpy())
    np.testing.assert_allclose(var.float().numpy(), want.var, rtol=2e-3)


def test_outputs_carry_no_autograd_graph() -> None:
    backend = get_backend("torch")
    mean, var = _inputs()
    m = torch.from_numpy(mean).requires_grad_(True)
    v = torch.from_numpy(var).requires_grad_(True)
    for x in backend.calibrate(m, v):
        assert not x.requires_grad and x.grad_fn is None
    h = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    g = backend.empirical_moments(h)
    assert g.mean.grad_fn is None


def test_calibrate_grad_equals_calibrate() -> None:
    backend = get_backend("torch")
    mean, var = (torch.from_numpy(a) for a in _inputs())
    full = backend.calibrate(mean, var, normalize=True)
    grad = backend.calibrate_grad(mean, var, normalize=True)
    torch.testing.assert_close(grad, full.grad, rtol=0, atol=0)


@pytest.mark.slow
def test_compiled_path_equals_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """One compiled configuration (≈20 s of inductor compile on 2 CPU cores)."""
    monkeypatch.setenv("BOGC_TORCH_COMPILE", "1")
    mean, var = (torch.from_numpy(a) for a in _inputs(d=4096, seed=1))
    mask = torch.tensor([True, True, False])
    eager, compiled = get_backend("torch"), get_backend("torch")
    eager.compile_mode, compiled.compile_mode = "never", "always"
    a = eager.calibrate(mean, var, mask=mask)
    b = compiled.calibrate(mean, var, mask=mask)
    out = bogc_ref.Calibration(*(torch.empty_like(x) for x in a))
    c = compiled.calibrate(mean, var, mask=mask, out=out)  # the same graph, into out
    assert not _torch_calibrate.compile_failures(), _torch_calibrate.compile_failures()
    for x, y, z in zip(a, b, c, strict=True):
        torch.testing.assert_close(x, y, rtol=4e-6, atol=1e-7)
        torch.testing.assert_close(z, y, rtol=0, atol=0)
    # The same graph on precisions over the whole float32 spec range, against the reference.
    rng = np.random.default_rng(4)
    wide = (10.0 ** rng.uniform(-15, 15, tuple(var.shape))).astype(np.float32)
    wide[:, :2] = var[:, :2].numpy()  # keep the dogmatic and vacuous columns
    got = compiled.calibrate(mean, torch.from_numpy(wide), mask=mask)
    ref = bogc_ref.calibrate(mean.numpy(), wide, mask=mask.numpy())
    _assert_conforms(got, ref, mean.numpy(), wide, mask.numpy())
    # Without the dogmatic and vacuous columns, pass 1 reads bits (a graph of its own).
    normal_mean, normal = mean[:, 2:], np.ascontiguousarray(wide[:, 2:])
    got = compiled.calibrate(normal_mean, torch.from_numpy(normal), mask=mask)
    ref = bogc_ref.calibrate(normal_mean.numpy(), normal, mask=mask.numpy())
    _assert_conforms(got, ref, normal_mean.numpy(), normal, mask.numpy())
    assert not _torch_calibrate.compile_failures(), _torch_calibrate.compile_failures()
    assert any("log-mean-bits" in key for key in _torch_calibrate._COMPILED)
    # Pass 1 by logarithms (the training integration's setting): both passes in one graph.
    logs = get_backend("torch")
    logs.compile_mode, logs.log_mean = "always", "logs"
    got = logs.calibrate(mean, torch.from_numpy(wide), mask=mask)
    ref = bogc_ref.calibrate(mean.numpy(), wide, mask=mask.numpy())
    _assert_conforms(got, ref, mean.numpy(), wide, mask.numpy())
    assert not _torch_calibrate.compile_failures(), _torch_calibrate.compile_failures()
    assert any("calibrate, log-mean" in key for key in _torch_calibrate._COMPILED)


def _assert_conforms(
    got: Any, ref: Any, mean: np.ndarray, var: np.ndarray, mask: np.ndarray
) -> None:
    """calibrate's outputs within the conformance tolerances (``bogc_ref.conformance``):
    rtol from κ = p(1 + 2L), grad's atol rtol·max_m |μ_m| over present sources."""
    from bogc_ref.conformance.compare import compare_array
    from bogc_ref.conformance.tolerances import evidence_kappa, rtol_for

    present = np.broadcast_to(mask[:, None], var.shape)
    rtol = rtol_for("float32", "calibrate", evidence_kappa(var, 1.0, present)).rtol
    scale = np.max(np.where(present, np.abs(mean), 0.0), axis=0)
    for name in ref._fields:
        atol = {"grad": rtol * scale, "evidence": float(np.finfo(np.float32).tiny)}.get(name, rtol)
        result = compare_array(name, getattr(got, name).numpy(), getattr(ref, name),
                               rtol=rtol, atol=atol)  # fmt: skip
        assert result.ok, result.reason


def test_failed_compilation_falls_back_to_eager_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("no C++ compiler (simulated)")

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(_torch_calibrate, "_COMPILED", {})
    monkeypatch.setattr(_torch_calibrate, "_FAILED", {})
    backend = get_backend("torch")
    backend.compile_mode = "always"
    mean, var = (torch.from_numpy(a) for a in _inputs())
    with caplog.at_level(logging.WARNING, logger="bogc_ref.backends.torch"):
        out = backend.calibrate(mean, var)
    assert "running eagerly" in caplog.text and "simulated" in caplog.text
    ref = bogc_ref.calibrate(mean.numpy(), var.numpy())
    np.testing.assert_allclose(out.grad.numpy(), ref.grad, rtol=1e-5, atol=1e-6)


def test_compile_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOGC_TORCH_COMPILE", "0")
    assert not _torch_calibrate.compile_enabled()
    monkeypatch.setenv("BOGC_TORCH_COMPILE", "1")
    assert _torch_calibrate.compile_enabled()


def test_target_size_smoke() -> None:
    """M = 3, D = 2**20 float32 through the default (auto) path: finite, correct shape."""
    rng = np.random.default_rng(0)
    d = 1 << 20
    mean = torch.from_numpy(rng.standard_normal((3, d)).astype(np.float32))
    var = torch.from_numpy((rng.random((3, d)) + 0.1).astype(np.float32))
    backend = get_backend("torch")
    backend.compile_mode = "never"
    grad = backend.calibrate_grad(mean, var)
    assert grad.shape == (d,) and bool(torch.isfinite(grad).all())
    # The first 4096 columns against the reference (a slice: the reference would take ~1 s).
    ref = bogc_ref.calibrate(mean[:, :4096].numpy(), var[:, :4096].numpy())
    out = backend.calibrate(mean[:, :4096], var[:, :4096])
    np.testing.assert_allclose(out.grad.numpy(), ref.grad, rtol=1e-4, atol=1e-6)


def _empty_like_result(mean: torch.Tensor) -> bogc_ref.Calibration:
    m, d = mean.shape[-2:]
    # belief and evidence as transposed views: out= tensors need not be contiguous.
    return bogc_ref.Calibration(
        torch.full((d,), 7.0), torch.full((d, m), 7.0).T, torch.full((d,), 7.0),
        torch.full((d, m), 7.0).T,
    )  # fmt: skip


@pytest.mark.parametrize("kwargs", [{}, {"normalize": True}, {"power": 2.0}])
def test_out_receives_the_results_and_is_returned(kwargs: dict[str, object]) -> None:
    backend = get_backend("torch")
    mean, var = (torch.from_numpy(a) for a in _inputs())
    fresh = backend.calibrate(mean, var, **kwargs)
    out = _empty_like_result(mean)
    got = backend.calibrate(mean, var, out=out, **kwargs)
    for name, target, value, expected in zip(fresh._fields, out, got, fresh, strict=True):
        assert value is target, name
        torch.testing.assert_close(value, expected, rtol=0, atol=0)
    grad_out = torch.full_like(fresh.grad, 7.0)
    assert backend.calibrate_grad(mean, var, out=grad_out, **kwargs) is grad_out
    torch.testing.assert_close(grad_out, fresh.grad, rtol=0, atol=0)


def _bad_outs(mean: torch.Tensor, var: torch.Tensor) -> list[tuple[object, str]]:
    m, d = mean.shape
    good = list(bogc_ref.Calibration(torch.empty(d), torch.empty(m, d), torch.empty(d),
                                     torch.empty(m, d)))  # fmt: skip

    def replace(field: int, value: object) -> bogc_ref.Calibration:
        fields = list(good)
        fields[field] = value
        return bogc_ref.Calibration(*fields)

    return [
        (tuple(good), r"^out: expected a Calibration"),
        (replace(0, torch.empty(d + 1)), r"^out\.grad: shape \(33,\), expected \(32,\)"),
        (replace(1, torch.empty(m, d, dtype=torch.float64)), r"^out\.belief: dtype torch\.float64"),
        (replace(2, np.empty(d, np.float32)), r"^out\.uncertainty: expected a torch\.Tensor"),
        (replace(3, torch.empty(m, d, device="meta")), r"^out\.evidence: on device meta"),
        (replace(1, var), r"^out\.belief: shares memory with var"),
        (replace(0, mean[1]), r"^out\.grad: shares memory with mean"),
        (replace(3, good[1]), r"^out\.evidence: shares memory with out\.belief"),
        (replace(2, torch.empty(1).expand(d)), r"^out\.uncertainty: has a zero stride"),
    ]


@pytest.mark.parametrize("case", range(9))
def test_bad_out_raises_naming_out_and_the_field(case: int) -> None:
    backend = get_backend("torch")
    mean, var = (torch.from_numpy(a) for a in _inputs())
    out, message = _bad_outs(mean, var)[case]
    error = TypeError if "expected a" in message or "dtype" in message else ValueError
    with pytest.raises(error, match=message):
        backend.calibrate(mean, var, out=out)


def test_calibrate_grad_out_errors_name_out() -> None:
    backend = get_backend("torch")
    mean, var = (torch.from_numpy(a) for a in _inputs())
    with pytest.raises(ValueError, match=r"^out: shape \(3, 32\), expected \(32,\)"):
        backend.calibrate_grad(mean, var, out=torch.empty(3, 32))
    with pytest.raises(ValueError, match=r"^out: shares memory with var"):
        backend.calibrate_grad(mean, var, out=var[0])
    with pytest.raises(TypeError, match=r"^out: expected a torch\.Tensor, got list"):
        backend.calibrate_grad(mean, var, out=[0.0])


def test_fresh_results_never_alias_across_calls() -> None:
    """Large outputs (NumPy-allocated, see ``_torch_common.new_empty``) are new each call."""
    d = 1 << 19  # belief: 6 MiB, above the huge-page allocation threshold
    rng = np.random.default_rng(2)
    mean = torch.from_numpy(rng.standard_normal((3, d)).astype(np.float32))
    var = torch.from_numpy((rng.random((3, d)) + 0.5).astype(np.float32))
    backend = get_backend("torch")
    backend.compile_mode = "never"
    first = backend.calibrate(mean, var)
    kept = [t.clone() for t in first]
    second = backend.calibrate(2.0 * mean, var)
    for a, b, k in zip(first, second, kept, strict=True):
        assert a.data_ptr() != b.data_ptr()
        torch.testing.assert_close(a, k, rtol=0, atol=0)
    torch.testing.assert_close(second.grad, 2.0 * first.grad)


def test_ratio_path_only_where_it_is_exact_enough() -> None:
    assert _torch_calibrate.linear_evidence(1.0, None, torch.float32)
    assert _torch_calibrate.linear_evidence(1.0, 1e30, torch.float64)
    assert not _torch_calibrate.linear_evidence(2.0, None, torch.float32)
    assert not _torch_calibrate.linear_evidence(1.0, 1e-40, torch.float32)  # 1/τ overflows
    assert not _torch_calibrate.linear_evidence(1.0, 1e39, torch.float32)  # 1/τ subnormal


def test_repeated_structure_still_checks_every_call() -> None:
    """A call whose structure was validated before skips the structural checks (a plan per
    structure), and nothing else: the same results as the first call, the reference's error
    for bad values on any later call, and a keyword of another type (``power=True``, a bool,
    where ``1.0`` was accepted) is a new structure, checked again."""
    from bogc_ref.backends import _torch_backend

    backend = get_backend("torch")
    mean_np, var_np = _inputs(d=16, seed=3)
    mean, var = torch.from_numpy(mean_np)[None], torch.from_numpy(var_np)[None]
    mask = torch.tensor([[True, True, False]])
    _torch_backend._PLANS.clear()
    first = backend.calibrate(mean, var, mask=mask, power=1.0)
    assert len(_torch_backend._PLANS) == 1
    again = backend.calibrate(mean, var, mask=mask, power=1.0)
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for where, value, name in [
        ((0, 1, 3), float("nan"), "var"),
        ((0, 0, 4), -1.0, "var"),
    ]:
        bad = var.clone()
        bad[where] = value
        with pytest.raises(ValueError, match=rf"^{name}: ") as planned:
            backend.calibrate(mean, bad, mask=mask, power=1.0)
        with pytest.raises(ValueError) as reference:
            bogc_ref.calibrate(mean_np[None], bad.numpy(), mask=mask.numpy(), power=1.0)
        assert str(planned.value) == str(reference.value)
    bad_mean = mean.clone()
    bad_mean[0, 1, 2] = float("inf")
    with pytest.raises(ValueError, match=r"^mean: .*index \(0, 1, 2\)"):
        backend.calibrate(bad_mean, var, mask=mask, power=1.0)
    backend.calibrate(bad_mean, var, mask=torch.tensor([[True, False, True]]), power=1.0)
    with pytest.raises(TypeError, match=r"^power: "):
        backend.calibrate(mean, var, mask=mask, power=True)
    assert len(_torch_backend._PLANS) == 1  # no plan for a structure that failed


_FLAG_CASES = {
    "finite": [1.0, -2.0, 3.0],
    "finite, the sum overflows": [3e38, 3e38, -1.0],
    "one NaN": [1.0, float("nan"), 3.0],
    "+inf": [1.0, float("inf"), 3.0],
    "+inf and -inf (the sum is NaN)": [float("inf"), float("-inf"), 0.0],
    "empty": [],
}


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("case", list(_FLAG_CASES))
def test_host_answered_flags_agree_with_the_entrywise_tests(case: str, dtype: str) -> None:
    from bogc_ref.backends._torch_common import any_flag, not_all_finite, results_have_nan

    t = torch.tensor(_FLAG_CASES[case], dtype=getattr(torch, dtype))
    assert bool(not_all_finite(t)) is not bool(torch.isfinite(t).all())
    assert results_have_nan((t,)) is bool(torch.isnan(t).any())
    flag = not_all_finite(t)
    assert any_flag([False, flag]) is bool(flag)
    assert any_flag([flag, torch.zeros((), dtype=torch.bool)]) is bool(flag)
    assert any_flag([flag, True]) is True


@pytest.mark.parametrize(
    ("mean", "var", "plausible"),
    [
        ([1.0, -1.0], [0.0, 2.0], True),
        ([float("inf"), 1.0], [0.0, float("inf")], True),  # an overflow, not a NaN
        ([float("nan"), 1.0], [1.0, 1.0], False),
        ([float("inf"), float("-inf")], [1.0, 1.0], False),  # the sum is NaN: screened
        ([1.0, 1.0], [1.0, float("nan")], False),
        ([1.0, 1.0], [-1e-300, 1.0], False),
    ],
)
def test_screen_of_vouched_moments(mean: list[float], var: list[float], plausible: bool) -> None:
    from bogc_ref.backends._torch_backend import _plausible_moments

    as64 = functools.partial(torch.tensor, dtype=torch.float64)
    got = _plausible_moments(as64(mean), as64(var))
    assert got is plausible
