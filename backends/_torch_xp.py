"""PyTorch as the array namespace ``xp`` of ``_xp_stage1`` (a tiny adapter).

``_xp_stage1`` is written against the NumPy namespace; torch spells a few calls
differently (``cat(dim=)``, ``diagonal(dim1=, dim2=)``, ``permute``, ``clamp``) and
creates arrays on a device. :class:`TorchNamespace` maps exactly the calls that module
makes, on one device; everything else (``@``, ``.T``, ``reshape``, indexing,
``sum``/``mean`` with ``axis``) already works on tensors. Optional hooks of ``_xp_stage1``
take torch's own kernels: ``cholesky_or_none`` (``torch.linalg.cholesky_ex``, no exception
on failure), ``not_all_finite`` (``_torch_common``'s), ``take_host`` (``index_select``
with NumPy indices moved to the device once) and, off the CPU only, ``row_softmax``
(``torch.softmax``).
"""

from __future__ import annotations

from typing import Any

import torch

from ._torch_common import not_all_finite


class TorchNamespace:
    """The NumPy-namespace functions ``_xp_stage1`` calls, on tensors on ``device``."""

    float64 = torch.float64
    einsum = staticmethod(torch.einsum)
    isfinite = staticmethod(torch.isfinite)
    not_all_finite = staticmethod(not_all_finite)
    exp = staticmethod(torch.exp)
    zeros_like = staticmethod(torch.zeros_like)
    swapaxes = staticmethod(torch.swapaxes)
    stack = staticmethod(torch.stack)
    linalg = torch.linalg

    @staticmethod
    def asarray(a: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``numpy.asarray`` of a tensor (a cast when ``dtype`` differs)."""
        return a.to(dtype)

    @staticmethod
    def cholesky_or_none(a: torch.Tensor) -> torch.Tensor | None:
        """The lower Cholesky factor, or None when ``a`` is not positive definite.

        ``cholesky_ex``: no exception; its status costs one device-to-host sync. For a
        stack of matrices, the stack of factors, or None when any matrix is not.
        """
        chol, info = torch.linalg.cholesky_ex(a)
        return None if bool(info.any()) else chol

    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type != "cpu":
            # torch's fused kernel saves launches on a GPU; on the CPU, over rows of a few
            # classes, it is about 3x slower than the five operations of the formula.
            self.row_softmax = _row_softmax

    @staticmethod
    def ascontiguousarray(a: torch.Tensor) -> torch.Tensor:
        """``numpy.ascontiguousarray``."""
        return a.contiguous()

    @staticmethod
    def concatenate(tensors: list[torch.Tensor], axis: int) -> torch.Tensor:
        """``numpy.concatenate``."""
        return torch.cat(tensors, dim=axis)

    @staticmethod
    def diagonal(a: torch.Tensor, axis1: int, axis2: int) -> torch.Tensor:
        """``numpy.diagonal`` (the diagonal axis last)."""
        return torch.diagonal(a, dim1=axis1, dim2=axis2)

    @staticmethod
    def transpose(a: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
        """``numpy.transpose`` with explicit axes."""
        return a.permute(axes)

    @staticmethod
    def amax(a: torch.Tensor, axis: int) -> torch.Tensor:
        """``numpy.amax`` over one axis."""
        return torch.amax(a, dim=axis)

    @staticmethod
    def maximum(a: torch.Tensor, floor: float) -> torch.Tensor:
        """``numpy.maximum`` against a scalar."""
        return a.clamp(min=floor)

    def take_host(self, a: torch.Tensor, indices: Any, axis: int) -> torch.Tensor:
        """``numpy.take`` along one axis with host (NumPy) ``indices``."""
        indices = device_indices(indices, self.device)
        if axis in (-1, a.ndim - 1) and a.numel() == a.shape[-1]:
            # one row: a 1-D gather (about 2.5x faster than along the last of several axes)
            return a.reshape(-1).index_select(0, indices).reshape(*a.shape[:-1], -1)
        return a.index_select(axis, indices)

    def ones(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """``numpy.ones`` on this namespace's device."""
        return torch.ones(shape, dtype=dtype, device=self.device)

    def zeros(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """``numpy.zeros`` on this namespace's device."""
        return torch.zeros(shape, dtype=dtype, device=self.device)

    def eye(self, n: int, dtype: torch.dtype) -> torch.Tensor:
        """``numpy.eye`` on this namespace's device."""
        return torch.eye(n, dtype=dtype, device=self.device)


class TorchLinalg:
    """The ``scipy.linalg`` call ``_xp_stage1`` makes (``sla``), on tensors."""

    @staticmethod
    def solve_triangular(a: torch.Tensor, b: torch.Tensor, lower: bool) -> torch.Tensor:
        """``scipy.linalg.solve_triangular(a, b, lower=lower)``."""
        return torch.linalg.solve_triangular(a, b, upper=not lower)

    @staticmethod
    def cholesky_inverse(chol: torch.Tensor) -> torch.Tensor:
        """A⁻¹ from the lower Cholesky factor of A (LAPACK ``potri``), row-major.

        torch returns it column-major and exactly symmetric (one triangle mirrored), so its
        transpose is the same matrix in row-major order, without a copy.
        """
        return torch.cholesky_inverse(chol).mT


def _row_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis (torch's fused kernel)."""
    return torch.softmax(logits, dim=-1)


def device_indices(indices: Any, device: torch.device) -> torch.Tensor:
    """A NumPy index array as a long tensor on ``device``, cached by the array (the callers
    pass arrays from ``functools.lru_cache``: the same object for the same index)."""
    key = (id(indices), device)
    hit = _INDICES.get(key)
    if hit is None or hit[0] is not indices:
        if len(_INDICES) >= _MAX_CACHED_INDICES:  # arrays no longer cached upstream
            _INDICES.clear()
        hit = (indices, torch.as_tensor(indices, dtype=torch.long, device=device))
        _INDICES[key] = hit
    return hit[1]


_INDICES: dict[tuple[int, torch.device], tuple[Any, torch.Tensor]] = {}
_MAX_CACHED_INDICES = 256


def namespace_of(t: torch.Tensor) -> Any:
    """The :class:`TorchNamespace` on ``t``'s device."""
    return TorchNamespace(t.device)
