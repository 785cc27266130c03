r"""BOGC as a ``torchjd`` Aggregator, for Jacobians whose rows are per-sample, per-source gradients.

A torchjd Aggregator maps a Jacobian matrix J (m, n), one row per loss, to one update (n,).
BOGC needs, for each source, a *distribution* of its gradient: a mean and a per-coordinate
variance. A Jacobian with one row per source carries the means only, so BOGC fits the
interface only when the rows are the gradients of per-sample, per-source losses, in the
order ``row = b * M + m`` (sample-major), i.e. the Jacobian of ``losses.flatten()`` for
losses of shape (B, M). Then

.. math::

    J \to G \in \mathbb R^{B\times M\times n}, \qquad
    (\bar g, v) = \texttt{empirical\_moments}(G), \qquad
    \texttt{BOGC}(J) = \texttt{calibrate}(\bar g, v).\texttt{grad},

with :math:`v_{mp} = +\infty` where every :math:`G_{bmp} = 0` (source m does not reach
coordinate p: vacuous, not dogmatic). This is the parameter-level method of
:mod:`bogc_ref.training.parameters`
expressed through torchjd (e.g. ``torchjd.autojac.backward(losses.flatten())`` then
``torchjd.autojac.jac_to_grad(params, BOGC(n_sources=M))``).

Limits, which is why this adapter is not the main integration:

- the (B, M) layout of the rows is a convention the Jacobian does not carry; the adapter
  checks divisibility but cannot check the order;
- the Jacobian has B·M rows over all parameters (B·M·n numbers), where torchjd's Gramian-based
  engine (``autogram``) avoids forming it: BOGC needs per-coordinate variances, not the
  Gramian, so it cannot use that engine;
- the representation-level method (head posteriors, per-sample calibration of dL/dh) needs
  the heads, labels and representation, none of which an Aggregator receives.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torchjd.aggregation import Aggregator

from ._backend import reached_moments, spec_functions

__all__ = ["BOGC"]


class BOGC(Aggregator):
    """Aggregate a (B·M, n) Jacobian of per-sample, per-source losses with BOGC.

    Args:
        n_sources: M, the number of sources; rows are ordered ``b * M + m``.
        **calibrate_kwargs: passed to ``calibrate`` (mode, tau, power, prior_weight, normalize).
    """

    def __init__(self, n_sources: int, **calibrate_kwargs: Any) -> None:
        super().__init__()
        if isinstance(n_sources, bool) or not isinstance(n_sources, int) or n_sources < 1:
            raise ValueError(f"n_sources: expected an int >= 1, got {n_sources!r}")
        self.n_sources = n_sources
        self.calibrate_kwargs = calibrate_kwargs

    def forward(self, matrix: Tensor, /) -> Tensor:
        rows, cols = matrix.shape
        if rows % self.n_sources or rows // self.n_sources < 2:
            raise ValueError(
                f"matrix: expected B*M rows with M = {self.n_sources} and B >= 2 "
                f"(row = b*M + m), got shape {tuple(matrix.shape)}"
            )
        grads = matrix.reshape(rows // self.n_sources, self.n_sources, cols)
        mean, var = reached_moments(grads)
        result: Tensor = spec_functions().calibrate(mean, var, **self.calibrate_kwargs).grad
        return result.to(dtype=matrix.dtype, device=matrix.device)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in sorted(self.calibrate_kwargs.items()))
        return f"{type(self).__name__}(n_sources={self.n_sources}{extra})"
