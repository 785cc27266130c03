"""The candidate's worker process, seen from the harness: start, call, limits, kill.

The worker is a fresh interpreter (``python -I -c ...`` running
:func:`bogc_ref.conformance.worker.main` with this process's ``sys.path``), never a fork of
the harness: nothing the harness imported or computed is in its memory. It runs in
its own session (a Ctrl-C at the terminal reaches the harness only), with standard input
closed and standard output and error redirected to capture files (see
:mod:`~bogc_ref.conformance.capture`); it inherits no other file descriptor than its two
pipe ends.

Each request waits for the whole reply, polling the pipe every :data:`POLL_SECONDS`, and
between polls watches three things: the time limit (for the whole reply, not its first
byte), the worker's resident memory (read from ``/proc/PID/statm``; Linux only) and the
worker process itself (a worker that has exited is reported as such even when a process it
started still holds the pipe open). A reply whose announced length is over what the call
can legitimately return (``reply_limit``, from the sizes of the outputs expected) is
refused before it is read. A worker past a limit is killed with SIGKILL (its process group
and every descendant, see :mod:`~bogc_ref.conformance.reaper`), which also stops a C call
that holds the GIL; a worker that dies is reported with its exit status or signal and the
last lines it wrote to stderr. Either way the call raises
:class:`~bogc_ref.conformance.errors.WorkerFailure` and the worker is not used again.

On Linux a worker asks to be killed when the thread that started it ends
(``PR_SET_PDEATHSIG``), so a harness killed from outside leaves no worker behind; start
workers from a thread that lives as long as you use them (the main thread, as
``bogc-ref verify`` does).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from typing import Any, NoReturn

from . import reaper, wire
from .capture import OutputLog
from .errors import CaseTimeout, LoadFailure, WorkerFailure

#: How often a waiting request checks the worker's memory (seconds).
POLL_SECONDS = 0.02
#: How long a worker may take to exit after ``exit`` before it is killed (seconds).
EXIT_GRACE_SECONDS = 5.0
#: Fraction of the machine's memory a worker may use by default.
DEFAULT_MEMORY_FRACTION = 0.5
#: Requests smaller than this are written without a helper thread (a pipe holds 64 KiB).
INLINE_SEND_BYTES = 32 * 1024
#: The longest reply accepted while loading (it holds no arrays).
LOAD_REPLY_BYTES = 16 * 1024**2

__all__ = ["CaseTimeout", "WorkerProcess", "default_memory_limit", "parse_memory"]

_LIVE: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None when the OS does not say."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def default_memory_limit() -> int | None:
    """:data:`DEFAULT_MEMORY_FRACTION` of the machine's memory (None when unknown)."""
    total = physical_memory()
    return None if total is None else int(total * DEFAULT_MEMORY_FRACTION)


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_memory(text: str) -> int | None:
    """Bytes from ``"2G"``, ``"512M"``, ``"1.5GiB"``, ``"40%"`` (of the machine), ``"0"``.

    ``"0"`` or ``"none"`` means no limit (None). Raises ValueError on anything else.
    """
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    if value in ("0", "NONE"):
        return None
    if value.endswith("%"):
        total = physical_memory()
        if total is None:
            raise ValueError("a percentage needs the machine's memory size, unknown here")
        fraction = float(value[:-1]) / 100
        if not 0 < fraction <= 1:
            raise ValueError(f"{text!r}: a percentage must be in (0, 100]")
        return int(total * fraction)
    unit = value[-1] if value and value[-1] in _UNITS else ""
    number = float(value[: len(value) - len(unit)])
    if not number > 0 or number == float("inf"):
        raise ValueError(f"{text!r}: must be a positive size")
    return int(number * _UNITS[unit])


