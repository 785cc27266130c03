"""Finding the implementations to verify: ``--impl MODULE:ATTR | FILE.py:ATTR`` and ``--backend``.

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
    is_file = target.endswith(".py") or "/" in target or "\\" in target
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


def open_candidate(spec: str, timeout: float | None = None) -> Any:
    """An :class:`~bogc_ref.conformance.adapter.Adapter` from a spec string.

    ``"backend:NAME"`` or ``"backend:NAME@DEVICE"`` for a bundled backend,
    ``"impl:MODULE:ATTR"`` or ``"impl:FILE.py:ATTR"`` for any other implementation.
    Reproduction snippets in the report use this form.
    """
    from .adapter import Adapter

    kind, _, rest = spec.partition(":")
    if kind == "backend":
        name, _, device = rest.partition("@")
        obj = load_backend(name, device or None)
        label = name if not device else f"{name}@{device}"
        return Adapter(obj, name=label, spec=spec, timeout=timeout)
    if kind == "impl":
        obj, label = load_impl(rest)
        return Adapter(obj, name=label, spec=spec, timeout=timeout)
    raise UsageError(f"candidate spec {spec!r}: expected 'backend:NAME' or 'impl:MODULE:ATTR'")
