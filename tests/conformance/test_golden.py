"""The packaged golden vectors: size, manifest, drift detection and the adapter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bogc_ref
from bogc_ref.cli import main
from bogc_ref.conformance import golden
from bogc_ref.conformance.adapter import OutputError, to_numpy


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
        for kind in ("inputs", "outputs"):
            a, b = getattr(new, kind), getattr(old, kind)
            assert a.keys() == b.keys()
            for key in a:
                assert a[key].dtype == b[key].dtype, (new.name, key)
                assert a[key].tobytes() == b[key].tobytes(), (new.name, key)
    assert golden.drift() == []


def test_drift_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = golden.generate()
    case = cases[-1]
    tampered = dict(case.outputs)
    tampered["grad"] = np.nextafter(tampered["grad"], np.inf)  # one ulp on every number
    cases[-1] = golden.GoldenCase(**{**case.__dict__, "outputs": tampered})
    golden.write(cases, tmp_path)
    problems = golden.drift(tmp_path)
    assert len(problems) == 1 and problems[0].startswith(f"{case.name}.out.grad")
    assert main(["vectors", "--check", "--dir", str(tmp_path)]) == 1
    assert "drift" in capsys.readouterr().out
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
