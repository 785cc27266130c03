"""Finding the implementations to verify: ``--impl MODULE:ATTR | FILE.py:ATTR`` and ``--backend``.

A candidate is named by a spec string, ``"backend:NAME[@DEVICE]"`` or
``"impl:MODULE[:ATTR]"`` / ``"impl:FILE.py[:ATTR]"``. :func:`check_spec` runs in the
harness and refuses what it can tell is wrong without importing anything (an unknown
backend, a file that does not exist) and makes file paths absolute;
:func:`load_candidate` runs in the candidate's worker process and imports it;
:func:`open_candidate` starts that process and returns the
:class:`~bogc_ref.conformance.adapter.Adapter` that talks to it.

``--backend numpy`` is the reference module :mod:`bogc_ref` itself. Other backends come
from ``bogc_ref.backends.get_backend(name, device=None)`` and
``bogc_ref.backends.available_backends()`` when that registry exists. Every way of naming
something that does not exist raises :class:`UsageError` with a one-line message (exit 2).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bogc_ref


class UsageError(Exception):
    """A bad command line: unknown backend, a module or attribute that does not exist."""


def _load_file(path: Path) -> Any:
    if not path.is_file():
        raise UsageError(f"--impl: file {str(path)!r} does not exist")
    module_name = f"_bogc_candidate_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"--impl: cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise UsageError(
            f"--impl: importing {str(path)!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def _load_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise UsageError(f"--impl: no module named {name!r} ({exc})") from exc
    except Exception as exc:
        raise UsageError(f"--impl: importing {name!r} failed: {type(exc).__name__}: {exc}") from exc


def load_impl(spec: str) -> tuple[Any, str]:
    """The object named by ``MODULE[:ATTR]`` or ``FILE.py[:ATTR]``, and a display name.

    ``ATTR`` may be dotted; a class is instantiated without arguments; without ``ATTR`` the
    module itself is the implementation.
    """
    if not spec:
        raise UsageError("--impl: empty; expected MODULE:ATTR or FILE.py:ATTR")
    target, _, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if not target:
        raise UsageError(f"--impl: {spec!r} has no module or file before ':'")
    is_file = _is_file(target)
    obj = _load_file(Path(target).expanduser()) if is_file else _load_module(target)
    for part in [p for p in attr.split(".") if p]:
        if not hasattr(obj, part):
            raise UsageError(f"--impl: {target!r} has no attribute {part!r} (from {spec!r})")
        obj = getattr(obj, part)
    if isinstance(obj, type):
        try:
            obj = obj()
        except Exception as exc:
            raise UsageError(
                f"--impl: class {attr!r} could not be created without arguments: {exc}"
            ) from exc
    return obj, spec


def _registry() -> tuple[Callable[..., Any], Callable[[], Any]] | None:
    try:
        module = importlib.import_module("bogc_ref.backends")
    except ImportError:
        return None
    get = getattr(module, "get_backend", None)
    available = getattr(module, "available_backends", None)
    if not callable(get) or not callable(available):
        return None
    return get, available


def available_backends() -> list[str]:
    """``numpy`` plus whatever the backend registry reports available here."""
    names = ["numpy"]
    registry = _registry()
    if registry is not None:
        for name in registry[1]():
            if str(name) not in names:
                names.append(str(name))
    return names


def load_backend(name: str, device: str | None = None) -> Any:
    """The backend object for ``name`` (``numpy``: the reference module)."""
    if name == "numpy":
        if device not in (None, "cpu"):
            raise UsageError(f"--device: the numpy backend runs on the cpu only, got {device!r}")
        return bogc_ref
    registry = _registry()
    if registry is None:
        raise UsageError(
            f"--backend: {name!r} is not available: the backend registry "
            "bogc_ref.backends.get_backend is not installed in this build"
        )
    get, available = registry
    if name not in [str(n) for n in available()]:
        raise UsageError(
            f"--backend: {name!r} is not available on this machine "
            f"(available: {', '.join(available_backends())})"
        )
    try:
        return get(name, device=device)
    except Exception as exc:
        raise UsageError(
            f"--backend: {name!r} could not be created (device {device!r}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _split(spec: str) -> tuple[str, str]:
    kind, _, rest = spec.partition(":")
    if kind not in ("backend", "impl"):
        raise UsageError(f"candidate spec {spec!r}: expected 'backend:NAME' or 'impl:MODULE:ATTR'")
    return kind, rest


def check_spec(spec: str) -> str:
    """``spec`` with a file path made absolute, after the checks that need no import.

    Raises :class:`UsageError` for an unknown backend, a numpy backend on another device
    than the cpu, or an ``--impl`` file that does not exist.
    """
    kind, rest = _split(spec)
    if kind == "backend":
        name, _, device = rest.partition("@")
        if name == "numpy" and device not in ("", "cpu"):
            raise UsageError(f"--device: the numpy backend runs on the cpu only, got {device!r}")
        if name != "numpy" and _registry() is None:
            raise UsageError(
                f"--backend: {name!r} is not available: the backend registry "
                "bogc_ref.backends.get_backend is not installed in this build"
            )
        if name not in available_backends():
            raise UsageError(
                f"--backend: {name!r} is not available on this machine "
                f"(available: {', '.join(available_backends())})"
            )
        return spec
    if not rest:
        raise UsageError("--impl: empty; expected MODULE:ATTR or FILE.py:ATTR")
    target, _, attr = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not target:
        raise UsageError(f"--impl: {rest!r} has no module or file before ':'")
    if not _is_file(target):
        return spec
    path = Path(target).expanduser()
    if not path.is_file():
        raise UsageError(f"--impl: file {str(path)!r} does not exist")
    return f"impl:{path.resolve()}" + (f":{attr}" if attr else "")


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def load_candidate(spec: str) -> Any:
    """The candidate object a spec names (imports it: call this in the worker process)."""
    kind, rest = _split(spec)
    if kind == "backend":
        name, _, device = rest.partition("@")
        return load_backend(name, device or None)
    return load_impl(rest)[0]


def open_candidate(
    spec: str,
    timeout: float | None = None,
    *,
    memory_limit: int | str | None = "default",
    name: str | None = None,
) -> Any:
    """A started and loaded :class:`~bogc_ref.conformance.adapter.Adapter` for ``spec``.

    ``"backend:NAME"`` or ``"backend:NAME@DEVICE"`` for a bundled backend,
    ``"impl:MODULE:ATTR"`` or ``"impl:FILE.py:ATTR"`` for any other implementation.
    The candidate runs in its own process; ``timeout`` limits each call (seconds, None:
    none) and ``memory_limit`` its memory (bytes, None: none; "default": a fraction of
    this machine's memory, see :func:`~bogc_ref.conformance.runtime.default_memory_limit`).
    Close it with ``adapter.close()`` (or a ``with`` block); it is closed at exit otherwise.
    Reproduction snippets in the report use this function.
    """
    from .adapter import Adapter
    from .runtime import default_memory_limit

    limit = default_memory_limit() if memory_limit == "default" else memory_limit
    adapter = Adapter(
        check_spec(spec),
        name=name,
        timeout=timeout,
        memory_limit=limit if not isinstance(limit, str) else None,
    )
    adapter.start()
    try:
        adapter.wait_loaded()
    except BaseException:
        adapter.close()
        raise
    return adapter
