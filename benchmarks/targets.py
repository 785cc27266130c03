"""The target ratios of the benchmarks issue, measured in one process.

Run from the repository root: ``python benchmarks/targets.py``. Prints, for each target,
the measured figure, the target and MET / MISSED:

1. exact linear-head moments vs the full-covariance baseline at D = 512, B = 128 (K = 1):
   speedup (best times) >= 100 and the same diagonal to 1e-10 relative;
2. softmax Monte Carlo at S = 512 (B = 256, K = 10, D = 512), same eps: peak memory of the
   streaming reference <= 1/10 of the materialising baseline, measured with tracemalloc
   (which sees NumPy's array allocations, not BLAS/LAPACK workspaces), and equal results;
3. calibrate on the CPU, PyTorch backend, M = 3, D = 2^24, float32, relative mode: >= 25%
   of the measured copy bandwidth (the faster of NumPy's and torch's copy), counting the
   bytes calibrate must move for its full result, (5M+2)·D·4 (roofline.py); the stricter
   reading with the minimum bytes (3M+1)·D·4 is printed beside it, as are
   calibrate_grad and the NumPy reference.
"""

from __future__ import annotations

import platform
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bogc_ref
from benchmarks.baseline_full_covariance import full_covariance_moments
from benchmarks.baseline_materialising_mc import materialising_softmax_moments
from benchmarks.bench_linear_head import linear_head_inputs
from benchmarks.bench_softmax_mc import softmax_inputs
from benchmarks.roofline import best_seconds, report, roofline_rows


def max_relative_difference(got: np.ndarray, expected: np.ndarray) -> float:
    """max |got − expected| / |expected| over the entries (expected ≠ 0 here)."""
    return float(np.max(np.abs(got - expected) / np.abs(expected)))


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def linear_head_target(d: int = 512) -> list[str]:
    inputs = linear_head_inputs(d)
    exact = bogc_ref.linear_head_moments(*inputs)
    t_exact = best_seconds(lambda: bogc_ref.linear_head_moments(*inputs), 5)
    start = time.perf_counter()
    mean, var = full_covariance_moments(*inputs)
    first = time.perf_counter() - start
    t_full = min(first, best_seconds(lambda: full_covariance_moments(*inputs), 1))  # best of 2
    speedup = t_full / t_exact
    diff_var = max_relative_difference(var, exact.var)
    diff_mean = max_relative_difference(mean, exact.mean)
    return [
        f"[1] linear head, D = {d}, B = 128, K = 1 (float64):",
        f"    exact {t_exact * 1e3:.1f} ms, full-covariance baseline {t_full * 1e3:.0f} ms "
        f"(best of 5 / best of 2): speedup {speedup:.0f}x (target >= 100x): "
        f"{verdict(speedup >= 100)}",
        f"    max relative difference of the diagonal {diff_var:.2e}, of the mean {diff_mean:.2e} "
        f"(target <= 1e-10): {verdict(max(diff_var, diff_mean) <= 1e-10)}",
    ]


def traced_peak(func: Callable[[], Any]) -> tuple[Any, int]:
    """The result of ``func()`` and the peak of traced (NumPy) allocations during it."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        result = func()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def softmax_target(s: int = 512) -> list[str]:
    h, labels, w_mean, w_cov, eps = softmax_inputs(s)
    stream, peak_stream = traced_peak(
        lambda: bogc_ref.softmax_head_moments(h, labels, w_mean, w_cov, eps=eps)
    )
    (mean, var), peak_full = traced_peak(
        lambda: materialising_softmax_moments(h, labels, w_mean, w_cov, eps)
    )
    ratio = peak_stream / peak_full
    diff = max(max_relative_difference(stream.mean, mean), max_relative_difference(stream.var, var))
    return [
        f"[2] softmax Monte Carlo, S = {s}, B = 256, K = 10, D = 512, same eps (float64):",
        "    peak traced memory (tracemalloc: NumPy allocations) streaming "
        f"{peak_stream / 2**20:.0f} MiB, materialising {peak_full / 2**20:.0f} MiB: "
        f"ratio 1/{1 / ratio:.1f} "
        f"(target <= 1/10): {verdict(ratio <= 0.1)}",
        f"    max relative difference of mean and var {diff:.2e} (same result: <= 1e-10, "
        f"summation order differs): {verdict(diff <= 1e-10)}",
    ]


def calibrate_target(m: int = 3, log2_d: int = 24) -> list[str]:
    d = 2**log2_d
    cpu_copy, gpu_bw, rows = roofline_rows(["torch-cpu", "numpy"], m, d, repeats=5)
    lines = ["[3] calibrate roofline (roofline.py):", report(cpu_copy, gpu_bw, rows, m, d)]
    row = next(r for r in rows if r["backend"] == "torch-cpu" and r["call"] == "calibrate")
    if "skipped" in row:
        return [*lines, f"    torch-cpu skipped: {row['skipped']}: MISSED"]
    fraction = row["fraction"]
    lines.append(
        f"    torch-cpu calibrate: {100 * fraction:.1f}% of copy bandwidth (its own bytes, "
        f"(5M+2)·D·4; target >= 25%): {verdict(fraction >= 0.25)}; counting only the "
        f"minimum bytes (3M+1)·D·4: {100 * row['min_fraction']:.1f}%"
    )
    return lines


def main() -> int:
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        f"threads; numpy {np.__version__}, torch {torch.__version__}, python "
        f"{platform.python_version()}"
    )
    for section in (linear_head_target, softmax_target, calibrate_target):
        print("\n".join(section()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
