"""float32 arithmetic for stage 2 and calibrate, in two variants.

``wrong``: the geometric mean of the precisions takes ln λ in float32 and adds them with a
naive running float32 sum over all M·D entries (``np.cumsum``), whose rounding error grows
with the number of terms. ``honest``: the same code with NumPy's pairwise float32 sum; it
must pass, which shows that the float32 tolerance is not merely loose. float64 inputs and
``mode="fixed"`` go to the reference unchanged.
"""

from types import SimpleNamespace
from typing import Any

import numpy as np

import bogc_ref
from bogc_ref.interface import STAGES


def _present(mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape, dtype=bool)
    return np.broadcast_to(np.asarray(mask)[..., None], shape)


def _evidence32(var: np.ndarray, present: np.ndarray, power: float, naive: bool) -> np.ndarray:
    with np.errstate(divide="ignore"):
        log_var = np.log(var.astype(np.float32))
    informative = present & np.isfinite(log_var)
    values = np.where(informative, log_var, np.float32(0)).astype(np.float32)
    flat = values.reshape(*values.shape[:-2], -1)
    if naive:
        total = np.cumsum(flat, axis=-1, dtype=np.float32)[..., -1]
    else:
        total = np.sum(flat, axis=-1, dtype=np.float32)
    count = np.maximum(np.count_nonzero(informative, axis=(-2, -1)), 1).astype(np.float32)
    log_ref = (total / count)[..., None, None]
    with np.errstate(invalid="ignore"):
        log_e = np.float32(power) * (log_ref - log_var)
    log_e = np.where(present, log_e, -np.inf).astype(np.float32)
    with np.errstate(over="ignore"):
        return np.asarray(np.exp(log_e))


def _make(naive: bool) -> SimpleNamespace:
    def evidence(
        var: Any, *, mask: Any = None, mode: str = "relative", tau: Any = None, power: float = 1.0
    ) -> Any:
        v = np.asarray(var)
        if v.dtype != np.float32 or mode != "relative":
            return bogc_ref.evidence(var, mask=mask, mode=mode, tau=tau, power=power)
        return _evidence32(v, _present(mask, v.shape), power, naive)

    def calibrate(
        mean: Any,
        var: Any,
        *,
        mask: Any = None,
        mode: str = "relative",
        tau: Any = None,
        power: float = 1.0,
        prior_weight: Any = None,
        normalize: bool = False,
        check_finite: bool = True,
    ) -> Any:
        m, v = np.asarray(mean), np.asarray(var)
        if v.dtype != np.float32 or mode != "relative":
            return bogc_ref.calibrate(
                mean,
                var,
                mask=mask,
                mode=mode,
                tau=tau,
                power=power,
                prior_weight=prior_weight,
                normalize=normalize,
                check_finite=check_finite,
            )
        present = _present(mask, v.shape)
        e = _evidence32(v, present, power, naive)
        belief, u = bogc_ref.reduced_dempster(e, prior_weight=prior_weight)
        mu = np.where(present, m, np.float32(0)).astype(np.float32)
        if normalize:
            share = np.float32(1) - u
            safe = np.where(share > 0, share, np.float32(1))
            weights = np.where(share[..., None, :] > 0, belief / safe[..., None, :], 0)
            grad = np.sum(weights.astype(np.float32) * mu, axis=-2)
        else:
            grad = np.sum(belief * mu, axis=-2)
        return bogc_ref.Calibration(grad.astype(np.float32), belief, u, e)

    functions = {f: getattr(bogc_ref, f) for names in STAGES.values() for f in names}
    functions.update(evidence=evidence, calibrate=calibrate)
    return SimpleNamespace(**functions)


wrong = _make(naive=True)
honest = _make(naive=False)
