"""Stage 2 and calibrate with their own summation of ln var, in several variants.

The geometric mean of relative mode is the mean of N log-variances (N = M·D informative
entries of a leading index). The harness's error model (``tolerances``) allows any
summation order in the working precision: a sum of N terms may err by
``γ_{N-1} Σ|ln var|``. Variants:

* ``sequential``: a naive running sum (``np.cumsum``, exactly a Python loop's order) in
  the input's dtype, float32 and float64. Correct under the model: it must PASS.
* ``honest``: NumPy's pairwise float32 sum (float64 inputs go to the reference): PASS.
* ``within``: the reference's ln λ_ref moved by 0.7 times the tolerance the model gives
  the case: PASS (the bound is not tighter than it says).
* ``wrong`` (float32 inputs only) and ``beyond`` (both dtypes): ln λ_ref moved by 1.5 times
  the model's tolerance, an accumulator that errs just beyond the worst case: FAIL.

``mode="fixed"`` (no reduction) goes to the reference unchanged.
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


def _log_ref(log_var: np.ndarray, informative: np.ndarray, how: str) -> np.ndarray:
    """Mean of the informative ln var per leading index, summed as ``how`` says."""
    dtype = log_var.dtype
    values = np.where(informative, log_var, dtype.type(0)).astype(dtype)
    flat = values.reshape(*values.shape[:-2], -1)
    if how == "sequential":
        total = np.cumsum(flat, axis=-1, dtype=dtype)[..., -1]
    else:
        total = np.sum(flat.astype(np.float64), axis=-1)
    count = np.maximum(np.count_nonzero(informative, axis=(-2, -1)), 1)
    return np.asarray(total / count)[..., None, None]


def _log_evidence(var: np.ndarray, present: np.ndarray, power: float, how: str) -> np.ndarray:
    work = np.float32 if (how == "honest" or var.dtype == np.float32) else np.float64
    if how in ("within", "beyond"):
        work = np.float64
    with np.errstate(divide="ignore"):
        log_var = np.log(var.astype(work))
    informative = present & np.isfinite(log_var)
    if how == "honest":
        values = np.where(informative, log_var, np.float32(0)).astype(np.float32)
        total = np.sum(values.reshape(*values.shape[:-2], -1), axis=-1, dtype=np.float32)
        count = np.maximum(np.count_nonzero(informative, axis=(-2, -1)), 1)
        log_ref = (total / np.float32(count))[..., None, None]
    else:
        log_ref = _log_ref(log_var, informative, how)
    if how in ("within", "beyond"):
        from bogc_ref.conformance.tolerances import evidence_tolerance

        factor = 0.7 if how == "within" else 1.5
        rtol = evidence_tolerance(var, var.dtype, "calibrate", power=power, present=present).rtol
        log_ref = log_ref + factor * rtol / power
    with np.errstate(invalid="ignore"):
        log_e = power * (log_ref.astype(np.float64) - log_var.astype(np.float64))
    return np.where(present, log_e, -np.inf)


def _fuse(log_e: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reduced Dempster rule in float64 from ``log e`` (+inf dogmatic), in the log
    domain so that evidence beyond float64's range keeps its order: belief, û and the
    weights e_m / Σ e of ``normalize=True`` (0 where there is no evidence at all)."""
    dogmatic = np.isposinf(log_e)
    finite = np.where(dogmatic, -np.inf, log_e)
    top = np.max(finite, axis=-2, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    scaled = np.exp(finite - top)  # the largest is 1
    total = np.sum(scaled, axis=-2, keepdims=True)
    log_den = np.logaddexp(np.log(weight), top + np.log(np.maximum(total, 1e-300)))
    log_den = np.where(total > 0, log_den, np.log(weight))
    belief = np.exp(finite - log_den)
    u = np.exp(np.log(weight) - log_den)[..., 0, :]
    weights = np.where(total > 0, scaled / np.where(total > 0, total, 1.0), 0.0)
    n_dogmatic = np.sum(dogmatic, axis=-2, keepdims=True)
    share = dogmatic / np.maximum(n_dogmatic, 1)
    belief = np.where(n_dogmatic > 0, share, belief)
    weights = np.where(n_dogmatic > 0, share, weights)
    u = np.where(n_dogmatic[..., 0, :] > 0, 0.0, u)
    return belief, u, weights


def _evidence(log_e: np.ndarray, dtype: np.dtype) -> np.ndarray:
    with np.errstate(over="ignore"):
        e = np.exp(log_e)
    big = np.finfo(dtype).max
    return np.where(np.isposinf(log_e), np.inf, np.minimum(e, big)).astype(dtype)


def _make(how: str, dtypes: tuple[str, ...]) -> SimpleNamespace:
    def own(v: np.ndarray, mode: str) -> bool:
        return v.dtype.name in dtypes and mode == "relative"

    def evidence(
        var: Any, *, mask: Any = None, mode: str = "relative", tau: Any = None, power: float = 1.0
    ) -> Any:
        checked = bogc_ref.evidence(var, mask=mask, mode=mode, tau=tau, power=power)
        v = np.asarray(var)
        if not own(v, mode):
            return checked
        return _evidence(_log_evidence(v, _present(mask, v.shape), power, how), v.dtype)

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
        # The reference validates the input (and raises the spec's errors); the variant
        # then computes its own answer.
        checked = bogc_ref.calibrate(
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
        m, v = np.asarray(mean), np.asarray(var)
        if not own(v, mode):
            return checked
        present = _present(mask, v.shape)
        log_e = _log_evidence(v, present, power, how)
        belief, u, weights = _fuse(
            log_e, float(v.shape[-2] if prior_weight is None else prior_weight)
        )
        mu = np.where(present, m, 0).astype(np.float64)
        grad = np.sum((weights if normalize else belief) * mu, axis=-2)
        dtype = v.dtype
        return bogc_ref.Calibration(
            grad.astype(dtype), belief.astype(dtype), u.astype(dtype), _evidence(log_e, dtype)
        )

    functions = {f: getattr(bogc_ref, f) for names in STAGES.values() for f in names}
    functions.update(evidence=evidence, calibrate=calibrate)
    return SimpleNamespace(**functions)


sequential = _make("sequential", ("float32", "float64"))
honest = _make("honest", ("float32",))
within = _make("within", ("float32", "float64"))
beyond = _make("beyond", ("float32", "float64"))
wrong = _make("beyond", ("float32",))
