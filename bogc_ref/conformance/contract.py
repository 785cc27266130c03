"""The contract tier: the spec's bad inputs must raise the spec's errors.

For every function a candidate provides, each :class:`BadInput` below builds one invalid
call from a valid one (a golden case's inputs with one thing broken) and states what the
spec requires: a ``ValueError`` or ``TypeError`` (``numpy.linalg.LinAlgError``, itself a
ValueError, where the spec says a factorisation fails) whose message names the offending
argument and, where one entry of it is bad (a NaN, an infinity, a negative value, a label
out of range), gives that entry's index and the argument's shape: every number of both
appears in the message, in any format. A missing exception, another exception type, a
message that does not name the argument (or give the index and shape), or a worker that
dies or times out fails the entry.

``calibrate(..., check_finite=False)`` requires nothing about non-finite values, so no
entry passes it.

The entries for M = 0, masked arrays and covariances that are not positive semi-definite
come from the spec's 2026-11-29 clarifications. A masked array (with NaN under its mask) of
``mean`` or ``var`` of ``calibrate``, ``var`` of ``evidence`` or ``evidence`` of the fusion
functions may be refused (TypeError naming the argument) or have its mask honoured: each
masked entry is then a vacuous one (var = +inf, evidence 0, its mean ignored), and the
result must equal the reference's on those plain inputs, by the tolerance policy
(:func:`honoured_case`). Masked inputs of the stage-1 functions and of ``dempster_combine``
have no vacuous meaning in the spec: they must be refused.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .golden import GoldenCase, load_case, run_reference, stage_of
from .laws import raised
from .runner import CaseResult, compare_result, describe_exception

VALUE = ("builtins.ValueError",)
TYPE = ("builtins.TypeError",)
EITHER = ("builtins.ValueError", "builtins.TypeError")
LINALG = ("numpy.linalg.LinAlgError",)

Call = tuple[list[Any], dict[str, Any]]


@dataclass(frozen=True)
class BadInput:
    """One invalid call: ``build(dtype)`` gives (args, kwargs); ``expect`` the accepted
    exception types (qualified names); ``argument`` must appear in the message."""

    name: str
    function: str
    argument: str
    build: Callable[[str], Call]
    expect: tuple[str, ...] = VALUE
    #: A result is accepted instead of the error when it equals the reference's answer
    #: with every masked entry honoured as vacuous (see :func:`honoured_case`).
    mask_honoured_ok: bool = False
    #: (position of the argument, index of its bad entry) when one entry is bad: the
    #: message must then also give that index and the argument's shape (the spec).
    located: tuple[int, tuple[int, ...]] | None = None

    @property
    def stage(self) -> str:
        """The stage of :attr:`function`."""
        return stage_of(self.function)


def _base(case: str, dtype: str) -> Call:
    args, kwargs = load_case(case).call_args(dtype)
    return [a.copy() for a in args], dict(kwargs)


def _edit(
    case: str, edit: Callable[[list[Any], dict[str, Any], str], None]
) -> Callable[[str], Call]:
    def build(dtype: str) -> Call:
        args, kwargs = _base(case, dtype)
        edit(args, kwargs, dtype)
        return args, kwargs

    return build


def _set(
    position: int | str, index: Any, value: float
) -> Callable[[list[Any], dict[str, Any], str], None]:
    def edit(args: list[Any], kwargs: dict[str, Any], dtype: str) -> None:
        target = args[position] if isinstance(position, int) else kwargs[position]
        target[index] = value

    return edit


def _at(case: str, position: int, index: int | tuple[int, ...], value: float) -> dict[str, Any]:
    """``build`` and ``located`` of an entry whose argument at ``position`` gets one bad
    ``value`` at ``index``."""
    where = index if isinstance(index, tuple) else (index,)
    return {"build": _edit(case, _set(position, index, value)), "located": (position, where)}


def _replace(
    position: int | str, make: Callable[[Any], Any]
) -> Callable[[list[Any], dict[str, Any], str], None]:
    def edit(args: list[Any], kwargs: dict[str, Any], dtype: str) -> None:
        if isinstance(position, int):
            args[position] = make(args[position])
        else:
            kwargs[position] = make(kwargs.get(position))

    return edit


def _keywords(**values: Any) -> Callable[[list[Any], dict[str, Any], str], None]:
    def edit(args: list[Any], kwargs: dict[str, Any], dtype: str) -> None:
        kwargs.update(values)

    return edit


def _integer(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.round(x)).astype(np.int64)


def _not_pd(x: np.ndarray) -> np.ndarray:
    """A symmetric matrix (stack) with a clearly negative eigenvalue."""
    out = np.array(x, copy=True)
    out[..., 0, 0] = -10.0 * float(np.max(np.abs(x)))
    return out


def _masked_nan(x: np.ndarray) -> Any:
    """A masked array of ``x`` with NaN under its mask: the first entry of every leading
    index (of the first source) and every third entry of the last source (or of the
    array, for a vector)."""
    data = np.array(x, copy=True)
    mask = np.zeros(data.shape, dtype=bool)
    if data.ndim >= 2:
        mask[..., 0, 0] = True
        mask[..., -1, 1::3] = True
    else:
        mask[1::3] = True
    data[mask] = np.nan
    return np.ma.masked_array(data, mask=mask)


#: Arguments a masked array may stand for, by function, and what a masked entry means
#: when the mask is honoured: ``mean`` ignored and its ``var`` +inf (calibrate), ``var``
#: +inf (evidence), evidence 0 (fusion): a vacuous entry.
HONOURED = {
    "calibrate": ("mean", "var"),
    "evidence": ("var",),
    "opinions": ("evidence",),
    "reduced_dempster": ("evidence",),
}


def honoured_case(name: str, function: str, args: list[Any], kwargs: dict[str, Any]) -> GoldenCase:
    """The call ``function(*args, **kwargs)`` with its masked arrays honoured as vacuous
    entries, as a case whose outputs are the reference's (in float64; a float32 candidate
    is compared with the reference on the float32 inputs, as everywhere)."""
    names = HONOURED[function]
    values = dict(zip(names, args, strict=False))
    vacuous = np.zeros(np.shape(args[0]), dtype=bool)
    for value in values.values():
        vacuous |= np.ma.getmaskarray(value)
    plain = {k: np.array(np.ma.getdata(v), dtype=np.float64) for k, v in values.items()}
    if function == "calibrate":
        plain["mean"][vacuous] = 0.0
        plain["var"][vacuous] = np.inf
    elif function == "evidence":
        plain["var"][vacuous] = np.inf
    else:
        plain["evidence"][vacuous] = 0.0
    arrays = {k: np.asarray(v) for k, v in kwargs.items() if isinstance(v, np.ndarray)}
    scalars = {k: v for k, v in kwargs.items() if k not in arrays}
    inputs = {**plain, **arrays}
    outputs = run_reference(function, [plain[k] for k in names], {**arrays, **scalars})
    dtype = str(np.ma.getdata(args[0]).dtype)
    return GoldenCase(
        name,
        function,
        names,
        inputs,
        scalars,
        outputs,
        (dtype,),
        1.0,
        "mask honoured",
        tier="contract",
    )


CAL = "cal_M3_D32_normalize"
EV = "ev_M3_D16_fixed_power"
RD = "rd_batch2_M4_D8"
OP = "op_batch2_M3_D8"
DC = "dc_frame3_sparse"
EMP = "empirical_batch"
LIN = "linear_moments_small"
MC = "softmax_mc_eps"
LINZ = "softmax_linearized"
POST = "linear_posterior_ordinary"
LAP = "softmax_laplace_ordinary"


def _calibrate_entries() -> list[BadInput]:
    f = "calibrate"
    return [
        BadInput("calibrate_nan_mean", f, "mean", **_at(CAL, 0, (1, 3), np.nan)),
        BadInput("calibrate_nan_var", f, "var", **_at(CAL, 1, (2, 5), np.nan)),
        BadInput("calibrate_inf_mean", f, "mean", **_at(CAL, 0, (0, 0), np.inf)),
        BadInput("calibrate_minus_inf_mean", f, "mean", **_at(CAL, 0, (2, 9), -np.inf)),
        BadInput("calibrate_negative_var", f, "var", **_at(CAL, 1, (1, 1), -1.0)),
        BadInput(
            "calibrate_shape_mismatch", f, "var", _edit(CAL, _replace(1, lambda v: v[:, :-1]))
        ),
        BadInput("calibrate_one_dim", f, "mean", _edit(CAL, _replace(0, lambda v: v[0])), EITHER),
        BadInput("calibrate_integer_mean", f, "mean", _edit(CAL, _replace(0, _integer)), TYPE),
        BadInput(
            "calibrate_mixed_dtypes",
            f,
            "var",
            _edit(CAL, _replace(1, lambda v: v.astype(np.float16))),
            TYPE,
        ),
        BadInput(
            "calibrate_mask_not_bool",
            f,
            "mask",
            _edit(CAL, _replace("mask", lambda _: np.array([1, 0, 1]))),
            TYPE,
        ),
        BadInput(
            "calibrate_mask_shape",
            f,
            "mask",
            _edit(CAL, _replace("mask", lambda _: np.array([True, False]))),
        ),
        BadInput("calibrate_power_zero", f, "power", _edit(CAL, _keywords(power=0.0))),
        BadInput("calibrate_power_negative", f, "power", _edit(CAL, _keywords(power=-1.0))),
        BadInput(
            "calibrate_prior_weight_zero",
            f,
            "prior_weight",
            _edit(CAL, _keywords(prior_weight=0.0)),
        ),
        BadInput(
            "calibrate_prior_weight_negative",
            f,
            "prior_weight",
            _edit(CAL, _keywords(prior_weight=-2.0)),
        ),
        BadInput("calibrate_tau_zero", f, "tau", _edit(CAL, _keywords(mode="fixed", tau=0.0))),
        BadInput("calibrate_tau_negative", f, "tau", _edit(CAL, _keywords(mode="fixed", tau=-1.0))),
        BadInput("calibrate_unknown_mode", f, "mode", _edit(CAL, _keywords(mode="absolute"))),
        BadInput(
            "calibrate_no_sources",
            f,
            "mean",
            _edit(CAL, lambda a, k, d: a.__setitem__(slice(None), [x[:0] for x in a])),
        ),
        BadInput(
            "calibrate_masked_array_nan",
            f,
            "mean",
            _edit(CAL, _replace(0, _masked_nan)),
            TYPE,
            mask_honoured_ok=True,
        ),
        BadInput(
            "calibrate_masked_var_nan",
            f,
            "var",
            _edit(CAL, _replace(1, _masked_nan)),
            TYPE,
            mask_honoured_ok=True,
        ),
        BadInput(
            "calibrate_masked_mean_and_var",
            f,
            "mean",
            _edit(CAL, lambda a, k, d: a.__setitem__(slice(None), [_masked_nan(x) for x in a])),
            TYPE,
            mask_honoured_ok=True,
        ),
    ]


def _evidence_entries() -> list[BadInput]:
    f = "evidence"
    return [
        BadInput("evidence_nan_var", f, "var", **_at(EV, 0, (0, 3), np.nan)),
        BadInput("evidence_negative_var", f, "var", **_at(EV, 0, (2, 0), -0.5)),
        BadInput("evidence_integer_var", f, "var", _edit(EV, _replace(0, _integer)), TYPE),
        BadInput("evidence_tau_zero", f, "tau", _edit(EV, _keywords(tau=0.0))),
        BadInput("evidence_tau_negative", f, "tau", _edit(EV, _keywords(tau=-3.0))),
        BadInput("evidence_power_zero", f, "power", _edit(EV, _keywords(power=0.0))),
        BadInput("evidence_power_negative", f, "power", _edit(EV, _keywords(power=-1.5))),
        BadInput(
            "evidence_no_sources",
            f,
            "var",
            _edit(EV, _replace(0, lambda v: v[:0])),
        ),
        BadInput(
            "evidence_masked_array_nan",
            f,
            "var",
            _edit(EV, _replace(0, _masked_nan)),
            TYPE,
            mask_honoured_ok=True,
        ),
    ]


def _fusion_entries(f: str, case: str) -> list[BadInput]:
    return [
        BadInput(f"{f}_nan_evidence", f, "evidence", **_at(case, 0, (0, 1, 2), np.nan)),
        BadInput(f"{f}_negative_evidence", f, "evidence", **_at(case, 0, (1, 0, 0), -1.0)),
        BadInput(f"{f}_integer_evidence", f, "evidence", _edit(case, _replace(0, _integer)), TYPE),
        BadInput(
            f"{f}_prior_weight_zero", f, "prior_weight", _edit(case, _keywords(prior_weight=0.0))
        ),
        BadInput(
            f"{f}_prior_weight_negative",
            f,
            "prior_weight",
            _edit(case, _keywords(prior_weight=-1.0)),
        ),
        BadInput(
            f"{f}_no_sources",
            f,
            "evidence",
            _edit(case, _replace(0, lambda e: e[..., :0, :])),
        ),
        BadInput(
            f"{f}_masked_array_nan",
            f,
            "evidence",
            _edit(case, _replace(0, _masked_nan)),
            TYPE,
            mask_honoured_ok=True,
        ),
    ]


def _dempster_combine_entries() -> list[BadInput]:
    f = "dempster_combine"

    def conflict(args: list[Any], kwargs: dict[str, Any], dtype: str) -> None:
        first, second = np.zeros_like(args[0]), np.zeros_like(args[1])
        first[1], second[2] = 1, 1
        args[0], args[1] = first, second

    def unnormalised(m: np.ndarray) -> np.ndarray:
        return np.asarray(m * 2)

    def empty_set_mass(m: np.ndarray) -> np.ndarray:
        out = np.array(m * 0.5)
        out[0] = 0.5
        return out

    return [
        BadInput("dempster_combine_total_conflict", f, "m1", _edit(DC, conflict)),
        BadInput(
            "dempster_combine_not_power_of_two", f, "m1", _edit(DC, _replace(0, lambda m: m[:-1]))
        ),
        BadInput(
            "dempster_combine_length_mismatch",
            f,
            "m2",
            _edit(DC, _replace(1, lambda m: np.concatenate([m, np.zeros_like(m)]))),
        ),
        BadInput(
            "dempster_combine_empty_set_mass", f, "m1", _edit(DC, _replace(0, empty_set_mass))
        ),
        BadInput("dempster_combine_negative_mass", f, "m2", **_at(DC, 1, 1, -0.25)),
        BadInput("dempster_combine_nan_mass", f, "m1", **_at(DC, 0, 2, np.nan)),
        BadInput(
            "dempster_combine_not_summing_to_one", f, "m1", _edit(DC, _replace(0, unnormalised))
        ),
        BadInput(
            "dempster_combine_integer_masses", f, "m1", _edit(DC, _replace(0, _integer)), TYPE
        ),
        BadInput(
            "dempster_combine_masked_array", f, "m1", _edit(DC, _replace(0, _masked_nan)), TYPE
        ),
    ]


def _stage1_entries() -> list[BadInput]:
    def labels_out_of_range(case: str) -> dict[str, Any]:
        return _at(case, 1, 0, 99)

    def float_labels(case: str) -> Callable[[str], Call]:
        return _edit(case, _replace(1, lambda lab: lab.astype(np.float64)))

    lin, mc, lz = "linear_head_moments", "softmax_head_moments", "softmax_head_moments_linearized"
    post, lap, emp = "linear_head_posterior", "softmax_head_laplace", "empirical_moments"
    masked = [
        BadInput(f"{fn}_masked_array", fn, name, _edit(case, _replace(0, _masked_nan)), TYPE)
        for fn, name, case in (
            (emp, "per_sample_grads", EMP),
            (lin, "h", LIN),
            (mc, "h", MC),
            (lz, "h", LINZ),
            (post, "h", POST),
            (lap, "h", LAP),
        )
    ]
    return [
        *masked,
        BadInput(
            "empirical_moments_one_sample",
            emp,
            "per_sample_grads",
            _edit(EMP, _replace(0, lambda g: g[:1])),
        ),
        BadInput(
            "empirical_moments_nan",
            emp,
            "per_sample_grads",
            **_at(EMP, 0, (0, 0, 0, 0), np.nan),
        ),
        BadInput(
            "empirical_moments_integer",
            emp,
            "per_sample_grads",
            _edit(EMP, _replace(0, _integer)),
            TYPE,
        ),
        BadInput(f"{lin}_nan_h", lin, "h", **_at(LIN, 0, (0, 0), np.nan)),
        BadInput(f"{lin}_rows_mismatch", lin, "y", _edit(LIN, _replace(1, lambda y: y[:-1]))),
        BadInput(f"{lin}_integer_h", lin, "h", _edit(LIN, _replace(0, _integer)), TYPE),
        BadInput(
            f"{lin}_cov_not_psd",
            lin,
            "w_cov",
            _edit(LIN, _replace(3, _not_pd)),
        ),
        BadInput(f"{mc}_label_out_of_range", mc, "labels", **labels_out_of_range(MC)),
        BadInput(f"{mc}_float_labels", mc, "labels", float_labels(MC), TYPE),
        BadInput(f"{mc}_cov_not_pd", mc, "w_cov", _edit(MC, _replace(3, _not_pd)), LINALG),
        BadInput(f"{mc}_eps_columns", mc, "eps", _edit(MC, _replace("eps", lambda e: e[:, :-1]))),
        BadInput(f"{mc}_one_sample", mc, "eps", _edit(MC, _replace("eps", lambda e: e[:1]))),
        BadInput(f"{lz}_label_out_of_range", lz, "labels", **labels_out_of_range(LINZ)),
        BadInput(
            f"{lz}_cov_not_psd",
            lz,
            "w_cov",
            _edit(LINZ, _replace(3, _not_pd)),
        ),
        BadInput(
            f"{post}_noise_var_zero", post, "noise_var", _edit(POST, _keywords(noise_var=0.0))
        ),
        BadInput(
            f"{post}_noise_var_negative", post, "noise_var", _edit(POST, _keywords(noise_var=-1.0))
        ),
        BadInput(f"{post}_nan_y", post, "y", **_at(POST, 1, (0, 0), np.nan)),
        BadInput(
            f"{post}_precision_not_pd",
            post,
            "precision",
            _edit(
                POST,
                _replace("prior_precision", lambda p: -1e3 * np.eye(p.shape[0], dtype=p.dtype)),
            ),
            LINALG,
        ),
        BadInput(f"{lap}_label_out_of_range", lap, "labels", **labels_out_of_range(LAP)),
        BadInput(
            f"{lap}_prior_mean_shape",
            lap,
            "prior_mean",
            _edit(LAP, _replace("prior_mean", lambda m: m[:, :-1])),
        ),
        BadInput(
            f"{lap}_precision_not_pd",
            lap,
            "precision",
            _edit(
                LAP, _replace("prior_precision", lambda p: -1e3 * np.eye(p.shape[0], dtype=p.dtype))
            ),
            LINALG,
        ),
    ]


def bad_inputs() -> list[BadInput]:
    """Every contract entry, stage 1 first."""
    return [
        *_stage1_entries(),
        *_evidence_entries(),
        *_fusion_entries("opinions", OP),
        *_fusion_entries("reduced_dempster", RD),
        *_dempster_combine_entries(),
        *_calibrate_entries(),
    ]


def _accepts(exc: BaseException, expect: tuple[str, ...]) -> bool:
    for name in expect:
        if raised(exc, name):
            return True
        if name == "numpy.linalg.LinAlgError" and raised(exc, "numpy.linalg.linalg.LinAlgError"):
            return True  # its module path on NumPy 1.26
    return False


def _message(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) else str(exc)


def check_bad_input(impl: Any, entry: BadInput, dtype: str) -> str:
    """ "" when ``impl`` meets ``entry`` in ``dtype``, else what went wrong."""
    args, kwargs = entry.build(dtype)
    wanted = " or ".join(n.rsplit(".", 1)[-1] for n in entry.expect)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # bad input may warn on its way to the error
            result = getattr(impl, entry.function)(*args, **kwargs)
    except Exception as exc:
        if not _accepts(exc, entry.expect):
            return f"expected {wanted} naming {entry.argument!r}; {describe_exception(exc)}"
        message = _message(exc)
        first_line = message.splitlines()[0] if message else ""
        if entry.argument not in message:
            return (
                f"raised {getattr(exc, 'type_name', type(exc).__name__)} as required, but the "
                f"message does not name {entry.argument!r}: {first_line}"
            )
        if entry.located is not None:
            position, index = entry.located
            shape = tuple(np.shape(args[position]))
            if not set(index + shape) <= {int(n) for n in re.findall(r"\d+", message)}:
                return (
                    f"raised {getattr(exc, 'type_name', type(exc).__name__)} naming "
                    f"{entry.argument!r}, but the message does not give the index {index} and "
                    f"the shape {shape} (the spec asks for argument, index and shape): "
                    f"{first_line}"
                )
        return ""
    if entry.mask_honoured_ok:
        case = honoured_case(entry.name, entry.function, args, kwargs)
        comparison = compare_result(case, dtype, result)
        if comparison.ok:
            return ""
        return (
            f"expected {wanted} naming {entry.argument!r}, or the result with the mask "
            f"honoured (masked entries vacuous); got a result that is not: {comparison.reason}"
        )
    return f"missing exception: expected {wanted} naming {entry.argument!r}, got a result"


def run_contract(
    adapter: Any, dtype: str, progress: Callable[[str], None] | None = None
) -> list[CaseResult]:
    """The contract tier on one candidate in one dtype (rows of tier "contract")."""
    provides = getattr(adapter, "provides", None)
    results = []
    for entry in bad_inputs():
        present = (
            provides(entry.function) if provides is not None else hasattr(adapter, entry.function)
        )
        if not present:
            continue
        start = time.perf_counter()
        message = check_bad_input(adapter, entry, dtype)
        results.append(
            CaseResult.verdict(
                entry.name,
                entry.stage,
                entry.function,
                dtype,
                message,
                time.perf_counter() - start,
                tier="contract",
                bound=" or ".join(entry.expect) + f" naming {entry.argument!r}",
            )
        )
        if progress is not None:
            progress(f"contract {entry.name} {dtype}")
    return results
