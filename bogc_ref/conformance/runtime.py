"""Running one candidate call under a wall-clock limit.

The call runs in a daemon worker thread; the caller waits at most ``timeout`` seconds.
A thread cannot be killed in Python: a call that hangs keeps its thread (and whatever it
holds: memory, a device) until the process ends. The harness reports the case as timed out
and goes on; the daemon thread does not keep the process alive at exit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class CaseTimeout(TimeoutError):
    """A candidate call ran past the per-case time limit."""


def call_with_timeout(fn: Callable[[], T], timeout: float | None, what: str) -> T:
    """``fn()``, raising :class:`CaseTimeout` after ``timeout`` seconds (None: no limit).

    Exceptions raised by ``fn`` are re-raised in the caller's thread unchanged.
    """
    if timeout is None or timeout <= 0:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"bogc-case:{what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise CaseTimeout(
            f"{what}: no result after {timeout:g} s (per-case limit; the call keeps running "
            "in a background thread that cannot be stopped)"
        )
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value
