"""The fresh tier: every interface function on inputs generated now, from the run's seed.

Golden vectors pin the reference at fixed points, and fixed points can be recognised: an
implementation that returns the reference's answers only for the golden inputs (found by
hashing them) passes every golden case. The fresh tier draws new inputs for every
function of the interface from a seed (``numpy.random.default_rng``), computes the
reference's answers on them in this process, and compares the candidate's exactly like a
golden case (same tolerance policy, same reproduction). ``bogc-ref verify`` draws the seed
at random for each run (``--fresh-seed N`` fixes it, and every report and reproduction
names it), so a public seed cannot be hashed either; :data:`FRESH_SEED` is the default
of the functions here, the seed of the project's own tests. For one seed the draws are
deterministic; they come from platform math (``10 ** u``), whose last bits may differ
between machines, which is harmless because the reference runs on the very same inputs.

Coverage per function, whatever the seed: several shapes (1 to 9 sources, 0 to 3 leading
axes) and keyword settings, dogmatic and vacuous entries, masks, extreme magnitudes; for
calibrate and evidence subnormal variances and evidence beyond the dtype's largest value,
and for calibrate M >= 7, three leading axes, D above 4096, check_finite=False and
inputs that are not C-contiguous (:data:`CALIBRATE_FEATURES`); concentrated head
posteriors (covariances scaled by 1e-3..1e-6) and near-singular ones; Laplace fits of
saturated softmax heads (|h| of 1e4 to 1e8); mass functions on frames of 1 to 5 elements.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import Any

import numpy as np

from .adapter import Adapter
from .cases import BOTH, F64, CaseSpec
from .golden import GoldenCase, compute
from .runner import CaseResult, check_golden, describe_exception

#: Seed of every fresh draw (documented: a reproduction rebuilds a case from its name).
FRESH_SEED = 20261129

Rng = np.random.Generator


def _rng(seed: int, name: str) -> Rng:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _shape(
    rng: Rng, *, max_m: int = 9, max_d: int = 12, lead: int | None = None, min_m: int = 1
) -> tuple[int, ...]:
    """(..., M, D): 0 to 3 leading axes of 1 to 3 (``lead`` fixes how many), M from
    ``min_m`` to ``max_m``, D from 1 to ``max_d``."""
    n_lead = int(rng.integers(0, 4)) if lead is None else lead
    leading = tuple(int(x) for x in rng.integers(1, 4, size=n_lead))
    return (*leading, int(rng.integers(min_m, max_m + 1)), int(rng.integers(1, max_d + 1)))


def _variances(
    rng: Rng, shape: tuple[int, ...], lo: float, hi: float, special: bool, subnormal: bool = False
) -> Any:
    """Log-uniform variances in 10**lo..10**hi; ``special``: about 10% exactly 0 (dogmatic)
    and 10% +inf (vacuous); ``subnormal``: about 10% float64 subnormals (1e-320..1e-309)
    and 10% values that are subnormal in float32 only (1e-44..1e-38), never 0: only var = 0
    is dogmatic."""
    var = 10.0 ** rng.uniform(lo, hi, size=shape)
    if special:
        kinds = rng.integers(0, 10, size=shape)
        var = np.where(kinds == 0, 0.0, np.where(kinds == 1, np.inf, var))
    if subnormal:
        tiny = rng.integers(0, 10, size=shape)
        var = np.where(tiny == 0, 10.0 ** rng.uniform(-320, -309, size=shape), var)
        var = np.where(tiny == 1, 10.0 ** rng.uniform(-44, -38, size=shape), var)
        # At least one of each kind, so that every draw has them.
        flat = var.reshape(-1)
        flat[0], flat[-1] = 10.0 ** rng.uniform(-320, -309), 10.0 ** rng.uniform(-44, -38)
    return var


def _overflowing(rng: Rng, var: np.ndarray, exponent: tuple[float, float]) -> None:
    """Two sources with small, different variances (10**exponent) in about a third of the
    dimensions (at least one) of every leading index: with the case's ``tau`` and ``power``
    their evidence overflows the dtype, where it must saturate at the largest finite value
    (never become +inf, i.e. dogmatic), and the larger of the two must keep most belief."""
    m, d = var.shape[-2:]
    if m < 2:
        return
    dims = np.asarray(rng.random(d) < 0.35)
    dims[int(rng.integers(0, d))] = True
    for source in rng.choice(m, size=2, replace=False):
        values = 10.0 ** rng.uniform(*exponent, size=(*var.shape[:-2], d))
        var[..., source, :] = np.where(dims, values, var[..., source, :])


def _noncontiguous(rng: Rng, array: np.ndarray) -> np.ndarray:
    """The same values in a layout that is not C-contiguous: Fortran order, or a view with
    the last two axes swapped (as ``x.mT`` of a (..., D, M) array gives)."""
    if rng.random() < 0.5:
        return np.asfortranarray(array)
    return np.ascontiguousarray(np.swapaxes(array, -1, -2)).swapaxes(-1, -2)


def _mask(rng: Rng, shape: tuple[int, ...]) -> np.ndarray:
    mask = rng.random(shape[:-1]) < 0.7
    mask[..., int(rng.integers(0, shape[-2]))] = True
    return np.asarray(mask)


def _evidence_kwargs(rng: Rng) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if rng.random() < 0.4:
        kwargs.update(mode="fixed", tau=float(10.0 ** rng.uniform(-3, 3)))
    power = float(rng.choice([1.0, 1.0, 0.5, 2.0]))
    if power != 1.0:
        kwargs["power"] = power
    return kwargs


#: What each fresh calibrate case (by index) must contain, whatever the seed: ``extreme``
#: precisions 1e-30..1e30 (float64 only); ``mask``: absent sources with NaN means;
#: ``many_sources``: M from 7 to 9; ``deep``: three leading axes; ``subnormal`` variances;
#: ``overflow32``/``overflow64``: mode="fixed" evidence beyond float32's/float64's largest
#: value; ``wide``: D above 4096; ``unchecked``: check_finite=False on valid inputs;
#: ``strided``: mean and var that are not C-contiguous.
CALIBRATE_FEATURES: tuple[frozenset[str], ...] = tuple(
    frozenset(f.split())
    for f in (
        "extreme",
        "mask",
        "many_sources strided",
        "deep mask",
        "subnormal",
        "overflow32",
        "overflow64",
        "wide unchecked",
        "mask strided unchecked",
        "subnormal deep many_sources",
    )
)


def _calibrate(seed: int, i: int) -> CaseSpec:
    name = f"fresh_calibrate_{i}"
    rng = _rng(seed, name)
    features = CALIBRATE_FEATURES[i % len(CALIBRATE_FEATURES)]
    shape: tuple[int, ...]
    if "wide" in features:
        shape = (int(rng.integers(2, 4)), int(rng.integers(4097, 4400)))
    else:
        shape = _shape(
            rng,
            lead=3 if "deep" in features else None,
            min_m=7 if "many_sources" in features else 2 if "strided" in features else 1,
            max_d=12,
        )
        if "strided" in features and shape[-1] == 1:
            shape = (*shape[:-1], 2)
    lo, hi = (-30.0, 30.0) if "extreme" in features or "overflow64" in features else (-3.0, 3.0)
    if "overflow32" in features:
        lo, hi = (-15.0, 15.0)
    plain = not features & {"extreme", "overflow32", "overflow64"}
    var = _variances(rng, shape, lo, hi, special=plain, subnormal="subnormal" in features)
    kwargs = _evidence_kwargs(rng)
    if "overflow32" in features:  # (λ/τ)^3 with λ >= 1e13, τ <= 1: above float32's 3.4e38
        _overflowing(rng, var, (-15.0, -13.0))
        kwargs = {"mode": "fixed", "tau": float(10.0 ** rng.uniform(-3, 0)), "power": 3.0}
    if "overflow64" in features:  # (λ/τ)^12 with λ >= 1e27, τ <= 1: above float64's 1.8e308
        _overflowing(rng, var, (-30.0, -27.0))
        kwargs = {"mode": "fixed", "tau": float(10.0 ** rng.uniform(-3, 0)), "power": 12.0}
    inputs: dict[str, np.ndarray] = {
        "mean": rng.normal(size=shape) * 10.0 ** rng.uniform(-2, 2),
        "var": var,
    }
    if "mask" in features:
        mask = _mask(rng, shape)
        inputs["mask"] = mask
        inputs["mean"] = np.where(np.broadcast_to(mask[..., None], shape), inputs["mean"], np.nan)
    if "strided" in features:
        inputs["mean"] = _noncontiguous(rng, inputs["mean"])
        inputs["var"] = _noncontiguous(rng, inputs["var"])
    if rng.random() < 0.5:
        kwargs["prior_weight"] = float(rng.uniform(0.05, 20.0))
    kwargs["normalize"] = bool(rng.random() < 0.5)
    if "unchecked" in features:
        kwargs["check_finite"] = False
    dtypes = F64 if features & {"extreme", "overflow64"} else BOTH
    description = ", ".join(sorted(features))
    return CaseSpec(name, "calibrate", ("mean", "var"), inputs, kwargs, dtypes, 1.0, description)


def _evidence(seed: int, i: int) -> CaseSpec:
    name = f"fresh_evidence_{i}"
    rng = _rng(seed, name)
    shape = _shape(rng, lead=3 if i == 1 else None, min_m=2 if i == 3 else 1)
    if i == 3:  # mode="fixed", power 3: evidence beyond float32's largest value
        var = _variances(rng, shape, -15.0, 15.0, special=False)
        _overflowing(rng, var, (-15.0, -13.0))
        kwargs: dict[str, Any] = {"mode": "fixed", "tau": float(10.0 ** rng.uniform(-3, 0))}
        kwargs["power"] = 3.0
    else:
        var = _variances(rng, shape, -3.0, 3.0, special=True, subnormal=i in (0, 2))
        kwargs = _evidence_kwargs(rng)
    inputs = {"var": var}
    if i in (1, 4):
        inputs["mask"] = _mask(rng, shape)
    return CaseSpec(name, "evidence", ("var",), inputs, kwargs, BOTH, 1.0, "fresh")


def _fusion(function: str) -> Callable[[int, int], CaseSpec]:
    def make(seed: int, i: int) -> CaseSpec:
        name = f"fresh_{function}_{i}"
        rng = _rng(seed, name)
        e = _variances(rng, _shape(rng), -3.0, 3.0, special=True)
        kwargs = {"prior_weight": float(rng.uniform(0.05, 20.0))} if i % 2 else {}
        return CaseSpec(name, function, ("evidence",), {"evidence": e}, kwargs, BOTH, 1.0, "fresh")

    return make


def random_mass(rng: Rng, n: int) -> np.ndarray:
    """A mass function over an n-element frame (length 2**n, index 0 the empty set)."""
    size = 2**n
    m = rng.uniform(0.0, 1.0, size) * (rng.random(size) < 0.7)
    m[0] = 0.0
    m[-1] += 0.05
    return np.asarray(m / m.sum())


def _dempster_combine(seed: int, i: int) -> CaseSpec:
    name = f"fresh_dempster_combine_{i}"
    rng = _rng(seed, name)
    n = 1 + i % 5
    inputs = {"m1": random_mass(rng, n), "m2": random_mass(rng, n)}
    return CaseSpec(name, "dempster_combine", ("m1", "m2"), inputs, {}, BOTH, 1.0, "fresh")


def _empirical(seed: int, i: int) -> CaseSpec:
    name = f"fresh_empirical_moments_{i}"
    rng = _rng(seed, name)
    n = int(rng.integers(2, 9))
    offset = 0.0 if i % 2 == 0 else float(10.0 ** rng.uniform(1, 3))
    grads = offset + rng.normal(size=(n, *_shape(rng, max_m=3, max_d=6)[1:]))
    cond = 1.0 + offset / float(np.min(np.std(grads, axis=0)))
    inputs = {"per_sample_grads": grads}
    return CaseSpec(
        name, "empirical_moments", ("per_sample_grads",), inputs, {}, BOTH, cond, "fresh"
    )


def _spd(rng: Rng, n: int, floor: float) -> np.ndarray:
    a = rng.normal(size=(n, n))
    return np.asarray(a @ a.T / n + floor * np.eye(n))


def _head_sizes(rng: Rng) -> tuple[int, int, int]:
    return int(rng.integers(1, 6)), int(rng.integers(1, 5)), int(rng.integers(2, 4))


#: Covariance scales of the stage-1 moment draws: ordinary and concentrated posteriors.
COV_SCALES = (1.0, 1e-3, 1e-4, 1e-5, 1e-6)


def _linear_moments(seed: int, i: int) -> CaseSpec:
    name = f"fresh_linear_head_moments_{i}"
    rng = _rng(seed, name)
    b, d, k = _head_sizes(rng)
    scale = COV_SCALES[i % len(COV_SCALES)]
    inputs = {
        "h": rng.normal(size=(b, d)),
        "y": rng.normal(size=(b, k)),
        "w_mean": rng.normal(size=(k, d + 1)),
        "w_cov": np.stack([scale * _spd(rng, d + 1, 0.1) for _ in range(k)]),
    }
    positional = ("h", "y", "w_mean", "w_cov")
    desc = f"covariance scale {scale:g}"
    return CaseSpec(name, "linear_head_moments", positional, inputs, {}, BOTH, 1.0, desc)


def _softmax_head(rng: Rng, scale: float) -> tuple[dict[str, np.ndarray], float]:
    b, d, k = _head_sizes(rng)
    n_params = k * (d + 1)
    cov = scale * _spd(rng, n_params, 0.05)
    head = {
        "h": rng.normal(size=(b, d)),
        "labels": rng.integers(0, k, size=b),
        "w_mean": rng.normal(size=(k, d + 1)),
        "w_cov": cov,
    }
    return head, float(np.linalg.cond(cov))


def _softmax_mc(seed: int, i: int) -> CaseSpec:
    name = f"fresh_softmax_head_moments_{i}"
    rng = _rng(seed, name)
    scale = COV_SCALES[i % len(COV_SCALES)]
    head, cond = _softmax_head(rng, 0.2 * scale)
    n_params = head["w_cov"].shape[0]
    inputs = {**head, "eps": rng.normal(size=(int(rng.integers(8, 40)), n_params))}
    kwargs = {"chunk_size": int(rng.integers(1, 9))} if i % 2 else {}
    positional = ("h", "labels", "w_mean", "w_cov")
    desc = f"stored eps, covariance scale {scale:g}"
    return CaseSpec(name, "softmax_head_moments", positional, inputs, kwargs, BOTH, cond, desc)


def _softmax_linearized(seed: int, i: int) -> CaseSpec:
    name = f"fresh_softmax_head_moments_linearized_{i}"
    rng = _rng(seed, name)
    scale = COV_SCALES[i % len(COV_SCALES)]
    head, _ = _softmax_head(rng, 0.2 * scale)
    positional = ("h", "labels", "w_mean", "w_cov")
    desc = f"covariance scale {scale:g}"
    fn = "softmax_head_moments_linearized"
    return CaseSpec(name, fn, positional, head, {}, BOTH, 1.0, desc)


def _linear_posterior(seed: int, i: int) -> CaseSpec:
    name = f"fresh_linear_head_posterior_{i}"
    rng = _rng(seed, name)
    b, d, k = int(rng.integers(2, 12)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
    h = rng.normal(size=(b, d))
    strength = float(10.0 ** rng.uniform(-3, 1))
    prior_precision = strength * _spd(rng, d + 1, 0.5)
    noise_var = float(10.0 ** rng.uniform(-1, 1))
    h_tilde = np.hstack([h, np.ones((b, 1))])
    cond = float(np.linalg.cond(prior_precision + h_tilde.T @ h_tilde / noise_var))
    inputs = {
        "h": h,
        "y": rng.normal(size=(b, k)),
        "prior_mean": rng.normal(size=(k, d + 1)),
        "prior_precision": prior_precision,
    }
    dtypes = BOTH if cond < 1e3 else F64
    kwargs = {"noise_var": noise_var}
    return CaseSpec(name, "linear_head_posterior", ("h", "y"), inputs, kwargs, dtypes, cond, "")


def _laplace(seed: int, i: int) -> CaseSpec:
    name = f"fresh_softmax_head_laplace_{i}"
    rng = _rng(seed, name)
    b, d, k = int(rng.integers(5, 30)), int(rng.integers(1, 4)), int(rng.integers(2, 4))
    n_params = k * (d + 1)
    h = rng.normal(size=(b, d))
    w = 0.5 * rng.normal(size=(k, d + 1))
    labels = rng.integers(0, k, size=b)
    prior_precision = float(10.0 ** rng.uniform(-2, 1)) * _spd(rng, n_params, 0.5)
    if i >= 3:  # large |h|: every softmax saturates, each sample's curvature is tiny
        h = h * 10.0 ** rng.uniform(4, 8)
    h_tilde = np.hstack([h, np.ones((b, 1))])
    logits = h_tilde @ w.T
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    ggn = sum(
        np.kron(np.diag(p[j]) - np.outer(p[j], p[j]), np.outer(h_tilde[j], h_tilde[j]))
        for j in range(b)
    )
    cond = float(np.linalg.cond(prior_precision + ggn))
    inputs = {
        "h": h,
        "labels": labels,
        "w": w,
        "prior_mean": 0.1 * rng.normal(size=(k, d + 1)),
        "prior_precision": prior_precision,
    }
    dtypes = BOTH if cond < 1e3 else F64
    return CaseSpec(name, "softmax_head_laplace", ("h", "labels", "w"), inputs, {}, dtypes, cond)


#: Generators and how many cases each draws.
GENERATORS: dict[str, tuple[Callable[[int, int], CaseSpec], int]] = {
    "linear_head_moments": (_linear_moments, 5),
    "softmax_head_moments": (_softmax_mc, 3),
    "softmax_head_moments_linearized": (_softmax_linearized, 5),
    "empirical_moments": (_empirical, 3),
    "linear_head_posterior": (_linear_posterior, 3),
    "softmax_head_laplace": (_laplace, 4),
    "evidence": (_evidence, 5),
    "opinions": (_fusion("opinions"), 2),
    "reduced_dempster": (_fusion("reduced_dempster"), 3),
    "dempster_combine": (_dempster_combine, 5),
    "calibrate": (_calibrate, len(CALIBRATE_FEATURES)),
}


def fresh_specs(seed: int = FRESH_SEED) -> list[CaseSpec]:
    """The inputs of every fresh case for ``seed``, in interface order."""
    return [make(seed, i) for make, count in GENERATORS.values() for i in range(count)]


@cache
def fresh_cases(seed: int = FRESH_SEED) -> tuple[GoldenCase, ...]:
    """The fresh cases of ``seed`` with the reference's float64 outputs (computed once)."""
    return tuple(replace(compute(spec), tier="fresh", seed=seed) for spec in fresh_specs(seed))


