"""`bogc-ref verify` survives the candidates it runs (files in ``hostile/``).

Each test runs the command line as a subprocess, as a user would, and checks the exit
code, that the verdict is the last line printed, and that the JSON report exists and names
the failure. This module imports nothing from bogc_ref, so it runs against any version of
the harness (that is how each test was seen to fail before the worker process existed).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HOSTILE = Path(__file__).parent / "hostile"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None
    seconds: float

    @property
    def last_line(self) -> str:
        lines = self.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    def results(self, *tiers: str) -> list[dict[str, Any]]:
        """Every counted check (of ``tiers`` when given)."""
        assert self.report is not None, "no JSON report written"
        return [
            r
            for impl in self.report["implementations"]
            for r in impl["results"]
            if r.get("counted", True) and (not tiers or r["tier"] in tiers)
        ]

    def failures(self, *tiers: str) -> dict[str, str]:
        return {r["name"]: r["reason"] for r in self.results(*tiers) if not r["ok"]}


def verify(cwd: Path, *argv: str, timeout: float = 120, env: dict[str, str] | None = None) -> Run:
    """``bogc-ref verify ARGV --json report.json`` in ``cwd``; the report read back."""
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "bogc_ref.cli", "verify", *argv, "--json", "report.json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    path = cwd / "report.json"
    report = json.loads(path.read_text()) if path.is_file() else None
    return Run(proc.returncode, proc.stdout, proc.stderr, report, time.monotonic() - start)


def calibrate_run(tmp_path: Path, target: str, *argv: str, **kw: Any) -> Run:
    return verify(tmp_path, "--impl", str(HOSTILE / target), "--dtype", "float64", *argv, **kw)


def assert_failed_truthfully(run: Run) -> None:
    """Exit 1, the verdict last, a JSON report saying the same."""
    assert run.code == 1, run.stdout + run.stderr
    assert run.last_line.startswith("verdict: FAIL"), run.stdout
    assert run.report is not None and run.report["passed"] is False
    assert run.report["verdict"] == run.last_line


def assert_only_case_failed(run: Run, case: str, *words: str) -> str:
    """Exactly ``case`` failed, with all ``words`` in its reason; the others ran and passed."""
    assert_failed_truthfully(run)
    failures = run.failures()
    assert list(failures) == [case], failures
    for word in words:
        assert word in failures[case], failures[case]
    assert sum(r["ok"] for r in run.results()) >= 10  # the run went on after the failure
    return failures[case]


def test_sys_exit_in_a_call_fails_that_case(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "exit_in_call.py")
    assert_only_case_failed(run, "cal_M1_D1", "SystemExit")


def test_sys_exit_at_import_is_a_failure_with_a_report(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "exit_at_import.py")
    assert_failed_truthfully(run)
    assert "could not be loaded" in run.last_line
    (reason,) = run.failures().values()
    assert "SystemExit" in reason and "loaded" in reason


def test_os_exit_in_a_call_fails_that_case(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "os_exit.py")
    assert_only_case_failed(run, "cal_M1_D1", "exited with status 0")
    assert run.report is not None
    assert len(run.report["implementations"][0]["worker_failures"]) == 1


def test_segfault_fails_that_case(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "segfault.py")
    assert_only_case_failed(run, "cal_M1_D1", "SIGSEGV")


def test_c_call_holding_the_gil_is_killed_at_the_timeout(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "gil_sleep.py:short", "--case-timeout", "1")
    assert_only_case_failed(run, "cal_M1_D1", "timeout")
    (case,) = [r for r in run.results() if r["name"] == "cal_M1_D1"]
    assert case["seconds"] < 4.0  # killed at 1 s, not after the 5 s hold


def test_c_call_holding_the_gil_forever_does_not_hang_the_harness(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "gil_sleep.py:forever", "--case-timeout", "1", timeout=60)
    assert_only_case_failed(run, "cal_M1_D1", "timeout")


def test_keyboard_interrupt_from_the_candidate_fails_that_case(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "keyboard_interrupt.py")
    assert_only_case_failed(run, "cal_M1_D1", "KeyboardInterrupt")
    assert "Traceback" not in run.stderr


def test_candidate_output_is_captured_and_cannot_fake_the_verdict(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "fake_verdict.py")
    assert_only_case_failed(run, "cal_M1_D1", "grad")
    fake = "verdict: PASS (fake_verdict"
    assert fake not in run.stdout and fake not in run.stderr
    assert "calibrating" not in run.stdout and "C-level" not in run.stdout
    assert run.report is not None
    captured = run.report["implementations"][0]["candidate_output"]
    assert fake in captured["stdout"]  # printed at exit, kept in the report
    assert "calibrating (1, 1)" in captured["stdout"]
    assert "C-level print from the candidate" in captured["stdout"]
    assert "candidate output:" in run.stdout  # summarised on the console


def test_candidate_warnings_are_counted_not_printed(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "noisy_warnings.py")
    assert run.code == 0, run.stdout + run.stderr
    assert run.last_line.startswith("verdict: PASS")
    assert "overflow number" not in run.stderr
    assert len((run.stdout + run.stderr).splitlines()) < 30
    summary = re.search(r"candidate warnings: (\d+) \((\d+) distinct", run.stdout)
    assert summary is not None, run.stdout
    total, distinct = int(summary.group(1)), int(summary.group(2))
    assert total >= 19 * 300 and distinct >= 300  # 300 per call, at least the golden cases
    assert run.report is not None
    warnings = run.report["implementations"][0]["candidate_output"]["warnings"]
    assert sum(w["count"] for w in warnings) == total and len(warnings) == distinct


def test_chdir_at_import_does_not_move_a_relative_json_report(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "chdir_at_import.py")
    assert run.code == 0, run.stdout + run.stderr
    assert run.last_line.startswith("verdict: PASS")
    assert run.report is not None and run.report["passed"] is True
    assert not (tmp_path / "elsewhere" / "report.json").exists()


@pytest.mark.parametrize("laws", [False, True], ids=["golden", "properties"])
def test_patching_the_reference_in_the_candidate_changes_no_expectation(
    tmp_path: Path, laws: bool
) -> None:
    argv = ["--impl", str(HOSTILE / "monkeypatch_reference.py"), "--dtype", "float32"]
    if laws:
        argv += ["--properties", "--max-examples", "5"]
    run = verify(tmp_path, *argv)
    assert_failed_truthfully(run)
    failures = run.failures()
    if laws:
        assert "calibrate_matches_reference" in failures
    else:
        assert len(failures) >= 15, failures


def test_memory_hog_is_stopped_at_the_memory_limit(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "memory_hog.py", "--memory-limit", "300M")
    assert_only_case_failed(run, "cal_M1_D1", "memory", "--memory-limit")


def test_inputs_modified_by_the_candidate_are_detected(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "mutates_inputs.py")
    assert_failed_truthfully(run)
    failures = run.failures("golden")
    assert len(failures) == len(run.results("golden")), "every case modifies its inputs"
    assert all("mean (argument 1) was modified by the call" in r for r in failures.values())


def test_outputs_that_are_views_of_inputs_are_detected(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "returns_views.py")
    assert_failed_truthfully(run)
    failures = run.failures("golden")
    assert "cal_M1_D1" not in failures  # one source: it returns its own arrays there
    assert len(failures) >= 10
    assert all("calibrate.grad shares memory with mean" in r for r in failures.values())


def test_an_ndarray_subclass_cannot_change_the_comparison(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "lying_subclass.py")
    assert_failed_truthfully(run)
    assert len(run.failures("golden")) == len(run.results("golden"))
    # "got 7.0" (or "got np.float64(7.0)"): the value itself, read without the subclass
    assert all(re.search(r"got \S*7\.0", r) for r in run.failures("golden").values())


def test_a_hanging_call_is_not_repeated_by_hypothesis(tmp_path: Path) -> None:
    counter = tmp_path / "calls.txt"
    run = verify(
        tmp_path,
        "--impl",
        str(HOSTILE / "hang_counter.py"),
        "--dtype",
        "float64",
        "--properties",
        "--max-examples",
        "20",
        "--case-timeout",
        "1",
        "--skip-tier",
        "fresh",
        "--skip-tier",
        "contract",
        env={"BOGC_TEST_COUNTER": str(counter)},
        timeout=90,
    )
    assert_failed_truthfully(run)
    results = run.results()
    assert all(not r["ok"] and "timeout" in r["reason"] for r in results)
    laws = [r for r in results if r["tier"] == "laws"]
    assert laws and all("stopped at the first worker failure" in r["reason"] for r in laws)
    # One call per check: no shrinking loop re-running the call that hung.
    assert len(counter.read_text().splitlines()) == len(results)


def test_several_distinct_law_failures_each_show_input_and_reproduction(tmp_path: Path) -> None:
    run = verify(
        tmp_path,
        "--impl",
        str(HOSTILE / "two_bugs.py"),
        "--dtype",
        "float64",
        "--properties",
        "--max-examples",
        "30",
    )
    assert_failed_truthfully(run)
    reason = run.failures()["calibrate_matches_reference"]
    assert "2 distinct failures" in reason, reason
    assert "raised RuntimeError: one source is not supported" in reason
    assert "grad: got" in reason
    assert reason.count("reproduce:") == 2
    assert "FAIL [calibrate float64] calibrate_matches_reference (law)" in run.stdout


def test_ctrl_c_stops_the_harness_and_its_worker(tmp_path: Path) -> None:
    counter = tmp_path / "calls.txt"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bogc_ref.cli",
            "verify",
            "--impl",
            str(HOSTILE / "hang_counter.py"),
            "--case-timeout",
            "0",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BOGC_TEST_COUNTER": str(counter)},
    )
    deadline = time.monotonic() + 60
    while not (counter.exists() and counter.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker_pid = int(counter.read_text().split()[0])
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert out.strip().splitlines()[-1].startswith("verdict: INTERRUPTED")
    assert "Traceback" not in err
    stat = Path(f"/proc/{worker_pid}/stat")
    if stat.exists():  # gone, or at most a zombie waiting for its reaper
        assert stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
