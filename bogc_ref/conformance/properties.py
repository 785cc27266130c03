"""Running the packaged laws on a candidate with Hypothesis (``bogc-ref verify --properties``).

Each law applicable to the candidate (its functions present) runs on ``max_examples``
generated examples per dtype, derandomized so that a verdict is reproducible, without an
example database. A law that fails is reported with the smallest failing input Hypothesis
found and a reproduction; when Hypothesis finds several distinct failures, each is shown
with its own smallest input and reproduction.

A call that kills, hangs or exhausts the candidate's worker process
(:class:`~bogc_ref.conformance.errors.WorkerFailure`) stops the law at once: it is not
shrunk, because shrinking would repeat the call that hung, many times over. Importing this
module needs Hypothesis.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import HypothesisException

from .errors import WorkerFailure
from .laws import LAWS, Example, Law
from .runner import CaseResult, describe_exception
from .strategies import for_law

#: Attribute set on an exception raised inside a law: the reproduction of its example.
REPRODUCTION = "bogc_reproduction"


class _LawStopped(BaseException):
    """Raised out of Hypothesis (which only catches Exception) to stop a law at once."""

    def __init__(self, failure: WorkerFailure, reproduction: str) -> None:
        super().__init__(failure.describe())
        self.failure = failure
        self.reproduction = reproduction


def applicable_laws(impl: Any) -> list[Law]:
    """The laws whose functions ``impl`` provides."""
    provides = getattr(impl, "provides", None)
    if provides is None:
        return [law for law in LAWS if all(callable(getattr(impl, f, None)) for f in law.needs)]
    return [law for law in LAWS if all(provides(f) for f in law.needs)]


def _one_failure(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, AssertionError) else describe_exception(exc)
    reproduction = getattr(exc, REPRODUCTION, "")
    if reproduction and "reproduce:" not in text:
        text += f"\nreproduce:\n{reproduction}"
    return text


def failure_message(exc: BaseException) -> str:
    """What a failed law reports: each distinct failure with its smallest input."""
    if isinstance(exc, BaseExceptionGroup):
        parts = [
            f"{len(exc.exceptions)} distinct failures, each with the smallest failing input "
            "Hypothesis found:"
        ]
        for i, sub in enumerate(exc.exceptions, 1):
            parts.append(f"[{i}] {failure_message(sub)}")
        return "\n".join(parts)
    return _one_failure(exc)


def check_law(impl: Any, law: Law, dtype: str, max_examples: int) -> str:
    """Run one law; "" when it holds, else the failure message."""
    return run_law(impl, law, dtype, max_examples)[0]


def run_law(impl: Any, law: Law, dtype: str, max_examples: int) -> tuple[str, int]:
    """Run one law; ("", examples run) when it holds, else (the failure message, examples)."""
    strategy = for_law(law.name, dtype)
    examples = 0

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        print_blob=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(example=strategy)
    def run(example: Example) -> None:
        nonlocal examples
        examples += 1
        try:
            law.check(impl, example)
        except WorkerFailure as exc:
            raise _LawStopped(exc, example.code(impl)) from exc
        except Exception as exc:
            with contextlib.suppress(AttributeError, TypeError):
                setattr(exc, REPRODUCTION, example.code(impl))
            raise

    try:
        run()
    except _LawStopped as stop:
        message = (
            f"{law.name}: stopped at the first worker failure (not repeated or shrunk): "
            f"{stop.failure.describe()}\nreproduce:\n{stop.reproduction}"
        )
        return message, examples
    except HypothesisException as exc:
        return f"hypothesis could not run the law: {type(exc).__name__}: {exc}", examples
    except Exception as exc:
        return failure_message(exc), examples
    return "", examples


def run_laws(
    impl: Any,
    dtype: str,
    max_examples: int,
    progress: Callable[[str], None] | None = None,
) -> list[CaseResult]:
    """Every applicable law on ``impl`` in ``dtype``, as report rows."""
    results = []
    for law in applicable_laws(impl):
        if hasattr(impl, "context"):
            impl.context = f"law {law.name} {dtype}"
        start = time.perf_counter()
        message, examples = run_law(impl, law, dtype, max_examples)
        results.append(
            CaseResult.verdict(
                law.name,
                law.stage,
                law.needs[0],
                dtype,
                message,
                time.perf_counter() - start,
                tier="laws",
                kind="law",
                bound=f"{examples} examples generated by Hypothesis",
                abs_err=float("nan") if message else 0.0,
            )
        )
        if progress is not None:
            progress(f"law {law.name} {dtype}")
    return results
