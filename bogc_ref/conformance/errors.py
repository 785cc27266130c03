"""What can go wrong with a candidate call, as seen by the harness (parent process).

Every check catches :class:`CandidateProblem` and fails the case it was running with
:meth:`CandidateProblem.describe`:

* :class:`CandidateError`: the candidate raised an exception (carried across the process
  boundary by name: type, MRO, message, traceback; never the exception object itself);
* :class:`WorkerFailure`: the candidate's process died, was killed, ran past the time or
  memory limit, or broke the message protocol; :class:`CaseTimeout` is the timeout case and
  :class:`LoadFailure` a process that did not survive loading the candidate;
* :class:`ContractViolation`: the call returned, but broke the calling contract (an input
  was modified, an output shares memory with an input, an output is not a numeric array).
"""

from __future__ import annotations


class CandidateProblem(Exception):
    """Base class: a candidate call that did not produce a usable result."""

    def describe(self) -> str:
        """One line for the report: what happened."""
        return str(self)


class CandidateError(CandidateProblem):
    """The candidate raised an exception.

    Attributes:
        type_name: qualified name of the exception class, e.g. ``"numpy.linalg.LinAlgError"``.
        mro: qualified names of the class's MRO, most derived first.
        message: ``str()`` of the exception.
        traceback: the formatted traceback in the candidate's process.
        location: ``FILE:LINE`` of the innermost frame ("" when unknown).
    """

    def __init__(
        self,
        type_name: str,
        mro: tuple[str, ...],
        message: str,
        traceback: str = "",
        location: str = "",
    ) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.mro = tuple(mro)
        self.message = message
        self.traceback = traceback
        self.location = location

    def is_a(self, qualified_name: str) -> bool:
        """Whether the raised exception is an instance of ``qualified_name`` (by its MRO)."""
        return qualified_name in self.mro

    def describe(self) -> str:
        short = self.type_name.rpartition(".")[2]
        first = self.message.splitlines()[0] if self.message else ""
        where = f" at {self.location}" if self.location else ""
        return f"raised {short}: {first}{where}"


class WorkerFailure(CandidateProblem):
    """The candidate's worker process did not answer: it died, was killed or misbehaved."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def describe(self) -> str:
        return self.reason


class CaseTimeout(WorkerFailure):
    """A call ran past the per-case time limit; its worker was killed."""

    def describe(self) -> str:
        return f"timeout: {self.reason}"


class LoadFailure(WorkerFailure):
    """The worker did not survive loading the candidate (an exit, a crash, a hang)."""


class ContractViolation(CandidateProblem):
    """The call returned but broke the contract of the interface."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def describe(self) -> str:
        return f"contract violation: {self.message}"
