"""calibrate on the CPU: PyTorch backend vs the NumPy reference, in one process.

Prints, for each variant, its best time, the speed-up over the reference and the fraction
of the measured copy bandwidth reached (``roofline.cpu_copy_bandwidth``: the faster of
NumPy's and torch's copy), counting bytes two ways (``roofline.py``):

* minimum: what relative mode must move: read var once (reference precision), read
  mean and var once more, write grad: 4 (3 M D + D) bytes for float32;
* written: the bytes of the variant itself: the minimum for calibrate_grad; for
  calibrate the spec'd Calibration also writes belief and evidence (M D each) and
  uncertainty (D): 4 (5 M D + 2 D) bytes.

Variants: the reference; torch calibrate and calibrate_grad with fresh outputs and with
``out=`` (an earlier call's result reused: no allocation, no first touch of fresh
memory), all with the defaults (check_finite=True, compiled). A backend without ``out=``
(an older checkout) prints "n/a" for those rows.

Usage: python benchmarks/compare_calibrate_cpu.py [--log2d 24] [--m 3] [--repeat 5] [--eager]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bogc_ref
from benchmarks.roofline import best_seconds, cpu_copy_bandwidth, full_result_bytes, minimum_bytes
from bogc_ref.backends import get_backend


def timed(func: Callable[[], object], repeat: int) -> float | None:
    """Best time after one warm-up call (compilation); None if ``func`` is not supported."""
    try:
        func()
    except TypeError as exc:  # e.g. "unexpected keyword argument 'out'"
        print(f"  (skipped: {exc})")
        return None
    return best_seconds(func, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log2d", type=int, default=24)
    parser.add_argument("--m", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--eager", action="store_true", help="also time the eager torch path")
    args = parser.parse_args()
    d, m = 1 << args.log2d, args.m
    rng = np.random.default_rng(0)
    mean = rng.standard_normal((m, d)).astype(np.float32)
    var = (rng.random((m, d)) + 0.1).astype(np.float32)
    tm, tv = torch.from_numpy(mean), torch.from_numpy(var)
    backend = get_backend("torch")

    start = time.perf_counter()
    out = backend.calibrate(tm, tv)  # compiles (once per configuration)
    first = time.perf_counter() - start
    # out= reuses an earlier result, as docs/backends.md advises: its large buffers sit on
    # huge pages (torch.empty buffers on 4 KiB pages measured about 35% slower as out=).
    grad_out = backend.calibrate_grad(tm, tv)
    minimum, full = minimum_bytes(m, d), full_result_bytes(m, d)
    variants: list[tuple[str, Callable[[], object], int, int]] = [
        ("numpy reference calibrate", lambda: bogc_ref.calibrate(mean, var), full, 1),
        ("torch calibrate (fresh outputs)", lambda: backend.calibrate(tm, tv), full, args.repeat),
        ("torch calibrate (out=)", lambda: backend.calibrate(tm, tv, out=out), full, args.repeat),
        ("torch calibrate_grad (fresh output)", lambda: backend.calibrate_grad(tm, tv), minimum,
         args.repeat),
        ("torch calibrate_grad (out=)", lambda: backend.calibrate_grad(tm, tv, out=grad_out),
         minimum, args.repeat),
    ]  # fmt: skip
    if args.eager:
        eager = get_backend("torch")
        eager.compile_mode = "never"
        variants.append(("torch eager calibrate", lambda: eager.calibrate(tm, tv), full, 1))
    times = [(name, timed(func, repeat), written) for name, func, written, repeat in variants]
    copy = cpu_copy_bandwidth()
    bandwidth = copy.bytes_per_second

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, M={m}, D=2^{args.log2d}")
    print(f"copy bandwidth (read + write; {copy.source}): {bandwidth / 1e9:.1f} GB/s")
    print(f"first torch call (includes compilation): {first:.2f} s")
    print(f"{'variant':38s} {'time s':>8s} {'x ref':>7s} {'min-bytes BW':>13s} {'written BW':>11s}")
    t_ref = times[0][1]
    assert t_ref is not None
    for name, seconds, written in times:
        if seconds is None:
            print(f"{name:38s} {'n/a':>8s}")
            continue
        frac_min = minimum / seconds / bandwidth
        frac_written = written / seconds / bandwidth
        print(
            f"{name:38s} {seconds:8.3f} {t_ref / seconds:7.1f} {frac_min:12.1%} "
            f"{frac_written:11.1%}"
        )


if __name__ == "__main__":
    main()
