"""CUDA kernels of the CuPy backend (compiled by CuPy on first use, cached per variant).

Pass 1, :func:`pass1_kernel`: one ReductionKernel over (M, D) per leading index that
maps each entry to a ``double3`` (sum of ``log var`` over present informative entries,
their count, and the number of bad entries for ``check_finite``) and adds them up.

Pass 2, :func:`fused_kernel`: one ElementwiseKernel over (leading, D); each thread
reads the M means and variances of its dimension, forms ``log e``, fuses it exactly like
``_torch_fusion.fuse`` (log domain, at most M + 2 exponentials), writes the gradient and,
when asked, the belief, uncertainty and evidence. M is a compile-time constant.

Inputs must be C-contiguous (the backend makes them so); ``T`` is float or double.
"""

from __future__ import annotations

from functools import cache
from typing import Any

_PASS1_MAP = """
make_double3(
    (RELATIVE && p && isfinite(log((double)v))) ? log((double)v) : 0.0,
    (RELATIVE && p && isfinite(log((double)v))) ? 1.0 : 0.0,
    (CHECK && p && (isnan(v) || v < 0 || !isfinite(mu))) ? 1.0 : 0.0)
"""


@cache
def pass1_kernel(relative: bool, check: bool) -> Any:
    """ReductionKernel: (mean, var, present) (L, M, D) -> double3 per leading index."""
    import cupy

    preamble = f"#define RELATIVE {int(relative)}\n#define CHECK {int(check)}\n"
    return cupy.ReductionKernel(
        "T mu, T v, bool p",
        "float64 log_ref, float64 bad",
        _PASS1_MAP,
        "make_double3(a.x + b.x, a.y + b.y, a.z + b.z)",
        "log_ref = a.y > 0 ? a.x / a.y : 0.0; bad = a.z",
        "make_double3(0.0, 0.0, 0.0)",
        f"bogc_pass1_{int(relative)}{int(check)}",
        reduce_type="double3",
        preamble=preamble,
    )


#: The compute type's largest finite value: a log-evidence that overflows saturates there
#: (the reference's rule: only var = 0 is dogmatic).
RAW_MAX_DEFINE = (
    "#define RAW_MAX ((T)(sizeof(T) == 4 ? 3.4028234663852886e38 : 1.7976931348623157e308))\n"
)

_FUSED_BODY = """
const long long l = i / D;
const long long d = i - l * D;
const T NEG_INF = -CUDART_INF_F, POS_INF = CUDART_INF_F;
T fin[NSRC];
bool dog[NSRC];
T top = NEG_INF;
int ndog = 0;
for (int m = 0; m < NSRC; ++m) {
    const long long idx = (l * NSRC + m) * D + d;
    const bool p = HAS_MASK ? present[l * NSRC + m] : true;
    const T lv = log(var[idx]);
    T raw = RELATIVE ? (T)power * ((T)log_ref[l] - lv) : (T)power * (-lv - (T)log_tau);
    raw = (raw == POS_INF && lv > NEG_INF) ? RAW_MAX : raw;  // only var = 0 is dogmatic
    raw = p ? raw : NEG_INF;
    if (WANT_ALL) {
        evidence[idx] = isinf(raw) && raw > 0 ? POS_INF : min(exp(raw), (T)T_MAX);
    }
    dog[m] = raw == POS_INF;
    ndog += dog[m];
    fin[m] = dog[m] ? NEG_INF : raw;
    top = max(top, fin[m]);
}
const T shift = top > NEG_INF ? top : (T)log_w;  // no evidence: the prior term is 1
T total = 0;
for (int m = 0; m < NSRC; ++m) { fin[m] = exp(fin[m] - shift); total += fin[m]; }
const T c = max((T)log_w, shift);
const T es = exp(shift - c), ps = exp((T)log_w - c);
const T inv_den = (T)1 / (total * es + ps);
const T scale = es * inv_den;
const T share = ndog > 0 ? (T)1 / (T)ndog : (T)0;
T g = 0;
for (int m = 0; m < NSRC; ++m) {
    const long long idx = (l * NSRC + m) * D + d;
    const bool p = HAS_MASK ? present[l * NSRC + m] : true;
    const T b = ndog > 0 ? (dog[m] ? share : (T)0) : fin[m] * scale;
    const T w = NORMALIZE ? (ndog > 0 ? b : (total > 0 ? fin[m] / total : (T)0)) : b;
    if (p) g += w * mean[idx];
    if (WANT_ALL) belief[idx] = b;
}
grad = g;
if (WANT_ALL) uncertainty = ndog > 0 ? (T)0 : ps * inv_den;
"""


