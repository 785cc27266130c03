"""Errors identical to the reference's, without re-implementing its checks.

Backends validate in two steps. Structural checks (dtypes, shapes, scalar arguments)
run the reference's own validation helpers on *stubs*: zero-strided NumPy arrays with
the argument's dtype and shape, which cost nothing; they read nothing else, so they run
once per call structure (:data:`PASSED`). Value checks (NaN, infinities,
negative variances, symmetry, label range) are one fused reduction on the device whose
single boolean comes back to the host; only when it is set are the arguments copied to
the host and the reference function run on them, which raises the reference's error,
naming the argument, what is wrong, the first bad index and the shape.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping
from typing import Any, NoReturn, Protocol

import numpy as np

from bogc_ref._linalg import require_psd
from bogc_ref._validation import plain_array

from ._checks import Checked, Stubs

#: NumPy dtype kinds an array library can hold (bool, integers, floats, complex).
_NUMERIC_KINDS = "biufc"


def host_array(x: object, name: str) -> np.ndarray:
    """A host value as a NumPy array a device library can copy, or TypeError naming ``name``.

    Masked arrays are refused like the reference does (``plain_array``); ``np.matrix``
    becomes its plain array; negative strides are copied away; unsigned integers wider
    than 8 bits become int64 (values beyond int64 clipped to its maximum, which is still
    out of any label range, so the range check reports them); a dtype no array library
    holds (object, strings, long double) is a TypeError naming the argument.
    """
    arr = plain_array(x, name)
    if (
        arr.dtype.kind not in _NUMERIC_KINDS
        or arr.dtype.itemsize > 16
        or (arr.dtype.kind == "f" and arr.dtype.itemsize > 8)
    ):
        raise TypeError(
            f"{name}: expected a float32 or float64 array (integer ones for labels), got "
            f"dtype {arr.dtype} (shape {arr.shape})"
        )
    if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:
        if arr.dtype.itemsize == 8:  # only uint64 holds values beyond int64
            arr = np.minimum(arr, np.uint64(np.iinfo(np.int64).max))
        arr = arr.astype(np.int64)
    if any(s < 0 for s in arr.strides):
        arr = arr.copy(order="C")  # fresh strides (ascontiguousarray keeps them on length 1)
    return arr


@functools.lru_cache(maxsize=256)
def stub(dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray:
    """A read-only array of ``shape`` and ``dtype`` holding zeros, with no memory behind it
    (read-only, so one per (dtype, shape) is shared: building it cost more than the
    structural checks that read it)."""
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)


def replay(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> NoReturn:
    """Run the reference ``func`` on host copies so that it raises its own error.

    Called only after a backend's fused check found a bad value. If the reference does
    not raise, the two checks disagree: that is a backend bug, reported as RuntimeError.
    """
    func(*args, **kwargs)
    raise RuntimeError(
        f"internal error: the backend's value check for {func.__name__} flagged the input "
        "but the reference accepted it; please report this with the input"
    )


def replay_on_host(
    func: Callable[..., Any],
    args: tuple[object, ...],
    kwargs: dict[str, object],
    to_host: Callable[[object], object],
) -> NoReturn:
    """:func:`replay` on host copies (``to_host``) of the device arguments."""
    replay(func, tuple(to_host(a) for a in args), {k: to_host(v) for k, v in kwargs.items()})


def check_vouched_covariance(
    reference: Callable[..., Any],
    args: tuple[object, ...],
    check_cov: bool,
    negative_variance: Callable[[], bool],
    to_host: Callable[[object], object],
) -> None:
    """With ``check_cov=False``, a negative variance in the results may come from a
    covariance that is not positive semi-definite: the reference then checks ``w_cov`` on
    host copies (``check_cov=True``) and raises naming it; a valid one (a rounding below
    zero) returns. A NaN in the results is handled by the backends' overflow path, which
    replays the reference with the same ``check_cov``."""
    if not check_cov and negative_variance():
        reference(*(to_host(a) for a in args), check_cov=True)


class ArrayOps(Protocol):
    """The few array operations a backend lends to :func:`validate`."""

    def stub(self, a: Any) -> np.ndarray:
        """A zero-cost stub with ``a``'s shape and the dtype the reference would see."""
        ...

    def host(self, x: object) -> object:
        """A host NumPy copy of a device array; other values unchanged."""
        ...

    def not_finite(self, a: Any) -> Any:
        """Some entry of ``a`` is NaN or infinite: a 0-d device bool, or a Python bool where
        the test was answered on the host."""
        ...

    def not_symmetric(self, a: Any) -> Any:
        """0-d device bool: the reference's symmetry test fails for ``a``."""
        ...

    def isnan(self, a: Any) -> Any:
        """Elementwise NaN test."""
        ...

    def any_set(self, flags: list[Any]) -> bool:
        """One device-to-host transfer: True if any flag (0-d bool, or Python bool) is set."""
        ...

    def same_dtype(self, arrays: Mapping[str, Any]) -> None:
        """TypeError when arrays that must share a dtype do not."""
        ...

    def maybe_not_psd(self, a: Any) -> bool:
        """False when every trailing matrix of ``a`` factors by Cholesky as it is (one
        batched factorisation, one scalar read back); True sends ``a`` to the host."""
        ...


