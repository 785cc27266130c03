"""`bogc-ref verify` keeps control of the processes, pipes, files and console it uses.

Like ``test_isolation``, each test runs the command line as a subprocess (candidates in
``hostile/``) and imports nothing from bogc_ref, so it runs against any version of the
harness (each was seen to fail before the harness was hardened).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .test_isolation import (
    HOSTILE,
    assert_failed_truthfully,
    assert_only_case_failed,
    calibrate_run,
)

linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def gone(pid: int, within: float = 5.0) -> bool:
    """Whether process ``pid`` has ended (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("trickle", [False, True], ids=["stops", "trickles"])
def test_a_reply_that_stops_halfway_or_trickles_times_out(tmp_path: Path, trickle: bool) -> None:
    env = {"BOGC_TEST_TRICKLE": "1"} if trickle else {}
    run = calibrate_run(tmp_path, "partial_reply.py", "--case-timeout", "2", env=env, timeout=60)
    reason = assert_only_case_failed(run, "cal_M1_D1", "timeout", "no result after 2 s")
    assert "killed" in reason
    (case,) = [r for r in run.results() if r["name"] == "cal_M1_D1"]
    assert case["seconds"] < 10


def test_a_reply_that_stops_halfway_while_loading_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In this process, for a short load timeout (the command line allows 60 s at least).
    from bogc_ref.conformance.adapter import Adapter, LoadFailure

    monkeypatch.setenv("BOGC_TEST_AT_IMPORT", "1")
    adapter = Adapter(f"impl:{HOSTILE / 'partial_reply.py'}", load_timeout=1.0)
    reasons: list[str] = []

    def load() -> None:
        try:
            adapter.wait_loaded()
        except LoadFailure as exc:
            reasons.append(exc.reason)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "still waiting for the rest of the reply after 30 s"
    adapter.close(graceful=False)
    assert reasons and "no answer after 1 s while loading" in reasons[0], reasons


@linux_only
@pytest.mark.parametrize("mode", ["child", "orphan"])
@pytest.mark.parametrize("timeout", ["0", "30"])
def test_a_worker_exit_is_seen_while_its_children_hold_the_pipe(
    tmp_path: Path, mode: str, timeout: str
) -> None:
    pids = tmp_path / "pids.txt"
    run = calibrate_run(
        tmp_path,
        "leaves_a_process.py",
        "--case-timeout",
        timeout,
        env={"BOGC_TEST_MODE": mode, "BOGC_TEST_PIDS": str(pids)},
        timeout=60,
    )
    # "exited", not "timeout": the worker's exit is seen at once (with --case-timeout 0 a
    # missed exit would hang until calibrate_run's own limit)
    assert_only_case_failed(run, "cal_M1_D1", "exited with status 0")
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 2  # one per worker: the first and its replacement
    assert all(gone(pid) for pid in started), started


@linux_only
def test_a_daemon_left_by_the_candidate_cannot_write_after_the_verdict(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    run = calibrate_run(
        tmp_path, "writes_after_exit.py", env={"BOGC_TEST_REPORT": str(report)}, timeout=90
    )
    time.sleep(0.5)  # a survivor would write now
    assert_failed_truthfully(run)
    assert "verdict: PASS" not in run.stdout
    assert json.loads(report.read_text())["passed"] is False


def test_a_reply_larger_than_the_outputs_is_refused_before_it_is_read(tmp_path: Path) -> None:
    run = calibrate_run(tmp_path, "huge_reply.py")
    reason = assert_only_case_failed(run, "cal_M1_D1", "announced a reply of")
    assert "before the reply was read" in reason


def test_replacing_the_contract_check_in_the_worker_does_not_switch_it_off(
    tmp_path: Path,
) -> None:
    run = calibrate_run(tmp_path, "contract_bypass.py")
    assert_failed_truthfully(run)
    failures = run.failures("golden")
    assert len(failures) == len(run.results("golden"))
    assert all("was modified by the call" in r for r in failures.values())


def test_the_harness_imports_its_modules_before_the_candidate_can_change_them(
    tmp_path: Path,
) -> None:
    import bogc_ref  # only to find the package to copy

    package = tmp_path / "package"
    shutil.copytree(
        Path(bogc_ref.__file__).parent,
        package / "bogc_ref",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    marker = tmp_path / "imported.txt"
    env = {
        **os.environ,
        "BOGC_TEST_PACKAGE": str(package),
        "BOGC_TEST_MARKER": str(marker),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bogc_ref.cli",
            "verify",
            "--impl",
            str(HOSTILE / "tampers_with_the_harness.py"),
            "--dtype",
            "float64",
        ],
        cwd=package,  # the copy comes first on the import path
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err  # so the candidate loaded, from the copy
    lines = marker.read_text().split("\n") if marker.exists() else []
    late = [line for line in lines if line.startswith(f"{proc.pid} ")]
    assert not late, f"imported by the harness after the candidate loaded: {late}"


@pytest.mark.parametrize(
    ("encoding", "fails"), [("ascii", False), ("latin-1", False), ("utf-8:strict", True)]
)
def test_candidate_text_never_breaks_the_report(tmp_path: Path, encoding: str, fails: bool) -> None:
    env = {"PYTHONIOENCODING": encoding}
    if fails:
        env["BOGC_TEST_RAISE"] = "1"
    run = calibrate_run(tmp_path, "odd_text.py", env=env)
    assert "Traceback" not in run.stderr, run.stderr
    if fails:
        reason = assert_only_case_failed(run, "cal_M1_D1", "cannot read cache")
        assert "\udcff" in reason  # the JSON report keeps the text as it was
        assert "\\udcff" in run.stdout  # the console shows an escape
    else:
        assert run.code == 0, run.stdout + run.stderr
        assert run.last_line.startswith("verdict: PASS")
        assert run.report is not None and run.report["verdict"] == run.last_line
        assert run.report["implementations"][0]["version"] == "1.0+\udce9t\udce9"


def test_a_report_that_cannot_be_written_is_not_a_pass(tmp_path: Path) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bogc_ref.cli",
            "verify",
            "--impl",
            str(HOSTILE / "removes_the_report_folder.py"),
            "--dtype",
            "float64",
            "--json",
            str(folder / "report.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BOGC_TEST_RMDIR": str(folder)},
    )
    last = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert last.startswith("verdict: ERROR (no report: --json: could not write"), last
    assert "the checks alone: PASS" in last
    assert "could not write the report" in proc.stderr


@linux_only
def test_an_unwritable_report_is_a_usage_error_before_anything_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bogc_ref.cli",
            "verify",
            "--impl",
            str(HOSTILE / "os_exit.py"),
            "--json",
            "/proc/version",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("bogc-ref verify: error: --json: cannot write '/proc/version'")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_skipping_every_tier_that_has_checks_is_a_usage_error(tmp_path: Path) -> None:
    skip = ["--skip-tier", "golden", "--skip-tier", "fresh", "--skip-tier", "contract"]
    run = calibrate_run(tmp_path, "os_exit.py", *skip)
    assert run.code == 2, run.stdout + run.stderr
    assert run.stdout == "" and run.report is None
    assert "nothing to check on" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