def fresh_case(name: str, seed: int = FRESH_SEED) -> GoldenCase:
    """One fresh case by name (for reproduction snippets)."""
    for case in fresh_cases(seed):
        if case.name == name:
            return case
    raise KeyError(f"no fresh case named {name!r} for seed {seed}")


def run_fresh(
    adapter: Adapter,
    dtype: str,
    *,
    seed: int = FRESH_SEED,
    progress: Callable[[str], None] | None = None,
) -> list[CaseResult]:
    """The fresh tier on one candidate in one dtype: every provided function's fresh cases
    compared with the reference (rows of tier "fresh"), then the dempster_combine laws on
    fresh mass functions."""
    results = []
    for case in fresh_cases(seed):
        if dtype not in case.dtypes or not adapter.provides(case.function):
            continue
        results.append(check_golden(adapter, case, dtype))
        if progress is not None:
            progress(f"{adapter.name} {case.name} {dtype}")
    if adapter.provides("dempster_combine"):
        results.extend(run_fresh_laws(adapter, dtype, seed))
    return results


def run_fresh_laws(adapter: Adapter, dtype: str, seed: int = FRESH_SEED) -> list[CaseResult]:
    """The laws of :func:`~bogc_ref.conformance.laws.fresh_law_examples` on fresh draws."""
    from .laws import LAWS_BY_NAME, fresh_law_examples

    results = []
    for name, examples in fresh_law_examples(dtype, seed).items():
        law = LAWS_BY_NAME[name]
        start = time.perf_counter()
        message = ""
        for example in examples:
            try:
                law.check(adapter, example)
            except AssertionError as exc:
                message = str(exc)
                break
            except Exception as exc:
                message = f"{name}: {describe_exception(exc)}"
                break
        results.append(
            CaseResult.verdict(
                name,
                law.stage,
                law.needs[0],
                dtype,
                message,
                time.perf_counter() - start,
                tier="fresh",
                kind="law",
                bound=f"{len(examples)} fresh examples (seed {seed})",
            )
        )
    return results
