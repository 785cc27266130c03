"""The input-contract fuzzer's calls: hostile variants of valid calls to every public function.

A :class:`Case` is one call (function name and every argument by name) with what the
spec says must happen: ``"valid"`` (an answer), ``"invalid"`` (a ValueError or TypeError,
LinAlgError included, whose message names ``arg``) or ``"either"`` (a correct answer or
such a clear error, e.g. for inputs whose exact answer overflows). Cases are built by
:func:`draw_case` from a :class:`Chooser`, so one generator serves Hypothesis (which
shrinks it) and the counting script ``report.py`` (a seeded NumPy generator).

``contract_verdicts`` classifies what a call does. Neither module imports ``bogc_ref``:
the implementation is handed in, so the report can be run against an older checkout.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import numpy as np

T = TypeVar("T")

FUNCTIONS = (
    "calibrate",
    "evidence",
    "opinions",
    "reduced_dempster",
    "dempster_combine",
    "linear_head_moments",
    "softmax_head_moments",
    "softmax_head_moments_linearized",
    "empirical_moments",
    "linear_head_posterior",
    "softmax_head_laplace",
)

#: Positional arguments of each function (the rest are keywords).
POSITIONAL = {
    "calibrate": ("mean", "var"),
    "evidence": ("var",),
    "opinions": ("evidence",),
    "reduced_dempster": ("evidence",),
    "dempster_combine": ("m1", "m2"),
    "linear_head_moments": ("h", "y", "w_mean", "w_cov"),
    "softmax_head_moments": ("h", "labels", "w_mean", "w_cov"),
    "softmax_head_moments_linearized": ("h", "labels", "w_mean", "w_cov"),
    "empirical_moments": ("per_sample_grads",),
    "linear_head_posterior": ("h", "y"),
    "softmax_head_laplace": ("h", "labels", "w"),
}


class Chooser(Protocol):
    """Where a case's choices come from (Hypothesis' ``data.draw`` or a NumPy generator)."""

    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        ...

    def pick(self, options: Sequence[T]) -> T:
        """One of ``options``."""
        ...


class RngChooser:
    """A :class:`Chooser` on ``numpy.random.Generator``."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def integer(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi, endpoint=True))

    def pick(self, options: Sequence[T]) -> T:
        return options[int(self.rng.integers(len(options)))]


@dataclass
class Case:
    """One call and what must happen (see the module docstring)."""

    function: str
    args: dict[str, Any]
    expect: str = "valid"  # "valid", "invalid" or "either"
    arg: str | None = None  # the argument an error must name
    mutation: str = "base"
    base: dict[str, Any] | None = None  # arguments whose answer this call must reproduce
    parity: bool = True  # a backend must match the reference's values
    bounded: tuple[str, ...] = ()  # output fields that must be finite (±inf is wrong there)

    def call(self, impl: Any) -> Any:
        return invoke(impl, self.function, self.args)

    def __repr__(self) -> str:
        shapes = {k: _describe(v) for k, v in self.args.items()}
        return f"Case({self.function}, {self.mutation}, expect={self.expect}, {shapes})"


