"""Running the packaged laws on a candidate with Hypothesis (``bogc-ref verify --properties``).

Each law applicable to the candidate (its functions present) runs on ``max_examples``
generated examples per dtype, derandomized so that a verdict is reproducible, without an
example database. A law that fails is reported with Hypothesis's shrunk example and the
law's reproduction snippet. Importing this module needs Hypothesis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import HypothesisException

from .laws import LAWS, Example, Law
from .runner import CaseResult, describe_exception
from .strategies import for_law


def applicable_laws(impl: Any) -> list[Law]:
    """The laws whose functions ``impl`` provides."""
    provides = getattr(impl, "provides", None)
    if provides is None:
        return [law for law in LAWS if all(callable(getattr(impl, f, None)) for f in law.needs)]
    return [law for law in LAWS if all(provides(f) for f in law.needs)]


def check_law(impl: Any, law: Law, dtype: str, max_examples: int) -> str:
    """Run one law; return "" when it holds, else the failure message."""
    strategy = for_law(law.name, dtype)

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
        law.check(impl, example)

    try:
        run()
    except AssertionError as exc:
        return str(exc)
    except HypothesisException as exc:
        return f"hypothesis could not run the law: {type(exc).__name__}: {exc}"
    except Exception as exc:
        return describe_exception(exc)
    return ""


def run_laws(
    impl: Any,
    dtype: str,
    max_examples: int,
    progress: Callable[[str], None] | None = None,
) -> list[CaseResult]:
    """Every applicable law on ``impl`` in ``dtype``, as report rows."""
    results = []
    for law in applicable_laws(impl):
        start = time.perf_counter()
        message = check_law(impl, law, dtype, max_examples)
        nan = float("nan")
        results.append(
            CaseResult(
                law.name,
                law.stage,
                law.needs[0],
                dtype,
                not message,
                nan if message else 0.0,
                nan,
                nan,
                message,
                time.perf_counter() - start,
                kind="law",
            )
        )
        if progress is not None:
            progress(f"law {law.name} {dtype}")
    return results
