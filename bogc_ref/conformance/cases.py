"""The named golden cases: inputs only, drawn from fixed seeds (outputs come from the reference).

Each case names one interface function, its array inputs (positional ones first, then
array keywords such as ``mask`` or ``eps``), its scalar keywords, the dtypes it is checked
in, and ``cond``, the condition number of the matrix a stage-1 case factors (see
:mod:`bogc_ref.conformance.tolerances`). Inputs are float64; float32 runs cast them.

Coverage: ordinary random inputs of several shapes (leading batch axes, M from 1 to 6, D
from 1 to 4096), vacuous and masked sources (NaN means in masked sources), dogmatic
dimensions, mixed dogmatic and finite, extreme magnitudes, normalize on and off, fixed and
relative modes, power != 1, prior_weight != M; for stage 1 small heads with ordinary,
concentrated and near-singular posteriors and Monte Carlo with stored eps; the general
Dempster rule on frames of 2 to 5 elements.

These generators run only when the vectors are regenerated, and only for cases that are
not stored yet (or whose generator was changed): they use platform math (``10 ** u``,
``np.linalg``), whose last bits differ between CPUs, so the stored inputs, not the
generators, are what every machine checks against (see :mod:`.golden`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BOTH = ("float32", "float64")
F64 = ("float64",)


@dataclass(frozen=True)
class CaseSpec:
    """Inputs of one golden case (see the module docstring)."""

    name: str
    function: str
    positional: tuple[str, ...]
    inputs: dict[str, np.ndarray]
    kwargs: dict[str, Any] = field(default_factory=dict)
    dtypes: tuple[str, ...] = BOTH
    cond: float = 1.0
    description: str = ""


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, shape: tuple[int, ...]) -> Any:
    return 10.0 ** rng.uniform(lo, hi, size=shape)


def _calibrate(
    name: str,
    shape: tuple[int, ...],
    description: str,
    *,
    var_range: tuple[float, float] = (-2.0, 2.0),
    dtypes: tuple[str, ...] = BOTH,
    edit: Any = None,
    **kwargs: Any,
) -> CaseSpec:
    rng = _rng(name)
    mean = rng.normal(size=shape)
    var = _log_uniform(rng, *var_range, shape)
    inputs: dict[str, np.ndarray] = {"mean": mean, "var": var}
    if edit is not None:
        edit(rng, inputs)
    return CaseSpec(name, "calibrate", ("mean", "var"), inputs, kwargs, dtypes, 1.0, description)


def _homoscedastic(rng: np.random.Generator, inputs: dict[str, np.ndarray]) -> None:
    # One variance per source over all D dimensions (homoscedastic sources), on the 1-2-5
    # series 1e5..5e6. Summing the same ln λ thousands of times in a naive float32 running
    # sum rounds the same way at every step: its error in ln λ_ref (about 2e-3 here) is
    # some 40 times the float32 tolerance, where a pairwise sum stays within it.
    series = np.array([1e5, 2e5, 5e5, 1e6, 2e6, 5e6])
    m = inputs["var"].shape[-2]
    inputs["var"] = np.broadcast_to(series[:m, None], inputs["var"].shape).copy()


def _vacuous(rng: np.random.Generator, inputs: dict[str, np.ndarray]) -> None:
    var = inputs["var"]
    var[2, :] = np.inf  # a source with no information at all
    var[rng.random(var.shape) < 0.2] = np.inf


def _masked(rng: np.random.Generator, inputs: dict[str, np.ndarray]) -> None:
    mask = np.array([[True, False, True, True], [False, True, True, False], [True] * 4])
    inputs["mask"] = mask
    absent = np.broadcast_to(~mask[..., None], inputs["mean"].shape)
    inputs["mean"][absent] = np.nan
    inputs["var"][0, 1, :5] = np.nan  # anything goes in an absent source
    inputs["var"][1, 0, :] = 0.0


def _dogmatic(rng: np.random.Generator, inputs: dict[str, np.ndarray]) -> None:
    inputs["var"][0, rng.random(inputs["var"].shape[-1]) < 0.3] = 0.0


def _mixed_dogmatic(rng: np.random.Generator, inputs: dict[str, np.ndarray]) -> None:
    var = inputs["var"]
    var[0, :8] = 0.0
    var[1, 4:12] = 0.0  # dims 4..7: two dogmatic sources
    var[3, 6:16] = 0.0  # dims 6, 7: three
    var[2, :] = np.inf
    var[2, 20:] = 0.0  # dogmatic beside a vacuous entry elsewhere


def _no_evidence(rng: np.random.Generator, inputs: dict[str, np.ndarray]) -> None:
    inputs["var"][0, :, :3] = np.inf  # dims 0..2 of the first index: no evidence at all
    inputs["mask"] = np.array([[True, True, True], [False, False, False]])
    inputs["mean"][1] = np.nan


def calibrate_cases() -> list[CaseSpec]:
    """Golden cases of :func:`bogc_ref.calibrate`."""
    return [
        _calibrate("cal_M1_D1", (1, 1), "one source, one dimension"),
        _calibrate("cal_M2_D8", (2, 8), "ordinary"),
        _calibrate("cal_batch2x3_M3_D16", (2, 3, 3, 16), "two leading batch axes"),
        _calibrate("cal_M6_D4096", (6, 4096), "large D, heteroscedastic", var_range=(-3.0, 5.0)),
        _calibrate(
            "cal_M6_D4096_homoscedastic",
            (6, 4096),
            "large D, one variance per source (catches float32 accumulation over D)",
            edit=_homoscedastic,
        ),
        _calibrate("cal_M4_D64_vacuous", (4, 64), "vacuous source and entries", edit=_vacuous),
        _calibrate(
            "cal_batch3_M4_D32_masked",
            (3, 4, 32),
            "masked sources with NaN means, per-index masks",
            edit=_masked,
        ),
        _calibrate("cal_M3_D32_dogmatic", (3, 32), "one dogmatic source", edit=_dogmatic),
        _calibrate(
            "cal_M4_D32_mixed_dogmatic",
            (4, 32),
            "one, two and three dogmatic sources beside finite ones",
            edit=_mixed_dogmatic,
            normalize=True,
        ),
        _calibrate(
            "cal_M3_D64_extreme_f64",
            (3, 64),
            "precisions 1e-30..1e30",
            var_range=(-30.0, 30.0),
            dtypes=F64,
        ),
        _calibrate(
            "cal_M3_D64_extreme_f32", (3, 64), "precisions 1e-15..1e15", var_range=(-15.0, 15.0)
        ),
        _calibrate("cal_M3_D32_normalize", (3, 32), "normalize=True", normalize=True),
        _calibrate("cal_M3_D32_fixed", (3, 32), "mode='fixed'", mode="fixed", tau=2.5),
        _calibrate(
            "cal_M3_D32_fixed_normalize",
            (3, 32),
            "mode='fixed', normalize=True",
            mode="fixed",
            tau=0.1,
            normalize=True,
        ),
        _calibrate(
            "cal_M3_D32_fixed_extreme_f64",
            (3, 32),
            "mode='fixed', tiny tau, power 3, precisions 1e-30..1e30",
            var_range=(-30.0, 30.0),
            dtypes=F64,
            mode="fixed",
            tau=1e-20,
            power=3.0,
        ),
        _calibrate("cal_M3_D32_power2", (3, 32), "power=2", power=2.0),
        _calibrate("cal_M3_D32_power_half", (3, 32), "power=0.5", power=0.5, normalize=True),
        _calibrate("cal_M5_D16_prior_weight", (5, 16), "prior_weight=0.3", prior_weight=0.3),
        _calibrate(
            "cal_batch2_M3_D8_no_evidence",
            (2, 3, 8),
            "dimensions without evidence and a fully masked index, normalize=True",
            edit=_no_evidence,
            normalize=True,
        ),
    ]


def _evidence(
    name: str,
    shape: tuple[int, ...],
    description: str,
    *,
    var_range: tuple[float, float] = (-2.0, 2.0),
    dtypes: tuple[str, ...] = BOTH,
    edit: Any = None,
    **kwargs: Any,
) -> CaseSpec:
    rng = _rng(name)
    inputs: dict[str, np.ndarray] = {"var": _log_uniform(rng, *var_range, shape)}
    if edit is not None:
        edit(rng, inputs)
    return CaseSpec(name, "evidence", ("var",), inputs, kwargs, dtypes, 1.0, description)


def _ev_masked(rng: np.random.Generator, inputs: dict[str, np.ndarray]) -> None:
    inputs["mask"] = np.array([[True, False, True], [True, True, False]])
    inputs["var"][0, 1, :3] = np.nan


def _ev_special(rng: np.random.Generator, inputs: dict[str, np.ndarray]) -> None:
    var = inputs["var"]
    var[rng.random(var.shape) < 0.15] = 0.0
    var[rng.random(var.shape) < 0.15] = np.inf


def _ev_homoscedastic(rng: np.random.Generator, inputs: dict[str, np.ndarray]) -> None:
    _homoscedastic(rng, inputs)


def evidence_cases() -> list[CaseSpec]:
    """Golden cases of :func:`bogc_ref.evidence`."""
    return [
        _evidence("ev_batch2x3_M4_D8", (2, 3, 4, 8), "relative mode, batch axes"),
        _evidence("ev_M3_D16_fixed_power", (3, 16), "fixed mode", mode="fixed", tau=0.7, power=1.5),
        _evidence("ev_batch2_M3_D8_masked", (2, 3, 8), "masked sources", edit=_ev_masked),
        _evidence("ev_M4_D32_dogmatic_vacuous", (4, 32), "var 0 and +inf", edit=_ev_special),
        _evidence("ev_M3_D32_extreme_f64", (3, 32), "1e-30..1e30", var_range=(-30, 30), dtypes=F64),
        _evidence(
            "ev_M6_D4096_homoscedastic",
            (6, 4096),
            "large D, one variance per source",
            edit=_ev_homoscedastic,
        ),
    ]


def _dempster(
    name: str,
    function: str,
    shape: tuple[int, ...],
    description: str,
    *,
    e_range: tuple[float, float] = (-2.0, 2.0),
    dtypes: tuple[str, ...] = BOTH,
    special: bool = False,
    **kwargs: Any,
) -> CaseSpec:
    rng = _rng(name)
    e = _log_uniform(rng, *e_range, shape)
    if special:
        e[rng.random(shape) < 0.15] = 0.0
        e[rng.random(shape) < 0.1] = np.inf
    return CaseSpec(
        name, function, ("evidence",), {"evidence": e}, kwargs, dtypes, 1.0, description
    )


def stage3_cases() -> list[CaseSpec]:
    """Golden cases of :func:`bogc_ref.reduced_dempster` and :func:`bogc_ref.opinions`."""
    return [
        _dempster("rd_batch2_M4_D8", "reduced_dempster", (2, 4, 8), "ordinary"),
        _dempster("rd_M5_D32_special", "reduced_dempster", (5, 32), "e = 0, +inf", special=True),
        _dempster("rd_M3_D8_prior_weight", "reduced_dempster", (3, 8), "W", prior_weight=0.05),
        _dempster(
            "rd_M3_D16_extreme_f64",
            "reduced_dempster",
            (3, 16),
            "e 1e-200..1e200",
            e_range=(-200, 200),
            dtypes=F64,
        ),
        _dempster(
            "rd_M3_D16_extreme_f32", "reduced_dempster", (3, 16), "e 1e-30..1e30", e_range=(-30, 30)
        ),
        _dempster("op_batch2_M3_D8", "opinions", (2, 3, 8), "ordinary"),
        _dempster(
            "op_M4_D16_special",
            "opinions",
            (4, 16),
            "e = 0, +inf, W",
            special=True,
            prior_weight=2.5,
        ),
        *dempster_cases(),
    ]


def _mass(rng: np.random.Generator, n: int, focal: float) -> np.ndarray:
    """A mass function over an n-element frame: random masses on about ``focal`` of the
    non-empty subsets, the whole frame always focal, summing to 1 (index 0 holds 0)."""
    size = 2**n
    m = rng.uniform(0.05, 1.0, size) * (rng.random(size) < focal)
    m[0] = 0.0
    m[-1] = max(m[-1], 0.05)
    return np.asarray(m / m.sum())


def dempster_cases() -> list[CaseSpec]:
    """Golden cases of :func:`bogc_ref.dempster_combine` (the general rule, two sources)."""
    cases = []
    for name, n, focal, description in (
        ("dc_frame2", 2, 1.0, "frame of 2, every subset focal"),
        ("dc_frame3_sparse", 3, 0.5, "frame of 3, about half the subsets focal"),
        ("dc_frame5", 5, 0.7, "frame of 5 (32 subsets)"),
    ):
        rng = _rng(name)
        inputs = {"m1": _mass(rng, n, focal), "m2": _mass(rng, n, focal)}
        cases.append(
            CaseSpec(name, "dempster_combine", ("m1", "m2"), inputs, description=description)
        )
    return cases


def _spd(rng: np.random.Generator, n: int, floor: float) -> np.ndarray:
    a = rng.normal(size=(n, n))
    return np.asarray(a @ a.T / n + floor * np.eye(n))


def _cond(matrix: np.ndarray) -> float:
    return float(np.linalg.cond(matrix))


def stage1_cases() -> list[CaseSpec]:
    """Golden cases of the stage-1 moment and posterior functions."""
    cases: list[CaseSpec] = []

    rng = _rng("lin")
    b, d, k = 5, 3, 2
    w_cov = np.stack([_spd(rng, d + 1, 0.1) for _ in range(k)])
    cases.append(
        CaseSpec(
            "linear_moments_small",
            "linear_head_moments",
            ("h", "y", "w_mean", "w_cov"),
            {
                "h": rng.normal(size=(b, d)),
                "y": rng.normal(size=(b, k)),
                "w_mean": rng.normal(size=(k, d + 1)),
                "w_cov": w_cov,
            },
            description="B=5, D=3, K=2",
        )
    )

    # Concentrated posteriors: covariances scaled by 1e-3 and 1e-5, where Var[g] is a tiny
    # fraction of E[g]^2 and a one-pass E[g^2] - E[g]^2 loses every digit in float32.
    for scale in (1e-3, 1e-5):
        rng = _rng(f"lin_concentrated_{scale:g}")
        b, d, k = 6, 4, 3
        w_cov = np.stack([scale * _spd(rng, d + 1, 0.1) for _ in range(k)])
        cases.append(
            CaseSpec(
                f"linear_moments_concentrated_{scale:g}",
                "linear_head_moments",
                ("h", "y", "w_mean", "w_cov"),
                {
                    "h": rng.normal(size=(b, d)),
                    "y": rng.normal(size=(b, k)),
                    "w_mean": rng.normal(size=(k, d + 1)),
                    "w_cov": w_cov,
                },
                description=f"B=6, D=4, K=3, covariance scaled by {scale:g}",
            )
        )

    rng = _rng("linpost")
    b, d, k = 20, 4, 2
    h = rng.normal(size=(b, d))
    prior_precision = np.eye(d + 1)
    h_tilde = np.hstack([h, np.ones((b, 1))])
    cases.append(
        CaseSpec(
            "linear_posterior_ordinary",
            "linear_head_posterior",
            ("h", "y"),
            {
                "h": h,
                "y": rng.normal(size=(b, k)),
                "prior_mean": rng.normal(size=(k, d + 1)),
                "prior_precision": prior_precision,
            },
            {"noise_var": 0.5},
            cond=_cond(prior_precision + h_tilde.T @ h_tilde / 0.5),
            description="B=20, D=4, K=2",
        )
    )

    rng = _rng("linpost_singular")
    b, d, k = 8, 4, 2
    h = rng.normal(size=(b, d))
    h[:, 1] = h[:, 0] + 1e-3 * rng.normal(size=b)  # nearly collinear features
    prior_precision = 1e-4 * np.eye(d + 1)
    h_tilde = np.hstack([h, np.ones((b, 1))])
    inputs = {
        "h": h,
        "y": rng.normal(size=(b, k)),
        "prior_mean": np.zeros((k, d + 1)),
        "prior_precision": prior_precision,
    }
    cond = _cond(prior_precision + h_tilde.T @ h_tilde)
    cases.append(
        CaseSpec(
            "linear_posterior_near_singular",
            "linear_head_posterior",
            ("h", "y"),
            inputs,
            {"noise_var": 1.0},
            F64,
            cond,
            "nearly collinear features, weak prior",
        )
    )
    # Moments under that posterior (its covariance is large along one direction).
    precision = prior_precision + h_tilde.T @ h_tilde
    post_cov = np.linalg.inv(precision)
    post_cov = 0.5 * (post_cov + post_cov.T)
    post_mean = np.linalg.solve(precision, h_tilde.T @ inputs["y"]).T
    cases.append(
        CaseSpec(
            "linear_moments_near_singular",
            "linear_head_moments",
            ("h", "y", "w_mean", "w_cov"),
            {
                "h": h,
                "y": inputs["y"],
                "w_mean": post_mean,
                "w_cov": np.stack([post_cov] * k),
            },
            dtypes=F64,
            cond=cond,
            description="moments under a near-singular posterior",
        )
    )

    rng = _rng("softmax")
    b, d, k, s = 4, 3, 3, 64
    n_params = k * (d + 1)
    sigma = _spd(rng, n_params, 0.05) * 0.2
    head = {
        "h": rng.normal(size=(b, d)),
        "labels": rng.integers(0, k, size=b),
        "w_mean": rng.normal(size=(k, d + 1)),
        "w_cov": sigma,
    }
    sigma_cond = _cond(sigma)
    eps = rng.normal(size=(s, n_params))
    mc_positional = ("h", "labels", "w_mean", "w_cov")
    cases.append(
        CaseSpec(
            "softmax_mc_eps",
            "softmax_head_moments",
            mc_positional,
            {**head, "eps": eps},
            cond=sigma_cond,
            description="stored eps, S=64",
        )
    )
    cases.append(
        CaseSpec(
            "softmax_mc_eps_chunked",
            "softmax_head_moments",
            mc_positional,
            {**head, "eps": eps},
            {"chunk_size": 5},
            cond=sigma_cond,
            description="stored eps, chunk_size=5 (must equal one chunk)",
        )
    )
    cases.append(
        CaseSpec(
            "softmax_linearized",
            "softmax_head_moments_linearized",
            mc_positional,
            dict(head),
            description="B=4, D=3, K=3",
        )
    )

    rng = _rng("laplace")
    b, d, k = 30, 3, 3
    n_params = k * (d + 1)
    for name, strength, dtypes in (
        ("softmax_laplace_ordinary", 1.0, BOTH),
        ("softmax_laplace_near_singular", 1e-5, F64),
    ):
        h = rng.normal(size=(b, d))
        w = 0.5 * rng.normal(size=(k, d + 1))
        labels = rng.integers(0, k, size=b)
        prior_precision = strength * np.eye(n_params)
        logits = np.hstack([h, np.ones((b, 1))]) @ w.T
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        h_tilde = np.hstack([h, np.ones((b, 1))])
        ggn = sum(
            np.kron(np.diag(p[i]) - np.outer(p[i], p[i]), np.outer(h_tilde[i], h_tilde[i]))
            for i in range(b)
        )
        cases.append(
            CaseSpec(
                name,
                "softmax_head_laplace",
                ("h", "labels", "w"),
                {
                    "h": h,
                    "labels": labels,
                    "w": w,
                    "prior_mean": np.zeros((k, d + 1)),
                    "prior_precision": prior_precision,
                },
                dtypes=dtypes,
                cond=_cond(prior_precision + ggn),
                description=f"prior precision {strength:g} I",
            )
        )

    rng = _rng("empirical")
    for name, shape, offset in (
        ("empirical_batch", (7, 2, 3, 5), 0.0),
        ("empirical_N2", (2, 4), 0.0),
        ("empirical_offset", (9, 16), 1e3),
    ):
        grads = offset + rng.normal(size=shape)
        cases.append(
            CaseSpec(
                name,
                "empirical_moments",
                ("per_sample_grads",),
                {"per_sample_grads": grads},
                cond=1.0 + offset / float(np.min(np.std(grads, axis=0))),
                description=f"G of shape {shape}, offset {offset:g}",
            )
        )
    return cases


def all_cases() -> list[CaseSpec]:
    """Every golden case, stage 1 first."""
    return [*stage1_cases(), *evidence_cases(), *stage3_cases(), *calibrate_cases()]
