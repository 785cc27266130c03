"""The input contract, fuzzed: every public function on every backend, every outcome classified.

One Hypothesis test per function and backend draws a valid call and, usually, a hostile
variant of it (see ``contract_cases``), runs it and fails on any outcome class in
``BAD``: an unclear error, a foreign exception type, a silent NaN or ±inf, a wrong value,
an accepted invalid input, a rejected valid one, or an escaping RuntimeWarning.
Profiles: ``ci`` (default, derandomized, fast) and ``thorough``
(``BOGC_HYPOTHESIS_PROFILE=thorough``). Counts per class: ``python tests/contract/report.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import pytest
from contract_cases import FUNCTIONS, Case, draw_case, structured_edge_cases
from contract_driver import available, check
from contract_verdicts import BAD
from hypothesis import given
from hypothesis import strategies as st

T = TypeVar("T")

BACKENDS = [
    pytest.param("numpy", id="reference"),
    pytest.param(
        "torch",
        id="torch",
        marks=pytest.mark.skipif(not available("torch"), reason="PyTorch is not installed"),
    ),
    pytest.param(
        "cupy",
        id="cupy",
        marks=pytest.mark.skipif(
            not available("cupy"), reason="CuPy with a usable CUDA device is not available"
        ),
    ),
]


class HypothesisChooser:
    """The fuzzer's choices drawn from Hypothesis (so failures shrink)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def integer(self, lo: int, hi: int) -> int:
        return int(self.data.draw(st.integers(lo, hi)))

    def pick(self, options: Sequence[T]) -> T:
        return self.data.draw(st.sampled_from(list(options)))


def _assert_good(case: Case, backend: str) -> None:
    outcome = check(case, backend)
    if outcome.cls == "not_provided":
        pytest.skip(outcome.detail)
    assert outcome.cls not in BAD, f"{outcome.cls}: {outcome.detail}\n{case!r}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("function", FUNCTIONS)
@given(data=st.data())
def test_contract_fuzz(function: str, backend: str, data: Any) -> None:
    _assert_good(draw_case(HypothesisChooser(data), function), backend)


EDGE = structured_edge_cases()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", EDGE, ids=[f"{c.function}-{c.mutation}" for c in EDGE])
def test_contract_edge_case(case: Case, backend: str) -> None:
    _assert_good(case, backend)
