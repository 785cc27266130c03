"""The CuPy backend: the spec on ``cupy.ndarray`` with fused CUDA kernels.

calibrate, evidence and the fusion run as the kernels of :mod:`._cupy_kernels`
(relative mode: one reduction pass, one fused elementwise pass); the moment functions
are :mod:`._xp_stage1` with ``xp = cupy`` (matrix products on cuBLAS). Validation is the
PyTorch backend's scheme (see ``_replay``): structural checks on stubs, one fused value
check whose single flag is the only device-to-host transfer (a scalar), and a host copy
only when it fails, so the reference raises its own message. ``check_finite=False``
makes calibrate free of any host round-trip. Computes in float32 for float32 and
float16 (returned as float16), float64 for float64. Only importable with CuPy.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any, cast

import cupy
import numpy as np

import bogc_ref
from bogc_ref._dempster import _evidence_argument, prior_weight_value
from bogc_ref._evidence import evidence_params
from bogc_ref._heads import covariance, head_weights, representation
from bogc_ref._linear_head import _targets
from bogc_ref._results import Calibration, Moments, Opinion, Posterior
from bogc_ref._softmax_head import _noise
from bogc_ref._validation import (
    bool_mask,
    common_dtype,
    float_array,
    labels_array,
    positive_scalar,
    require_min_ndim,
    require_shape,
)

from . import _cupy_kernels as kernels
from . import _xp_stage1 as xs
from ._errors import BackendUnavailable
from ._replay import replay, stub
from ._torch_backend import _chunk

cupy_linalg: Any = importlib.import_module("cupyx.scipy.linalg")


def _stub(a: Any) -> np.ndarray:
    dtype = np.dtype(np.float32) if a.dtype == np.float16 else a.dtype
    return stub(dtype, tuple(a.shape))


def _host(x: object) -> object:
    if isinstance(x, cupy.ndarray):
        out = cupy.asnumpy(x)
        return out.astype(np.float32) if out.dtype == np.float16 else out
    return x


def _cdt(dtype: Any) -> Any:
    return np.float32 if dtype == np.float16 else dtype


def _not_finite(a: Any) -> Any:
    return ~cupy.isfinite(a).all()


def _not_symmetric(a: Any) -> Any:
    scale = cupy.abs(a).max(axis=(-2, -1), keepdims=True)
    gap = cupy.abs(a - cupy.swapaxes(a, -1, -2))
    tol = 1e3 * np.finfo(a.dtype).eps * cupy.where(scale > 0, scale, 1.0)
    return (gap > tol).any()


class CupyBackend:
    """BOGC on CuPy arrays on the current CUDA device (``device``: "cuda" or "cuda:N")."""

    name = "cupy"

    def __init__(self, device: str | None = None) -> None:
        try:
            count = int(cupy.cuda.runtime.getDeviceCount())
        except Exception as exc:
            raise BackendUnavailable(
                f"backend 'cupy': no usable CUDA device ({exc}); it needs an NVIDIA GPU, its "
                "driver and pip install 'bogc-ref[cupy]' (cupy-cuda12x)"
            ) from exc
        if count == 0:
            raise BackendUnavailable("backend 'cupy': no CUDA device found")
        dev = device or "cuda"
        if not dev.startswith("cuda"):
            raise ValueError(f"device: the cupy backend runs on 'cuda[:N]', got {device!r}")
        self.index = int(dev.split(":")[1]) if ":" in dev else int(cupy.cuda.Device().id)
        self.device = f"cuda:{self.index}"

    def __repr__(self) -> str:
        return f"CupyBackend(device={self.device!r})"

    def from_numpy(self, array: Any) -> Any:
        """A copy of ``array`` on this backend's device."""
        with cupy.cuda.Device(self.index):
            return cupy.asarray(np.ascontiguousarray(array))

    @staticmethod
    def _arrays(**values: object) -> dict[str, Any]:
        return {k: v if isinstance(v, cupy.ndarray) else cupy.asarray(v) for k, v in values.items()}

    @staticmethod
    def _check(
        reference: Callable[..., Any],
        args: tuple[object, ...],
        kwargs: dict[str, object],
        structure: Callable[[], None],
        flags: Callable[[], list[Any]],
    ) -> None:
        def on_host() -> tuple[tuple[object, ...], dict[str, object]]:
            return tuple(_host(a) for a in args), {k: _host(v) for k, v in kwargs.items()}

        try:
            structure()
        except (TypeError, ValueError):
            a, kw = on_host()
            reference(*a, **kw)
            raise
        found = flags()
        if found and bool(cupy.stack([cupy.asarray(f).reshape(()) for f in found]).any()):
            a, kw = on_host()
            replay(reference, a, kw)

    # ------------------------------------------------------------------ stage 1
    def linear_head_moments(self, h: Any, y: Any, w_mean: Any, w_cov: Any) -> Moments:
        """See :func:`bogc_ref.linear_head_moments`."""
        t = self._arrays(h=h, y=y, w_mean=w_mean, w_cov=w_cov)

        def structure() -> None:
            hs = representation(_stub(t["h"]))
            ys = _targets(_stub(t["y"]), hs.shape[0])
            mu = head_weights(_stub(t["w_mean"]), "w_mean", hs.shape[1])
            if ys.shape[1] != mu.shape[0]:
                raise ValueError("y: columns do not match w_mean's rows")
            k, d1 = mu.shape
            cov = covariance(_stub(t["w_cov"]), "w_cov", (k, d1, d1), "(K, D+1, D+1)")
            common_dtype([("h", hs), ("y", ys), ("w_mean", mu), ("w_cov", cov)])

        self._check(
            bogc_ref.linear_head_moments, (h, y, w_mean, w_cov), {}, structure,
            lambda: [*map(_not_finite, t.values()), _not_symmetric(t["w_cov"])],
        )  # fmt: skip
        out = t["h"].dtype
        mean, var = xs.linear_head_moments(cupy, *(v.astype(_cdt(out)) for v in t.values()))
        return Moments(mean.astype(out), var.astype(out))

    def _softmax_structure(self, t: dict[str, Any], weight: str) -> tuple[int, int, int]:
        hs = representation(_stub(t["h"]))
        n_rows, dim = hs.shape
        mu = head_weights(_stub(t[weight]), weight, dim)
        labels_array(_stub(t["labels"]), "labels", mu.shape[0], n_rows)
        return n_rows, dim, mu.shape[0]

    def softmax_head_moments(
        self,
        h: Any,
        labels: Any,
        w_mean: Any,
        w_cov: Any,
        *,
        eps: Any = None,
        n_samples: int | None = None,
        seed: int | None = None,
        chunk_size: int | None = None,
    ) -> Moments:
        """See :func:`bogc_ref.softmax_head_moments`; draws from ``cupy.random`` seeded
        with ``seed`` (one ``standard_normal`` call per chunk)."""
        given = {"h": h, "labels": labels, "w_mean": w_mean, "w_cov": w_cov}
        if eps is not None:
            given["eps"] = eps
        t = self._arrays(**given)
        sizes: dict[str, int] = {}

        def structure() -> None:
            n_rows, dim, k = self._softmax_structure(t, "w_mean")
            n_params = k * (dim + 1)
            cov = covariance(_stub(t["w_cov"]), "w_cov", (n_params, n_params), "K(D+1)")
            common_dtype([("h", _stub(t["h"])), ("w_mean", _stub(t["w_mean"])), ("w_cov", cov)])
            eps_stub = _stub(t["eps"]) if "eps" in t else None
            sizes["count"], _ = _noise(eps_stub, n_samples, seed, n_params)
            sizes["chunk"] = _chunk(chunk_size, sizes["count"], n_rows, dim, k, n_params)
            sizes["k"] = k

        def flags() -> list[Any]:
            names = ["h", "w_mean", "w_cov", *(["eps"] if "eps" in t else [])]
            k = sizes["k"]
            labels_bad = ((t["labels"] < 0) | (t["labels"] >= k)).any()
            return [*(_not_finite(t[n]) for n in names), _not_symmetric(t["w_cov"]), labels_bad]

        kwargs = {"eps": eps, "n_samples": n_samples, "seed": seed, "chunk_size": chunk_size}
        self._check(bogc_ref.softmax_head_moments, (h, labels, w_mean, w_cov), kwargs,
                    structure, flags)  # fmt: skip
        out = t["h"].dtype
        cdt = _cdt(out)
        chol = xs.cholesky_jittered(cupy, t["w_cov"], "w_cov").astype(cdt)
        n_params = chol.shape[0]
        if "eps" in t:
            stored = t["eps"].astype(cdt)

            def draws(start: int, size: int) -> Any:
                return stored[start : start + size]
        else:
            rng = cupy.random.default_rng(seed)

            def draws(start: int, size: int) -> Any:
                return rng.standard_normal((size, n_params), dtype=cdt)

        targets = cupy.eye(sizes["k"], dtype=cdt)[t["labels"].astype(np.int64)]
        mean, var = xs.softmax_head_moments(
            cupy, t["h"].astype(cdt), targets, t["w_mean"].astype(cdt), chol, draws,
            sizes["count"], sizes["chunk"],
        )  # fmt: skip
        return Moments(mean.astype(out), var.astype(out))

    def softmax_head_moments_linearized(
        self, h: Any, labels: Any, w_mean: Any, w_cov: Any
    ) -> Moments:
        """See :func:`bogc_ref.softmax_head_moments_linearized`."""
        t = self._arrays(h=h, labels=labels, w_mean=w_mean, w_cov=w_cov)
        sizes: dict[str, int] = {}

        def structure() -> None:
            _, dim, k = self._softmax_structure(t, "w_mean")
            n_params = k * (dim + 1)
            cov = covariance(_stub(t["w_cov"]), "w_cov", (n_params, n_params), "K(D+1)")
            common_dtype([("h", _stub(t["h"])), ("w_mean", _stub(t["w_mean"])), ("w_cov", cov)])
            sizes["k"] = k

        self._check(
            bogc_ref.softmax_head_moments_linearized, (h, labels, w_mean, w_cov), {}, structure,
            lambda: [*(_not_finite(t[n]) for n in ("h", "w_mean", "w_cov")),
                     _not_symmetric(t["w_cov"]),
                     ((t["labels"] < 0) | (t["labels"] >= sizes["k"])).any()],
        )  # fmt: skip
        out = t["h"].dtype
        cdt = _cdt(out)
        targets = cupy.eye(sizes["k"], dtype=cdt)[t["labels"].astype(np.int64)]
        mean, var = xs.softmax_head_moments_linearized(
            cupy, t["h"].astype(cdt), targets, t["w_mean"].astype(cdt), t["w_cov"].astype(cdt)
        )
        return Moments(mean.astype(out), var.astype(out))

    def empirical_moments(self, per_sample_grads: Any) -> Moments:
        """See :func:`bogc_ref.empirical_moments`."""
        g = self._arrays(g=per_sample_grads)["g"]

        def structure() -> None:
            arr = float_array(_stub(g), "per_sample_grads")
            require_min_ndim(arr, "per_sample_grads", 2, "(N, ..., D)")
            if arr.shape[0] < 2:
                raise ValueError("per_sample_grads: need N >= 2")

        self._check(bogc_ref.empirical_moments, (per_sample_grads,), {}, structure,
                    lambda: [_not_finite(g)])  # fmt: skip
        mean, var = xs.empirical_moments(cupy, g.astype(_cdt(g.dtype)))
        return Moments(mean.astype(g.dtype), var.astype(g.dtype))

    def linear_head_posterior(
        self, h: Any, y: Any, *, prior_mean: Any, prior_precision: Any, noise_var: float
    ) -> Posterior:
        """See :func:`bogc_ref.linear_head_posterior` (float64 inside)."""
        t = self._arrays(h=h, y=y, prior_mean=prior_mean, prior_precision=prior_precision)

        def structure() -> None:
            hs = representation(_stub(t["h"]))
            n_rows, dim = hs.shape
            ys = _targets(_stub(t["y"]), n_rows)
            m0 = head_weights(_stub(t["prior_mean"]), "prior_mean", dim)
            require_shape(m0, "prior_mean", (ys.shape[1], dim + 1), "(K, D+1)")
            p0 = covariance(_stub(t["prior_precision"]), "prior_precision", (dim + 1,) * 2, "")
            positive_scalar(noise_var, "noise_var")
            common_dtype([("h", hs), ("y", ys), ("prior_mean", m0), ("prior_precision", p0)])

        kwargs = {"prior_mean": prior_mean, "prior_precision": prior_precision,
                  "noise_var": noise_var}  # fmt: skip
        self._check(bogc_ref.linear_head_posterior, (h, y), kwargs, structure,
                    lambda: [*map(_not_finite, t.values()),
                             _not_symmetric(t["prior_precision"])])  # fmt: skip
        out = t["h"].dtype
        f64 = [t[n].astype(np.float64) for n in ("h", "y", "prior_mean", "prior_precision")]
        mean, cov = xs.linear_head_posterior(
            cupy, cupy_linalg, f64[0], f64[1], f64[2], f64[3], float(noise_var)
        )
        k = mean.shape[0]
        return Posterior(mean.astype(out), cupy.broadcast_to(cov.astype(out), (k, *cov.shape)))

    def softmax_head_laplace(
        self, h: Any, labels: Any, w: Any, *, prior_mean: Any, prior_precision: Any
    ) -> Posterior:
        """See :func:`bogc_ref.softmax_head_laplace` (float64 inside)."""
        t = self._arrays(
            h=h, labels=labels, w=w, prior_mean=prior_mean, prior_precision=prior_precision
        )
        sizes: dict[str, int] = {}

        def structure() -> None:
            _, dim, k = self._softmax_structure(t, "w")
            m0 = head_weights(_stub(t["prior_mean"]), "prior_mean", dim)
            if m0.shape != (k, dim + 1):
                raise ValueError("prior_mean: shape differs from w's")
            n_params = k * (dim + 1)
            p0 = covariance(_stub(t["prior_precision"]), "prior_precision", (n_params,) * 2, "")
            common_dtype([("h", _stub(t["h"])), ("w", _stub(t["w"])), ("prior_mean", m0),
                          ("prior_precision", p0)])  # fmt: skip
            sizes["k"] = k

        kwargs = {"prior_mean": prior_mean, "prior_precision": prior_precision}
        self._check(
            bogc_ref.softmax_head_laplace, (h, labels, w), kwargs, structure,
            lambda: [*(_not_finite(t[n]) for n in ("h", "w", "prior_mean", "prior_precision")),
                     _not_symmetric(t["prior_precision"]),
                     ((t["labels"] < 0) | (t["labels"] >= sizes["k"])).any()],
        )  # fmt: skip
        out = t["h"].dtype
        targets = cupy.eye(sizes["k"], dtype=np.float64)[t["labels"].astype(np.int64)]
        f64 = [t[n].astype(np.float64) for n in ("h", "w", "prior_mean", "prior_precision")]
        mean, cov = xs.softmax_head_laplace(cupy, cupy_linalg, f64[0], targets, *f64[1:])
        return Posterior(mean.astype(out), cov.astype(out))

    # ------------------------------------------------------------------ stage 2, 3
    @staticmethod
    def _lead(shape: tuple[int, ...]) -> int:
        return int(np.prod(shape[:-2], dtype=np.int64))

    def _present(self, t: dict[str, Any], shape: tuple[int, ...]) -> Any:
        """(L, M) contiguous bool mask (all True without one)."""
        lead, n_sources = self._lead(shape), shape[-2]
        if "mask" not in t:
            return cupy.ones((lead, n_sources), dtype=bool)
        return cupy.ascontiguousarray(cupy.broadcast_to(t["mask"], shape[:-1])).reshape(
            lead, n_sources
        )

    def _pass1(self, mean: Any, var: Any, present: Any, relative: bool, check: bool) -> Any:
        p = cupy.broadcast_to(present[:, :, None], var.shape)
        log_ref, bad = kernels.pass1_kernel(relative, check)(mean, var, p, axis=(1, 2))
        return log_ref, bad

    def evidence(
        self,
        var: Any,
        *,
        mask: Any = None,
        mode: str = "relative",
        tau: float | None = None,
        power: float = 1.0,
    ) -> Any:
        """See :func:`bogc_ref.evidence`: pass 1 then one elementwise kernel."""
        mode_, tau_, power_ = evidence_params(mode, tau, power)
        t = self._arrays(var=var, **({"mask": mask} if mask is not None else {}))
        v = t["var"]

        def structure() -> None:
            arr = float_array(_stub(v), "var")
            require_min_ndim(arr, "var", 2, "(..., M, D)")
            if "mask" in t:
                bool_mask(_stub(t["mask"]), "mask", arr.shape[:-1])

        def flags() -> list[Any]:
            p = self._present(t, v.shape).reshape(*v.shape[:-1], 1)
            return [((cupy.isnan(v) | (v < 0)) & p).any()]

        kwargs = {"mask": mask, "mode": mode, "tau": tau, "power": power}
        self._check(bogc_ref.evidence, (var,), kwargs, structure, flags)
        shape, out = v.shape, v.dtype
        lead, n_sources, dim = self._lead(shape), shape[-2], shape[-1]
        vc = cupy.ascontiguousarray(v.astype(_cdt(out))).reshape(lead, n_sources, dim)
        present = self._present(t, shape)
        log_ref, _ = self._pass1(vc, vc, present, mode_ == "relative", False)
        e = kernels.raw_evidence_kernel(float(np.finfo(out).max))(
            vc, present[:, :, None], log_ref[:, None, None], power_,
            math.log(tau_) if tau_ is not None else 0.0, mode_ == "relative",
        )  # fmt: skip
        return e.astype(out).reshape(shape)

    def _evidence_array(self, evidence: Any) -> Any:
        e = self._arrays(e=evidence)["e"]

        def structure() -> None:
            arr = float_array(_stub(e), "evidence")
            require_min_ndim(arr, "evidence", 2, "(..., M, D)")

        self._check(_evidence_argument, (evidence,), {}, structure,
                    lambda: [(cupy.isnan(e) | (e < 0)).any()])  # fmt: skip
        return e

    def opinions(self, evidence: Any, *, prior_weight: float | None = None) -> Opinion:
        """See :func:`bogc_ref.opinions` (one elementwise kernel)."""
        e = self._evidence_array(evidence)
        log_w = math.log(prior_weight_value(prior_weight, e.shape[-2]))
        b, u = kernels.opinions_kernel()(e.astype(_cdt(e.dtype)), log_w)
        return Opinion(b.astype(e.dtype), u.astype(e.dtype))

    def reduced_dempster(self, evidence: Any, *, prior_weight: float | None = None) -> Opinion:
        """See :func:`bogc_ref.reduced_dempster` (one fused kernel)."""
        e = self._evidence_array(evidence)
        shape, out = e.shape, e.dtype
        n_sources, dim = shape[-2], shape[-1]
        log_w = math.log(prior_weight_value(prior_weight, n_sources))
        ec = cupy.ascontiguousarray(e.astype(_cdt(out))).reshape(-1, n_sources, dim)
        belief = cupy.empty_like(ec)
        unc = cupy.empty((ec.shape[0], dim), dtype=ec.dtype)
        kernels.fuse_evidence_kernel(n_sources)(ec, log_w, dim, unc, belief)
        return Opinion(
            belief.astype(out).reshape(shape), unc.astype(out).reshape((*shape[:-2], dim))
        )

    # ------------------------------------------------------------------ calibrate
    def calibrate(
        self,
        mean: Any,
        var: Any,
        *,
        mask: Any = None,
        mode: str = "relative",
        tau: float | None = None,
        power: float = 1.0,
        prior_weight: float | None = None,
        normalize: bool = False,
        check_finite: bool = True,
    ) -> Calibration:
        """See :func:`bogc_ref.calibrate`: one reduction kernel (relative mode or the
        check) and one fused elementwise kernel; the check's flag is the only transfer."""
        kwargs: dict[str, object] = {
            "mask": mask, "mode": mode, "tau": tau, "power": power,
            "prior_weight": prior_weight, "normalize": normalize, "check_finite": check_finite,
        }  # fmt: skip
        mode_, tau_, power_ = evidence_params(mode, tau, power)
        t = self._arrays(mean=mean, var=var, **({"mask": mask} if mask is not None else {}))
        mu, v = t["mean"], t["var"]

        def structure() -> None:
            ms = float_array(_stub(mu), "mean")
            vs = float_array(_stub(v), "var")
            common_dtype([("mean", ms), ("var", vs)])
            if mu.dtype != v.dtype:
                raise TypeError(f"var: dtype {v.dtype} does not match mean's dtype {mu.dtype}")
            require_min_ndim(ms, "mean", 2, "(..., M, D)")
            require_shape(vs, "var", ms.shape, "the shape of mean")
            if "mask" in t:
                bool_mask(_stub(t["mask"]), "mask", ms.shape[:-1])

        self._check(bogc_ref.calibrate, (mean, var), kwargs, structure, lambda: [])
        shape, out = mu.shape, mu.dtype
        lead, n_sources, dim = self._lead(shape), shape[-2], shape[-1]
        cdt = _cdt(out)
        mc = cupy.ascontiguousarray(mu.astype(cdt)).reshape(lead, n_sources, dim)
        vc = cupy.ascontiguousarray(v.astype(cdt)).reshape(lead, n_sources, dim)
        present = self._present(t, shape)

        def replay_if_bad(bad: Any) -> None:
            if bool((bad > 0).any()):
                replay(bogc_ref.calibrate, (_host(mean), _host(var)),
                       {k: _host(x) for k, x in kwargs.items()})  # fmt: skip

        relative = mode_ == "relative"
        log_ref, bad = (
            self._pass1(mc, vc, present, relative, bool(check_finite))
            if relative or check_finite
            else (cupy.zeros(lead), None)
        )
        try:
            weight = prior_weight_value(prior_weight, n_sources)
            if not isinstance(normalize, bool | np.bool_):
                raise TypeError(f"normalize: expected a bool, got {type(normalize).__name__}")
        except (TypeError, ValueError):
            if bad is not None:
                replay_if_bad(bad)
            raise
        if bad is not None:
            replay_if_bad(bad)
        grad = cupy.empty((lead, dim), dtype=cdt)
        unc = cupy.empty((lead, dim), dtype=cdt)
        belief = cupy.empty((lead, n_sources, dim), dtype=cdt)
        evid = cupy.empty((lead, n_sources, dim), dtype=cdt)
        kernel = kernels.fused_kernel(
            n_sources, relative, bool(normalize), "mask" in t, True, float(np.finfo(out).max)
        )
        kernel(
            mc, vc, present, log_ref, float(power_),
            math.log(tau_) if tau_ is not None else 0.0, math.log(weight), dim,
            grad, unc, belief, evid,
        )  # fmt: skip
        lead_shape = shape[:-2]
        return Calibration(
            cast(Any, grad.astype(out).reshape(*lead_shape, dim)),
            cast(Any, belief.astype(out).reshape(shape)),
            cast(Any, unc.astype(out).reshape(*lead_shape, dim)),
            cast(Any, evid.astype(out).reshape(shape)),
        )
