"""Checking a candidate on the golden cases and on the Monte Carlo sampler.

Each check yields one :class:`CaseResult`. A candidate that raises, runs past the time
limit, returns the wrong shape or dtype, or returns NaN fails that case with the reason;
nothing a candidate does stops the run.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._linalg import cholesky_jittered
from .._softmax_head import _gradients
from .adapter import Adapter
from .compare import Comparison, compare_array, failed, merge, plain
from .errors import CandidateProblem
from .golden import GoldenCase, output_fields
from .runtime import CaseTimeout
from .tolerances import (
    MC_FAMILY_ALPHA,
    evidence_tolerance,
    mc_standard_errors,
    mc_z_threshold,
    rtol_for,
    stage1_kappa,
    stage1_term_scales,
    stage3_tolerance,
)


@dataclass(frozen=True)
class CaseResult:
    """Outcome of one case (or one law) for one dtype.

    ``ratio`` is the error in units of the tolerance (at most 1 passes; for a statistical
    check, the largest standardised difference over its bound); ``bound`` says in words
    what the check was held to. ``tier`` is the tier it belongs to ("golden", "fresh",
    "statistical", "laws", "contract").
    """

    name: str
    stage: str
    function: str
    dtype: str
    ok: bool
    abs_err: float
    rel_err: float
    rtol: float
    reason: str
    seconds: float
    kind: str = "golden"
    tier: str = "golden"
    ratio: float = float("nan")
    bound: str = ""

    @classmethod
    def verdict(
        cls,
        name: str,
        stage: str,
        function: str,
        dtype: str,
        reason: str,
        seconds: float,
        *,
        tier: str,
        kind: str | None = None,
        bound: str = "",
        abs_err: float = float("nan"),
    ) -> CaseResult:
        """A check without an error to measure (a law, a contract entry, a load failure):
        it passed when ``reason`` is empty; ``kind`` defaults to ``tier``."""
        nan = float("nan")
        return cls(
            name,
            stage,
            function,
            dtype,
            not reason,
            abs_err,
            nan,
            nan,
            reason,
            seconds,
            kind=tier if kind is None else kind,
            tier=tier,
            bound=bound,
        )


def _reduction_length(case: GoldenCase) -> int:
    inputs = case.inputs
    if case.function == "empirical_moments":
        return int(inputs["per_sample_grads"].shape[0])
    width = int(inputs["h"].shape[1]) + 1
    if case.function in ("linear_head_moments", "linear_head_posterior"):
        return width
    n_classes = int(inputs["w_mean" if "w_mean" in inputs else "w"].shape[0])
    return n_classes * width


def _present(case: GoldenCase, shape: tuple[int, ...]) -> np.ndarray:
    mask = case.inputs.get("mask")
    if mask is None:
        return np.ones(shape, dtype=bool)
    return np.broadcast_to(np.asarray(mask)[..., None], shape)


def case_rtol(case: GoldenCase, dtype: str) -> float:
    """rtol of a case by the policy of :mod:`~bogc_ref.conformance.tolerances`."""
    stage = case.stage
    if stage in ("stage2", "calibrate"):
        var = case.inputs["var"].astype(dtype)
        return evidence_tolerance(
            var,
            dtype,
            stage,
            power=case.kwargs.get("power", 1.0),
            mode=case.kwargs.get("mode", "relative"),
            present=_present(case, var.shape),
        ).rtol
    if stage == "stage3":
        return stage3_tolerance(case.inputs[case.positional[0]].shape, dtype).rtol
    return rtol_for(dtype, stage, stage1_kappa(_reduction_length(case), case.cond)).rtol


def _atol(case: GoldenCase, field: str, dtype: str, rtol: float, ref: np.ndarray) -> Any:
    if case.stage == "stage1":
        finite = ref[np.isfinite(ref)]
        biggest = float(np.max(np.abs(finite))) if finite.size else 0.0
        outputs = case.expected(dtype) if dtype != "float64" else case.outputs
        terms = stage1_term_scales(case.function, case.inputs, outputs).get(field, 0.0)
        return rtol * np.maximum(biggest, terms)
    if field == "evidence":
        return float(np.finfo(np.dtype(dtype)).tiny)
    if field == "grad":
        mean = case.inputs["mean"].astype(dtype).astype(np.float64)
        present = _present(case, mean.shape)
        scale = np.max(np.where(present, np.abs(np.nan_to_num(mean, nan=0.0)), 0.0), axis=-2)
        return rtol * scale
    return rtol  # belief, uncertainty: masses in [0, 1]


def describe_exception(exc: BaseException) -> str:
    """One line: the exception type, its message and where in the candidate it came from."""
    if isinstance(exc, CandidateProblem):  # raised, died, timed out, broke the contract
        return exc.describe()
    if isinstance(exc, CaseTimeout):
        return f"timeout: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"raised {type(exc).__name__}: {message}{where}"


def reproduction(adapter: Adapter, case: GoldenCase, dtype: str) -> str:
    """A copy-pasteable snippet that reruns one golden or fresh case on the candidate and
    prints the comparison (documented API only; any supported NumPy)."""
    if case.tier == "fresh":
        load = "from bogc_ref.conformance.fresh import fresh_case as load_case\n"
        seed = f", seed={case.seed}" if case.seed is not None else ""
    else:
        load, seed = "from bogc_ref.conformance.golden import load_case\n", ""
    return (
        "from bogc_ref.conformance.loading import open_candidate\n"
        f"{load}"
        "from bogc_ref.conformance.runner import compare_result\n"
        f"impl = open_candidate({adapter.spec!r})\n"
        f"case = load_case({case.name!r}{seed})\n"
        f"args, kwargs = case.call_args({dtype!r})\n"
        f"got = impl.{case.function}(*args, **kwargs)\n"
        f"print(compare_result(case, {dtype!r}, got))"
    )


def compare_result(case: GoldenCase, dtype: str, result: Any) -> Comparison:
    """A candidate's result of ``case`` in ``dtype`` against the reference, by the policy.

    ``result`` is what the function returned (a named result or, for a function with a
    single output, the array). The Comparison prints ``ok``, the worst errors, ``ratio``
    (error in units of the tolerance) and, on failure, where and by how much.
    """
    from .convert import convert_result

    converted = convert_result(case.function, result)
    return _compare_fields(case, dtype, case_rtol(case, dtype), converted)


def check_golden(adapter: Adapter, case: GoldenCase, dtype: str) -> CaseResult:
    """Run one golden (or fresh) case on the candidate and compare every output field."""
    rtol = case_rtol(case, dtype)
    start = time.perf_counter()
    args, kwargs = case.call_args(dtype)
    try:
        result = adapter.call(case.function, *args, **kwargs)
        comparison = _compare_fields(case, dtype, rtol, result)
    except Exception as exc:
        comparison = failed(describe_exception(exc))
    seconds = time.perf_counter() - start
    reason = comparison.reason
    if not comparison.ok:
        reason += "\n  reproduce:\n    " + reproduction(adapter, case, dtype).replace(
            "\n", "\n    "
        )
    return CaseResult(
        case.name,
        case.stage,
        case.function,
        dtype,
        comparison.ok,
        comparison.abs_err,
        comparison.rel_err,
        rtol,
        reason,
        seconds,
        kind="golden",
        tier=case.tier,
        ratio=comparison.ratio,
        bound=f"|c - r| <= atol + rtol|r|, rtol {rtol:.3g}",
    )


def compare_outputs(
    case: GoldenCase, field: str, got: np.ndarray, expected: np.ndarray, rtol: float
) -> Comparison:
    """One float64 output field of ``case`` against ``expected`` under the case's policy."""
    return compare_array(
        field, got, expected, rtol=rtol, atol=_atol(case, field, "float64", rtol, expected)
    )


