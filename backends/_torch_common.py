"""Tensor plumbing shared by the PyTorch backend's modules: dtypes, devices, checks.

dtype policy: float32 and float64 are computed in their own precision; float16 and
bfloat16 inputs are computed in float32 and every result is cast back to the input
dtype (evidence saturating at the dtype's largest finite value, +inf kept for dogmatic).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from bogc_ref._validation import symmetric

from ._replay import host_array, stub

HALF_DTYPES = (torch.float16, torch.bfloat16)
FLOAT_DTYPES = (torch.float32, torch.float64, *HALF_DTYPES)
_NUMPY_TWINS = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the backend computes in for inputs of ``dtype`` (half types: float32)."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def in_dtype(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` itself when it has ``dtype`` already (no tensor operation), else ``t.to(dtype)``."""
    return t if t.dtype == dtype else t.to(dtype)


_WIDE_UNSIGNED = (torch.uint16, torch.uint32, torch.uint64)


def as_tensor(
    x: object, device: torch.device | str | None = None, name: str = "argument"
) -> torch.Tensor:
    """``x`` as a tensor: tensors pass through; NumPy arrays and Python numbers are copied.

    Python lists of floats become float64 like the reference's ``np.asarray``. Host
    values go through :func:`._replay.host_array`: masked arrays and dtypes torch cannot
    hold are a TypeError naming ``name``; negative strides and wide unsigned integers
    are converted (tensors of 16- to 64-bit unsigned integers too).
    """
    if isinstance(x, torch.Tensor):
        if x.dtype not in _WIDE_UNSIGNED:
            return x
        # few torch kernels take these (not even ``<``): int64 through the host conversion
        return torch.from_numpy(host_array(x.cpu().numpy(), name)).to(x.device)
    arr = host_array(x, name)
    if arr.dtype.kind == "f" and not isinstance(x, np.ndarray | np.generic):
        arr = arr.astype(np.float64)
    if not arr.flags.writeable:  # torch would share it, warn, and could write into it
        arr = arr.copy()
    return torch.as_tensor(arr, device=device)


def maybe_not_psd(a: torch.Tensor) -> bool:
    """False when every trailing matrix of ``a`` factors by Cholesky in float64 as it is."""
    if a.numel() == 0:
        return False
    _, info = torch.linalg.cholesky_ex(a.to(torch.float64))
    return bool((info != 0).any().item())


def generator_seed(seed: int, device: torch.device) -> int:
    """A ``torch.Generator`` seed on ``device`` for any ``seed >= 0`` (the reference takes
    any int): itself where the generator keeps all of its bits, else bits of NumPy's
    ``SeedSequence(seed)``, so that distinct seeds do not collide by construction.

    CUDA generators keep 64 bits; the CPU generator (mt19937) keeps only the low 32 (0 and
    2**63 would draw the same numbers), so on the CPU seeds from 2**32 on are hashed to 32
    bits (two such seeds still meet with probability 2**-32, not by their bit patterns).
    """
    seed = int(seed)
    bits = 32 if device.type == "cpu" else 64
    if seed < 1 << bits:
        return seed
    dtype = np.uint32 if bits == 32 else np.uint64
    return int(np.random.SeedSequence(seed).generate_state(1, dtype)[0])


@functools.cache
def numpy_dtype(dtype: torch.dtype) -> np.dtype[Any]:
    """The NumPy dtype a stub of a tensor gets (half types count as float32: accepted)."""
    if dtype in HALF_DTYPES:
        return np.dtype(np.float32)
    try:
        return torch.empty(0, dtype=dtype).numpy().dtype
    except TypeError:
        return np.dtype(object)


def stub_of(t: torch.Tensor) -> np.ndarray:
    """A zero-cost NumPy stand-in with ``t``'s dtype and shape for structural checks."""
    return stub(numpy_dtype(t.dtype), tuple(t.shape))


def host(x: object) -> object:
    """A host NumPy copy of a tensor (half types as float32); other values unchanged."""
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.dtype in HALF_DTYPES:
            t = t.float()
        return t.numpy()
    return x


def same_device(reference: torch.Tensor, tensors: dict[str, torch.Tensor]) -> None:
    """ValueError naming the first tensor that is not on ``reference``'s device."""
    for name, t in tensors.items():
        if t.device != reference.device:
            raise ValueError(
                f"{name}: on device {t.device}, expected {reference.device} like the other "
                f"inputs (shape {tuple(t.shape)})"
            )


