"""Processes a candidate leaves behind: find them, kill them, reap them (Linux ``/proc``).

A candidate's worker may start processes of its own (a pool, a fork, a daemon in its own
session). When a worker is replaced or the run ends, :func:`kill_descendants` kills the
worker's whole tree, found through the parent pid of every process in ``/proc``, not only
its process group.

A process whose parent exits is re-parented, normally to ``init``, out of the harness's
sight. :class:`Reaper` makes the harness a *child subreaper* for the duration of a run
(``prctl(PR_SET_CHILD_SUBREAPER)``, Linux 3.4+), so such orphans become the harness's own
children instead; :meth:`Reaper.sweep` kills and reaps every descendant the run added
(the children the process had before the run are spared, and so are the trees of the live
workers named). ``bogc-ref verify`` sweeps before it writes its report and prints its
verdict, so nothing the candidate started is left to write after it.

Elsewhere (no ``/proc``, no ``prctl``) everything here does nothing; a process that keeps
forking faster than it is killed may survive :data:`ROUNDS` rounds.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Collection
from types import TracebackType

#: prctl options (``linux/prctl.h``).
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
#: Times the process tree is read again and what appeared in it killed.
ROUNDS = 10
#: How long reaping waits for killed children to exit (seconds).
REAP_SECONDS = 5.0


def _parents() -> dict[int, int]:
    """``{pid: parent pid}`` of every live process (zombies left out); empty without /proc."""
    parents = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[0] != b"Z":
            parents[int(entry)] = int(fields[1])
    return parents


def descendants(pid: int, spare: Collection[int] = ()) -> list[int]:
    """Live descendants of ``pid``, leaving out the trees rooted at the pids in ``spare``."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [c for c in children.get(pid, []) if c not in spare]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(c for c in children.get(current, []) if c not in spare)
    return found


def kill_descendants(pid: int, spare: Collection[int] = ()) -> list[int]:
    """SIGKILL every descendant of ``pid`` but the trees of ``spare``; the pids killed.

    The tree is read again after each round, for processes forked in the meantime.
    """
    killed: list[int] = []
    for _ in range(ROUNDS):
        found = descendants(pid, spare)
        if not found:
            break
        for target in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(target, signal.SIGKILL)
        killed.extend(found)
    return killed


def reap(pids: Collection[int]) -> None:
    """Wait for those of ``pids`` that are this process's children (after a SIGKILL)."""
    waiting = set(pids)
    deadline = time.monotonic() + REAP_SECONDS
    while waiting and time.monotonic() < deadline:
        for pid in list(waiting):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child, or already reaped
                done = pid
            if done:
                waiting.discard(pid)
        if waiting:
            time.sleep(0.01)


def _prctl(option: int, value: int) -> int | None:
    """``prctl(option, value)``'s result, None where there is no such call (not Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0))
    except (OSError, AttributeError):
        return None


def _is_subreaper() -> bool:
    flag = ctypes.c_int(0)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
    except (OSError, AttributeError):
        return False
    return bool(flag.value)


class Reaper:
    """For a ``with`` block: this process adopts the orphans of its descendants, and every
    descendant started inside the block is killed and reaped by :meth:`sweep` and at the end.

    While a reaper is active, :func:`active` returns it (workers sweep when they are killed).
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.baseline: frozenset[int] = frozenset()
        self.adopting = False
        self._was_subreaper = False

    def __enter__(self) -> Reaper:
        global _ACTIVE
        self._was_subreaper = _is_subreaper()
        self.adopting = _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0
        self.baseline = frozenset(descendants(self.pid))
        _ACTIVE = self
        return self

    def sweep(self, spare: Collection[int] = ()) -> list[int]:
        """Kill and reap every descendant started since the block began, except the trees
        of ``spare`` (live workers); the pids killed."""
        killed = kill_descendants(self.pid, spare=self.baseline | set(spare))
        reap(killed)
        return killed

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _ACTIVE
        _ACTIVE = None
        self.sweep()
        if self.adopting and not self._was_subreaper:
            _prctl(PR_SET_CHILD_SUBREAPER, 0)


_ACTIVE: Reaper | None = None


def active() -> Reaper | None:
    """The reaper of the run in progress in this process, if any."""
    return _ACTIVE
