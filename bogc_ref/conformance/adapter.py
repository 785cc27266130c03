"""A NumPy-in, NumPy-out view of any candidate implementation.

The harness and the laws only ever handle NumPy arrays. :class:`Adapter` converts each
array argument with the candidate's ``from_numpy`` (when it has one), calls the candidate
(in a worker thread when a time limit is set), and reads every output back to host
NumPy memory with :func:`to_numpy`: DLPack first, ``__array__`` second, never Python lists.
Device arrays are copied to the host here and only here (``.cpu()`` for PyTorch,
``.get()`` for CuPy, or DLPack's ``device="cpu"`` request for anything else).

Outputs are returned as the reference's named tuples (``Calibration``, ``Moments``, ...),
so code written against :mod:`bogc_ref` runs unchanged on an adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._results import Calibration, Moments, Opinion, Posterior
from ..interface import STAGES
from .runtime import call_with_timeout

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

FUNCTIONS: tuple[str, ...] = tuple(f for stage in STAGES.values() for f in stage)


class OutputError(TypeError):
    """A candidate returned something that is not a readable array or result."""


def to_numpy(value: object, what: str = "output") -> np.ndarray:
    """Copy an array of any supported library to a host NumPy array.

    Order: NumPy itself; PyTorch (``detach().cpu()``, then DLPack); CuPy (``.get()``);
    any object with ``__dlpack__`` (asking for a CPU copy); any object with ``__array__``.
    Lists, tuples and scalars of Python numbers are refused: they hide a host round trip
    and lose the dtype.
    """
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, np.generic):
        return np.asarray(value).copy()
    root = type(value).__module__.split(".")[0]
    if root == "torch":
        tensor = value.detach()  # type: ignore[attr-defined]
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        return np.from_dlpack(tensor.contiguous()).copy()
    if root == "cupy":
        return np.asarray(value.get())  # type: ignore[attr-defined]
    if hasattr(value, "__dlpack__"):
        try:
            return np.from_dlpack(value, device="cpu", copy=True)
        except (BufferError, TypeError, ValueError, RuntimeError):
            pass
    if hasattr(value, "__array__"):
        return np.asarray(value).copy()
    raise OutputError(
        f"{what}: got {type(value).__name__}, which is neither a DLPack nor an __array__ "
        "object (Python lists and scalars are not accepted)"
    )


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


def convert_result(function: str, result: object) -> Any:
    """The candidate's result as the reference's named tuple of NumPy arrays."""
    kind = RESULT_TYPES[function]
    if kind is None:
        return to_numpy(result, f"{function} result")
    fields = kind._fields
    if isinstance(result, tuple | list) and len(result) != len(fields):
        raise OutputError(
            f"{function}: returned {len(result)} values, expected {len(fields)} {fields}"
        )
    values = [
        to_numpy(_field(result, field, i, function), f"{function}.{field}")
        for i, field in enumerate(fields)
    ]
    return kind(*values)


def implementation_version(impl: object) -> str:
    """``__version__`` of the object, or of the module that defines it; "unknown" otherwise."""
    for source in (impl, type(impl)):
        version = getattr(source, "__version__", None)
        if isinstance(version, str):
            return version
    module = getattr(impl, "__module__", None) or type(impl).__module__
    import sys

    version = getattr(sys.modules.get(str(module).split(".")[0]), "__version__", None)
    return version if isinstance(version, str) else "unknown"


class Adapter:
    """NumPy view of a candidate: ``adapter.calibrate(mean, var, ...)`` etc.

    Args:
        impl: the candidate (module or object with the interface's function names).
        name: label used in reports.
        spec: how to get the candidate back (``--impl`` or ``--backend`` text), used in
            reproduction snippets.
        timeout: seconds per call (None: no limit).
    """

    def __init__(self, impl: object, *, name: str, spec: str, timeout: float | None = None) -> None:
        self.impl = impl
        self.name = name
        self.spec = spec
        self.timeout = timeout
        self.version = implementation_version(impl)
        converter = getattr(impl, "from_numpy", None)
        self._from_numpy: Callable[[np.ndarray], object] | None = (
            converter if callable(converter) else None
        )

    def provides(self, function: str) -> bool:
        """Whether the candidate has a callable attribute ``function``."""
        return callable(getattr(self.impl, function, None))

    def stages(self) -> dict[str, tuple[str, ...]]:
        """The functions present, by stage (stages with none are left out)."""
        found = {
            stage: tuple(f for f in names if self.provides(f)) for stage, names in STAGES.items()
        }
        return {stage: names for stage, names in found.items() if names}

    def convert_input(self, value: object) -> object:
        """``from_numpy`` on plain arrays; everything else passes unchanged.

        A masked array reaches the candidate's function as it is, so that the function
        itself must refuse it or honour its mask (``from_numpy`` would drop the mask).
        """
        if (
            isinstance(value, np.ndarray)
            and not isinstance(value, np.ma.MaskedArray)
            and self._from_numpy is not None
        ):
            return self._from_numpy(value)
        return value

    def call(self, function: str, *args: object, **kwargs: object) -> Any:
        """Call ``function`` with NumPy inputs; return the reference's result type."""
        target = getattr(self.impl, function, None)
        if not callable(target):
            raise AttributeError(f"{self.name} does not provide {function}")
        native_args = [self.convert_input(a) for a in args]
        native_kwargs = {k: self.convert_input(v) for k, v in kwargs.items()}

        def run() -> Any:
            return convert_result(function, target(*native_args, **native_kwargs))

        return call_with_timeout(run, self.timeout, f"{self.name}.{function}")

    def __getattr__(self, function: str) -> Callable[..., Any]:
        if function in FUNCTIONS:
            return lambda *args, **kwargs: self.call(function, *args, **kwargs)
        raise AttributeError(function)

    def __repr__(self) -> str:
        return f"Adapter(name={self.name!r}, spec={self.spec!r}, timeout={self.timeout!r})"