def any_flag(flags: list[torch.Tensor | bool]) -> bool:
    """One device-to-host sync: True if any of ``flags`` (0-d boolean tensors, or Python
    bools from tests already answered on the host) is set."""
    if any(f is True for f in flags):
        return True
    pending = [f for f in flags if isinstance(f, torch.Tensor)]
    if not pending:
        return False
    if all(f.device.type == "cpu" for f in pending):
        return any(bool(f) for f in pending)
    return bool(torch.stack([f.reshape(()) for f in pending]).any().item())


def not_all_finite(t: torch.Tensor) -> torch.Tensor | bool:
    """Some entry of ``t`` is NaN or infinite: a 0-d bool tensor on ``t``'s device, or a
    Python bool for a CPU tensor whose sum settled it.

    On the CPU a finite sum proves every entry finite (NaN and ±inf are absorbing: one
    pass, no temporary), read back as a number (no tensor operations after it: each costs
    10-50 µs when a large computation has just evicted their code); the entrywise test runs
    only when the sum is not finite.
    """
    if t.device.type == "cpu" and math.isfinite(t.sum().item()):
        return False
    return ~torch.isfinite(t).all()


def not_symmetric(a: torch.Tensor) -> torch.Tensor | bool:
    """The reference's symmetry test fails (tolerance 1e3 eps scale): a 0-d bool tensor,
    or a Python bool where the test ran on the host.

    On the CPU (float32, float64) it is the reference's own test on the tensor's memory
    (``bogc_ref._validation.symmetric``: an exact comparison pass, then blocks).
    """
    view = _host_view(a)
    if view is not None:
        try:
            symmetric(view, "a")
        except ValueError:
            return True
        return False
    scale = a.abs().amax(dim=(-2, -1), keepdim=True)
    gap = (a - a.transpose(-1, -2)).abs()
    eps = torch.finfo(a.dtype).eps
    tol = 1e3 * eps * torch.where(scale > 0, scale, torch.ones_like(scale))
    return (gap > tol).any()


def _host_view(t: torch.Tensor) -> np.ndarray | None:
    """``t``'s memory as a NumPy array when it is a float32/float64 CPU tensor, else None."""
    if t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64):
        return None
    return t.detach().numpy()


def floats(t: torch.Tensor) -> tuple[torch.Tensor, torch.dtype]:
    """``t`` in its compute dtype, and the dtype results go back to."""
    return in_dtype(t, compute_dtype(t.dtype)), t.dtype


#: Fresh CPU outputs of at least this many bytes are allocated by NumPy (see new_empty).
LARGE_OUTPUT_BYTES = 1 << 22


def new_empty(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` with ``like``'s dtype and device.

    Large CPU tensors (float32, float64, float16) come from NumPy's allocator, which asks
    Linux for transparent huge pages for arrays of 4 MiB or more: the first touch of fresh
    memory then faults 2 MiB pages instead of 4 KiB ones (0.54 GB: about 30 ms instead of
    150 ms on the benchmark machine). The tensor shares the array's memory, so its storage
    cannot be resized; nothing is cached or reused across calls. Otherwise ``torch.empty``.
    """
    twin = _NUMPY_TWINS.get(like.dtype)
    large = math.prod(shape) * like.element_size() >= LARGE_OUTPUT_BYTES
    if like.device.type == "cpu" and twin is not None and large:
        return torch.from_numpy(np.empty(shape, dtype=twin))
    return like.new_empty(shape)


def results_have_nan(results: tuple[torch.Tensor, ...]) -> bool:
    """One device-to-host sync: whether any result holds a NaN. A CPU result whose sum is
    finite has none (NaN and ±inf are absorbing) and is not tested entrywise."""
    suspects = [r for r in results if r.is_floating_point()]
    suspects = [r for r in suspects if r.device.type != "cpu" or not math.isfinite(r.sum().item())]
    return any_flag([torch.isnan(r).any() for r in suspects])


def saturate_exp(log_e: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
    """``exp(log_e)`` cast to ``out_dtype`` the reference's way.

    Only ``log_e = +inf`` (dogmatic) gives ``+inf``; every finite evidence, however large,
    saturates at ``out_dtype``'s largest finite number.
    """
    big = torch.finfo(out_dtype).max
    values = torch.exp(log_e).clamp(max=big)
    return torch.where(torch.isposinf(log_e), torch.inf, values).to(out_dtype)
