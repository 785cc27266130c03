"""Wrong on purpose: Monte Carlo samplers that take a shortcut with ``seed`` or ``n_samples``
and are otherwise the reference (right for the one seed and sample count a check might use).

``ignores_seed``: every seed draws the stream of seed 0; ``ignores_n_samples``: always 4000
draws, whatever ``n_samples`` asks for.
"""

from types import SimpleNamespace
from typing import Any

import bogc_ref


def _moments(**fixed: Any) -> SimpleNamespace:
    def softmax_head_moments(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("eps") is None:
            kwargs.update(fixed)
        return bogc_ref.softmax_head_moments(*args, **kwargs)

    return SimpleNamespace(softmax_head_moments=softmax_head_moments)


ignores_seed = _moments(seed=0)
ignores_n_samples = _moments(n_samples=4000)