@cache
def fused_kernel(
    n_sources: int, relative: bool, normalize: bool, has_mask: bool, want_all: bool, t_max: float
) -> Any:
    """ElementwiseKernel of pass 2 for one configuration (index space: leading × D)."""
    import cupy

    defines = {
        "NSRC": n_sources,
        "RELATIVE": int(relative),
        "NORMALIZE": int(normalize),
        "HAS_MASK": int(has_mask),
        "WANT_ALL": int(want_all),
        "T_MAX": repr(t_max),
    }
    preamble = "".join(f"#define {k} {v}\n" for k, v in defines.items())
    preamble += "#include <math_constants.h>\n" + RAW_MAX_DEFINE
    return cupy.ElementwiseKernel(
        "raw T mean, raw T var, raw bool present, raw float64 log_ref, "
        "float64 power, float64 log_tau, float64 log_w, int64 D",
        "T grad, T uncertainty, raw T belief, raw T evidence",
        _FUSED_BODY,
        f"bogc_fused_{n_sources}_{int(relative)}{int(normalize)}{int(has_mask)}{int(want_all)}",
        preamble=preamble,
    )


_FUSE_EVIDENCE_BODY = """
const long long l = i / D;
const long long d = i - l * D;
const T NEG_INF = -CUDART_INF_F, POS_INF = CUDART_INF_F;
T fin[NSRC];
bool dog[NSRC];
T top = NEG_INF;
int ndog = 0;
for (int m = 0; m < NSRC; ++m) {
    const T raw = log(e[(l * NSRC + m) * D + d]);
    dog[m] = raw == POS_INF;
    ndog += dog[m];
    fin[m] = dog[m] ? NEG_INF : raw;
    top = max(top, fin[m]);
}
const T shift = top > NEG_INF ? top : (T)log_w;  // no evidence: the prior term is 1
T total = 0;
for (int m = 0; m < NSRC; ++m) { fin[m] = exp(fin[m] - shift); total += fin[m]; }
const T c = max((T)log_w, shift);
const T es = exp(shift - c), ps = exp((T)log_w - c);
const T inv_den = (T)1 / (total * es + ps);
const T share = ndog > 0 ? (T)1 / (T)ndog : (T)0;
for (int m = 0; m < NSRC; ++m) {
    belief[(l * NSRC + m) * D + d] = ndog > 0 ? (dog[m] ? share : (T)0) : fin[m] * es * inv_den;
}
uncertainty = ndog > 0 ? (T)0 : ps * inv_den;
"""


@cache
def fuse_evidence_kernel(n_sources: int) -> Any:
    """ElementwiseKernel of reduced_dempster: evidence (L, M, D) -> belief, uncertainty."""
    import cupy

    return cupy.ElementwiseKernel(
        "raw T e, float64 log_w, int64 D",
        "T uncertainty, raw T belief",
        _FUSE_EVIDENCE_BODY,
        f"bogc_fuse_evidence_{n_sources}",
        preamble=f"#define NSRC {n_sources}\n#include <math_constants.h>\n" + RAW_MAX_DEFINE,
    )


@cache
def raw_evidence_kernel(t_max: float) -> Any:
    """ElementwiseKernel: saturated ``exp`` of the raw log-evidence (stage 2 alone)."""
    import cupy

    return cupy.ElementwiseKernel(
        "T v, bool p, float64 log_ref, float64 power, float64 log_tau, bool relative",
        "T e",
        """
        const T lv = log(v);
        T raw = relative ? (T)power * ((T)log_ref - lv) : (T)power * (-lv - (T)log_tau);
        raw = (raw == CUDART_INF_F && lv > -CUDART_INF_F) ? RAW_MAX : raw;  // var = 0 only
        raw = p ? raw : -CUDART_INF_F;
        e = isinf(raw) && raw > 0 ? CUDART_INF_F : min(exp(raw), (T)T_MAX);
        """,
        "bogc_raw_evidence",
        preamble=(f"#define T_MAX {t_max!r}\n#include <math_constants.h>\n" + RAW_MAX_DEFINE),
    )


@cache
def opinions_kernel() -> Any:
    """ElementwiseKernel: each source's own opinion, b = e/(e+W), u = W/(e+W), log domain."""
    import cupy

    return cupy.ElementwiseKernel(
        "T e, float64 log_w",
        "T b, T u",
        """
        const T le = log(e);
        const T hi = max(le, (T)log_w);
        const T lden = hi + log1p(exp(-fabs(le - (T)log_w)));
        b = le == CUDART_INF_F ? (T)1 : exp(le - lden);
        u = exp((T)log_w - lden);
        """,
        "bogc_opinions",
        preamble="#include <math_constants.h>\n" + RAW_MAX_DEFINE,
    )
