"""Runs contract cases on the reference and on each backend and gives each call its class.

``check(case, backend)`` is what the tests and ``report.py`` call. ``backend`` is
"numpy" (the reference module itself), "torch" or "cupy" (``get_backend(name)``, fed
the same NumPy inputs; a backend's answer must match the reference's answer to the
same call, and what the reference refuses it must refuse).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
from contract_cases import Case
from contract_verdicts import Outcome, judge, run

import bogc_ref


def _torch_to_numpy(x: Any) -> np.ndarray:
    import torch

    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        return np.asarray(t.numpy())
    return np.asarray(x)


def _cupy_to_numpy(x: Any) -> np.ndarray:
    import cupy

    return cupy.asnumpy(x) if isinstance(x, cupy.ndarray) else np.asarray(x)


def available(backend: str) -> bool:
    """Whether ``backend`` can run here."""
    if backend == "numpy":
        return True
    if importlib.util.find_spec(backend) is None:
        return False
    from bogc_ref.backends import available_backends

    return backend in available_backends()


_IMPLS: dict[str, Any] = {}


def implementation(backend: str) -> tuple[Any, Any]:
    """(the object with the spec functions, its array-to-NumPy conversion)."""
    if backend == "numpy":
        return bogc_ref, np.asarray
    if backend not in _IMPLS:
        from bogc_ref.backends import get_backend

        _IMPLS[backend] = get_backend(backend)
    convert = _torch_to_numpy if backend == "torch" else _cupy_to_numpy
    return _IMPLS[backend], convert


def _reference(case: Case) -> Outcome:
    return run(case, bogc_ref, np.asarray)


def check(case: Case, backend: str) -> Outcome:
    """The outcome class of ``case`` on ``backend``."""
    if backend == "numpy":
        outcome = _reference(case)
        expected = None
        if case.base is not None and outcome.result is not None:
            base = run(Case(case.function, case.base), bogc_ref, np.asarray)
            expected = base.result
        return judge(case, outcome, expected)
    impl, convert = implementation(backend)
    if not hasattr(impl, case.function):
        return Outcome("not_provided", f"{backend} has no {case.function}")
    reference = _reference(case)
    outcome = run(case, impl, convert)
    expected = reference.result if case.parity else None
    verdict = judge(case, outcome, expected, half_ok=True)
    refused = reference.result is None and reference.cls == "clear_error"
    accepted = verdict.cls in ("ok", "runtime_warning")
    if accepted and refused and case.expect not in ("valid", "invalid_or_half"):
        # the reference refused it: so must the backend (half precision is torch's own)
        return Outcome("invalid_accepted", f"reference refused: {reference.detail}")
    if verdict.cls == "clear_error" and reference.result is not None:
        return Outcome("valid_rejected", f"the reference accepts it; {outcome.detail}")
    return verdict
