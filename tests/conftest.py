"""Hypothesis profiles: ``ci`` (default) and ``thorough`` (BOGC_HYPOTHESIS_PROFILE=thorough).

``ci`` is derandomized, so a run is reproducible and CI cannot fail on a fresh draw;
``thorough`` draws new examples every run and many more of them.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

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
