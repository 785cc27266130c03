"""Regions of the input space the default run must visit, whatever the fresh seed: subnormal
variances, evidence that overflows the dtype, many sources, deep batches, D above 4096,
check_finite=False, strided inputs; numpy.ma inputs honoured or refused; a fresh seed drawn
for each run; a Monte Carlo sampler that ignores ``seed`` or ``n_samples``."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import bogc_ref
from bogc_ref.cli import main
from bogc_ref.conformance import wire
from bogc_ref.conformance.contract import bad_inputs, check_bad_input, run_contract
from bogc_ref.conformance.fresh import CALIBRATE_FEATURES, FRESH_SEED, fresh_specs
from bogc_ref.conformance.loading import open_candidate

WRONG = Path(__file__).parent / "wrong_impls"
#: Two seeds: the suite's own and another, to show that coverage does not hang on one draw.
SEEDS = (FRESH_SEED, 12345)


def verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["verify", *argv])
    return code, capsys.readouterr().out


def _calibrate_cases_with(feature: str) -> set[str]:
    return {f"fresh_calibrate_{i}" for i, f in enumerate(CALIBRATE_FEATURES) if feature in f}


def _failed(out: str) -> set[str]:
    return set(re.findall(r"FAIL \[\w+ \w+\] (\w+) \(", out))


@pytest.mark.parametrize("seed", range(6))
def test_every_seed_draws_every_region(seed: int) -> None:
    specs = {s.name: s for s in fresh_specs(seed)}
    calibrate = [s for s in specs.values() if s.function == "calibrate"]
    assert any(s.inputs["mean"].shape[-2] >= 7 for s in calibrate)
    assert any(s.inputs["mean"].ndim >= 5 for s in calibrate)
    assert any(s.inputs["mean"].shape[-1] > 4096 for s in calibrate)
    assert any(s.kwargs.get("check_finite") is False for s in calibrate)
    assert any(not s.inputs["mean"].flags.c_contiguous for s in calibrate)
    for function in ("calibrate", "evidence"):
        var = [s.inputs["var"] for s in specs.values() if s.function == function]
        # float64 subnormals, and values that are subnormal only once cast to float32
        assert any(((v > 0) & (v < np.finfo(np.float64).tiny)).any() for v in var), function
        tiny32 = [(v >= np.finfo(np.float64).tiny) & (v < np.finfo(np.float32).tiny) for v in var]
        assert any(t.any() for t in tiny32), function
    # Evidence beyond the largest finite value: in float32, and in float64.
    for dtype in ("float32", "float64"):
        saturated = False
        for s in specs.values():
            if s.function in ("calibrate", "evidence") and dtype in s.dtypes:
                keys = ("mask", "mode", "tau", "power")
                found = {k: s.inputs.get(k, s.kwargs.get(k)) for k in keys}
                kwargs: dict[str, Any] = {k: v for k, v in found.items() if v is not None}
                e = bogc_ref.evidence(s.inputs["var"].astype(dtype), **kwargs)
                saturated |= bool((e == np.finfo(dtype).max).any())
        assert saturated, dtype


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("impl", "cases"),
    [
        ("subnormal_dogmatic.py", _calibrate_cases_with("subnormal")),
        ("overflow_dogmatic.py", _calibrate_cases_with("overflow32")),
        ("wrong_when.py:many_sources", _calibrate_cases_with("many_sources")),
        ("wrong_when.py:deep_batch", _calibrate_cases_with("deep")),
        ("wrong_when.py:wide", _calibrate_cases_with("wide")),
        ("wrong_when.py:unchecked", _calibrate_cases_with("unchecked")),
        ("wrong_when.py:strided", _calibrate_cases_with("strided")),
    ],
)
def test_the_default_run_visits_the_region(
    capsys: pytest.CaptureFixture[str], impl: str, cases: set[str], seed: int
) -> None:
    code, out = verify(
        capsys, "--impl", str(WRONG / impl), "--fresh-seed", str(seed), "--skip-tier", "contract"
    )
    assert code == 1, out
    failed = _failed(out)
    assert cases <= failed, (cases, failed)
    assert all(name.startswith("fresh_") for name in failed), failed  # golden never sees it


def test_overflowing_and_subnormal_evidence_fail_alone(capsys: pytest.CaptureFixture[str]) -> None:
    """The evidence function alone (no calibrate) is caught too, in both dtypes."""
    for impl in ("subnormal_dogmatic.py", "overflow_dogmatic.py"):
        code, out = verify(
            capsys,
            "--impl",
            str(WRONG / impl),
            "--fresh-seed",
            str(FRESH_SEED),
            "--skip-tier",
            "contract",
        )
        assert code == 1
        assert re.search(r"FAIL \[stage2 float32\] fresh_evidence_\d", out), impl
        assert "non-finite pattern differs" in out and "got inf" in out


def test_wire_keeps_fortran_order_and_swapped_axes() -> None:
    block = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    for array in (
        np.asfortranarray(block),
        np.ascontiguousarray(block.swapaxes(-1, -2)).swapaxes(-1, -2),
        block,
    ):
        back = wire.decode(wire.encode({"x": array}))["x"]
        assert back.strides == array.strides and back.flags.writeable
        assert np.array_equal(back, array)
    stepped = block[:, ::2]  # not one block: it crosses as a C-contiguous copy
    back = wire.decode(wire.encode(stepped))
    assert back.flags.c_contiguous and np.array_equal(back, stepped)


# --- numpy.ma inputs ------------------------------------------------------------------------


def _vacuous(x: Any, fill: float) -> tuple[Any, Any]:
    if isinstance(x, np.ma.MaskedArray):
        mask = np.ma.getmaskarray(x)
        data = np.ma.getdata(x)
        return np.where(mask, np.asarray(fill, data.dtype), data), mask
    return x, np.zeros(np.shape(x), dtype=bool)


def _honouring_calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    mean, masked_mean = _vacuous(mean, 0.0)
    var, masked_var = _vacuous(var, np.inf)
    var = np.where(masked_mean | masked_var, np.asarray(np.inf, var.dtype), var)
    return bogc_ref.calibrate(mean, var, **kwargs)


HONOURING = SimpleNamespace(
    calibrate=_honouring_calibrate,
    evidence=lambda var, **kw: bogc_ref.evidence(_vacuous(var, np.inf)[0], **kw),
    opinions=lambda e, **kw: bogc_ref.opinions(_vacuous(e, 0.0)[0], **kw),
    reduced_dempster=lambda e, **kw: bogc_ref.reduced_dempster(_vacuous(e, 0.0)[0], **kw),
)
MASKED_ENTRIES = [e for e in bad_inputs() if e.mask_honoured_ok]


def test_masked_entries_cover_mean_var_and_evidence() -> None:
    covered = {(e.function, e.argument) for e in MASKED_ENTRIES}
    assert {("calibrate", "mean"), ("calibrate", "var"), ("evidence", "var")} <= covered
    assert {("opinions", "evidence"), ("reduced_dempster", "evidence")} <= covered
    refused_only = {e.function for e in bad_inputs() if "masked" in e.name} - {
        e.function for e in MASKED_ENTRIES
    }
    assert "empirical_moments" in refused_only and "dempster_combine" in refused_only


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("entry", MASKED_ENTRIES, ids=lambda e: e.name)
def test_a_mask_honoured_as_vacuous_entries_conforms(entry: Any, dtype: str) -> None:
    assert check_bad_input(HONOURING, entry, dtype) == ""


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_masked_values_read_as_data_fail(dtype: str) -> None:
    candidate = open_candidate(f"impl:{WRONG / 'masked_filled.py'}")
    try:
        failed = {r.name: r.reason for r in run_contract(candidate, dtype) if not r.ok}
    finally:
        candidate.close()
    for name in (
        "calibrate_masked_array_nan",
        "calibrate_masked_var_nan",
        "calibrate_masked_mean_and_var",
        "evidence_masked_array_nan",
        "reduced_dempster_masked_array_nan",
    ):
        assert name in failed, name
        assert "with the mask honoured" in failed[name]


# --- the fresh seed -------------------------------------------------------------------------


def test_each_run_draws_its_own_fresh_seed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOGC_FRESH_SEED")  # the suite's fixed default (tests/conftest.py)
    seeds = []
    for i in range(2):
        report = tmp_path / f"r{i}.json"
        argv = ["--backend", "numpy", "--dtype", "float64", "--skip-tier", "golden"]
        code, out = verify(capsys, *argv, "--skip-tier", "contract", "--json", str(report))
        assert code == 0, out
        seed = json.loads(report.read_text())["settings"]["fresh_seed"]
        assert f"fresh seed {seed} (--fresh-seed {seed} repeats this run)" in out
        seeds.append(seed)
    assert seeds[0] != seeds[1]


def test_a_cheater_that_hashes_the_fixed_seed_fails_a_run_of_its_own_seed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOGC_FRESH_SEED")  # the default a user gets: a seed of the run's own
    cheater = f"{WRONG / 'fresh_hash_cheater.py'}:impl"
    code, out = verify(capsys, "--impl", cheater, "--dtype", "float64", "--skip-tier", "contract")
    assert code == 1
    assert re.search(r"FAIL \[\w+ float64\] fresh_\w+ \(fresh\)", out)
    found = re.search(r"fresh seed (\d+)", out)
    assert found is not None
    seed = int(found.group(1))
    assert "load_case('fresh_" in out and f", seed={seed})" in out
    # Its own seed's failure reproduces from the snippet alone.
    lines = out.split("reproduce:\n", 1)[1].splitlines()
    code_lines = []
    for line in lines:
        if not line.startswith("    "):
            break
        code_lines.append(line.strip())
    snippet = "\n".join(code_lines)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, "<reproduction>", "exec"), {})
    assert printed.getvalue().startswith("Comparison(ok=False")
    # The fixed seed it hashed is exactly what it passes.
    code, out = verify(
        capsys, "--impl", cheater, "--dtype", "float64", "--fresh-seed", str(FRESH_SEED)
    )
    assert code == 0, out


def test_the_environment_gives_the_default_fresh_seed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BOGC_FRESH_SEED (a CI's reproducible default) is the seed when --fresh-seed is not
    given; a value that is not a seed is a usage error naming the variable."""
    monkeypatch.setenv("BOGC_FRESH_SEED", "12345")
    report = tmp_path / "r.json"
    argv = ["--backend", "numpy", "--dtype", "float64", "--skip-tier", "golden"]
    code, out = verify(capsys, *argv, "--skip-tier", "contract", "--json", str(report))
    assert code == 0, out
    assert json.loads(report.read_text())["settings"]["fresh_seed"] == 12345
    for bad in ("-1", "seven", str(2**32)):
        monkeypatch.setenv("BOGC_FRESH_SEED", bad)
        assert main(["verify", "--backend", "numpy"]) == 2
        assert "BOGC_FRESH_SEED" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["-1", str(2**32)])
def test_fresh_seed_out_of_range_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    assert main(["verify", "--backend", "numpy", "--fresh-seed", bad]) == 2
    assert "--fresh-seed" in capsys.readouterr().err


# --- the Monte Carlo sampler -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "message"),
    [("ignores_seed", "seed is ignored"), ("ignores_n_samples", "n_samples is ignored")],
)
def test_a_sampler_that_ignores_seed_or_n_samples_fails(
    capsys: pytest.CaptureFixture[str], attribute: str, message: str
) -> None:
    code, out = verify(
        capsys,
        "--impl",
        f"{WRONG / 'sampler_shortcuts.py'}:{attribute}",
        "--skip-tier",
        "golden",
        "--skip-tier",
        "fresh",
        "--skip-tier",
        "contract",
    )
    assert code == 1
    assert f"softmax_mc_own_sampler (statistical): {message}" in out