class StructureCache:
    """What a call's structure alone decides (its structural checks passed, and what they
    found), by a hashable key of that structure; at most ``size`` entries (cleared when
    full). A training loop calls with one structure every step: checks on stubs, which
    read nothing but shapes, dtypes and scalar arguments, would give the same answer."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[Hashable, Any] = {}

    def get(self, key: Hashable | None) -> Any:
        """The entry under ``key``, or None (also for ``key`` None: no structure key)."""
        return None if key is None else self._entries.get(key)

    def put(self, key: Hashable | None, value: Any) -> None:
        """Remember ``value`` under ``key`` (nothing for ``key`` None)."""
        if key is None:
            return
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = value

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def hashable_or_none(key: Hashable) -> Hashable | None:
    """``key`` if it can be hashed (it holds no array), else None."""
    try:
        hash(key)
    except TypeError:
        return None
    return key


def typed(values: Mapping[Any, object]) -> tuple[tuple[Any, type, object], ...]:
    """Scalar arguments with their types, for a structure key: ``True`` is not ``1.0``,
    although they compare (and hash) equal, and the checks tell them apart."""
    return tuple((name, type(v), v) for name, v in sorted(values.items()))


def structure_key(
    structure: Callable[..., Any], arrays: Mapping[str, Any], check_dtypes: bool
) -> Hashable | None:
    """What :func:`validate`'s structural checks read: the check (a function, or a partial
    with its scalar arguments), each array's name, shape and dtype; None when some scalar
    argument cannot be hashed."""
    ident: Hashable = structure
    if isinstance(structure, functools.partial):
        ident = (structure.func, typed(dict(enumerate(structure.args))), typed(structure.keywords))
    layout = tuple((name, tuple(a.shape), a.dtype) for name, a in arrays.items())
    return hashable_or_none((ident, layout, check_dtypes))


#: Structures whose checks on stubs passed, with their :class:`Checked` (module constants the
#: checks read, such as the Monte Carlo chunk size, are taken as fixed for the process).
PASSED = StructureCache(256)


def value_flags(
    ops: ArrayOps, arrays: Mapping[str, Any], checked: Checked, present: Any = None
) -> list[Any]:
    """The value checks ``checked`` describes, as 0-d device bools (none read back yet) or
    Python bools (tests a backend answers on the host).

    ``present``: a bool array broadcasting against the ``nonnegative`` array (sources
    present), or None for all.
    """
    flags = [ops.not_finite(arrays[name]) for name in checked.finite]
    if checked.symmetric is not None:
        flags.append(ops.not_symmetric(arrays[checked.symmetric]))
    if checked.n_classes > 0:
        labels = arrays["labels"]
        flags.append(((labels < 0) | (labels >= checked.n_classes)).any())
    if checked.nonnegative is not None:
        values = arrays[checked.nonnegative]
        bad = ops.isnan(values) | (values < 0)
        flags.append((bad if present is None else bad & present).any())
    return flags


def validate(
    ops: ArrayOps,
    reference: Callable[..., Any],
    args: tuple[object, ...],
    kwargs: dict[str, object],
    arrays: Mapping[str, Any],
    structure: Callable[[Stubs], Checked],
    *,
    present: Callable[[], Any] | None = None,
    check_dtypes: bool = True,
) -> Checked:
    """Structural checks on stubs, then one fused value check; the reference's error on failure.

    ``structure`` gets stubs of ``arrays`` (once per structure: see :data:`PASSED`); if it
    (or the dtype test) raises, the reference runs on host copies of ``args``/``kwargs``
    and raises its own error when it sees one (otherwise the structural error propagates).
    Then the value checks of the returned :class:`Checked` run as one reduction and one
    scalar transfer, and only when one is set does :func:`replay_on_host` run the
    reference. A covariance that must be positive semi-definite (``checked.psd``) is
    factored on the device; only when that fails does the reference's test run on a host
    copy. ``present`` gives the presence mask for the ``nonnegative`` check (None: every
    source present).
    """
    key = structure_key(structure, arrays, check_dtypes)
    checked = PASSED.get(key)
    if checked is None:
        try:
            checked = structure({name: ops.stub(a) for name, a in arrays.items()})
            if check_dtypes and checked.same_dtype:
                ops.same_dtype({name: arrays[name] for name in checked.same_dtype})
        except (TypeError, ValueError):
            reference(*(ops.host(a) for a in args), **{k: ops.host(v) for k, v in kwargs.items()})
            raise
        PASSED.put(key, checked)
    where = present() if present is not None and checked.nonnegative is not None else None
    if ops.any_set(value_flags(ops, arrays, checked, where)):
        replay_on_host(reference, args, kwargs, ops.host)
    if checked.psd is not None and ops.maybe_not_psd(arrays[checked.psd]):
        # The reference's own test (jitter ladder, zero matrix): raises or accepts.
        host = ops.host(arrays[checked.psd])
        require_psd(np.asarray(host), checked.psd)
    return checked
