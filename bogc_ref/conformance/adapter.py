"""A NumPy-in, NumPy-out view of a candidate that runs in its own process.

The harness and the laws only ever handle NumPy arrays and talk to a candidate through
:class:`Adapter`: ``adapter.provides(name)``, ``adapter.call(name, *args, **kwargs)`` or
``adapter.calibrate(...)`` and so on. The candidate itself is loaded and called in a
worker process (:mod:`~bogc_ref.conformance.worker`, managed by
:mod:`~bogc_ref.conformance.runtime`); arguments and results cross as raw bytes in their
own dtype (:mod:`~bogc_ref.conformance.wire`), and results come back as the reference's
named tuples (``Calibration``, ``Moments``, ...) of plain ndarrays, so code written
against :mod:`bogc_ref` runs unchanged on an adapter.

A call that does not return a usable result raises a
:class:`~bogc_ref.conformance.errors.CandidateProblem`:
:class:`CandidateError` (the candidate raised), :class:`WorkerFailure` (its process died,
was killed, timed out or ran out of memory; the next call starts a new process) or
:class:`ContractViolation` (it modified an input, returned a view of one, or returned
something that is not a numeric array).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ..interface import STAGES
from .capture import OutputLog
from .convert import (
    FUNCTIONS,
    RESULT_TYPES,
    OutputError,
    build_result,
    parameter_names,
    result_fields,
    to_numpy,
)
from .errors import (
    CandidateError,
    CandidateProblem,
    CaseTimeout,
    ContractViolation,
    LoadFailure,
    WorkerFailure,
)
from .loading import UsageError
from .runtime import WorkerProcess

__all__ = [
    "FUNCTIONS",
    "RESULT_TYPES",
    "Adapter",
    "CandidateError",
    "CandidateProblem",
    "CaseTimeout",
    "ContractViolation",
    "LoadFailure",
    "OutputError",
    "WorkerFailure",
    "close_all",
    "to_numpy",
]


#: A reply may hold this many bytes per element of the outputs the call can return (8
#: float64s: a generous margin over any legitimate dtype)...
REPLY_BYTES_PER_ELEMENT = 64
#: ... plus this much, for messages, tracebacks and warnings.
REPLY_SLACK_BYTES = 16 * 1024**2
#: Functions whose outputs are (..., B, P): a row per sample, a column per weight.
_PER_SAMPLE = ("linear_head_moments", "softmax_head_moments", "softmax_head_moments_linearized")


def expected_output_elements(function: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """How many numbers ``function`` returns at most for these inputs (an upper bound).

    From the interface's shapes: per-sample moments are (B, P) twice, with P the entries
    of ``w_mean``; ``linear_head_posterior`` a mean and K (D+1, D+1) covariances;
    ``softmax_head_laplace`` a mean of ``w``'s size and its square covariance; everything
    else (``calibrate``, ``evidence``, stage 3, ``empirical_moments``) at most four arrays
    of the inputs' broadcast shape.
    """
    named = dict(zip(parameter_names(function), args, strict=False)) | kwargs
    arrays = {k: v for k, v in named.items() if isinstance(v, np.ndarray)}
    sizes = {k: int(v.size) for k, v in arrays.items()}

    def last(name: str) -> int:
        shape = arrays[name].shape if name in arrays else ()
        return int(shape[-1]) if shape else 1

    if function in _PER_SAMPLE:
        return 2 * sizes.get("h", 0) // max(last("h"), 1) * sizes.get("w_mean", 0)
    if function == "linear_head_posterior":
        return sizes.get("prior_mean", 0) * (1 + last("prior_mean"))
    if function == "softmax_head_laplace":
        return sizes.get("w", 0) * (1 + sizes.get("w", 0))
    try:
        broadcast = int(np.prod(np.broadcast_shapes(*(a.shape for a in arrays.values()))))
    except ValueError:  # shapes that do not broadcast: the candidate should refuse them
        broadcast = 0
    return 4 * max(broadcast, *sizes.values(), 0)


def reply_limit(function: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """The longest reply (bytes) accepted from a call: the outputs it can legitimately
    return, :data:`REPLY_BYTES_PER_ELEMENT` bytes each, plus :data:`REPLY_SLACK_BYTES`."""
    elements = expected_output_elements(function, args, kwargs)
    return REPLY_BYTES_PER_ELEMENT * elements + REPLY_SLACK_BYTES


def _label(spec: str) -> str:
    kind, _, rest = spec.partition(":")
    return rest if kind in ("backend", "impl") else spec


class Adapter:
    """NumPy view of a candidate running in a worker process.

    Args:
        spec: how the worker finds the candidate (``backend:NAME[@DEVICE]`` or
            ``impl:MODULE[:ATTR]`` / ``impl:FILE.py[:ATTR]``); also used in reproduction
            snippets.
        name: label used in reports (default: the spec without its kind).
        timeout: seconds per call (None: no limit).
        memory_limit: bytes of resident memory of the worker (None: no limit).
        load_timeout: seconds to load the candidate in a new worker (None: no limit).
    """

    def __init__(
        self,
        spec: str,
        *,
        name: str | None = None,
        timeout: float | None = None,
        memory_limit: int | None = None,
        load_timeout: float | None = None,
    ) -> None:
        self.spec = spec
        self.name = name or _label(spec)
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.load_timeout = load_timeout
        self.version = "unknown"
        #: Callable public names of the candidate (to suggest near misses).
        self.attributes: tuple[str, ...] = ()
        #: What is running now, for the output log ("cal_M3_D32 float64", "law ...").
        self.context = ""
        #: Why each worker process was lost, in order.
        self.failures: list[str] = []
        #: Notes about the workers' exits.
        self.notes: list[str] = []
        self.output = OutputLog()
        self._provides: frozenset[str] = frozenset()
        self._worker: WorkerProcess | None = None
        self._loaded = False

    # -- lifetime ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the first worker process (it loads the candidate in the background)."""
        if self._worker is None:
            self._worker = WorkerProcess(self.spec, self.output, self.memory_limit)

    def wait_loaded(self) -> None:
        """Wait for the first worker to load the candidate.

        Raises :class:`~bogc_ref.conformance.loading.UsageError` when the candidate cannot
        be imported or named (an exception while importing, no such attribute, a backend
        that is unavailable) and :class:`LoadFailure` when the worker process does not
        survive loading it (it exits, crashes, hangs or runs out of memory).
        """
        self.start()
        assert self._worker is not None
        reply = self._load(self._worker)
        self.version = str(reply.get("version", "unknown"))
        self._provides = frozenset(str(f) for f in reply.get("provides", ()) if f in FUNCTIONS)
        self.attributes = tuple(str(a) for a in reply.get("attributes", ()))
        self._loaded = True

    def _load(self, worker: WorkerProcess) -> dict[str, Any]:
        try:
            reply = worker.wait_loaded(self.load_timeout)
        except LoadFailure as exc:
            self._lose(worker, "loading", exc.reason)
            raise
        finally:
            self.output.collect("loading")
        kind = reply.get("kind") if isinstance(reply, dict) else None
        if kind == "loaded":
            return reply
        worker.kill()
        self._worker = None
        if kind == "usage":
            raise UsageError(str(reply.get("message")))
        if kind == "load_failed":
            raised = _candidate_error(reply.get("raised"))
            reason = f"the candidate {raised.describe()} while being loaded"
        else:
            reason = "the worker process sent an unexpected reply while loading"
        self.failures.append(reason)
        raise LoadFailure(reason)

    def close(self, *, graceful: bool = True) -> None:
        """Stop the worker and collect its last output (idempotent).

        ``graceful``: ask it to exit, so the candidate's exit handlers run (and are
        captured), killing it after a grace period; otherwise kill it at once.
        """
        worker, self._worker = self._worker, None
        if worker is not None:
            note = worker.stop() if graceful else ""
            worker.kill()
            self.output.collect("exit")
            if note:
                self.notes.append(note)
        shutil.rmtree(self.output.directory, ignore_errors=True)

    def __enter__(self) -> Adapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the candidate provides ------------------------------------------------------
    def provides(self, function: str) -> bool:
        """Whether the candidate has a callable attribute ``function`` of the interface."""
        return function in self._provides

    def stages(self) -> dict[str, tuple[str, ...]]:
        """The functions present, by stage (stages with none are left out)."""
        found = {
            stage: tuple(f for f in names if self.provides(f)) for stage, names in STAGES.items()
        }
        return {stage: names for stage, names in found.items() if names}

    # -- calls ------------------------------------------------------------------------------
    def _live_worker(self) -> WorkerProcess:
        if self._worker is not None and not self._worker.dead:
            return self._worker
        if not self._loaded:
            raise WorkerFailure(f"{self.name} is not loaded (call wait_loaded first)")
        worker = WorkerProcess(self.spec, self.output, self.memory_limit)
        self._worker = worker
        try:
            self._load(worker)
        except (UsageError, LoadFailure) as exc:
            raise WorkerFailure(f"the candidate could not be loaded again: {exc}") from None
        return worker

    def _lose(self, worker: WorkerProcess, when: str, reason: str) -> None:
        worker.kill()
        if self._worker is worker:
            self._worker = None
        self.output.collect(when)
        self.failures.append(f"{when}: {reason}")

    def call(self, function: str, *args: object, **kwargs: object) -> Any:
        """Call ``function`` with NumPy inputs; return the reference's result type."""
        if not self.provides(function):
            raise AttributeError(f"{self.name} does not provide {function}")
        when = self.context or function
        worker = self._live_worker()
        message = {"op": "call", "function": function, "args": list(args), "kwargs": kwargs}
        try:
            limit = reply_limit(function, args, kwargs)
            reply = worker.request(message, self.timeout, function, limit)
        except WorkerFailure as exc:
            self._lose(worker, when, exc.reason)
            raise
        self.output.collect(when)
        if not isinstance(reply, dict):
            self._lose(worker, when, "malformed reply")
            raise WorkerFailure("the worker process sent a malformed reply; it was killed")
        self.output.add_warnings(reply.get("warnings"))
        kind = reply.get("kind")
        if kind == "result":
            return self._result(worker, when, function, reply.get("value"))
        if kind == "raised":
            raise _candidate_error(reply)
        if kind == "violation":
            raise ContractViolation(str(reply.get("message")))
        self._lose(worker, when, f"unexpected reply {kind!r}")
        raise WorkerFailure(f"the worker process sent an unexpected reply {kind!r}; it was killed")

    def _result(self, worker: WorkerProcess, when: str, function: str, value: object) -> Any:
        count = max(len(result_fields(function)), 1)
        if (
            not isinstance(value, list)
            or len(value) != count
            or not all(type(v) is np.ndarray for v in value)
        ):
            self._lose(worker, when, "malformed result")
            raise WorkerFailure(
                f"the worker process sent a malformed result for {function}; it was killed"
            )
        return build_result(function, value)

    def __getattr__(self, function: str) -> Callable[..., Any]:
        if function in FUNCTIONS:
            return lambda *args, **kwargs: self.call(function, *args, **kwargs)
        raise AttributeError(function)

    def __repr__(self) -> str:
        return (
            f"Adapter(spec={self.spec!r}, name={self.name!r}, timeout={self.timeout!r}, "
            f"memory_limit={self.memory_limit!r})"
        )


def close_all(adapters: list[Adapter]) -> None:
    """Close several adapters at once (their workers exit in parallel)."""
    threads = [threading.Thread(target=a.close) for a in adapters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _candidate_error(reply: object) -> CandidateError:
    data = reply if isinstance(reply, dict) else {}
    mro = data.get("mro")
    return CandidateError(
        str(data.get("type_name", "builtins.Exception")),
        tuple(str(m) for m in mro) if isinstance(mro, list) else (),
        str(data.get("message", "")),
        str(data.get("traceback", "")),
        str(data.get("location", "")),
    )
