"""Reading a candidate's results as plain NumPy arrays (runs in the candidate's worker process).

:func:`to_numpy` copies an array of any supported library to a plain host
:class:`numpy.ndarray`: DLPack first, ``__array__`` second, never Python lists. Device
arrays are copied to the host here and only here (``.cpu()`` for PyTorch, ``.get()`` for
CuPy, or DLPack's ``device="cpu"`` request for anything else). An ndarray subclass is read
through a base-class view, so its overridden methods never run. :func:`result_arrays` reads
every field of a result in the order of the reference's named tuple.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any

import numpy as np

from .._results import Calibration, Moments, Opinion, Posterior
from ..interface import STAGES, Implementation
from .wire import NUMERIC_KINDS

#: Result type of each interface function (None: a single array).
RESULT_TYPES: dict[str, Any] = {
    "linear_head_moments": Moments,
    "softmax_head_moments": Moments,
    "softmax_head_moments_linearized": Moments,
    "empirical_moments": Moments,
    "linear_head_posterior": Posterior,
    "softmax_head_laplace": Posterior,
    "evidence": None,
    "opinions": Opinion,
    "reduced_dempster": Opinion,
    "dempster_combine": None,
    "calibrate": Calibration,
}

#: Every function of the interface, stage by stage.
FUNCTIONS: tuple[str, ...] = tuple(f for stage in STAGES.values() for f in stage)


@functools.cache
def parameter_names(function: str) -> list[str]:
    """The reference's parameter names of an interface function, in order."""
    member = getattr(Implementation, function, None)
    if member is None:
        return []
    return [p for p in inspect.signature(member).parameters if p != "self"]


class OutputError(TypeError):
    """A candidate returned something that is not a readable array or result."""


def _numeric(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype.kind not in NUMERIC_KINDS:
        raise OutputError(f"{what}: array of dtype {arr.dtype}, which is not a number type")
    return arr


def to_numpy(value: object, what: str = "output") -> np.ndarray:
    """Copy an array of any supported library to a plain host NumPy array.

    Order: NumPy itself (subclasses through a base-class view); PyTorch
    (``detach().cpu()``, then DLPack); CuPy (``.get()``); any object with ``__dlpack__``
    (asking for a CPU copy); any object with ``__array__``. Lists, tuples and scalars of
    Python numbers are refused: they hide a host round trip and lose the dtype.
    """
    if isinstance(value, np.ndarray):
        return _numeric(np.array(np.ndarray.view(value, np.ndarray), copy=True), what)
    if isinstance(value, np.generic):
        return _numeric(np.array(value, copy=True), what)
    root = type(value).__module__.split(".")[0]
    if root == "torch":
        tensor = value.detach()  # type: ignore[attr-defined]
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        return _numeric(np.from_dlpack(tensor.contiguous()).copy(), what)
    if root == "cupy":
        return _numeric(np.array(value.get(), copy=True), what)  # type: ignore[attr-defined]
    if hasattr(value, "__dlpack__"):
        try:
            return _numeric(np.from_dlpack(value, device="cpu", copy=True), what)
        except (BufferError, TypeError, ValueError, RuntimeError):
            pass
    if hasattr(value, "__array__"):
        return _numeric(np.array(np.asarray(value), copy=True), what)
    raise OutputError(
        f"{what}: got {type(value).__name__}, which is neither a DLPack nor an __array__ "
        "object (Python lists and scalars are not accepted)"
    )


def host_view(value: object) -> np.ndarray | None:
    """A NumPy view of ``value``'s host memory without copying, or None when there is none.

    Used to tell whether an output shares memory with an input.
    """
    if isinstance(value, np.ndarray):
        return np.ndarray.view(value, np.ndarray)
    if hasattr(value, "__dlpack__") and not isinstance(value, np.generic):
        try:
            return np.from_dlpack(value)
        except (BufferError, TypeError, ValueError, RuntimeError):
            return None
    return None


def _field(result: object, field: str, index: int, function: str) -> object:
    if hasattr(result, field) and not isinstance(result, np.ndarray):
        return getattr(result, field)
    if isinstance(result, dict):
        if field in result:
            return result[field]
        raise OutputError(f"{function}: result dict has no key {field!r}")
    if isinstance(result, tuple | list) and len(result) > index:
        return result[index]
    raise OutputError(
        f"{function}: result of type {type(result).__name__} has no field {field!r} "
        f"(expected a result with fields of {function}'s reference result)"
    )


def result_fields(function: str) -> tuple[str, ...]:
    """The field names of ``function``'s result (``()`` for a single array)."""
    kind = RESULT_TYPES.get(function)
    return () if kind is None else tuple(kind._fields)


def result_values(function: str, result: object) -> list[tuple[str, object]]:
    """``(label, native value)`` of each output of ``result``, in the reference's order."""
    fields = result_fields(function)
    if not fields:
        return [(f"{function} result", result)]
    if isinstance(result, tuple | list) and len(result) != len(fields):
        raise OutputError(
            f"{function}: returned {len(result)} values, expected {len(fields)} {fields}"
        )
    return [
        (f"{function}.{field}", _field(result, field, i, function))
        for i, field in enumerate(fields)
    ]


def build_result(function: str, arrays: list[np.ndarray]) -> Any:
    """The reference's named tuple (or the single array) from arrays in field order."""
    kind = RESULT_TYPES.get(function)
    if kind is None:
        return arrays[0]
    return kind(*arrays)


def convert_result(function: str, result: object) -> Any:
    """The candidate's result as the reference's named tuple of plain NumPy arrays."""
    arrays = [to_numpy(value, label) for label, value in result_values(function, result)]
    return build_result(function, arrays)


def implementation_version(impl: object) -> str:
    """``__version__`` of the object, or of the module that defines it; "unknown" otherwise."""
    for source in (impl, type(impl)):
        version = getattr(source, "__version__", None)
        if isinstance(version, str):
            return version
    module = getattr(impl, "__module__", None) or type(impl).__module__
    version = getattr(sys.modules.get(str(module).split(".")[0]), "__version__", None)
    return version if isinstance(version, str) else "unknown"
