"""Cholesky factorisation with the project's documented jitter policy.

Policy (docs: "Numerical stability"): factor ``A`` as is; if that fails, add
``j * mean(diag(A)) * I`` for ``j`` in :data:`JITTER_STEPS` in turn and keep the first
that factors. If none does, raise :class:`numpy.linalg.LinAlgError` naming the
argument, its shape and its smallest eigenvalue. The relative steps stop at 1e-6:
beyond that the jitter would change the answer by more than any tolerance of the
conformance suite, so failing loudly is the honest outcome. A matrix with a non-finite
entry (a float64 overflow of a computed precision) is a ValueError naming the arguments.

Covariances given by the caller (``w_cov``) must be positive semi-definite. The test is
the same ladder (:func:`psd_factor`, :func:`require_psd`): a covariance that factors,
possibly after the jitter, is accepted; the zero matrix (a point mass) is accepted with
the zero factor; anything else is a LinAlgError (a ValueError subclass) naming the
argument, the matrix index and the smallest eigenvalue. The eigenvalues are computed
only on that failure path.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dpotrf

from ._validation import FloatArray, memory_named

JITTER_STEPS = (1e-12, 1e-10, 1e-8, 1e-6)


def cholesky_jittered(a: FloatArray, name: str) -> FloatArray:
    """Lower Cholesky factor ``L`` of the symmetric matrix ``a`` (``L @ L.T = a + jitter*I``)."""
    if not np.all(np.isfinite(a)):
        raise ValueError(
            f"{name}: a matrix of shape {a.shape} with non-finite entries (float64 overflow); "
            "rescale the inputs"
        )
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


def psd_factor(a: FloatArray, name: str) -> FloatArray:
    """A lower factor ``L`` (``L @ L.T = a`` up to the jitter) of a covariance ``a``.

    :func:`cholesky_jittered`; the zero matrix gets the zero factor; a matrix that is not
    positive semi-definite is a :class:`numpy.linalg.LinAlgError` (a ValueError) naming
    ``name`` and its smallest eigenvalue.
    """
    try:
        return cholesky_jittered(a, name)
    except np.linalg.LinAlgError:
        if not np.any(a):
            return np.zeros_like(a)
        smallest = float(np.linalg.eigvalsh(a)[0])
        raise np.linalg.LinAlgError(
            f"{name}: matrix of shape {a.shape} is not positive semi-definite (smallest "
            f"eigenvalue {smallest:.3g}, beyond the jitter of {JITTER_STEPS[-1]:g} x mean "
            "diagonal)"
        ) from None


def require_psd(a: FloatArray, name: str) -> None:
    """ValueError unless every trailing square matrix of ``a`` is a covariance (see
    :func:`psd_factor`); ``a`` is finite and symmetric (checked before).

    A diagonal matrix is one with no nonzero entry off its diagonal; it is a covariance
    exactly when its diagonal is non-negative, which costs one counting pass. Any other
    matrix is factored by Cholesky (LAPACK ``potrf``, one call per matrix of order
    :data:`LAPACK_ORDER` or more, else one batched call); per-matrix checks with the
    jitter ladder run only when that fails.
    """
    a64 = a.astype(np.float64, copy=False)
    if a64.size == 0:
        return
    diagonal = np.diagonal(a64, axis1=-2, axis2=-1)
    if np.count_nonzero(a64) == np.count_nonzero(diagonal) and np.all(diagonal >= 0):
        return
    stack = a64.reshape(-1, *a64.shape[-2:])
    with memory_named(name, a.shape):
        if _all_factor(stack):
            return
    for index, matrix in enumerate(stack):
        where = f"{name}[{index}]" if a64.ndim > 2 else name
        try:
            psd_factor(matrix, where)
        except np.linalg.LinAlgError as exc:
            raise np.linalg.LinAlgError(f"{exc} (argument shape {a.shape})") from None


#: From this order on, each matrix is factored by its own LAPACK call (SciPy's ``dpotrf``
#: took 9-11 ms at order 1025 where ``numpy.linalg.cholesky`` took 15-18 ms); below it
#: one batched NumPy call saves the per-call overhead of a stack of small matrices.
LAPACK_ORDER = 128


def _all_factor(stack: FloatArray) -> bool:
    """True when every matrix of the stack (S, n, n) has a Cholesky factor as it is."""
    if stack.shape[-1] < LAPACK_ORDER:
        try:
            np.linalg.cholesky(stack)
        except np.linalg.LinAlgError:
            return False
        return True
    return all(dpotrf(matrix, lower=1, clean=0)[1] == 0 for matrix in stack)
