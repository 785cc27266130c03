"""The candidate's own process: load it, then answer call requests until told to stop.

Started by :mod:`bogc_ref.conformance.runtime` (:func:`main` with the pipes' READ_FD and
WRITE_FD) with its standard output and error redirected to files, so everything
the candidate prints (from Python, from C, at exit) is captured apart from the report.
The harness sends requests and reads replies with :mod:`~bogc_ref.conformance.wire`.

For each call the worker converts the inputs with the candidate's ``from_numpy`` (when it
has one), calls the function under ``warnings.catch_warnings`` (warnings are counted and
sent back, not printed), and replies with one of:

* ``result``: every output as a plain NumPy array (in the reference's field order);
* ``raised``: the exception's qualified type, MRO, message, traceback and location;
* ``violation``: an output shares memory with an input, an input was modified by the
  call, or an output cannot be read as a numeric array.

Nothing here decides whether a result is right: the reference, the expected values and
the comparison live only in the harness's process. The contract checks above can only be
made here, in the candidate's own process: they are bound (:class:`Checks`) before the
candidate is imported, so replacing this module's functions does not switch them off, but
code written to subvert them in its own process still could (see docs/verify.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import signal
import sys
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import wire
from .convert import (
    FUNCTIONS,
    OutputError,
    host_view,
    implementation_version,
    parameter_names,
    result_values,
    to_numpy,
)
from .loading import UsageError, load_candidate

#: prctl option: the signal this process gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1
#: Longest message or traceback text sent back (characters).
MAX_TEXT = 20_000


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _safe_str(value: object) -> str:
    try:
        text = str(value)
    except BaseException as exc:  # a candidate's __str__ may raise anything
        text = f"<str() failed: {type(exc).__name__}>"
    return text[:MAX_TEXT]


def describe_raised(exc: BaseException) -> dict[str, Any]:
    """The reply for an exception raised by the candidate."""
    try:
        text = "".join(traceback.format_exception(exc))
    except BaseException:
        text = ""
    frames = traceback.extract_tb(exc.__traceback__)
    location = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return {
        "kind": "raised",
        "type_name": _qualified(type(exc)),
        "mro": [_qualified(c) for c in type(exc).__mro__],
        "message": _safe_str(exc),
        "traceback": text[-MAX_TEXT:],
        "location": location,
    }


def _inputs(function: str, args: list[Any], kwargs: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
    names = parameter_names(function)
    named = [
        (f"{names[i]} (argument {i + 1})" if i < len(names) else f"argument {i + 1}", a)
        for i, a in enumerate(args)
    ]
    named += [(f"{k} (keyword)", v) for k, v in kwargs.items()]
    return [(label, v) for label, v in named if isinstance(v, np.ndarray)]


def _first_change(before: np.ndarray, after: np.ndarray) -> str:
    if before.shape != after.shape or before.dtype != after.dtype:
        return f"now {after.dtype}{after.shape}, was {before.dtype}{before.shape}"
    flat_b = before.reshape(-1).view(np.uint8).reshape(before.size, -1)
    flat_a = after.reshape(-1).view(np.uint8).reshape(after.size, -1)
    changed = np.any(flat_b != flat_a, axis=1)
    where = tuple(int(i) for i in np.unravel_index(int(np.argmax(changed)), before.shape))
    return (
        f"{int(changed.sum())} of {before.size} entries changed, the first at index {where} "
        f"({before[where].item()} -> {after[where].item()})"
    )


def contract_problems(
    inputs: list[tuple[str, np.ndarray]],
    snapshots: list[np.ndarray],
    outputs: list[tuple[str, object]],
) -> list[str]:
    """Outputs that share memory with an input, and inputs the call modified."""
    problems = []
    for out_label, value in outputs:
        view = host_view(value)
        if view is None:
            continue
        for in_label, arr in inputs:
            if np.may_share_memory(view, arr) and np.shares_memory(view, arr):
                problems.append(
                    f"{out_label} shares memory with {in_label} (a view of an input, not a new "
                    "array)"
                )
    for (label, arr), before in zip(inputs, snapshots, strict=True):
        same = (
            arr.shape == before.shape
            and arr.dtype == before.dtype
            and np.ascontiguousarray(arr).tobytes() == before.tobytes()
        )
        if not same:
            problems.append(f"{label} was modified by the call: {_first_change(before, arr)}")
    return problems


def _warning_counts(records: list[warnings.WarningMessage]) -> list[dict[str, Any]]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for w in records:
        category = w.category if isinstance(w.category, type) else Warning
        counts[(_qualified(category), _safe_str(w.message)[:300], f"{w.filename}:{w.lineno}")] += 1
    return [
        {"category": c, "message": m, "where": where, "count": n}
        for (c, m, where), n in counts.items()
    ]


@dataclass(frozen=True)
class Checks:
    """The functions that check and read a call's outputs, bound when this is created.

    :func:`serve` creates it before the candidate is imported, so a candidate that replaces
    ``worker.contract_problems`` (or ``result_values``, ``to_numpy``) does not change what
    its calls are checked with.
    """

    problems: Callable[
        [list[tuple[str, np.ndarray]], list[np.ndarray], list[tuple[str, object]]], list[str]
    ] = contract_problems
    outputs: Callable[[str, object], list[tuple[str, object]]] = result_values
    to_numpy: Callable[[object, str], np.ndarray] = to_numpy


class Worker:
    """One loaded candidate and the calls made on it (checked with ``checks``)."""

    def __init__(self, impl: object, checks: Checks) -> None:
        self.impl = impl
        self.checks = checks
        converter = getattr(impl, "from_numpy", None)
        self.from_numpy: Callable[[np.ndarray], object] | None = (
            converter if callable(converter) else None
        )

    def describe(self) -> dict[str, Any]:
        """The ``loaded`` reply: what the candidate provides, its version, its public names."""
        names = [n for n in dir(self.impl) if not n.startswith("_")]
        return {
            "kind": "loaded",
            "provides": [f for f in FUNCTIONS if callable(getattr(self.impl, f, None))],
            "version": implementation_version(self.impl),
            "attributes": [n for n in names if callable(getattr(self.impl, n, None))][:500],
        }

    def _native(self, value: object) -> object:
        """``from_numpy`` on plain arrays; a masked array reaches the candidate's function as
        it is, which must refuse it or honour its mask (``from_numpy`` would drop the mask)."""
        if (
            isinstance(value, np.ndarray)
            and not isinstance(value, np.ma.MaskedArray)
            and self.from_numpy is not None
        ):
            return self.from_numpy(value)
        return value

    def call(self, function: str, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Run one call; the reply dict (``result``, ``raised`` or ``violation``)."""
        inputs = _inputs(function, args, kwargs)
        snapshots = [np.array(a, copy=True) for _, a in inputs]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reply = self._run(function, args, kwargs, inputs, snapshots)
        reply["warnings"] = _warning_counts(caught)
        return reply

    def _run(
        self,
        function: str,
        args: list[Any],
        kwargs: dict[str, Any],
        inputs: list[tuple[str, np.ndarray]],
        snapshots: list[np.ndarray],
    ) -> dict[str, Any]:
        target = getattr(self.impl, function, None)
        if function not in FUNCTIONS or not callable(target):
            return {"kind": "violation", "message": f"the candidate has no function {function}"}
        try:
            native_args = [self._native(a) for a in args]
            native_kwargs = {k: self._native(v) for k, v in kwargs.items()}
            result = target(*native_args, **native_kwargs)
        except BaseException as exc:  # KeyboardInterrupt and SystemExit too: a case failure
            return describe_raised(exc)
        try:
            outputs = self.checks.outputs(function, result)
            problems = self.checks.problems(inputs, snapshots, outputs)
            if problems:
                return {"kind": "violation", "message": "; ".join(problems)}
            arrays = [self.checks.to_numpy(value, label) for label, value in outputs]
        except OutputError as exc:
            return {"kind": "violation", "message": _safe_str(exc)}
        except BaseException as exc:
            detail = describe_raised(exc)
            return {
                "kind": "violation",
                "message": f"reading the result raised {detail['type_name']}: {detail['message']}",
            }
        return {"kind": "result", "value": arrays}


