"""calibrate at M = 3, D = 2^26 float32 on a GPU: fraction of measured copy bandwidth.

Bytes counted (relative mode, float32): the minimum the method must move, read var once
for the reference precision, read mean and var once more, write grad: 4 (3 M D + D);
and the full spec'd result, which also writes belief, evidence (M D each) and
uncertainty (D): 4 (5 M D + 2 D). Variants: PyTorch compiled (Triton), PyTorch eager,
PyTorch calibrate_grad, CuPy kernels. Copy bandwidth: ``dst.copy_(src)`` on 1 GiB.

Usage: python benchmarks/gpu_calibrate_bandwidth.py [--device cuda] [--log2d 26] [--json F]
``--device cpu --log2d 16`` is a dry run of the script itself on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bogc_ref.backends import BackendUnavailable, available_backends, get_backend


def timed(func: Callable[[], object], device: str, repeat: int) -> float:
    """Best time in seconds over ``repeat`` calls after one warm-up (CUDA-synchronised)."""
    func()
    best = float("inf")
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        func()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--log2d", type=int, default=26)
    parser.add_argument("--m", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    device, m, d = args.device, args.m, 1 << args.log2d
    gen = torch.Generator(device=device).manual_seed(0)
    mean = torch.randn((m, d), generator=gen, device=device)
    var = torch.rand((m, d), generator=gen, device=device) + 0.1
    src = torch.ones(min(1 << 28, 8 * m * d), device=device)
    dst = torch.empty_like(src)
    copy_s = timed(lambda: dst.copy_(src), device, args.repeat)
    bandwidth = 2 * 4 * src.numel() / copy_s
    minimum = 4 * (3 * m * d + d)
    full = 4 * (5 * m * d + 2 * d)
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else device,
        "torch": torch.__version__,
        "M": m,
        "D": d,
        "copy_bandwidth_GBps": bandwidth / 1e9,
        "bytes_minimum": minimum,
        "bytes_full": full,
        "variants": {},
    }
    compiled = get_backend("torch", device)
    eager = get_backend("torch", device)
    eager.compile_mode = "never"
    variants: list[tuple[str, Callable[[], object], int]] = [
        ("torch compiled calibrate", lambda: compiled.calibrate(mean, var), full),
        (
            "torch compiled calibrate check_finite=False",
            lambda: compiled.calibrate(mean, var, check_finite=False),
            full,
        ),
        (
            "torch compiled calibrate_grad check_finite=False",
            lambda: compiled.calibrate_grad(mean, var, check_finite=False),
            minimum,
        ),
        ("torch eager calibrate", lambda: eager.calibrate(mean, var), full),
    ]
    if "cupy" in available_backends() and device.startswith("cuda"):
        try:
            import cupy

            cb = get_backend("cupy", device)
            cm, cv = cupy.asarray(mean), cupy.asarray(var)  # zero-copy via __cuda_array_interface__
            variants.append(("cupy calibrate", lambda: cb.calibrate(cm, cv), full))
            variants.append(
                (
                    "cupy calibrate check_finite=False",
                    lambda: cb.calibrate(cm, cv, check_finite=False),
                    full,
                )
            )
        except BackendUnavailable as exc:
            results["cupy_error"] = str(exc)
    print(f"{results['device']}: copy bandwidth {bandwidth / 1e9:.0f} GB/s, M={m}, D={d}")
    for name, func, written in variants:
        try:
            seconds = timed(func, device, args.repeat)
        except Exception as exc:  # report and go on with the other variants
            results["variants"][name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            print(f"{name:50s} FAILED {type(exc).__name__}: {exc}"[:300])
            continue
        row = {
            "seconds": seconds,
            "fraction_minimum_bytes": minimum / seconds / bandwidth,
            "fraction_written_bytes": written / seconds / bandwidth,
        }
        results["variants"][name] = row
        print(
            f"{name:50s} {seconds * 1e3:9.3f} ms  min-bytes {row['fraction_minimum_bytes']:6.1%}"
            f"  all-bytes {row['fraction_written_bytes']:6.1%}"
        )
    ref = np.asarray(compiled.calibrate(mean[:, :4096], var[:, :4096]).grad.cpu())
    results["finite"] = bool(np.isfinite(ref).all())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
