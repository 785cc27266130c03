"""The contract tier: the spec's bad inputs raise the spec's errors, in every candidate."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import bogc_ref
from bogc_ref.cli import main
from bogc_ref.conformance.contract import bad_inputs, check_bad_input, run_contract
from bogc_ref.conformance.laws import raised
from bogc_ref.conformance.loading import open_candidate


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("entry", bad_inputs(), ids=lambda e: e.name)
def test_reference_meets_every_entry(entry: Any, dtype: str) -> None:
    assert check_bad_input(bogc_ref, entry, dtype) == ""


def test_contract_covers_every_function_and_the_spec_list() -> None:
    from bogc_ref.conformance.adapter import FUNCTIONS

    entries = bad_inputs()
    assert {e.function for e in entries} == set(FUNCTIONS)
    names = " ".join(e.name for e in entries)
    for kind in (
        "nan_mean",
        "inf_mean",
        "negative_var",
        "shape_mismatch",
        "integer",
        "label_out_of_range",
        "tau_zero",
        "power_zero",
        "prior_weight_zero",
        "not_pd",
        "no_sources",
        "total_conflict",
    ):
        assert kind in names, kind


def _unchecked_calibrate(mean: Any, var: Any, **kwargs: Any) -> Any:
    """Right on valid input, validates nothing (like the sketch in docs/verify.md)."""
    with np.errstate(all="ignore"):
        return bogc_ref.calibrate(
            np.asarray(mean, dtype=np.float64),
            np.abs(np.asarray(var, dtype=np.float64)),
            check_finite=False,
        )


def test_a_candidate_that_validates_nothing_fails_the_contract() -> None:
    candidate = SimpleNamespace(calibrate=_unchecked_calibrate)
    results = run_contract(candidate, "float64")
    failed = {r.name: r.reason for r in results if not r.ok}
    assert "calibrate_nan_mean" in failed
    assert failed["calibrate_nan_mean"].startswith("missing exception: expected ValueError")
    assert "calibrate_power_zero" in failed and "calibrate_integer_mean" in failed


def test_wrong_type_and_unnamed_argument_fail() -> None:
    def foreign(mean: Any, var: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bad input")

    def anonymous(mean: Any, var: Any, **kwargs: Any) -> Any:
        raise ValueError("bad input")

    entry = next(e for e in bad_inputs() if e.name == "calibrate_nan_mean")
    message = check_bad_input(SimpleNamespace(calibrate=foreign), entry, "float64")
    assert message.startswith("expected ValueError naming 'mean'; raised RuntimeError")
    message = check_bad_input(SimpleNamespace(calibrate=anonymous), entry, "float64")
    assert "does not name 'mean'" in message


def test_a_message_without_the_index_and_the_shape_fails() -> None:
    """The spec's errors name the argument, the index and the shape: a message that names
    every argument but neither the index nor the shape fails the entries where one entry
    is bad; the reference's own message passes (test_reference_meets_every_entry)."""

    def vague(mean: Any, var: Any, **kwargs: Any) -> Any:
        try:
            return bogc_ref.calibrate(mean, var, **kwargs)
        except ValueError:
            raise ValueError("invalid input: check mean, var, power, tau, prior_weight") from None

    results = {r.name: r for r in run_contract(SimpleNamespace(calibrate=vague), "float64")}
    for name in ("calibrate_nan_mean", "calibrate_nan_var", "calibrate_negative_var"):
        assert not results[name].ok, name
        assert "does not give the index" in results[name].reason, results[name].reason
    assert results["calibrate_power_zero"].ok  # a scalar: no index or shape to give


class _Reported(Exception):
    """Stands for the harness's CandidateError: the candidate's exception, classified."""

    def __init__(self, mro: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.mro, self.message = mro, message

    def is_a(self, qualified_name: str) -> bool:
        return qualified_name in self.mro


class WorkerFailure(Exception):
    """Named like the harness's worker failure: never the expected error."""


class CaseTimeout(WorkerFailure, ValueError):
    """A worker failure subclass (even one that looked like a ValueError) is never accepted."""


def test_errors_are_classified_by_qualified_name() -> None:
    linalg = _Reported(
        ("numpy.linalg.LinAlgError", "builtins.ValueError", "builtins.Exception"), "w_cov: x"
    )
    assert raised(linalg, "builtins.ValueError") and raised(linalg, "numpy.linalg.LinAlgError")
    assert not raised(linalg, "builtins.TypeError")
    assert raised(np.linalg.LinAlgError("x"), "builtins.ValueError")
    assert not raised(WorkerFailure("killed"), "builtins.ValueError")
    assert not raised(CaseTimeout("60 s"), "builtins.ValueError")


def test_bundled_backends_meet_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["verify", "--backend", "numpy", "--dtype", "float64"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAIL [" not in out
    torch = pytest.importorskip("torch")
    assert torch is not None
    results = run_contract(open_candidate("backend:torch"), "float32")
    assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
