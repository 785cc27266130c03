"""calibrate on the CPU: PyTorch backend vs the NumPy reference, in one process.

Prints the speed-up over the reference and the fraction of the measured copy bandwidth
reached, counting bytes two ways:

* minimum: what relative mode must move: read var once (reference precision), read
  mean and var once more, write grad: 4 (3 M D + D) bytes for float32;
* full result: the spec'd Calibration also writes belief and evidence (M D each) and
  uncertainty (D): 4 (5 M D + 2 D) bytes.

Usage: python benchmarks/compare_calibrate_cpu.py [--log2d 24] [--m 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

import bogc_ref
from bogc_ref.backends import get_backend


def best_of(func: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` timed calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def copy_bandwidth(n_bytes: int = 1 << 28, repeat: int = 5) -> float:
    """Bytes per second of ``dst.copy_(src)`` (read + write counted) on large buffers."""
    src = torch.ones(n_bytes // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    return 2 * n_bytes / best_of(lambda: dst.copy_(src), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2d", type=int, default=24)
    parser.add_argument("--m", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    d, m = 1 << args.log2d, args.m
    rng = np.random.default_rng(0)
    mean = rng.standard_normal((m, d)).astype(np.float32)
    var = (rng.random((m, d)) + 0.1).astype(np.float32)
    tm, tv = torch.from_numpy(mean), torch.from_numpy(var)
    backend = get_backend("torch")

    start = time.perf_counter()
    backend.calibrate(tm, tv)  # compiles (once per configuration)
    first = time.perf_counter() - start
    t_ref = best_of(lambda: bogc_ref.calibrate(mean, var), 1)
    t_torch = best_of(lambda: backend.calibrate(tm, tv), args.repeat)
    t_nocheck = best_of(lambda: backend.calibrate(tm, tv, check_finite=False), args.repeat)
    backend.calibrate_grad(tm, tv, check_finite=False)
    t_grad = best_of(lambda: backend.calibrate_grad(tm, tv, check_finite=False), args.repeat)
    eager = get_backend("torch")
    eager.compile_mode = "never"
    t_eager = best_of(lambda: eager.calibrate(tm, tv), 1)
    bandwidth = copy_bandwidth()

    minimum = 4 * (3 * m * d + d)
    full = 4 * (5 * m * d + 2 * d)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, M={m}, D=2^{args.log2d}")
    print(f"copy bandwidth (torch copy_, read+write): {bandwidth / 1e9:.1f} GB/s")
    print(f"first torch call (includes compilation): {first:.2f} s")
    print(f"{'variant':44s} {'time s':>8s} {'x ref':>7s} {'min-bytes BW':>13s} {'full BW':>8s}")
    rows = [
        ("numpy reference calibrate", t_ref, full),
        ("torch eager calibrate", t_eager, full),
        ("torch compiled calibrate (check_finite=True)", t_torch, full),
        ("torch compiled calibrate (check_finite=False)", t_nocheck, full),
        ("torch compiled calibrate_grad (no check)", t_grad, minimum),
    ]
    for name, seconds, written in rows:
        frac_min = minimum / seconds / bandwidth
        frac_full = written / seconds / bandwidth
        print(f"{name:44s} {seconds:8.3f} {t_ref / seconds:7.1f} {frac_min:12.1%} {frac_full:8.1%}")
    print(f"speed-up of torch calibrate over the reference: {t_ref / t_torch:.1f}x")


if __name__ == "__main__":
    main()
