"""Roofline of calibrate: achieved memory bandwidth as a fraction of measured copy bandwidth.

Run from the repository root: ``python benchmarks/roofline.py`` (options: ``--help``).

Copy bandwidth: the best of several copies of a large float32 array (NumPy ``copyto`` on
the CPU; ``Tensor.copy_`` on CUDA when a device is present), counting the bytes read
plus the bytes written (2 × the array's size; a CPU's write-allocate traffic is not
counted, so the figure is the bandwidth a streaming kernel can see, not the DRAM peak).

Bytes assumed for ``calibrate(mean, var, mode="relative")`` on float32 (M, D) inputs:

* minimum: read ``var`` once for the reference precision, then read ``mean`` and ``var``
  once more and write ``grad``: (3·M + 1)·D·4 bytes;
* full result: the minimum plus the other outputs of ``Calibration``, ``belief`` and
  ``evidence`` (M·D each) and ``uncertainty`` (D): (5·M + 2)·D·4 bytes.

Achieved bandwidth = bytes / best time; the fraction divides it by the copy bandwidth of
the device the backend runs on.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._support import BACKENDS, load_backend, on_gpu, synchronize

FLOAT32_BYTES = 4


def minimum_bytes(m: int, d: int) -> int:
    """(3M + 1)·D·4: var read twice, mean read once, grad written."""
    return (3 * m + 1) * d * FLOAT32_BYTES


def full_result_bytes(m: int, d: int) -> int:
    """(5M + 2)·D·4: the minimum plus belief and evidence (M·D each) and uncertainty (D)."""
    return minimum_bytes(m, d) + (2 * m + 1) * d * FLOAT32_BYTES


def best_seconds(func: Callable[[], Any], repeats: int) -> float:
    """The shortest wall time of ``repeats`` calls (after the caller's warm-up)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def cpu_copy_bandwidth(n_elements: int = 2**26, repeats: int = 7) -> float:
    """Bytes/s of ``np.copyto`` between two float32 arrays (read + write counted)."""
    src = np.ones(n_elements, dtype=np.float32)
    dst = np.zeros_like(src)
    np.copyto(dst, src)
    return 2 * src.nbytes / best_seconds(lambda: np.copyto(dst, src), repeats)


def gpu_copy_bandwidth(n_elements: int = 2**28, repeats: int = 10) -> float | None:
    """Bytes/s of a CUDA device-to-device float32 copy (read + write), or None without CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    src = torch.ones(n_elements, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)

    def copy() -> None:
        dst.copy_(src)
        torch.cuda.synchronize()

    copy()
    return 2 * src.numel() * FLOAT32_BYTES / best_seconds(copy, repeats)


def calibrate_seconds(label: str, m: int, d: int, repeats: int) -> float:
    """Best time of ``calibrate`` (relative mode) for backend ``label`` on float32 (M, D)."""
    backend = load_backend(label)
    rng = np.random.default_rng(0)
    mean = backend.from_numpy(rng.standard_normal((m, d), dtype=np.float32))
    var = backend.from_numpy(rng.random((m, d), dtype=np.float32) + np.float32(0.05))

    def call() -> None:
        backend.calibrate(mean, var, mode="relative")
        synchronize(backend)

    call()  # warm-up (and torch.compile, where the backend uses it)
    return best_seconds(call, repeats)


def roofline_rows(
    labels: list[str], m: int, d: int, repeats: int
) -> tuple[float, float | None, list[dict[str, Any]]]:
    """Copy bandwidths and one row per backend label that runs here."""
    cpu_bw = cpu_copy_bandwidth()
    gpu_bw = gpu_copy_bandwidth()
    rows = []
    for label in labels:
        try:
            backend = load_backend(label)
        except NotImplementedError as exc:
            rows.append({"backend": label, "skipped": str(exc)})
            continue
        copy_bw = gpu_bw if on_gpu(backend) else cpu_bw
        if copy_bw is None:
            rows.append({"backend": label, "skipped": "no copy bandwidth for its device"})
            continue
        seconds = calibrate_seconds(label, m, d, repeats)
        row: dict[str, Any] = {"backend": label, "seconds": seconds, "copy_bw": copy_bw}
        for kind, nbytes in (("min", minimum_bytes(m, d)), ("full", full_result_bytes(m, d))):
            row[f"{kind}_bw"] = nbytes / seconds
            row[f"{kind}_fraction"] = nbytes / seconds / copy_bw
        rows.append(row)
    return cpu_bw, gpu_bw, rows


def report(cpu_bw: float, gpu_bw: float | None, rows: list[dict[str, Any]], m: int, d: int) -> str:
    """The printed roofline table."""
    lines = [
        f"CPU copy bandwidth: {cpu_bw / 1e9:.2f} GB/s (np.copyto of 2^26 float32, read + write "
        "counted, best of 7)",
        "GPU copy bandwidth: "
        + (
            f"{gpu_bw / 1e9:.1f} GB/s (torch copy_ on CUDA, 2^28 float32, best of 10)"
            if gpu_bw
            else "no CUDA device"
        ),
        f"calibrate relative mode, float32, M = {m}, D = {d} (2^{d.bit_length() - 1}):",
        f"  minimum bytes     (3M+1)·D·4 = {minimum_bytes(m, d):,} "
        "(var read twice, mean read once, grad written)",
        f"  full-result bytes (5M+2)·D·4 = {full_result_bytes(m, d):,} "
        "(+ belief, evidence M·D each, uncertainty D)",
    ]
    for row in rows:
        if "skipped" in row:
            lines.append(f"  {row['backend']:<11} skipped: {row['skipped']}")
            continue
        lines.append(
            f"  {row['backend']:<11} {row['seconds'] * 1e3:9.1f} ms   minimum bytes: "
            f"{row['min_bw'] / 1e9:6.2f} GB/s = {100 * row['min_fraction']:5.1f}% of copy   "
            f"full result: {row['full_bw'] / 1e9:6.2f} GB/s = {100 * row['full_fraction']:5.1f}%"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--m", type=int, default=3)
    parser.add_argument("--log2-d", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    d = 2**args.log2_d
    print(report(*roofline_rows(args.backends, args.m, d, args.repeats), args.m, d))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