def _describe(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"{type(v).__name__}{v.shape}:{v.dtype}"
    return repr(v) if not isinstance(v, list) else "list"


def invoke(impl: Any, function: str, args: dict[str, Any]) -> Any:
    positional = POSITIONAL[function]
    fn = getattr(impl, function)
    return fn(
        *(args[n] for n in positional), **{k: v for k, v in args.items() if k not in positional}
    )


# ---------------------------------------------------------------------------- values
def _values(c: Chooser, shape: tuple[int, ...], exponent: float) -> np.ndarray:
    rng = np.random.default_rng(c.integer(0, 2**32 - 1))
    scale = 10.0 ** rng.uniform(-exponent, exponent, size=shape)
    return rng.normal(size=shape) * scale


def _positive(c: Chooser, shape: tuple[int, ...], exponent: float) -> np.ndarray:
    rng = np.random.default_rng(c.integer(0, 2**32 - 1))
    return 10.0 ** rng.uniform(-exponent, exponent, size=shape)


def _psd(c: Chooser, lead: tuple[int, ...], n: int, exponent: float, rank_full: bool) -> np.ndarray:
    rng = np.random.default_rng(c.integer(0, 2**32 - 1))
    rank = n if rank_full else max(0, n - 1)
    a = rng.normal(size=(*lead, n, rank)) * 10.0 ** rng.uniform(-exponent, exponent)
    out = a @ np.swapaxes(a, -1, -2)
    if rank_full:
        out = out + np.eye(n) * (10.0 ** rng.uniform(-exponent, exponent))
    return 0.5 * (out + np.swapaxes(out, -1, -2))


# ---------------------------------------------------------------------------- base calls
def _calibrate_like(c: Chooser, function: str) -> Case:
    lead = c.pick([(), (), (c.integer(0, 2),)])
    m, d = c.integer(1, 4), c.pick([0, 1, 2, 3, 5])
    shape = (*lead, m, d)
    exponent = c.pick([0.0, 3.0, 15.0, 30.0, 150.0])
    var = _positive(c, shape, exponent)
    special = c.pick(["none", "none", "zero", "inf", "both"])
    if special != "none" and var.size:
        rng = np.random.default_rng(c.integer(0, 2**32 - 1))
        flat = var.reshape(-1)
        if special in ("zero", "both"):
            flat[rng.integers(flat.size)] = 0.0
        if special in ("inf", "both"):
            flat[rng.integers(flat.size)] = np.inf
    args: dict[str, Any] = {}
    if function == "calibrate":
        args["mean"] = _values(c, shape, c.pick([0.0, 3.0, 100.0]))
    if function in ("opinions", "reduced_dempster"):
        with np.errstate(divide="ignore"):
            args["evidence"] = 1.0 / var
    else:
        args["var"] = var
        if c.integer(0, 3) == 0:
            rng = np.random.default_rng(c.integer(0, 2**32 - 1))
            args["mask"] = rng.random((*lead, m)) < 0.7
        mode = c.pick(["relative", "relative", "fixed"])
        if mode == "fixed":
            args["mode"] = "fixed"
            args["tau"] = float(10.0 ** c.pick([-300, -30, 0, 30, 300]))
        args["power"] = c.pick([1.0, 1.0, 0.5, 2.0, 40.0, 1e308])
    if function in ("calibrate", "opinions", "reduced_dempster") and c.integer(0, 2) == 0:
        args["prior_weight"] = float(10.0 ** c.pick([-300, -3, 0, 3, 300]))
    if function == "calibrate":
        args["normalize"] = c.pick([False, True])
    bounded = {
        "calibrate": ("grad", "belief", "uncertainty"),
        "opinions": ("belief", "uncertainty"),
        "reduced_dempster": ("belief", "uncertainty"),
        "evidence": (),
    }[function]
    return Case(function, args, bounded=bounded)


def _dempster(c: Chooser) -> Case:
    n = c.integer(1, 4)
    size = 1 << n
    masses = []
    for _ in range(2):
        rng = np.random.default_rng(c.integer(0, 2**32 - 1))
        m = rng.random(size) * (rng.random(size) < 0.6)
        m[0] = 0.0
        if m.sum() == 0:
            m[-1] = 1.0
        masses.append(m / m.sum())
    args = {"m1": masses[0], "m2": masses[1]}
    conflict = all(
        (i & j) == 0 for i in np.flatnonzero(masses[0]) for j in np.flatnonzero(masses[1])
    )
    if conflict:
        return Case("dempster_combine", args, expect="invalid", arg="m1", bounded=("out",))
    return Case("dempster_combine", args, bounded=("out",))


def _heads(c: Chooser, function: str) -> Case:
    b, d, k = c.pick([0, 1, 3, 4]), c.pick([0, 1, 2, 3]), c.integer(1, 3)
    width = d + 1
    exponent = c.pick([0.0, 0.0, 2.0, 8.0, 30.0])
    h = _values(c, (b, d), exponent)
    full = c.integer(0, 4) != 0
    args: dict[str, Any] = {"h": h}
    cov_exp = c.pick([0.0, 1.0, 3.0])
    if function in ("linear_head_moments", "linear_head_posterior"):
        args["y"] = _values(c, (b, k), 1.0)
    else:
        rng = np.random.default_rng(c.integer(0, 2**32 - 1))
        args["labels"] = rng.integers(0, k, size=b)
    if function == "linear_head_moments":
        args["w_mean"] = _values(c, (k, width), 1.0)
        args["w_cov"] = _psd(c, (k,), width, cov_exp, full) * (c.integer(0, 5) != 0)
    elif function in ("softmax_head_moments", "softmax_head_moments_linearized"):
        args["w_mean"] = _values(c, (k, width), 1.0)
        args["w_cov"] = _psd(c, (), k * width, cov_exp, full) * (c.integer(0, 5) != 0)
        if function == "softmax_head_moments":
            if c.integer(0, 1):
                rng = np.random.default_rng(c.integer(0, 2**32 - 1))
                args["eps"] = rng.normal(size=(c.integer(2, 6), k * width))
            else:
                args["n_samples"] = c.integer(2, 6)
                args["seed"] = c.integer(0, 2**31)
            if c.integer(0, 1):
                args["chunk_size"] = c.integer(1, 4)
    elif function == "linear_head_posterior":
        args["prior_mean"] = _values(c, (k, width), 1.0)
        args["prior_precision"] = _psd(c, (), width, cov_exp, True)
        args["noise_var"] = float(10.0 ** c.pick([-3, 0, 2]))
    else:
        args["w"] = _values(c, (k, width), 1.0)
        args["prior_mean"] = _values(c, (k, width), 1.0)
        args["prior_precision"] = _psd(c, (), k * width, cov_exp, True)
    parity = not (function == "softmax_head_moments" and "eps" not in args)
    case = Case(function, args, parity=parity)
    if exponent >= 30.0:  # overflow of squares is possible: an inf may be the right answer
        case.expect = "either"
    return case


def _empirical(c: Chooser) -> Case:
    lead = c.pick([(), (2,), (0,)])
    shape = (c.integer(2, 5), *lead, c.pick([0, 1, 3]))
    exponent = c.pick([0.0, 3.0, 30.0, 307.0])
    case = Case("empirical_moments", {"per_sample_grads": _values(c, shape, exponent)})
    if exponent > 300:  # squares overflow: an inf variance may be the right answer
        case.expect = "either"
    return case


def base_case(c: Chooser, function: str) -> Case:
    """A valid call of ``function``, in float64 or (one time in three) float32."""
    if function in ("calibrate", "evidence", "opinions", "reduced_dempster"):
        case = _calibrate_like(c, function)
    elif function == "dempster_combine":
        case = _dempster(c)
    elif function == "empirical_moments":
        case = _empirical(c)
    else:
        case = _heads(c, function)
    if c.integer(0, 2) == 0:
        case = _as_float32(case)
    return case


def _as_float32(case: Case) -> Case:
    floats = _float_args(case)
    args = {k: (v.astype(np.float32) if k in floats else v) for k, v in case.args.items()}
    if any(np.any(np.isinf(args[k]) & np.isfinite(case.args[k])) for k in floats):
        return case  # beyond float32's range: stays float64
    expect = case.expect
    if case.function == "dempster_combine":  # float32 masses must still sum to 1 in float32
        expect = "either" if case.expect == "valid" else case.expect
    return replace(case, args=args, expect=expect, mutation=f"float32 {case.mutation}")


# ---------------------------------------------------------------------------- mutations
FLOAT_ARGS = {
    "calibrate": ("mean", "var"),
    "evidence": ("var",),
    "opinions": ("evidence",),
    "reduced_dempster": ("evidence",),
    "dempster_combine": ("m1", "m2"),
    "linear_head_moments": ("h", "y", "w_mean", "w_cov"),
    "softmax_head_moments": ("h", "w_mean", "w_cov", "eps"),
    "softmax_head_moments_linearized": ("h", "w_mean", "w_cov"),
    "empirical_moments": ("per_sample_grads",),
    "linear_head_posterior": ("h", "y", "prior_mean", "prior_precision"),
    "softmax_head_laplace": ("h", "w", "prior_mean", "prior_precision"),
}
#: Arguments where +inf is a legal value (vacuous variance, dogmatic evidence).
INF_OK = {("calibrate", "var"), ("evidence", "var"), ("opinions", "evidence"),
          ("reduced_dempster", "evidence")}  # fmt: skip
#: Arguments that must be non-negative.
NONNEG = {("calibrate", "var"), ("evidence", "var"), ("opinions", "evidence"),
          ("reduced_dempster", "evidence"), ("dempster_combine", "m1"),
          ("dempster_combine", "m2")}  # fmt: skip
#: Covariances that must be positive semi-definite (w_cov) and symmetric (all).
COVARIANCES = {"w_cov", "prior_precision"}

SCALARS: dict[str, list[tuple[str, Any, str]]] = {
    # name: [(label, value, expect)]
    "power": [("zero", 0.0, "invalid"), ("neg", -1.0, "invalid"), ("nan", math.nan, "invalid"),
              ("inf", math.inf, "invalid"), ("str", "1", "invalid"), ("none", None, "invalid"),
              ("huge", 1e308, "valid"), ("tiny", 1e-308, "valid"),
              ("npf32", np.float32(2), "valid")],
    "tau": [("zero", 0.0, "invalid"), ("neg", -2.0, "invalid"), ("nan", math.nan, "invalid"),
            ("str", "1", "invalid"), ("tiny", 1e-308, "valid"), ("huge", 1e308, "valid")],
    "prior_weight": [("zero", 0, "invalid"), ("neg", -1.0, "invalid"), ("inf", math.inf, "invalid"),
                     ("str", "2", "invalid"), ("bool", True, "invalid"), ("huge", 1e308, "valid"),
                     ("tiny", 1e-308, "valid")],
    "normalize": [("str", "yes", "invalid"), ("int", 1, "invalid")],
    "mode": [("unknown", "absolute", "invalid"), ("none", None, "invalid")],
    "noise_var": [("zero", 0.0, "invalid"), ("neg", -1.0, "invalid"), ("nan", math.nan, "invalid"),
                  ("str", "1", "invalid"), ("subnormal", 1e-320, "either"),
                  ("huge", 1e300, "valid")],
    "seed": [("neg", -1, "invalid"), ("float", 1.5, "invalid"), ("str", "1", "invalid"),
             ("big", 2**70, "valid"), ("np", np.int64(3), "valid")],
    "n_samples": [("one", 1, "invalid"), ("zero", 0, "invalid"), ("float", 2.5, "invalid"),
                  ("bool", True, "invalid")],
    "chunk_size": [("zero", 0, "invalid"), ("neg", -1, "invalid"), ("float", 2.0, "invalid"),
                   ("big", 10**6, "valid")],
}  # fmt: skip


def _float_args(case: Case) -> list[str]:
    return [n for n in FLOAT_ARGS[case.function] if n in case.args]


def _arrays(case: Case) -> list[str]:
    return [n for n, v in case.args.items() if isinstance(v, np.ndarray)]


def _with(case: Case, name: str, value: Any, mutation: str, **changes: Any) -> Case:
    args = dict(case.args)
    if value is _DROP:
        args.pop(name, None)
    else:
        args[name] = value
    return replace(case, args=args, mutation=f"{mutation}:{name}", **changes)


_DROP = object()


def _invalid(case: Case, name: str, value: Any, mutation: str) -> Case:
    return _with(case, name, value, mutation, expect="invalid", arg=name, base=None)


def _same(case: Case, name: str, value: Any, mutation: str) -> Case:
    """A call that must give exactly the answer of ``case`` (value-preserving change)."""
    return _with(case, name, value, mutation, base=case.args)


def _negative_strides(a: np.ndarray) -> np.ndarray:
    out = a
    for axis in range(a.ndim):
        out = np.flip(np.flip(out, axis).copy(), axis)
    return out


def _poke(a: np.ndarray, value: float, c: Chooser) -> np.ndarray:
    out = a.copy()
    out.reshape(-1)[c.integer(0, a.size - 1)] = value
    return out


def mutate(c: Chooser, case: Case) -> Case:
    """A hostile variant of the valid ``case`` (or ``case`` itself)."""
    f = case.function
    floats = _float_args(case)
    arrays = _arrays(case)
    kind = c.pick(
        ["none", "value", "value", "dtype", "dtype", "shape", "layout", "layout", "masked",
         "scalar", "scalar", "empty_sources", "covariance", "labels"]
    )  # fmt: skip
    if kind == "none":
        return case
    if kind == "value":
        name = c.pick(floats)
        a = case.args[name]
        if a.size == 0:
            return case
        what = c.pick(["nan", "posinf", "neginf", "negative"])
        if what == "nan":
            if "mask" in case.args:
                return case
            return _invalid(case, name, _poke(a, math.nan, c), "nan")
        if what == "posinf":
            if (f, name) in INF_OK:
                return replace(_with(case, name, _poke(a, math.inf, c), "posinf"), base=None)
            if "mask" in case.args:
                return case
            return _invalid(case, name, _poke(a, math.inf, c), "posinf")
        if what == "neginf":
            if "mask" in case.args:
                return case
            return _invalid(case, name, _poke(a, -math.inf, c), "neginf")
        if (f, name) in NONNEG and "mask" not in case.args:
            return _invalid(case, name, _poke(a, -1.0, c), "negative")
        return case
    if kind == "dtype":
        name = c.pick(arrays)
        a = case.args[name]
        if name in ("labels", "mask"):
            options = ["float64", "complex", "object", "str", "none"]
            if name == "labels":
                options += ["uint8", "uint64", "int32", "bool"]
            what = c.pick(options)
            if what in ("uint8", "uint64", "int32"):
                return _same(case, name, a.astype(what), what)
            if what == "none":
                return case if name == "mask" else _invalid(case, name, None, "none")
            conv = {"float64": np.float64, "complex": np.complex128, "object": object,
                    "str": str, "bool": np.bool_}[what]  # fmt: skip
            return _invalid(case, name, a.astype(conv), what)
        what = c.pick(
            ["int64", "bool", "complex", "float16", "object", "str", "longdouble", "none",
             "float32_one", "float32_all", "list"]
        )  # fmt: skip
        if what == "float32_all":
            return replace(_as_float32(case), base=None)
        if what == "list":
            if a.dtype != np.float64 or a.size == 0:
                return case  # an empty list loses its shape
            return _same(case, name, a.tolist(), "list")
        if what == "none":
            return _invalid(case, name, None, "none")
        if what == "float32_one":
            if len(floats) < 2 or name not in floats or name == "eps":
                return case  # eps (standard normal draws) may have its own dtype
            other = np.float64 if a.dtype == np.float32 else np.float32
            changed = _invalid(case, name, a.astype(other), "float32_one")
            first = floats[0] if name != floats[0] else None
            if first is None:  # the first float argument sets the dtype; the others mismatch
                changed.arg = None
            return changed
        conv = {"int64": np.int64, "bool": np.bool_, "complex": np.complex128,
                "float16": np.float16, "object": object, "str": str,
                "longdouble": np.longdouble}[what]  # fmt: skip
        out = _invalid(case, name, a.astype(conv), what)
        if what == "float16":
            out.expect = "invalid_or_half"  # the torch backend documents half precision
        return out
    if kind == "shape":
        name = c.pick(arrays)
        a = case.args[name]
        what = c.pick(["drop", "extra", "grow"])
        single = f in ("evidence", "opinions", "reduced_dempster", "empirical_moments")
        if what == "drop":
            if a.ndim == 0 or (single and a.ndim > 2) or name == "mask":  # masks broadcast
                return case  # leading axes are legal there: still a valid call
            return _invalid(case, name, a[..., 0] if a.shape[-1] else a.sum(-1), "drop_axis")
        if what == "extra":
            if f in ("empirical_moments", "calibrate", "evidence", "opinions",
                     "reduced_dempster") and name != "mask":  # fmt: skip
                return case  # leading axes are legal there
            return _invalid(case, name, a[None], "extra_axis")
        if a.ndim == 0:
            return case
        grown = np.concatenate([a, a[..., :1] if a.shape[-1] else np.ones((*a.shape[:-1], 1))], -1)
        if single:
            return case  # one more dimension D: still a valid call
        return _invalid(case, name, grown.astype(a.dtype), "grow_last")
    if kind == "layout":
        name = c.pick(arrays)
        a = case.args[name]
        what = c.pick(["negative_strides", "fortran", "readonly", "matrix", "strided"])
        if what == "negative_strides":
            return _same(case, name, _negative_strides(a), what)
        if what == "fortran":
            return _same(case, name, np.asfortranarray(a), what)
        if what == "readonly":
            ro = a.copy()
            ro.flags.writeable = False
            return _same(case, name, ro, what)
        if what == "strided":
            wide = np.repeat(a, 2, axis=-1) if a.ndim else a
            return _same(case, name, wide[..., ::2] if a.ndim else wide, what)
        if a.ndim != 2:
            return case
        return _same(case, name, np.asmatrix(a), "matrix")
    if kind == "masked":
        name = c.pick(arrays)
        a = case.args[name]
        bits = np.zeros(a.shape, bool)
        if a.size and c.integer(0, 1):
            bits.reshape(-1)[0] = True
        return _invalid(case, name, np.ma.masked_array(a, mask=bits), "masked")
    if kind == "scalar":
        names = [n for n in SCALARS if n in case.args or _scalar_applies(f, n, case)]
        if not names:
            return case
        name = c.pick(names)
        label, value, expect = c.pick(SCALARS[name])
        if name == "tau" and case.args.get("mode") != "fixed":
            return case
        changed = _with(case, name, value, f"scalar_{label}", expect=expect, base=None)
        changed.arg = name if expect != "valid" else None
        return changed
    if kind == "empty_sources":
        if f not in ("calibrate", "evidence", "opinions", "reduced_dempster"):
            return case
        args = {
            k: (v[..., :0, :] if k in ("mean", "var", "evidence") else v[..., :0])
            if isinstance(v, np.ndarray)
            else v
            for k, v in case.args.items()
        }
        arg = "mean" if f == "calibrate" else POSITIONAL[f][0]
        return replace(case, args=args, mutation="M=0", expect="invalid", arg=arg, base=None)
    if kind == "covariance":
        names = [n for n in COVARIANCES if n in case.args]
        if not names:
            return case
        name = names[0]
        a = case.args[name]
        if a.shape[-1] < 2:
            return _invalid(case, name, -1.0 - np.abs(a), "negative_definite")
        what = c.pick(["asym", "negdef", "indefinite"])
        if what == "asym":
            bad = a.copy()
            bad[..., 0, -1] += 1.0 + np.abs(bad).max()
            return _invalid(case, name, bad, "asym")
        n = a.shape[-1]
        if what == "negdef":
            return _invalid(case, name, a - 2.0 * (np.abs(a).max() + 1.0) * np.eye(n), "negdef")
        bad = a.copy()
        big = np.abs(a).max() + 1.0
        bad[..., 0, 0] = -big
        return _invalid(case, name, bad, "indefinite")
    if kind == "labels":
        if "labels" not in case.args or case.args["labels"].size == 0:
            return case
        labels = case.args["labels"]
        k = case.args.get("w_mean", case.args.get("w")).shape[0]
        bad = labels.copy()
        bad[c.integer(0, labels.size - 1)] = c.pick([k, -1, 10**6])
        return _invalid(case, "labels", bad, "label_range")
    return case


def _scalar_applies(function: str, name: str, case: Case) -> bool:
    if function in ("calibrate", "evidence"):
        return (
            name in ("power", "mode")
            or (name == "normalize" and function == "calibrate")
            or (name == "prior_weight" and function == "calibrate")
        )
    if function in ("opinions", "reduced_dempster"):
        return name == "prior_weight"
    if function == "softmax_head_moments":
        if "eps" in case.args:
            return name == "chunk_size"
        return name in ("seed", "n_samples", "chunk_size")
    return False


def structured_edge_cases() -> list[Case]:
    """Fixed hostile calls from the issue, each once (ids: ``function/mutation``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix
        return _edge_cases()


def _edge_cases() -> list[Case]:
    eye4 = np.eye(4)
    h1, lab1 = np.ones((1, 1)), np.array([0])
    w2 = np.zeros((2, 2))
    cases = [
        Case(
            "calibrate",
            {
                "mean": np.ma.masked_array([[1.0, np.nan], [3.0, 4.0]], mask=[[0, 1], [0, 0]]),
                "var": np.ones((2, 2)),
            },
            "invalid",
            "mean",
            "masked_nan",
            bounded=("grad", "belief", "uncertainty"),
        ),
        Case(
            "calibrate",
            {"mean": np.zeros((0, 3)), "var": np.ones((0, 3))},
            "invalid",
            "mean",
            "M=0",
        ),
        Case("reduced_dempster", {"evidence": np.ones((0, 3))}, "invalid", "evidence", "M=0"),
        Case("calibrate", {"mean": np.ones((2, 0)), "var": np.ones((2, 0))}, mutation="D=0"),
        Case(
            "calibrate", {"mean": np.ones((0, 2, 3)), "var": np.ones((0, 2, 3))}, mutation="lead=0"
        ),
        Case(
            "linear_head_moments",
            {
                "h": np.ones((1, 1)),
                "y": np.zeros((1, 1)),
                "w_mean": np.array([[1.0, 0.0]]),
                "w_cov": np.array([[[-1.0, 0.0], [0.0, 0.0]]]),
            },
            "invalid",
            "w_cov",
            "not_psd",
        ),
        Case(
            "softmax_head_moments_linearized",
            {"h": h1, "labels": lab1, "w_mean": w2, "w_cov": -eye4},
            "invalid",
            "w_cov",
            "negdef",
        ),
        Case(
            "softmax_head_moments_linearized",
            {"h": np.array([[1e200]]), "labels": lab1, "w_mean": w2 + 0.5, "w_cov": eye4},
            "either",
            None,
            "h=1e200",
        ),
        Case(
            "evidence",
            {"var": np.array([[1.0, 2.0], [3.0, 4.0]]), "power": 1e308},
            mutation="power=1e308",
        ),
        Case(
            "calibrate",
            {
                "mean": np.ones((2, 3)),
                "var": np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]),
                "power": 1e308,
            },
            mutation="power=1e308",
            bounded=("grad", "belief", "uncertainty"),
        ),
        Case(
            "calibrate",
            {"mean": np.flip(np.ones((2, 3)), 0), "var": np.ones((2, 3))},
            mutation="negative_strides",
        ),
        Case(
            "softmax_head_moments",
            {"h": h1, "labels": lab1, "w_mean": w2, "w_cov": eye4, "n_samples": 3, "seed": 2**70},
            mutation="seed=2**70",
            parity=False,
        ),
        Case(
            "softmax_head_moments",
            {"h": h1, "labels": lab1, "w_mean": w2, "w_cov": eye4, "n_samples": 3, "seed": -1},
            "invalid",
            "seed",
            "seed=-1",
        ),
        Case(
            "softmax_head_moments_linearized",
            {"h": h1, "labels": np.array([0], np.uint64), "w_mean": w2, "w_cov": eye4},
            mutation="uint64_labels",
        ),
        Case(
            "softmax_head_moments_linearized",
            {"h": h1, "labels": lab1, "w_mean": np.zeros((0, 2)), "w_cov": np.zeros((0, 0))},
            "invalid",
            "w_mean",
            "K=0",
        ),
        Case(
            "linear_head_posterior",
            {
                "h": np.ones((2, 1)),
                "y": np.ones((2, 1)),
                "prior_mean": np.zeros((1, 2)),
                "prior_precision": np.eye(2),
                "noise_var": 1e-320,
            },
            "either",
            "noise_var",
            "noise_var=1e-320",
        ),
        Case(
            "calibrate",
            {"mean": np.asmatrix(np.ones((2, 3))), "var": np.ones((2, 3))},
            mutation="matrix",
        ),
        Case(
            "softmax_head_moments",
            {
                "h": h1,
                "labels": lab1,
                "w_mean": w2,
                "w_cov": np.zeros((4, 4)),
                "n_samples": 3,
                "seed": 0,
            },
            mutation="zero_cov",
            parity=False,
        ),
        Case(
            "calibrate",
            {"mean": np.array(["a", "b"], object)[None].repeat(2, 0), "var": np.ones((2, 2))},
            "invalid",
            "mean",
            "object",
        ),
    ]
    return cases


def draw_case(c: Chooser, function: str) -> Case:
    """A base call of ``function`` and, usually, a hostile mutation of it."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # casts to float16/float32 may overflow (that is the point); np.matrix warns
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return mutate(c, base_case(c, function))
