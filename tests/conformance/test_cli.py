"""`bogc-ref verify` end to end: the reference passes, wrong implementations are rejected."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from bogc_ref.cli import main
from bogc_ref.conformance import loading
from bogc_ref.conformance.fresh import fresh_cases

HERE = Path(__file__).parent
WRONG = HERE / "wrong_impls"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["verify", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_reference_passes_both_dtypes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--backend", "numpy")
    assert code == 0, out
    assert "verdict: PASS" in out
    for stage in ("stage1", "stage2", "stage3", "calibrate"):
        assert stage in out
    assert "float32" in out and "float64" in out


@pytest.mark.parametrize(
    ("target", "dtype", "stages", "case"),
    [
        ("normalization_forgotten.py:impl", "float64", ["calibrate"], "cal_M3_D32_normalize"),
        ("prior_weight_one.py:impl", "float64", ["stage3", "calibrate"], "rd_batch2_M4_D8"),
        ("biased_variance.py:impl", "float64", ["stage1"], "empirical_batch"),
        ("dogmatic_unhandled.py:impl", "float64", ["stage2", "calibrate"], "cal_M3_D32_dogmatic"),
        ("mask_ignored.py:impl", "float64", ["stage2", "calibrate"], "cal_batch3_M4_D32_masked"),
        (
            "float32_accumulation.py:wrong",
            "float32",
            ["stage2", "calibrate"],
            "cal_M6_D4096_homoscedastic",
        ),
    ],
)
def test_wrong_implementation_is_rejected(
    capsys: pytest.CaptureFixture[str], target: str, dtype: str, stages: list[str], case: str
) -> None:
    code, out, _ = run(capsys, "--impl", str(WRONG / target), "--dtype", dtype)
    assert code == 1, out
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("verdict: FAIL")
    for stage in stages:
        assert stage in verdict
        assert re.search(rf"FAIL \[{stage} {dtype}\] \S+ \(golden\)", out)
    assert case in out
    # The stages the bug does not touch still pass.
    untouched = {"stage1", "stage2", "stage3", "calibrate"} - set(stages)
    for stage in untouched:
        assert f"FAIL [{stage} " not in out


def test_float32_accumulation_passes_in_float64_and_honest_variant_passes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = WRONG / "float32_accumulation.py"
    assert run(capsys, "--impl", f"{target}:wrong", "--dtype", "float64", "--quiet")[0] == 0
    assert run(capsys, "--impl", f"{target}:honest", "--dtype", "float32", "--quiet")[0] == 0


def test_user_file_outside_the_repository(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo = Path(__file__).resolve().parents[2]
    assert repo not in tmp_path.resolve().parents
    user = tmp_path / "my_bogc.py"
    user.write_text(
        textwrap.dedent(
            """
            import bogc_ref

            class Mine:
                __version__ = "9.9"

                def calibrate(self, mean, var, **kwargs):
                    return bogc_ref.calibrate(mean, var, **kwargs)
            """
        )
    )
    code, out, _ = run(capsys, "--impl", f"{user}:Mine", "--json", str(tmp_path / "r.json"))
    assert code == 0, out
    assert "stage1 absent" in out and "stage3 absent" in out
    report = json.loads((tmp_path / "r.json").read_text())
    impl = report["implementations"][0]
    assert impl["version"] == "9.9"
    assert impl["present"] == {"calibrate": ["calibrate"]}
    assert {r["stage"] for r in impl["results"]} == {"calibrate"}
    for key in ("suite_version", "spec_version", "tolerances", "settings"):
        assert key in report
    assert report["settings"]["impl"] == f"{user}:Mine"
    assert report["passed"] is True


def test_module_path_form(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--impl", "bogc_ref", "--dtype", "float64", "--quiet")
    assert code == 0
    assert out.startswith("verdict: PASS")


def test_misbehaving_candidate_fails_case_by_case(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "--impl",
        f"{HERE / 'misbehaving.py'}:impl",
        "--dtype",
        "float32",
        "--case-timeout",
        "0.5",
    )
    assert code == 1
    assert "timeout" in out and "cal_M1_D1" in out
    assert "Python lists" in out  # evidence returned a list
    assert "NaN at index" in out  # opinions
    assert "dtype float64, expected float32" in out  # reduced_dempster
    assert "raised RuntimeError: not implemented here" in out  # empirical_moments
    assert "shape (1, 3), expected (5, 3)" in out  # linear_head_moments
    # The run went on: later calibrate cases were still checked and passed.
    # (17 golden calibrate cases in float32, and every fresh one; only cal_M1_D1 hangs)
    assert re.search(r"golden +calibrate +float32 +16/17 ", out)
    fresh = sum(c.function == "calibrate" and "float32" in c.dtypes for c in fresh_cases())
    assert re.search(rf"fresh +calibrate +float32 +{fresh}/{fresh} ", out)


@pytest.mark.parametrize(
    "argv",
    [
        ["--backend", "jax"],
        ["--impl", "no_such_module_xyz:impl"],
        ["--impl", "bogc_ref:no_such_attribute"],
        ["--impl", "/nonexistent/dir/impl.py:impl"],
        ["--max-examples", "0", "--properties"],
        ["--max-examples", "5"],  # without --properties
        ["--json", "/nonexistent/dir/report.json"],
        ["--impl", "bogc_ref", "--device", "cuda"],
        ["--case-timeout", "-1"],
        ["--case-timeout", "nan"],
        ["--memory-limit", "lots"],
        ["--memory-limit=-1G"],
        [f"--skip-tier={t}" for t in ("golden", "fresh", "statistical", "contract")],
        ["--impl", f"{HERE / 'hostile' / 'near_miss.py'}"],
    ],
)
def test_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("bogc-ref verify: error: ")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(_cuda_available(), reason="CUDA is available here")
def test_device_cuda_without_cuda_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch", reason="the torch backend is what --device cuda asks for")
    code, out, err = run(capsys, "--backend", "torch", "--device", "cuda")
    assert code == 2 and out == ""
    assert "CUDA is not available" in err and len(err.strip().splitlines()) == 1


def test_near_misses_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--impl", str(HERE / "hostile" / "near_miss.py"))
    assert code == 2
    assert "calibrate_grad (for calibrate?)" in err and "Evidence (for evidence?)" in err


def test_json_path_is_resolved_before_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "--backend", "numpy", "--dtype", "float64", "--json", "r.json")
    assert code == 0, out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verdict"] == out.strip().splitlines()[-1]
    assert report["settings"]["memory_limit_bytes"] > 0


def test_explicit_backend_without_registry_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loading, "_registry", lambda: None)
    code, _, err = run(capsys, "--backend", "torch")
    assert code == 2 and "not available" in err
    assert loading.available_backends() == ["numpy"]


def test_argparse_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["verify", "--dtype", "float16"])
    assert info.value.code == 2


def test_verify_runs_without_hypothesis(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "hypothesis" or m.startswith("hypothesis.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "hypothesis", None)  # import hypothesis now fails
    monkeypatch.delitem(sys.modules, "bogc_ref.conformance.properties", raising=False)
    code, out, _ = run(capsys, "--backend", "numpy", "--dtype", "float64", "--quiet")
    assert code == 0, out
    code, _, err = run(capsys, "--backend", "numpy", "--properties")
    assert code == 2 and "hypothesis" in err


def test_properties_pass_on_reference_and_catch_a_wrong_candidate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("--dtype", "float64", "--properties", "--max-examples", "5")
    code, out, _ = run(capsys, "--backend", "numpy", *args)
    assert code == 0, out
    row = re.search(r"laws +calibrate +float64 +(\d+)/(\d+) +(\d+) laws, (\d+) examples", out)
    assert row is not None, out
    n_passed, n_laws, n_named, examples = (int(g) for g in row.groups())
    assert n_passed == n_laws == n_named >= 9 and examples == 5 * n_laws
    code, out, _ = run(capsys, "--impl", f"{WRONG / 'prior_weight_one.py'}:impl", *args)
    assert code == 1
    assert "FAIL [calibrate float64] calibrate_bayes_identity (law)" in out
    assert "reproduce:" in out and "open_candidate(" in out
