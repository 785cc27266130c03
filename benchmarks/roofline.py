"""Roofline of calibrate: achieved memory bandwidth as a fraction of measured copy bandwidth.

Run from the repository root: ``python benchmarks/roofline.py`` (options: ``--help``).

Copy bandwidth: the best of several copies of a large float32 array, counting the bytes
read plus the bytes written (2 × the array's size; a CPU's write-allocate traffic is not
counted, so the figure is the bandwidth a streaming kernel can see, not the DRAM peak). On
the CPU both NumPy's ``copyto`` (one thread) and torch's ``Tensor.copy_`` (all of torch's
threads) are timed and the higher figure is the baseline, so no backend is measured
against a slow copy; on CUDA, ``Tensor.copy_`` when a device is present.

Bytes that each call must move, relative mode, float32 (M, D) inputs:

* ``calibrate_grad`` (the gradient only; PyTorch backend): read ``var`` once for the
  reference precision, then read ``mean`` and ``var`` once more and write ``grad``:
  (3·M + 1)·D·4 bytes, the *minimum* of the method;
* ``calibrate`` (the spec's full ``Calibration``): the minimum plus ``belief`` and
  ``evidence`` (M·D each) and ``uncertainty`` (D): (5·M + 2)·D·4 bytes.

Achieved bandwidth = the call's own bytes / its best time, divided by the copy bandwidth
of the device the backend runs on. For ``calibrate`` the table also gives the stricter
reading that credits it with the minimum bytes only (as if the full result were free).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

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


class CopyBandwidth(NamedTuple):
    """Bytes/s of the fastest copy measured, and which copy it was."""

    bytes_per_second: float
    source: str


def cpu_copy_bandwidth(n_elements: int = 2**26, repeats: int = 7) -> CopyBandwidth:
    """The higher of ``np.copyto`` and torch ``copy_`` (when torch is installed) between two
    float32 arrays of ``n_elements`` (read + write counted), each the best of ``repeats``."""
    src = np.ones(n_elements, dtype=np.float32)
    dst = np.zeros_like(src)
    np.copyto(dst, src)
    nbytes = 2 * src.nbytes
    best = CopyBandwidth(nbytes / best_seconds(lambda: np.copyto(dst, src), repeats), "np.copyto")
    try:
        import torch
    except ImportError:
        return best
    t_src, t_dst = torch.from_numpy(src), torch.from_numpy(dst)
    t_dst.copy_(t_src)
    by_torch = nbytes / best_seconds(lambda: t_dst.copy_(t_src), repeats)
    if by_torch > best.bytes_per_second:
        return CopyBandwidth(by_torch, f"torch copy_, {torch.get_num_threads()} threads")
    return best


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


def calibrate_seconds(label: str, m: int, d: int, repeats: int, call: str = "calibrate") -> float:
    """Best time of ``call`` (``calibrate`` or ``calibrate_grad``; relative mode) for backend
    ``label`` on float32 (M, D)."""
    backend = load_backend(label)
    rng = np.random.default_rng(0)
    mean = backend.from_numpy(rng.standard_normal((m, d), dtype=np.float32))
    var = backend.from_numpy(rng.random((m, d), dtype=np.float32) + np.float32(0.05))
    function = getattr(backend, call)

    def run() -> None:
        function(mean, var, mode="relative")
        synchronize(backend)

    run()  # warm-up (and torch.compile, where the backend uses it)
    return best_seconds(run, repeats)


#: The calls measured and the bytes each must move.
CALLS = {"calibrate": full_result_bytes, "calibrate_grad": minimum_bytes}


def roofline_rows(
    labels: list[str], m: int, d: int, repeats: int
) -> tuple[CopyBandwidth, float | None, list[dict[str, Any]]]:
    """Copy bandwidths and one row per (backend label that runs here, call it offers)."""
    cpu_copy = cpu_copy_bandwidth()
    gpu_bw = gpu_copy_bandwidth()
    rows: list[dict[str, Any]] = []
    for label in labels:
        try:
            backend = load_backend(label)
        except NotImplementedError as exc:
            rows.append({"backend": label, "call": "calibrate", "skipped": str(exc)})
            continue
        copy_bw = gpu_bw if on_gpu(backend) else cpu_copy.bytes_per_second
        if copy_bw is None:
            rows.append(
                {
                    "backend": label,
                    "call": "calibrate",
                    "skipped": "no copy bandwidth for its device",
                }
            )
            continue
        for call, own_bytes in CALLS.items():
            if not hasattr(backend, call):
                continue
            seconds = calibrate_seconds(label, m, d, repeats, call)
            rows.append(
                {
                    "backend": label,
                    "call": call,
                    "seconds": seconds,
                    "copy_bw": copy_bw,
                    "bw": own_bytes(m, d) / seconds,
                    "fraction": own_bytes(m, d) / seconds / copy_bw,
                    "min_fraction": minimum_bytes(m, d) / seconds / copy_bw,
                }
            )
    return cpu_copy, gpu_bw, rows


def report(
    cpu_copy: CopyBandwidth, gpu_bw: float | None, rows: list[dict[str, Any]], m: int, d: int
) -> str:
    """The printed roofline table."""
    lines = [
        f"CPU copy bandwidth: {cpu_copy.bytes_per_second / 1e9:.2f} GB/s (the faster of "
        f"np.copyto and torch copy_: {cpu_copy.source}; 2^26 float32, read + write counted, "
        "best of 7)",
        "GPU copy bandwidth: "
        + (
            f"{gpu_bw / 1e9:.1f} GB/s (torch copy_ on CUDA, 2^28 float32, best of 10)"
            if gpu_bw
            else "no CUDA device"
        ),
        f"relative mode, float32, M = {m}, D = {d} (2^{d.bit_length() - 1}); bytes each call "
        "must move:",
        f"  calibrate_grad (3M+1)·D·4 = {minimum_bytes(m, d):,} "
        "(var read twice, mean read once, grad written: the minimum)",
        f"  calibrate      (5M+2)·D·4 = {full_result_bytes(m, d):,} "
        "(+ belief, evidence M·D each, uncertainty D)",
    ]
    for row in rows:
        name = f"{row['backend']} {row['call']}"
        if "skipped" in row:
            lines.append(f"  {name:<26} skipped: {row['skipped']}")
            continue
        line = (
            f"  {name:<26} {row['seconds'] * 1e3:9.1f} ms  {row['bw'] / 1e9:6.2f} GB/s = "
            f"{100 * row['fraction']:5.1f}% of copy"
        )
        if row["call"] != "calibrate_grad":
            line += f"   (minimum bytes only: {100 * row['min_fraction']:5.1f}%)"
        lines.append(line)
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
