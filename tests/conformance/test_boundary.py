"""The process boundary between the harness and a candidate: bits, errors, contract, limits."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bogc_ref
from bogc_ref.conformance import golden, wire
from bogc_ref.conformance.adapter import (
    Adapter,
    CandidateError,
    ContractViolation,
    WorkerFailure,
    expected_output_elements,
)
from bogc_ref.conformance.errors import CaseTimeout
from bogc_ref.conformance.loading import open_candidate
from bogc_ref.conformance.runtime import parse_memory
from bogc_ref.conformance.worker import contract_problems


def special_values(dtype: str) -> np.ndarray:
    """NaN with a payload, -0.0, the smallest subnormal, ±inf, the largest finite."""
    info = np.finfo(dtype)
    values = np.array(
        [0.0, -0.0, np.inf, -np.inf, info.max, info.smallest_subnormal, 1.0 / 3.0], dtype=dtype
    )
    nan = np.array([np.nan], dtype=dtype)
    bits = nan.view(f"u{nan.itemsize}")
    bits |= 5  # a payload that a float conversion would be free to drop
    return np.concatenate([values, nan])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes())


@pytest.mark.parametrize(
    "array",
    [
        special_values("float16"),
        special_values("float32"),
        special_values("float64"),
        special_values("float64").astype(">f8"),
        np.arange(12, dtype=np.int64).reshape(3, 4)[:, ::2],  # not contiguous
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.array([True, False]),
        np.array([1 + 2j], dtype=np.complex64),
        np.array(2.5, dtype=np.float32),  # 0-d
        np.zeros((0, 3), dtype=np.float32),
        np.iinfo(np.uint64).max * np.ones(2, dtype=np.uint64),
    ],
    ids=lambda a: f"{a.dtype.str}{a.shape}",
)
def test_arrays_cross_in_their_own_dtype_and_bits(array: np.ndarray) -> None:
    (back,) = wire.decode(wire.encode([array]))
    assert type(back) is np.ndarray
    assert same_bits(back, np.array(array, order="C"))
    assert back.flags.writeable and back.flags.aligned


def test_scalars_and_structure_cross() -> None:
    message = {"x": np.float32(1.5), "t": (1, "a", None, float("nan"), [True, -0.0])}
    back = wire.decode(wire.encode(message))
    assert type(back["x"]) is np.float32 and back["x"] == np.float32(1.5)
    assert back["t"][:3] == (1, "a", None) and np.isnan(back["t"][3])
    assert back["t"][4] == [True, -0.0] and np.signbit(back["t"][4][1])


def test_object_arrays_are_refused_both_ways() -> None:
    with pytest.raises(wire.WireError, match="numbers and bools"):
        wire.encode([np.array([object()], dtype=object)])
    frame = wire.encode([np.zeros(1)])
    forged = frame.replace(b"<f8", b"|O8")
    with pytest.raises(wire.WireError):
        wire.decode(forged)


def test_truncated_or_padded_frames_are_refused() -> None:
    frame = wire.encode([np.arange(4.0)])
    with pytest.raises(wire.WireError):
        wire.decode(frame[:-1])
    with pytest.raises(wire.WireError):
        wire.decode(frame + b"\0")


def test_a_frame_crosses_a_pipe_and_one_over_the_limit_is_refused_unread() -> None:
    read_fd, write_fd = os.pipe()
    try:
        wire.send(write_fd, {"x": np.arange(100.0)})
        back = wire.receive(read_fd, limit=10_000)
        assert np.array_equal(back["x"], np.arange(100.0))
        wire.send(write_fd, {"x": np.arange(100.0)})
        with pytest.raises(wire.FrameTooLarge) as refused:
            wire.receive(read_fd, limit=100)
        assert refused.value.size > 800 and refused.value.limit == 100
        os.close(write_fd)
        write_fd = -1
        body = wire.read_exactly(read_fd, refused.value.size)  # still in the pipe: unread
        assert np.array_equal(wire.decode(body)["x"], np.arange(100.0))
    finally:
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)


def test_the_reply_limit_bounds_every_reference_output_on_every_case() -> None:
    from bogc_ref.conformance.fresh import fresh_cases

    checked = 0
    for case in (*golden.stored()[1], *fresh_cases()):
        for dtype in case.dtypes:
            args, kwargs = case.call_args(dtype)
            result = getattr(bogc_ref, case.function)(*args, **kwargs)
            values = result if isinstance(result, tuple) else (result,)
            returned = sum(int(np.size(v)) for v in values)
            bound = expected_output_elements(case.function, tuple(args), kwargs)
            assert returned <= bound, (case.name, dtype, returned, bound)
            checked += 1
    assert checked > 50


class Hostile(np.ndarray):
    """An ndarray subclass whose every hook raises."""

    def __array_finalize__(self, obj: Any) -> None:
        if obj is not None and getattr(self, "armed", False):
            raise RuntimeError("__array_finalize__ called")

    def view(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("view called")

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("copy called")

    def tobytes(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tobytes called")


def test_subclasses_are_sent_as_plain_arrays_without_calling_their_methods() -> None:
    hostile = np.arange(5.0).view(Hostile)
    hostile.armed = True  # type: ignore[attr-defined]
    (back,) = wire.decode(wire.encode([hostile[::2]]))
    assert type(back) is np.ndarray and back.tolist() == [0.0, 2.0, 4.0]


def test_masked_arrays_reach_the_worker_with_their_mask_and_never_the_harness() -> None:
    """The contract tier's masked input must reach the candidate's function with its mask
    (before, the wire sent the raw data, so a NaN under the mask looked like a present NaN)."""
    masked = np.ma.masked_array([[1.0, np.nan], [3.0, 4.0]], mask=[[0, 1], [0, 0]])
    (back,) = wire.decode(wire.encode([masked]), masked=True)
    assert isinstance(back, np.ma.MaskedArray)
    np.testing.assert_array_equal(np.ma.getmaskarray(back), np.ma.getmaskarray(masked))
    assert np.ma.getdata(back).tobytes() == np.ma.getdata(masked).tobytes()
    with pytest.raises(wire.WireError, match="masked"):
        wire.decode(wire.encode([masked]))  # the harness side: plain arrays only


def test_contract_detects_an_output_aliasing_an_input_without_modifying_it() -> None:
    mean = np.arange(6.0).reshape(2, 3)
    inputs = [("mean (argument 1)", mean)]
    snapshots = [mean.copy()]
    problems = contract_problems(inputs, snapshots, [("calibrate.grad", mean[0])])
    assert problems == [
        "calibrate.grad shares memory with mean (argument 1) (a view of an input, not a new array)"
    ]
    assert contract_problems(inputs, snapshots, [("calibrate.grad", mean[0].copy())]) == []


def test_contract_detects_a_changed_nan_payload() -> None:
    var = special_values("float64")
    snapshot = var.copy()
    var.view(np.uint64)[-1] ^= np.uint64(2)  # still NaN, other bits
    (problem,) = contract_problems([("var (argument 2)", var)], [snapshot], [])
    assert problem.startswith("var (argument 2) was modified by the call: 1 of 8 entries")


def write_candidate(tmp_path: Path, source: str) -> str:
    path = tmp_path / "candidate.py"
    path.write_text(textwrap.dedent(source))
    return f"impl:{path}"


def test_candidate_errors_carry_type_mro_message_and_traceback(tmp_path: Path) -> None:
    spec = write_candidate(
        tmp_path,
        """
        import numpy as np

        def calibrate(mean, var, **kwargs):
            raise np.linalg.LinAlgError("not positive definite")
        """,
    )
    with open_candidate(spec, timeout=30) as candidate, pytest.raises(CandidateError) as info:
        candidate.calibrate(np.ones((2, 3)), np.ones((2, 3)))
    error = info.value
    assert error.type_name == "numpy.linalg.LinAlgError"
    assert error.is_a("numpy.linalg.LinAlgError") and error.is_a("builtins.ValueError")
    assert not error.is_a("builtins.TypeError")
    assert error.mro[-1] == "builtins.object"
    assert error.message == "not positive definite"
    assert "candidate.py" in error.traceback and "candidate.py:5" in error.location
    assert error.describe() == (
        f"raised LinAlgError: not positive definite at {tmp_path / 'candidate.py'}:5"
    )


def test_results_keep_their_bits_and_the_candidate_stays_out_of_the_harness(
    tmp_path: Path,
) -> None:
    spec = write_candidate(
        tmp_path,
        """
        import numpy as np

        def evidence(var, **kwargs):
            return np.array(var, copy=True)  # the input's bits, returned
        """,
    )
    before = set(sys.modules)
    with open_candidate(spec, timeout=30) as candidate:
        for dtype in ("float32", "float64"):
            var = special_values(dtype).reshape(1, -1)
            assert same_bits(candidate.evidence(var), var)
    assert not [m for m in set(sys.modules) - before if "candidate" in m]


def test_a_timed_out_worker_is_replaced(tmp_path: Path) -> None:
    spec = write_candidate(
        tmp_path,
        """
        import time
        import bogc_ref

        def calibrate(mean, var, **kwargs):
            if mean.shape == (1, 1):
                time.sleep(60)
            return bogc_ref.calibrate(mean, var, **kwargs)
        """,
    )
    with open_candidate(spec, timeout=1.0) as candidate:
        with pytest.raises(CaseTimeout, match="no result after 1 s"):
            candidate.calibrate(np.ones((1, 1)), np.ones((1, 1)))
        assert candidate.calibrate(np.ones((2, 3)), np.ones((2, 3))).grad.shape == (3,)
        assert len(candidate.failures) == 1
    assert isinstance(CaseTimeout("x"), WorkerFailure)


def test_a_modified_input_is_a_contract_violation(tmp_path: Path) -> None:
    spec = write_candidate(
        tmp_path,
        """
        import bogc_ref

        def calibrate(mean, var, **kwargs):
            out = bogc_ref.calibrate(mean, var, **kwargs)
            var *= 2
            return out
        """,
    )
    with open_candidate(spec, timeout=30) as candidate:
        var = np.ones((2, 3))
        with pytest.raises(ContractViolation, match=r"var \(argument 2\) was modified"):
            candidate.calibrate(np.ones((2, 3)), var)
        assert (var == 1).all()  # the harness's own array is never touched


def test_adapter_is_not_loaded_until_asked() -> None:
    adapter = Adapter("backend:numpy")
    assert not adapter.provides("calibrate")
    with pytest.raises(WorkerFailure, match="not loaded"):
        adapter._live_worker()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2G", 2 * 1024**3), ("512M", 512 * 1024**2), ("1.5GiB", int(1.5 * 1024**3)), ("0", None)],
)
def test_memory_sizes(text: str, expected: int | None) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["lots", "-1G", "0%", "150%", "inf"])
def test_bad_memory_sizes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_memory(text)


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_worker_dies_with_a_killed_harness(tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"
    spec = write_candidate(
        tmp_path,
        f"""
        import os, time

        def calibrate(mean, var, **kwargs):
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            time.sleep(600)
        """,
    )
    program = (
        "import numpy as np\n"
        "from bogc_ref.conformance.loading import open_candidate\n"
        f"open_candidate({spec!r}).calibrate(np.ones((1, 1)), np.ones((1, 1)))\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", program])
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = int(pid_file.read_text())
    assert _running(worker)
    harness.kill()  # SIGKILL: no chance to clean up
    harness.wait()
    deadline = time.monotonic() + 10
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(worker)