def format_bytes(n: float) -> str:
    """``1.5 GiB``, ``300 MiB``, ``12 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"


def resident_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` (Linux ``/proc``), None when unreadable."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _bootstrap() -> str:
    """The worker's ``-c`` program: this process's ``sys.path``, then the worker's ``main``.

    The interpreter runs isolated (``-I``: neither the working directory nor PYTHON*
    variables decide what is imported), and imports modules from where this process does.
    """
    return (
        f"import sys; sys.path[:] = {json.dumps(sys.path)}; "
        "from bogc_ref.conformance.worker import main; main(sys.argv[1:])"
    )


def _signal_name(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    description = signal.strsignal(number)
    return f"{name} ({description})" if description else name


class WorkerProcess:
    """One worker process for one candidate spec.

    Args:
        spec: the candidate spec (see :mod:`~bogc_ref.conformance.loading`).
        output: where the process's stdout and stderr go.
        memory_limit: bytes of resident memory (None: no limit).
    """

    def __init__(self, spec: str, output: OutputLog, memory_limit: int | None) -> None:
        self.spec = spec
        self.output = output
        self.memory_limit = memory_limit
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        stdout, stderr = output.new_files()
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-c",
                    _bootstrap(),
                    str(to_worker_r),
                    str(from_worker_w),
                    str(os.getpid()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                pass_fds=(to_worker_r, from_worker_w),
                start_new_session=True,
            )
        finally:
            for fd in (to_worker_r, from_worker_w):
                os.close(fd)
            stdout.close()
            stderr.close()
        self._to_worker = to_worker_w
        self._from_worker = from_worker_r
        self._poll = select.poll()
        self._poll.register(from_worker_r, select.POLLIN)
        self.dead = False
        _LIVE.add(self)
        weakref.finalize(self, _kill_group, self.process)
        self._post({"op": "load", "spec": spec})

    # -- requests -------------------------------------------------------------------------
    def _post(self, message: dict[str, Any]) -> threading.Thread | None:
        """Write a request; big ones from a thread, so a worker that does not read cannot block."""
        if self._size(message) <= INLINE_SEND_BYTES:
            self._send(message)
            return None
        sender = threading.Thread(target=self._send, args=(message,), daemon=True)
        sender.start()
        return sender

    @staticmethod
    def _size(message: dict[str, Any]) -> int:
        return sum(
            getattr(v, "nbytes", 0)
            for part in (message.get("args", ()), message.get("kwargs", {}).values())
            for v in part
        )

    def _send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # a dead worker: its death is reported by the reply
            wire.send(self._to_worker, message)

    def wait_loaded(self, timeout: float | None) -> dict[str, Any]:
        """The worker's ``loaded`` (or ``usage``, ``load_failed``) reply.

        Raises :class:`LoadFailure` when the process dies, hangs or runs out of memory
        while loading the candidate.
        """
        try:
            return self._reply(
                timeout, LOAD_REPLY_BYTES, "while loading the candidate", LoadFailure
            )
        except LoadFailure:
            raise
        except WorkerFailure as exc:  # a timeout while loading
            raise LoadFailure(exc.reason) from exc

    def request(
        self, message: dict[str, Any], timeout: float | None, what: str, reply_limit: int
    ) -> Any:
        """Send ``message`` and return the reply, under the time and memory limits and a
        reply of at most ``reply_limit`` bytes."""
        if self.dead:
            raise WorkerFailure("the worker process is gone")
        self._post(message)
        return self._reply(timeout, reply_limit, f"during {what}", WorkerFailure)

    def _reply(
        self, timeout: float | None, limit: int, during: str, failure: type[WorkerFailure]
    ) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout

        def wait() -> None:
            self._wait_readable(deadline, timeout, during, failure)

        try:
            return wire.receive(self._from_worker, limit=limit, wait=wait)
        except (EOFError, OSError):
            raise failure(self._death(during)) from None
        except wire.FrameTooLarge as exc:
            self.kill()
            raise failure(
                f"the worker process announced a reply of {format_bytes(exc.size)} {during}, "
                f"more than the {format_bytes(exc.limit)} this call can return (the size of "
                "the outputs expected, with a margin); it was killed before the reply was read"
            ) from None
        except wire.WireError as exc:
            self.kill()
            raise failure(
                f"the worker process broke the message protocol {during} ({exc}); it was killed"
            ) from None

    def _readable(self, seconds: float) -> bool:
        return bool(self._poll.poll(max(0, int(seconds * 1000))))

    def _wait_readable(
        self,
        deadline: float | None,
        timeout: float | None,
        during: str,
        failure: type[WorkerFailure],
    ) -> None:
        """Return when the reply pipe has bytes (or is closed); raise past the time or
        memory limit, or when the worker process has exited. The deadline is checked first,
        so a reply that trickles in cannot outlast it."""
        while True:
            step = POLL_SECONDS
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._timed_out(timeout, during, failure)
                step = min(step, left)
            if self._readable(step):
                return
            self._check_memory(during, failure)
            # Exited, yet the pipe stays open: a process it started holds the write end.
            if self.process.poll() is not None and not self._readable(0):
                raise failure(self._death(during))

    def _timed_out(
        self, timeout: float | None, during: str, failure: type[WorkerFailure]
    ) -> NoReturn:
        self.kill()
        if failure is LoadFailure:
            raise LoadFailure(
                f"no answer after {timeout:g} s {during}; the worker process was killed"
            )
        raise CaseTimeout(
            f"no result after {timeout:g} s (--case-timeout); the worker process was "
            "killed and is replaced for the next case"
        )

    def _check_memory(self, during: str, failure: type[WorkerFailure]) -> None:
        if self.memory_limit is None:
            return
        rss = resident_bytes(self.process.pid)
        if rss is not None and rss > self.memory_limit:
            self.kill()
            raise failure(
                f"memory: the worker process used {format_bytes(rss)} {during}, over "
                f"--memory-limit {format_bytes(self.memory_limit)}; it was killed"
            )

    def _death(self, during: str) -> str:
        """Why the worker stopped answering: its exit status or signal, and its stderr."""
        try:
            code = self.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.returncode
        self.dead = True
        if code is not None and code < 0:
            how = f"was killed by signal {_signal_name(-code)}"
        elif code == 0:
            how = "exited with status 0 (the candidate ended its own process)"
        else:
            how = f"exited with status {code}"
        tail = self.output.tail("stderr")
        return f"the worker process {how} {during}" + (f"; its stderr ends: {tail}" if tail else "")

    # -- ending -----------------------------------------------------------------------------
    def kill(self) -> None:
        """SIGKILL the worker, its process group and its descendants, and reap it.

        While a :class:`~bogc_ref.conformance.reaper.Reaper` is active, the processes the
        worker's tree left behind (re-parented to this process) are killed too, sparing the
        other live workers.
        """
        self.dead = True
        _kill_group(self.process)
        self._close_pipes()
        sweeper = reaper.active()
        if sweeper is not None:
            sweeper.sweep(spare=_live_pids())

    def stop(self) -> str:
        """Ask the worker to exit, kill it after :data:`EXIT_GRACE_SECONDS`; a note or ""."""
        note = ""
        if not self.dead and self.process.poll() is None:
            self._send({"op": "exit"})
            try:
                code = self.process.wait(timeout=EXIT_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                note = f"the worker did not exit within {EXIT_GRACE_SECONDS:g} s; killed"
            else:
                if code != 0:
                    how = f"signal {_signal_name(-code)}" if code < 0 else f"status {code}"
                    note = f"the worker process ended with {how} at exit"
        self.kill()
        return note

    def _close_pipes(self) -> None:
        fds, self._to_worker, self._from_worker = (self._to_worker, self._from_worker), -1, -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _live_pids() -> set[int]:
    return {w.process.pid for w in list(_LIVE) if not w.dead and w.process.returncode is None}


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        reaper.kill_descendants(process.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5.0)
    else:
        # the worker is gone; its children (same process group) may not be
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


@atexit.register
def _kill_all() -> None:
    for worker in list(_LIVE):
        worker.kill()
