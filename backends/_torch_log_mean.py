r"""Pass 1 of the relative mode without one logarithm per entry (CPU).

A positive, normal, finite float is :math:`v = 2^{k}\,f` with the unbiased exponent
:math:`k` and the significand :math:`f \in [1, 2)` read straight from its bits, so
:math:`\log v = k \ln 2 + \log f`. Over a block of :data:`BLOCK` entries the product of
the significands lies in :math:`[1, 2^{B})`, a normal float64, hence

.. math::

    \sum_{i \in \text{block}} \log v_i = \ln 2 \sum_i k_i + \log \prod_i f_i

costs one multiplication per entry and one logarithm per block. The exponents add up
exactly (integers); each product carries at most :math:`B` roundings of float64,
:math:`|\delta| \le B\,2^{-53} < 3\cdot10^{-14}` in its logarithm, far below the float32
and float64 tolerances of the calibrate stage (and usually smaller than the rounding of
a float32 ``log`` per entry, which this replaces).

The identity needs every entry to be a positive normal finite number, or ``+inf``: a
variance of ``+inf`` (λ = 0, no information) is left out of the mean, as the spec asks, by
giving it exponent 0 and significand 1 and not counting it. That holds exactly when the
raw bits, read as a signed integer, lie in ``[smallest normal, +inf]``: one ``amin`` and one
``amax`` per source, reduced in the same loop. A source that fails (0, a subnormal, NaN, a
negative number) makes :func:`mean_log_var_by_bits` report ``False`` and the caller falls
back to :func:`._torch_fusion.mean_log_var`, which handles every case. Sources masked out
by ``present`` do not count either way. (Training integrations mark the coordinates a
source does not reach with ``+inf``; without this they took both passes.)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

#: Entries per significand product: :math:`[1, 2)^{256} \subset [1, 2^{256})`, a normal float64.
BLOCK = 256


class BitLayout(NamedTuple):
    """Where the exponent and significand sit in a float's bits, as a same-size integer."""

    int_dtype: torch.dtype
    significand_bits: int
    bias: int
    smallest_normal: int  # bits of the smallest positive normal number
    positive_inf: int  # bits of +inf


LAYOUTS = {
    torch.float32: BitLayout(torch.int32, 23, 127, 0x0080_0000, 0x7F80_0000),
    torch.float64: BitLayout(torch.int64, 52, 1023, 0x0010_0000_0000_0000, 0x7FF0_0000_0000_0000),
}


class LogVarMean(NamedTuple):
    r""":math:`\overline{\log var}` (..., 1) in float64, and (0-d) whether it is valid."""

    mean: torch.Tensor
    usable: torch.Tensor


def mean_log_var_by_bits(
    var: torch.Tensor, present: torch.Tensor | None, infinite: bool = True
) -> LogVarMean:
    r""":math:`\overline{\log var}`, the mean of :math:`\log v_{md}` over the finite entries of
    the present sources, for ``var`` (..., M, D) in float32 or float64, ``present`` (..., M)
    or None; 0 where there are none.

    ``usable`` is False if a present source holds an entry that is neither a positive normal
    finite number nor ``+inf``; ``mean`` is then meaningless (use
    :func:`._torch_fusion.mean_log_var`). ``infinite=False``: ``+inf`` makes it unusable too,
    and the masks that leave ``+inf`` out are not formed (three fewer passes over ``var``:
    about 10% of a CPU ``calibrate`` at M = 3, D = 2^24); the caller tries this first.
    """
    layout = LAYOUTS[var.dtype]
    bits = var.view(layout.int_dtype)
    largest = bits.amax(dim=-1)
    usable = (bits.amin(dim=-1) >= layout.smallest_normal) & (
        largest <= layout.positive_inf if infinite else largest < layout.positive_inf
    )
    exponent = (bits >> layout.significand_bits) - layout.bias
    fraction = bits & ((1 << layout.significand_bits) - 1)
    one = layout.bias << layout.significand_bits
    significand = (fraction | one).view(var.dtype)
    if infinite:
        informative = bits != layout.positive_inf
        exponent = torch.where(informative, exponent, 0)
        significand = torch.where(informative, significand, 1.0)
        counts = informative.sum(dim=-1)  # (..., M)
    else:
        counts = torch.full(largest.shape, var.shape[-1], device=var.device)
    significand = significand.to(torch.float64)
    d = var.shape[-1]
    whole = d - d % BLOCK
    products = significand[..., :whole].unflatten(-1, (whole // BLOCK, BLOCK)).prod(dim=-1)
    total = (
        torch.log(products).sum(dim=-1)
        + torch.log(significand[..., whole:]).sum(dim=-1)
        + math.log(2.0) * exponent.sum(dim=-1).to(torch.float64)
    )
    if present is not None:
        total = torch.where(present, total, 0.0)
        usable = usable | ~present
        counts = torch.where(present, counts, 0)
    mean = total.sum(dim=-1) / counts.sum(dim=-1).clamp(min=1)
    return LogVarMean(mean.unsqueeze(-1), usable.all())