def _compare_fields(case: GoldenCase, dtype: str, rtol: float, result: Any) -> Comparison:
    expected = case.expected(dtype)
    fields = output_fields(case.function)
    comparisons = []
    for field in fields:
        got = (
            result
            if len(fields) == 1 and isinstance(result, np.ndarray)
            else getattr(result, field)
        )
        ref = expected[field]
        comparisons.append(
            compare_array(
                field,
                got,
                ref,
                rtol=rtol,
                atol=_atol(case, field, dtype, rtol, ref),
                dtype=np.dtype(dtype),
            )
        )
    return merge(comparisons)


#: Draws the candidate's own sampler is asked for, and the harness's own estimate.
MC_CANDIDATE_SAMPLES = 4000
MC_TRUTH_SAMPLES = 40000
MC_SEED = 20240531


def _mc_truth(args: list[Any], n_draws: int) -> tuple[np.ndarray, ...]:
    """Sample mean, variance and fourth central moment of g from the harness's own draws."""
    h, labels, w_mean, w_cov = (np.asarray(a) for a in args)
    h_tilde = np.hstack([h.astype(np.float64), np.ones((h.shape[0], 1))])
    targets = np.eye(w_mean.shape[0])[labels]
    chol = cholesky_jittered(w_cov.astype(np.float64), "w_cov")
    rng = np.random.default_rng(MC_SEED + 1)
    draws = rng.standard_normal((n_draws, w_mean.size))
    weights = (w_mean.astype(np.float64).ravel() + draws @ chol.T).reshape(-1, *w_mean.shape)
    g = _gradients(weights, h_tilde, targets)
    mean = g.mean(axis=0)
    centred = g - mean
    var = np.mean(centred**2, axis=0) * n_draws / (n_draws - 1)
    m4 = np.mean(centred**4, axis=0)
    return mean, var, m4


