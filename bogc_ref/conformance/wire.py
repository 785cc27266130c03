"""Messages between the harness and a candidate's worker process: JSON plus raw array bytes.

A message is one frame on a pipe, preceded by its length (8 bytes): the length of a JSON
header, the header (the structure, with each array's dtype and shape), then the bytes of
every array. The reader says how long a frame it accepts, and the length is checked before
any of the frame is read; it can also wait between reads (the harness uses this to bound a
reply by the time limit and to notice a worker that died in the middle of one).

Arrays cross in their own dtype, shape and bits: the bytes of a C-contiguous copy, rebuilt
on the other side with :func:`numpy.frombuffer` as a writable, plain :class:`numpy.ndarray`
(a view of the received frame). An array in Fortran order or with permuted axes (a
transposed view of one block, see :func:`memory_axes`) keeps its layout: its block crosses
as it lies in memory with the permutation, and is rebuilt as the same permuted view, so a
candidate sees the strides it would be given.

Nothing is unpickled. The worker runs the candidate's code, which can write anything to the
pipe; decoding JSON and numeric bytes cannot run code in the harness, and a dtype that is
not a plain number type (object, structured, datetime) is refused.

Encoding of values: ``None``, ``bool``, ``int``, ``float`` (NaN and infinities included),
``str`` and lists are JSON; tuples, dicts, NumPy arrays and NumPy scalars are tagged objects
``{"~": "tuple" | "dict" | "array" | "scalar", ...}``. An ndarray subclass is sent through a
base-class view, so none of its overridden methods runs. A ``numpy.ma`` masked array is sent
as ``{"~": "masked", "data": ..., "mask": ...}`` and rebuilt as a masked array only where the
receiver asks for it (the worker, which must hand the contract tier's masked inputs to the
candidate as they are); the harness refuses it, so only plain arrays reach a comparison.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

_LENGTH = struct.Struct("<Q")
#: The length of a whole frame, written before it.
_FRAME_LENGTH = struct.Struct("<Q")
#: Bytes written or read by one system call at most.
CHUNK = 1 << 20
#: Arrays start at multiples of this many bytes within a frame (so they are aligned).
ALIGN = 64

#: dtype kinds that may cross: bool, signed and unsigned integers, floats, complex.
NUMERIC_KINDS = frozenset("biufc")


class WireError(ValueError):
    """A message that does not follow the protocol (bad JSON, bad dtype, missing bytes)."""


class FrameTooLarge(WireError):
    """A frame whose announced length is over what the reader accepts (nothing was read)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a message of {size} bytes, over the limit of {limit}")
        self.size = size
        self.limit = limit


def plain_array(value: np.ndarray) -> np.ndarray:
    """A C-contiguous plain ndarray with the bytes of ``value``, without calling its methods.

    ``np.ndarray.view`` is called on the base class, so a subclass's ``view``,
    ``__array_finalize__`` or arithmetic never runs.
    """
    base = np.ndarray.view(value, np.ndarray)
    return base if base.flags.c_contiguous else base.copy(order="C")


