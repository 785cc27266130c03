"""Cholesky factorisation with the project's documented jitter policy.

Policy (docs: "Numerical stability"): factor ``A`` as is; if that fails, add
``j * mean(diag(A)) * I`` for ``j`` in :data:`JITTER_STEPS` in turn and keep the first
that factors. If none does, raise :class:`numpy.linalg.LinAlgError` naming the
argument, its shape and its smallest eigenvalue. The relative steps stop at 1e-6:
beyond that the jitter would change the answer by more than any tolerance of the
conformance suite, so failing loudly is the honest outcome.
"""

from __future__ import annotations

import numpy as np

from ._validation import FloatArray

JITTER_STEPS = (1e-12, 1e-10, 1e-8, 1e-6)


def cholesky_jittered(a: FloatArray, name: str) -> FloatArray:
    """Lower Cholesky factor ``L`` of the symmetric matrix ``a`` (``L @ L.T = a + jitter*I``)."""
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        pass
    diag = np.diagonal(a)
    scale = float(np.mean(np.abs(diag))) if diag.size else 0.0
    if scale > 0.0 and np.isfinite(scale):
        eye = np.eye(a.shape[-1], dtype=a.dtype)
        for step in JITTER_STEPS:
            try:
                return np.linalg.cholesky(a + (step * scale) * eye)
            except np.linalg.LinAlgError:
                continue
    smallest = float(np.linalg.eigvalsh(a)[0]) if np.all(np.isfinite(a)) else float("nan")
    raise np.linalg.LinAlgError(
        f"{name}: matrix of shape {a.shape} is not positive definite even after a relative "
        f"jitter of {JITTER_STEPS[-1]:g} x mean diagonal (smallest eigenvalue {smallest:.3g})"
    )
