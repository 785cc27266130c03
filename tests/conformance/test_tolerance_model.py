"""The error model of the tolerances: correct summation orders pass, errors beyond it fail."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bogc_ref.cli import main
from bogc_ref.conformance import golden
from bogc_ref.conformance.runner import case_rtol
from bogc_ref.conformance.tolerances import gamma, geometric_mean_reduction

ACCUMULATION = Path(__file__).parent / "wrong_impls" / "float32_accumulation.py"
LONG_CASES = ("ev_M6_D4096_homoscedastic", "cal_M6_D4096_homoscedastic")


def verify(capsys: pytest.CaptureFixture[str], variant: str, dtype: str) -> tuple[int, str]:
    code = main(["verify", "--impl", f"{ACCUMULATION}:{variant}", "--dtype", dtype])
    return code, capsys.readouterr().out


def test_gamma_is_highams_bound() -> None:
    u = 2.0**-53
    assert gamma(0, "float64") == 0.0
    assert gamma(10, "float64") == pytest.approx(10 * u / (1 - 10 * u), rel=1e-15)
    assert gamma(24575, "float32") == pytest.approx(24575 * 2.0**-24, rel=1e-2)


def test_reduction_bound_of_the_long_cases_follows_length_and_magnitude() -> None:
    case = golden.load_case("ev_M6_D4096_homoscedastic")
    var = case.inputs["var"]
    n = var.size
    mean_abs_log = float(np.mean(np.abs(np.log(var))))
    expected = (n - 1) * 2.0**-53 * mean_abs_log
    assert geometric_mean_reduction(var, "float64") == pytest.approx(expected, rel=1e-6)
    # 3.7e-11: well above what a sequential float64 sum of these terms loses (3.04e-12).
    assert 3.0e-11 < case_rtol(case, "float64") < 4.0e-11
    assert 1.5e-2 < case_rtol(case, "float32") < 2.5e-2
    for name in LONG_CASES:
        assert case_rtol(golden.load_case(name), "float64") > 1e-12


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sequential_summation_conforms(capsys: pytest.CaptureFixture[str], dtype: str) -> None:
    code, out = verify(capsys, "sequential", dtype)
    assert code == 0, out
    for name in LONG_CASES:
        assert f"FAIL [stage2 {dtype}] {name}" not in out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_error_within_the_bound_passes(capsys: pytest.CaptureFixture[str], dtype: str) -> None:
    code, out = verify(capsys, "within", dtype)
    assert code == 0, out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_error_just_beyond_the_bound_fails(capsys: pytest.CaptureFixture[str], dtype: str) -> None:
    code, out = verify(capsys, "beyond", dtype)
    assert code == 1
    for name in LONG_CASES:
        assert name in out and f"{dtype}] {name}" in out
    assert f"FAIL [stage2 {dtype}] ev_M6_D4096_homoscedastic" in out
    assert f"FAIL [calibrate {dtype}] cal_M6_D4096_homoscedastic" in out


def test_naive_float32_accumulation_error_is_inside_the_model() -> None:
    """The decision written in the docs: 24,576 float32 terms summed naively conform."""
    case = golden.load_case("ev_M6_D4096_homoscedastic")
    var = case.inputs["var"].astype(np.float32)
    logs = np.log(var).ravel()
    naive = float(np.cumsum(logs, dtype=np.float32)[-1]) / logs.size
    exact = math.fsum(np.log(var.astype(np.float64)).ravel().tolist()) / logs.size
    error = abs(naive - exact)
    assert 1e-4 < error < geometric_mean_reduction(var, "float32")
