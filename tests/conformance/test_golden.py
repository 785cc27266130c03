"""The packaged golden vectors: size, manifest, drift detection and the adapter."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bogc_ref
from bogc_ref.cli import main
from bogc_ref.conformance import golden
from bogc_ref.conformance.adapter import OutputError, to_numpy
from bogc_ref.conformance.runner import case_rtol


def test_stored_vectors_are_small_and_versioned() -> None:
    size = sum(p.stat().st_size for p in golden.GOLDEN_DIR.iterdir())
    assert size < 5_000_000
    manifest = json.loads((golden.GOLDEN_DIR / golden.MANIFEST).read_text())
    assert manifest["spec_version"] == bogc_ref.SPEC_VERSION
    dims = [c for c in manifest["cases"] if c["function"] == "calibrate"]
    assert len(manifest["cases"]) == len({c["name"] for c in manifest["cases"]})
    assert {c["stage"] for c in manifest["cases"]} == {"stage1", "stage2", "stage3", "calibrate"}
    assert any("mask" in c["array_kwargs"] for c in dims)
    assert {c["kwargs"].get("mode", "relative") for c in dims} == {"relative", "fixed"}


def test_regenerating_changes_no_stored_number(tmp_path: Path) -> None:
    golden.write(golden.generate(), tmp_path)
    _, fresh = golden.read(tmp_path)
    _, stored = golden.read()
    assert [c.name for c in fresh] == [c.name for c in stored]
    for new, old in zip(fresh, stored, strict=True):
        assert new.inputs.keys() == old.inputs.keys()
        for key in new.inputs:  # the golden inputs are kept bit for bit
            assert new.inputs[key].dtype == old.inputs[key].dtype, (new.name, key)
            assert new.inputs[key].tobytes() == old.inputs[key].tobytes(), (new.name, key)
        assert new.cond == old.cond
    # Outputs: recomputed here, equal to the stored ones within the tolerance policy.
    assert golden.drift(tmp_path) == []
    assert golden.drift() == []


def _nudged(arr: np.ndarray, ulps: int) -> np.ndarray:
    """``arr`` moved by ``ulps`` units in the last place (non-zero floats only: rounding
    differences between machines never turn an exact 0, e.g. a masked source's, into another
    number)."""
    if arr.dtype.kind != "f":
        return arr
    out = arr.copy()
    for _ in range(ulps):
        out = np.where(out != 0, np.nextafter(out, np.inf), out)
    return np.asarray(out)


def _other_machine(monkeypatch: pytest.MonkeyPatch, input_ulps: int, output_ulps: int) -> None:
    """Simulate a CPU whose ``10**u`` and ``np.linalg`` round differently: every generated
    input moves by ``input_ulps`` and every reference output by ``output_ulps``."""
    specs = golden.all_cases()
    shifted = [
        dataclasses.replace(s, inputs={k: _nudged(v, input_ulps) for k, v in s.inputs.items()})
        for s in specs
    ]
    monkeypatch.setattr(golden, "all_cases", lambda: shifted)
    real = golden.run_reference

    def rounded(function: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, np.ndarray]:
        return {k: _nudged(v, output_ulps) for k, v in real(function, args, kwargs).items()}

    monkeypatch.setattr(golden, "run_reference", rounded)


def test_same_verdict_on_another_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _other_machine(monkeypatch, input_ulps=1, output_ulps=64)
    report = golden.drift_report()
    assert report.problems == []
    assert any("1 ULP" in line and ".in." in line for line in report.rounding)
    assert any("64 ULP" in line and ".out." in line for line in report.rounding)
    assert main(["vectors", "--check"]) == 0
    out = capsys.readouterr().out
    assert "no drift" in out and "ULP" in out
    # Regenerating there keeps the stored inputs bit for bit.
    golden.write(golden.generate(), tmp_path)
    _, fresh = golden.read(tmp_path)
    for new, old in zip(fresh, golden.stored()[1], strict=True):
        for key in new.inputs:
            assert new.inputs[key].tobytes() == old.inputs[key].tobytes(), (new.name, key)


def test_changed_generator_is_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    specs = golden.all_cases()
    target = next(i for i, s in enumerate(specs) if s.name == "cal_M2_D8")
    inputs = dict(specs[target].inputs)
    inputs["var"] = inputs["var"] * 1.001  # a real change of the generator
    specs[target] = dataclasses.replace(specs[target], inputs=inputs)
    monkeypatch.setattr(golden, "all_cases", lambda: specs)
    problems = golden.drift()
    assert problems == ["cal_M2_D8: the generator no longer produces the stored inputs"]


def test_drift_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = list(golden.stored()[1])
    index = next(i for i, c in enumerate(cases) if c.name == "cal_M3_D32_fixed")
    case = cases[index]
    rtol = case_rtol(case, "float64")
    tampered = dict(case.outputs)
    tampered["grad"] = case.outputs["grad"] * (1 + 3 * rtol)  # a real change of every number
    cases[index] = golden.GoldenCase(**{**case.__dict__, "outputs": tampered})
    golden.write(cases, tmp_path)
    problems = golden.drift(tmp_path)
    assert len(problems) == 1 and problems[0].startswith(f"{case.name}.out.grad: changed")
    assert main(["vectors", "--check", "--dir", str(tmp_path)]) == 1
    assert "drift" in capsys.readouterr().out
    # A few ULP (another machine's rounding) is reported, in ULPs, and is not drift.
    tampered["grad"] = _nudged(case.outputs["grad"], 3)
    cases[index] = golden.GoldenCase(**{**case.__dict__, "outputs": tampered})
    golden.write(cases, tmp_path)
    assert main(["vectors", "--check", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # (at least 3: another NumPy's rounding may add its own ULPs to the 3 made here)
    assert re.search(rf"{case.name}\.out\.grad: up to ([3-9]|\d\d+) ULP", out), out
    assert main(["vectors", "--check"]) == 0


def test_corrupted_vectors_fail_their_checksum(tmp_path: Path) -> None:
    cases = golden.generate()
    golden.write(cases, tmp_path)
    manifest = json.loads((tmp_path / golden.MANIFEST).read_text())
    key = next(iter(manifest["cases"][0]["sha256"]))
    manifest["cases"][0]["sha256"][key] = "0" * 64
    (tmp_path / golden.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="SHA-256"):
        golden.read(tmp_path)


def test_float32_expectations_are_the_reference_on_cast_inputs() -> None:
    case = golden.load_case("cal_M3_D32_fixed")
    args, kwargs = case.call_args("float32")
    assert all(a.dtype == np.float32 for a in args)
    expected = case.expected("float32")
    direct = bogc_ref.calibrate(*args, **kwargs)
    assert expected["grad"].dtype == np.float32
    np.testing.assert_array_equal(expected["grad"], direct.grad)


def test_to_numpy_refuses_lists_and_reads_torch() -> None:
    with pytest.raises(OutputError, match="lists"):
        to_numpy([1.0, 2.0])
    torch = pytest.importorskip("torch")
    t = torch.arange(4, dtype=torch.float32)
    out = to_numpy(t)
    assert out.dtype == np.float32 and out.tolist() == [0.0, 1.0, 2.0, 3.0]
