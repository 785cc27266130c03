"""The ``backend`` fixture: every backend × device case of ``backend_cases.CASES``."""

from __future__ import annotations

from typing import Any

import pytest
from backend_cases import CASES

from bogc_ref.backends import get_backend


@pytest.fixture(params=CASES)
def backend(request: pytest.FixtureRequest) -> Any:
    name, device = request.param
    return get_backend(name, device)
