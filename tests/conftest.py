"""Hypothesis profiles: ``ci`` (default) and ``thorough`` (BOGC_HYPOTHESIS_PROFILE=thorough).

``ci`` is derandomized, so a run is reproducible and CI cannot fail on a fresh draw;
``thorough`` draws new examples every run and many more of them.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from bogc_ref.conformance.fresh import FRESH_SEED

settings.register_profile(
    "ci",
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("BOGC_HYPOTHESIS_PROFILE", "ci"))

# `bogc-ref verify` draws a new fresh seed each run unless told otherwise; the suite's runs
# (in this process and in the subprocesses it starts) use the fixed seed of the fresh tier,
# so a test run is reproducible like the Hypothesis profile above. A test of the random
# default removes it. BOGC_FRESH_SEED set by the caller (another seed) is kept.
os.environ.setdefault("BOGC_FRESH_SEED", str(FRESH_SEED))


@pytest.fixture
def bit_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each time the torch backend's pass 1 reads the floats' bits: ``"finite bits"``
    (finite entries only, tried first) or ``"bits"`` (+inf left out), so a test can assert
    which pass 1 a call took."""
    torch_calibrate = pytest.importorskip("bogc_ref.backends._torch_calibrate")
    calls: list[str] = []
    for name, label in (("_log_mean_by_finite_bits", "finite bits"), ("_log_mean_by_bits", "bits")):
        reader = getattr(torch_calibrate, name)

        def counting(var: Any, present: Any, reader: Any = reader, label: str = label) -> Any:
            calls.append(label)
            return reader(var, present)

        monkeypatch.setattr(torch_calibrate, name, counting)
    return calls
