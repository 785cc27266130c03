"""The golden vectors, run over every bundled backend through ``bogc-ref verify``."""

from __future__ import annotations

from typing import Any

import pytest
from backend_cases import CASES

from bogc_ref.cli import main


@pytest.mark.parametrize("case", CASES)
def test_backend_passes_the_golden_vectors(case: tuple[str, str], capsys: Any) -> None:
    name, device = case
    code = main(["verify", "--backend", name, "--device", device])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verdict: PASS" in out
