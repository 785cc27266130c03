"""calibrate: time and peak memory per backend, sources M, dimensions D and evidence mode.

Inputs are float32 (the training dtype): mean ~ N(0, 1), var ~ U(0.05, 1.05) (one block of
2^16 columns repeated along D), fixed mode with tau = 1. Arrays are generated once per
parameter set and process (asv re-runs ``setup`` before every sample; the inputs are not
modified by ``calibrate``), and non-NumPy backends are called once there first, so that
one-off costs (torch.compile of large inputs, allocator warm-up) stay out of the timings.
peakmem is the process's maximum resident set size: inputs included, host memory only
(device memory of GPU backends is not counted).

The NumPy reference is timed up to D = 2^20 only (:data:`REFERENCE_MAX_D`): at D = 2^24 it
takes 9 to 41 s a call, which alone made a full ``asv run`` last a quarter of an hour; its
cost is linear in D (the roofline script measures it at 2^24 when wanted). The backends
keep every size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._support import BACKENDS, load_backend, on_gpu, preload_torch, require_memory, synchronize

preload_torch()

#: Planned host bytes per input element (M·D) of one call, inputs included: the NumPy
#: reference works in float64 with several (M, D) temporaries; backends in float32.
BYTES_PER_ELEMENT = {"numpy": 100, "torch": 40, "cupy": 8}

#: The largest D at which the NumPy reference is timed (seconds per call above it).
REFERENCE_MAX_D = 2**20

_inputs: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}


def _case(label: str, m: int, d: int, mode: str) -> tuple[Any, Any, Any]:
    key = (label, m, d, mode)
    if key not in _inputs:
        _inputs.clear()
        if label == "numpy" and d > REFERENCE_MAX_D:
            raise NotImplementedError(
                f"calibrate numpy D={d}: the reference is timed up to D = {REFERENCE_MAX_D}"
            )
        backend = load_backend(label)
        per_element = 8 if on_gpu(backend) else BYTES_PER_ELEMENT.get(backend.name, 100)
        require_memory(per_element * m * d, f"calibrate {label} M={m} D={d}")
        mean, var = _inputs_of(m, d)
        case = (backend, backend.from_numpy(mean), backend.from_numpy(var))
        if backend.name != "numpy":  # warm up: caches, and torch.compile for large inputs
            backend.calibrate(case[1], case[2], **_options(mode))
            synchronize(backend)
        _inputs[key] = case
    return _inputs[key]


#: Inputs are one random block of this many columns repeated along D: drawing 2 · 6 · 2^24
#: values took 2-3 s in every process of the largest cases; calibrate's cost does not depend
#: on which values repeat.
BLOCK_COLUMNS = 2**16


def _inputs_of(m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """mean ~ N(0, 1) and var ~ U(0.05, 1.05), float32 (M, D), from a fixed seed."""
    rng = np.random.default_rng(0)
    width = min(d, BLOCK_COLUMNS)
    mean = rng.standard_normal((m, width), dtype=np.float32)
    var = rng.random((m, width), dtype=np.float32) + np.float32(0.05)
    reps = -(-d // width)
    return tuple(np.ascontiguousarray(np.tile(a, (1, reps))[:, :d]) for a in (mean, var))  # type: ignore[return-value]


def _options(mode: str) -> dict[str, Any]:
    return {"mode": mode, "tau": 1.0 if mode == "fixed" else None}


class Calibrate:
    """``calibrate(mean, var, mode=...)`` on (M, D) float32 inputs."""

    params = (BACKENDS, [2, 3, 6], [2**10, 2**16, 2**20, 2**24], ["relative", "fixed"])
    param_names = ("backend", "M", "D", "mode")
    rounds = 1
    timeout = 600.0
    #: One process per case (asv's default is 2): these cases take seconds a call, and
    #: a second process doubled the suite's share of a full run.
    processes = 1

    def setup(self, label: str, m: int, d: int, mode: str) -> None:
        self.backend, self.mean, self.var = _case(label, m, d, mode)
        self.kwargs = _options(mode)
        if d >= 2**20:  # seconds per call on a CPU: a few samples are enough
            self.warmup_time = 0.0
            self.repeat = (1, 3, 10.0)
            self.min_run_count = 1
        else:
            self.repeat = (3, 20, 4.0)

    def _run(self) -> None:
        self.backend.calibrate(self.mean, self.var, **self.kwargs)
        synchronize(self.backend)

    def time_calibrate(self, label: str, m: int, d: int, mode: str) -> None:
        self._run()

    def peakmem_calibrate(self, label: str, m: int, d: int, mode: str) -> None:
        self._run()