def _flush_all(libc_fflush: Callable[[Any], int] | None) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    if libc_fflush is not None:
        libc_fflush(None)


def _libc_fflush() -> Callable[[Any], int] | None:
    try:
        fflush: Callable[[Any], int] = ctypes.CDLL(None).fflush
    except (OSError, AttributeError):
        return None
    return fflush


def serve(read_fd: int, write_fd: int) -> None:
    """Load the candidate named by the first request, then answer calls until ``exit``."""
    checks = Checks()  # before the candidate is imported
    request = wire.receive(read_fd, masked=True)
    try:
        worker = Worker(load_candidate(str(request["spec"])), checks)
        reply = worker.describe()
    except UsageError as exc:
        reply = {"kind": "usage", "message": str(exc)}
    except BaseException as exc:  # SystemExit, KeyboardInterrupt while importing
        reply = {"kind": "load_failed", "raised": describe_raised(exc)}
    fflush = _libc_fflush()
    _flush_all(fflush)
    wire.send(write_fd, reply)
    if reply["kind"] != "loaded":
        return
    while True:
        try:
            request = wire.receive(read_fd, masked=True)
        except (EOFError, OSError):
            return
        if request.get("op") != "call":
            return
        reply = worker.call(str(request["function"]), request["args"], request["kwargs"])
        _flush_all(fflush)
        try:
            wire.send(write_fd, reply)
        except wire.WireError as exc:
            wire.send(write_fd, {"kind": "violation", "message": _safe_str(exc)})


def _die_with(parent: int) -> None:
    """Be killed when the harness dies, even in the middle of a hanging call (Linux).

    Otherwise a harness killed from outside would leave a worker that hangs forever.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``main([READ_FD, WRITE_FD, HARNESS_PID])``."""
    read_fd, write_fd, parent = (int(a) for a in (argv if argv is not None else sys.argv[1:]))
    _die_with(parent)
    faulthandler.enable()  # a crash leaves its Python traceback in the captured stderr
    serve(read_fd, write_fd)
    _flush_all(None)