#: Calls of the candidate's sampler per check: ``(name, draws as a fraction of S, seed offset)``.
#: The same seed twice must repeat; another seed must give other numbers; half the draws
#: must give other numbers (a sampler that ignores ``seed`` or ``n_samples`` fails) that
#: agree with the harness's draws within their own, wider, standard errors.
MC_CALLS = (("first", 1.0, 0), ("same seed", 1.0, 0), ("seed + 1", 1.0, 1), ("half", 0.5, 0))


def mc_comparisons(shape: tuple[int, ...]) -> int:
    """How many standardised differences one Monte Carlo check makes for moments of
    ``shape``: mean and var at S draws and at S/2 (the family of the Bonferroni bound)."""
    return 4 * int(np.prod(shape))


def monte_carlo_comparison(
    impl: Any,
    args: list[Any],
    dtype: str,
    *,
    samples: int = MC_CANDIDATE_SAMPLES,
    truth: int = MC_TRUTH_SAMPLES,
    seed: int = MC_SEED,
) -> Comparison:
    r"""The candidate's own sampler on the head ``args`` (h, labels, w_mean, w_cov) against
    ``truth`` independent harness draws (see :data:`MC_CALLS`): with ``samples`` and with
    ``samples // 2`` draws, every standardised difference of the mean and the variance below
    the Bonferroni bound :func:`~bogc_ref.conformance.tolerances.mc_z_threshold` (family-wise
    false alarm :data:`~bogc_ref.conformance.tolerances.MC_FAMILY_ALPHA`); the same ``seed``
    twice giving the same numbers, ``seed + 1`` and half the draws giving other numbers.
    ``ratio`` is the largest z over its bound.
    """
    w_mean, w_cov = np.asarray(args[2]), np.asarray(args[3])
    kappa = stage1_kappa(w_mean.size, float(np.linalg.cond(w_cov.astype(np.float64))))
    rtol = rtol_for(dtype, "stage1", kappa).rtol
    calls = {
        name: impl.softmax_head_moments(
            *args, n_samples=max(2, int(samples * fraction)), seed=seed + offset
        )
        for name, fraction, offset in MC_CALLS
    }
    return _compare_mc(calls, _mc_truth(args, truth), dtype, rtol, samples, truth, seed)


