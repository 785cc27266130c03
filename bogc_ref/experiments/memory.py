"""Peak tensor memory of a piece of CPU code, from the PyTorch profiler's allocation events.

The profiler (``profile_memory=True``) records every allocation and free of torch's CPU
allocator with its size. Ordered in time, their running sum is the tensor memory allocated
since the profiler started; its maximum is the peak *additional* memory of the code run
inside (tensors alive before it started are not counted). NumPy and Python objects are not
seen. The events are read through ``prof.profiler.kineto_results``, not a stable public API:
when it is missing the measurement is None rather than a wrong number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def peak_tensor_bytes(fn: Callable[[], Any]) -> int | None:
    """Run ``fn()`` once under the profiler; the peak of allocated-minus-freed bytes (or None)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    try:
        events = prof.profiler.kineto_results.events()
        changes = sorted((e.start_ns(), int(e.nbytes())) for e in events if e.name() == "[memory]")
    except AttributeError:
        return None
    live = peak = 0
    for _, nbytes in changes:
        live += nbytes
        peak = max(peak, live)
    return peak