def _encode(value: Any, buffers: list[np.ndarray]) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.ma.MaskedArray):
        data, mask = np.ma.getdata(value), np.ma.getmaskarray(value)
        return {
            "~": "masked",
            "data": _encode_array(data, "array", buffers),
            "mask": _encode_array(mask, "array", buffers),
        }
    if isinstance(value, np.ndarray):
        return _encode_array(value, "array", buffers)
    if isinstance(value, np.generic):
        return _encode_array(np.asarray(value), "scalar", buffers)
    if isinstance(value, list):
        return [_encode(v, buffers) for v in value]
    if isinstance(value, tuple):
        return {"~": "tuple", "items": [_encode(v, buffers) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise WireError("dict keys must be strings")
        return {"~": "dict", "items": {k: _encode(v, buffers) for k, v in value.items()}}
    raise WireError(f"cannot send a value of type {type(value).__name__}")


def memory_axes(value: np.ndarray) -> list[int] | None:
    """The axes of ``value`` from the slowest to the fastest in memory when it is a permuted
    view of one contiguous block that is not C-contiguous (Fortran order, swapped axes);
    else None. Such an array crosses in its own layout."""
    base = np.ndarray.view(value, np.ndarray)
    if base.flags.c_contiguous or base.ndim < 2:
        return None
    axes = sorted(range(base.ndim), key=lambda a: -abs(base.strides[a]))
    return axes if base.transpose(axes).flags.c_contiguous else None


def _encode_array(value: np.ndarray, tag: str, buffers: list[np.ndarray]) -> dict[str, Any]:
    axes = memory_axes(value)
    arr = plain_array(value if axes is None else np.ndarray.view(value, np.ndarray).transpose(axes))
    if arr.dtype.kind not in NUMERIC_KINDS:
        raise WireError(f"cannot send an array of dtype {arr.dtype} (numbers and bools only)")
    buffers.append(arr)
    spec = {"~": tag, "dtype": arr.dtype.str, "shape": list(arr.shape), "buf": len(buffers) - 1}
    return spec if axes is None else {**spec, "axes": axes}


def _layout(header_length: int, sizes: list[int]) -> list[int]:
    """Offset of each array in a frame: after the header, each at a multiple of ALIGN."""
    offsets, at = [], _LENGTH.size + header_length
    for n in sizes:
        at = -(-at // ALIGN) * ALIGN
        offsets.append(at)
        at += n
    return offsets


def encode(message: Any) -> bytearray:
    """One frame: the length of the JSON header, the header, then every array's bytes."""
    buffers: list[np.ndarray] = []
    body = _encode(message, buffers)
    sizes = [arr.nbytes for arr in buffers]
    header = json.dumps({"body": body, "sizes": sizes}).encode()
    offsets = _layout(len(header), sizes)
    end = offsets[-1] + sizes[-1] if buffers else _LENGTH.size + len(header)
    frame = bytearray(end)
    _LENGTH.pack_into(frame, 0, len(header))
    view = memoryview(frame)
    view[_LENGTH.size : _LENGTH.size + len(header)] = header
    for arr, at in zip(buffers, offsets, strict=True):
        if arr.nbytes:
            view[at : at + arr.nbytes] = arr.data.cast("B")
    return frame


def decode(frame: bytearray, *, masked: bool = False) -> Any:
    """The message of one frame; arrays are writable views of ``frame`` (not copies).

    ``masked``: rebuild masked arrays (else a masked array in the frame is a WireError).
    """
    try:
        (length,) = _LENGTH.unpack_from(frame, 0)
        header = json.loads(bytes(frame[_LENGTH.size : _LENGTH.size + length]).decode("utf-8"))
        body, sizes = header["body"], [int(n) for n in header["sizes"]]
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise WireError(f"malformed message: {exc}") from exc
    offsets = _layout(length, sizes)
    end = offsets[-1] + sizes[-1] if sizes else _LENGTH.size + length
    if any(n < 0 for n in sizes) or end != len(frame):
        raise WireError(f"message of {len(frame)} bytes does not hold the arrays it announces")
    view = memoryview(frame)
    raw = [view[at : at + n] for at, n in zip(offsets, sizes, strict=True)]
    return _decode(body, raw, masked)


def send(fd: int, message: Any) -> None:
    """Write ``message`` (see the module docstring for what it may hold) to the file
    descriptor ``fd`` as one frame, after its length."""
    frame = encode(message)
    view = memoryview(frame)
    os.write(fd, _FRAME_LENGTH.pack(len(frame)))  # 8 bytes: never a partial write
    while view:
        view = view[os.write(fd, view[:CHUNK]) :]


def _no_wait() -> None:
    return None


def read_exactly(fd: int, n: int, wait: Callable[[], None] = _no_wait) -> bytearray:
    """``n`` bytes from ``fd``, calling ``wait()`` before each read (EOFError at the end)."""
    buffer = bytearray(n)
    view, got = memoryview(buffer), 0
    while got < n:
        wait()
        count = os.readv(fd, [view[got : got + CHUNK]])
        if count == 0:
            raise EOFError(f"the pipe closed after {got} of {n} bytes")
        got += count
    return buffer


def receive(
    fd: int,
    *,
    masked: bool = False,
    limit: int | None = None,
    wait: Callable[[], None] = _no_wait,
) -> Any:
    """Read one message from ``fd``; arrays come back as fresh writable plain ndarrays
    (masked arrays too where ``masked``, see :func:`decode`).

    ``limit``: the longest frame accepted (bytes); a longer one raises
    :class:`FrameTooLarge` before any of it is read. ``wait()`` is called before each read
    (it may raise to abandon the message). EOFError when the pipe closes first.
    """
    (size,) = _FRAME_LENGTH.unpack(read_exactly(fd, _FRAME_LENGTH.size, wait))
    if limit is not None and size > limit:
        raise FrameTooLarge(size, limit)
    return decode(read_exactly(fd, size, wait), masked=masked)


def _decode(value: Any, raw: list[memoryview], masked: bool) -> Any:
    if isinstance(value, list):
        return [_decode(v, raw, masked) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get("~")
    if tag == "tuple":
        return tuple(_decode(v, raw, masked) for v in value["items"])
    if tag == "dict":
        return {str(k): _decode(v, raw, masked) for k, v in value["items"].items()}
    if tag == "masked":
        if not masked:
            raise WireError("a masked array was sent where only plain arrays are accepted")
        data_spec, mask_spec = value.get("data"), value.get("mask")
        if not (isinstance(data_spec, dict) and isinstance(mask_spec, dict)):
            raise WireError("malformed masked array")
        data, mask = _decode_array(data_spec, raw), _decode_array(mask_spec, raw)
        if data.shape != mask.shape or mask.dtype != np.bool_:
            raise WireError("malformed masked array: its mask must be bool of the data's shape")
        return np.ma.masked_array(data, mask=mask)
    if tag in ("array", "scalar"):
        arr = _decode_array(value, raw)
        return arr[()] if tag == "scalar" else arr
    raise WireError(f"unknown tag {tag!r}")


def _decode_array(spec: dict[str, Any], raw: list[memoryview]) -> np.ndarray:
    try:
        dtype = np.dtype(str(spec["dtype"]))
        shape = tuple(int(n) for n in spec["shape"])
        data = raw[int(spec["buf"])]
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise WireError(f"malformed array: {exc}") from exc
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"array of dtype {dtype} refused (numbers and bools only)")
    if any(n < 0 for n in shape) or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(
        data
    ):
        raise WireError(f"array of shape {shape} and dtype {dtype}: got {len(data)} bytes")
    arr = np.frombuffer(data, dtype=dtype).reshape(shape)
    axes = spec.get("axes")
    if axes is None:
        return arr
    if not (isinstance(axes, list) and sorted(axes) == list(range(len(shape)))):
        raise WireError(f"malformed array: axes {axes!r} for shape {shape}")
    return arr.transpose(np.argsort(axes))