def check_monte_carlo(
    adapter: Adapter, case: GoldenCase, dtype: str, *, seed: int = MC_SEED
) -> CaseResult:
    r"""The candidate's own sampler (``n_samples``, ``seed``) against the harness's draws.

    With S_c = :data:`MC_CANDIDATE_SAMPLES` candidate draws (and S_c/2) and S_t =
    :data:`MC_TRUTH_SAMPLES` independent harness draws, each mean and variance difference
    is divided by its standard error (:func:`~bogc_ref.conformance.tolerances.mc_standard_errors`)
    and must stay below the Bonferroni bound :func:`~bogc_ref.conformance.tolerances.mc_z_threshold`
    over all :func:`mc_comparisons` comparisons. A second call with the same seed must
    repeat the first; another seed, or half the draws, must not (see :data:`MC_CALLS`).
    """
    name = "softmax_mc_own_sampler"
    rtol = rtol_for(dtype, "stage1", stage1_kappa(_reduction_length(case), case.cond)).rtol
    start = time.perf_counter()
    args, _ = case.call_args(dtype)
    try:
        comparison = monte_carlo_comparison(adapter, args, dtype, seed=seed)
    except Exception as exc:
        comparison = failed(describe_exception(exc))
    n_tests = mc_comparisons(case.outputs["mean"].shape)
    return CaseResult(
        name,
        "stage1",
        case.function,
        dtype,
        comparison.ok,
        comparison.abs_err,
        comparison.rel_err,
        rtol,
        comparison.reason,
        time.perf_counter() - start,
        kind="statistical",
        tier="statistical",
        ratio=comparison.ratio,
        bound=(
            f"|c - t| <= z se, z = {mc_z_threshold(n_tests):.2f} "
            f"({n_tests} comparisons, family-wise alpha {MC_FAMILY_ALPHA:g}); seed {seed} "
            "repeats, seed + 1 and half the draws differ"
        ),
    )


def _identical(a: Any, b: Any) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True) for f in ("mean", "var")
    )


def _compare_mc(
    calls: dict[str, Any],
    truth: tuple[np.ndarray, ...],
    dtype: str,
    rtol: float,
    samples: int,
    n_truth: int,
    seed: int,
) -> Comparison:
    mean_t, var_t, m4_t = truth
    first = calls["first"]
    for label, result in calls.items():
        for field in ("mean", "var"):
            got = getattr(result, field)
            if got.shape != mean_t.shape:
                return failed(f"{field} ({label}): shape {got.shape}, expected {mean_t.shape}")
            if got.dtype != np.dtype(dtype):
                return failed(f"{field} ({label}): dtype {got.dtype}, expected {dtype}")
            if not np.all(np.isfinite(got)):
                return failed(f"{field} ({label}): non-finite values (NaN or inf)")
    for field in ("mean", "var"):
        got = getattr(first, field)
        repeat = compare_array(
            f"{field} (same seed twice)",
            getattr(calls["same seed"], field),
            got,
            rtol=rtol,
            atol=rtol * float(np.max(np.abs(got))),
        )
        if not repeat.ok:
            return failed(f"not deterministic for a fixed seed: {repeat.reason}")
    if _identical(first, calls["seed + 1"]):
        return failed(
            f"seed is ignored: seed={seed} and seed={seed + 1} gave the very same mean and var"
        )
    half = max(2, samples // 2)
    if _identical(first, calls["half"]):
        return failed(
            f"n_samples is ignored: n_samples={samples} and n_samples={half} (seed {seed}) "
            "gave the very same mean and var"
        )
    z_bound = mc_z_threshold(mc_comparisons(mean_t.shape))
    results = []
    for label, result, n_draws in (
        ("", first, samples),
        (f" (n_samples={half})", calls["half"], half),
    ):
        se_mean, se_var = mc_standard_errors(var_t, m4_t, n_draws, n_truth)
        for field, target, se in (("mean", mean_t, se_mean), ("var", var_t, se_var)):
            got = getattr(result, field).astype(np.float64)
            diff = np.abs(got - target)
            floor = rtol * float(np.max(np.abs(target)))
            z = diff / (se + floor)
            i = tuple(int(j) for j in np.unravel_index(int(np.argmax(z)), z.shape))
            scale = np.abs(target) + se
            results.append(
                Comparison(
                    ok=bool(z[i] <= z_bound),
                    abs_err=float(diff.max()),
                    rel_err=float(np.max(diff / scale)),
                    ratio=float(z[i] / z_bound),
                    reason=(
                        ""
                        if z[i] <= z_bound
                        else f"{field}{label}: got {plain(got[i])}, sampling estimate "
                        f"{plain(target[i])} at index {i}: {z[i]:.1f} standard errors apart "
                        f"(bound {z_bound:.2f} for {mc_comparisons(mean_t.shape)} comparisons "
                        "at family-wise alpha 1e-6)"
                    ),
                )
            )
    return merge(results)
