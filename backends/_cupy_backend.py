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

import functools
import importlib
import math
from collections.abc import Callable, Mapping
from typing import Any, cast

import cupy
import numpy as np

import bogc_ref
from bogc_ref._dempster import _evidence_argument, prior_weight_value
from bogc_ref._evidence import evidence_params
from bogc_ref._results import Calibration, Moments, Opinion, Posterior
from bogc_ref._validation import plain_array, require_bool

from . import _checks as checks
from . import _cupy_kernels as kernels
from . import _xp_stage1 as xs
from ._errors import BackendUnavailable
from ._replay import check_vouched_covariance, host_array, replay_on_host, stub, validate

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


class _CupyOps:
    """The CuPy operations the shared validation (``_replay.validate``) runs on."""

    stub = staticmethod(_stub)
    host = staticmethod(_host)
    not_finite = staticmethod(_not_finite)
    not_symmetric = staticmethod(_not_symmetric)
    isnan = staticmethod(cupy.isnan)

    @staticmethod
    def maybe_not_psd(a: Any) -> bool:
        """Whether some trailing matrix of ``a`` fails a batched float64 Cholesky (CuPy
        returns NaN factors on failure); True sends ``a`` to the reference's host test."""
        if a.size == 0:
            return False
        return not bool(cupy.isfinite(cupy.linalg.cholesky(a.astype(cupy.float64))).all())

    @staticmethod
    def any_set(flags: list[Any]) -> bool:
        """One scalar transfer: True if any 0-d flag is set."""
        return bool(flags) and bool(cupy.stack([cupy.asarray(f).reshape(()) for f in flags]).any())

    @staticmethod
    def same_dtype(arrays: Mapping[str, Any]) -> None:
        """TypeError when arrays that must share a dtype do not (float16 included)."""
        items = list(arrays.items())
        first_name, first = items[0]
        for name, a in items[1:]:
            if a.dtype != first.dtype:
                raise TypeError(
                    f"{name}: dtype {a.dtype} does not match {first_name}'s dtype {first.dtype}"
                )


_OPS = _CupyOps()


def _without_overflow_nan(
    compute: Callable[[Any], tuple[Any, Any]],
    cdt: Any,
    reference: Callable[..., Any],
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> tuple[Any, Any]:
    """``compute(cdt)``; on a NaN (an overflow, the inputs being finite) again in float64,
    then the reference on host copies, which raises its clear error (as the torch backend's
    ``_without_overflow_nan``)."""
    results = compute(cdt)
    if not any(bool(cupy.isnan(r).any()) for r in results):
        return results
    if np.dtype(cdt) != np.float64:
        results = compute(np.float64)
        if not any(bool(cupy.isnan(r).any()) for r in results):
            return results
    answer = reference(*(_host(a) for a in args), **{k: _host(v) for k, v in kwargs.items()})
    first, second = (cupy.asarray(np.asarray(x)) for x in answer)
    return first, second


#: Powers above this are fused in float64 for float32 and half inputs (``_torch_backend``).
FLOAT32_POWER_LIMIT = 1e35


def _clamped_power(power: float, dtype: Any) -> float:
    """``power`` within the compute dtype's normal range (1e308 is not inf, 1e-308 not 0)."""
    info = np.finfo(dtype)
    return float(min(max(power, float(info.tiny)), float(info.max)))


def _one_hot(labels: Any, n_classes: int, dtype: Any) -> Any:
    """One-hot targets (B, K) in ``dtype`` from checked integer labels (B,)."""
    return cupy.eye(n_classes, dtype=dtype)[labels.astype(np.int64)]


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
        """A copy of ``array`` on this backend's device (a masked array is a TypeError)."""
        plain = plain_array(array, "array")
        with cupy.cuda.Device(self.index):
            return cupy.asarray(np.ascontiguousarray(plain))

    @staticmethod
    def _arrays(**values: object) -> dict[str, Any]:
        """Device arrays; host values through ``host_array`` (masked arrays and dtypes no
        array library holds are a TypeError naming the argument, as in the reference)."""
        return {
            k: v if isinstance(v, cupy.ndarray) else cupy.asarray(host_array(v, k))
            for k, v in values.items()
        }

    @staticmethod
    def _check(
        reference: Callable[..., Any],
        args: tuple[object, ...],
        kwargs: dict[str, object],
        t: Mapping[str, Any],
        structure: Callable[[checks.Stubs], checks.Checked],
        present: Callable[[], Any] | None = None,
        check_dtypes: bool = False,
    ) -> checks.Checked:
        """Structural checks on stubs, then one fused value check; replay on failure.

        ``check_dtypes``: also reject float16 mixed with float32 (calibrate only, as before).
        """
        return validate(
            _OPS, reference, args, kwargs, t, structure, present=present, check_dtypes=check_dtypes
        )

    # ------------------------------------------------------------------ stage 1
    def linear_head_moments(
        self, h: Any, y: Any, w_mean: Any, w_cov: Any, *, check_cov: bool = True
    ) -> Moments:
        """See :func:`bogc_ref.linear_head_moments` (``check_cov`` too)."""
        t = self._arrays(h=h, y=y, w_mean=w_mean, w_cov=w_cov)
        args, kwargs = (h, y, w_mean, w_cov), checks.check_cov_keyword(check_cov)
        self._check(bogc_ref.linear_head_moments, args, kwargs, t,
                    functools.partial(checks.linear_head_moments, check_cov=check_cov))  # fmt: skip
        out = t["h"].dtype
        mean, var = _without_overflow_nan(
            lambda d: xs.linear_head_moments(cupy, *(v.astype(d) for v in t.values())),
            _cdt(out), bogc_ref.linear_head_moments, args, kwargs,
        )  # fmt: skip
        check_vouched_covariance(bogc_ref.linear_head_moments, args, check_cov,
                                 lambda: bool((var < 0).any()), _host)  # fmt: skip
        return Moments(mean.astype(out), var.astype(out))

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
        kwargs = {"eps": eps, "n_samples": n_samples, "seed": seed, "chunk_size": chunk_size}
        sizes = self._check(
            bogc_ref.softmax_head_moments, (h, labels, w_mean, w_cov), kwargs, t,
            lambda s: checks.softmax_head_moments(s, n_samples, seed, chunk_size),
        )  # fmt: skip
        out = t["h"].dtype
        factor = xs.psd_factor(cupy, t["w_cov"], "w_cov")

        def compute(cdt: Any) -> tuple[Any, Any]:
            chol = factor.astype(cdt)
            n_params = chol.shape[0]
            if "eps" in t:
                stored = t["eps"].astype(cdt)

                def draws(start: int, size: int) -> Any:
                    return stored[start : start + size]
            else:
                rng = cupy.random.default_rng(seed)

                def draws(start: int, size: int) -> Any:
                    return rng.standard_normal((size, n_params), dtype=cdt)

            pair: tuple[Any, Any] = xs.softmax_head_moments(
                cupy, t["h"].astype(cdt), _one_hot(t["labels"], sizes.n_classes, cdt),
                t["w_mean"].astype(cdt), chol, draws, sizes.count, sizes.chunk,
            )  # fmt: skip
            return pair

        mean, var = _without_overflow_nan(
            compute, _cdt(out), bogc_ref.softmax_head_moments, (h, labels, w_mean, w_cov), kwargs
        )
        return Moments(mean.astype(out), var.astype(out))

    def softmax_head_moments_linearized(
        self, h: Any, labels: Any, w_mean: Any, w_cov: Any, *, check_cov: bool = True
    ) -> Moments:
        """See :func:`bogc_ref.softmax_head_moments_linearized` (``check_cov`` too)."""
        t = self._arrays(h=h, labels=labels, w_mean=w_mean, w_cov=w_cov)
        args, kwargs = (h, labels, w_mean, w_cov), checks.check_cov_keyword(check_cov)
        reference = bogc_ref.softmax_head_moments_linearized
        structure = functools.partial(checks.softmax_head_moments_linearized, check_cov=check_cov)
        sizes = self._check(reference, args, kwargs, t, structure)
        out = t["h"].dtype
        mean, var = _without_overflow_nan(
            lambda d: xs.softmax_head_moments_linearized(
                cupy, t["h"].astype(d), _one_hot(t["labels"], sizes.n_classes, d),
                t["w_mean"].astype(d), t["w_cov"].astype(d), clamp=check_cov,
            ),
            _cdt(out), reference, args, kwargs,
        )  # fmt: skip
        check_vouched_covariance(reference, args, check_cov,
                                 lambda: bool((var < 0).any()), _host)  # fmt: skip
        var = cupy.maximum(var, 0.0)  # rounding below 0 is 0 (done above with check_cov)
        return Moments(mean.astype(out), var.astype(out))

    def empirical_moments(self, per_sample_grads: Any) -> Moments:
        """See :func:`bogc_ref.empirical_moments`."""
        t = self._arrays(per_sample_grads=per_sample_grads)
        self._check(bogc_ref.empirical_moments, (per_sample_grads,), {}, t,
                    checks.empirical_moments)  # fmt: skip
        g = t["per_sample_grads"]
        mean, var = xs.empirical_moments(cupy, g.astype(_cdt(g.dtype)))
        if not bool(cupy.isfinite(mean).all() & cupy.isfinite(var).all()):
            # sums beyond the compute dtype's range: float64, scaled (as the reference)
            mean, var = xs.empirical_moments_scaled(cupy, g.astype(np.float64))
        return Moments(mean.astype(g.dtype), var.astype(g.dtype))

    def linear_head_posterior(
        self, h: Any, y: Any, *, prior_mean: Any, prior_precision: Any, noise_var: float
    ) -> Posterior:
        """See :func:`bogc_ref.linear_head_posterior` (float64 inside)."""
        t = self._arrays(h=h, y=y, prior_mean=prior_mean, prior_precision=prior_precision)
        kwargs = {"prior_mean": prior_mean, "prior_precision": prior_precision,
                  "noise_var": noise_var}  # fmt: skip
        sizes = self._check(bogc_ref.linear_head_posterior, (h, y), kwargs, t,
                            lambda s: checks.linear_head_posterior(s, noise_var))  # fmt: skip
        out = t["h"].dtype

        def compute(d: Any) -> tuple[Any, Any]:
            h_, y_, m0, p0 = (t[n].astype(d) for n in ("h", "y", "prior_mean", "prior_precision"))
            pair: tuple[Any, Any] = xs.linear_head_posterior(
                cupy, cupy_linalg, h_, y_, m0, p0, sizes.noise_var
            )
            return pair

        mean, cov = _without_overflow_nan(
            compute, np.float64, bogc_ref.linear_head_posterior, (h, y), kwargs
        )
        k = mean.shape[0]
        if cov.ndim == 3:  # the reference's answer (overflow path)
            return Posterior(mean.astype(out), cov.astype(out))
        return Posterior(mean.astype(out), cupy.broadcast_to(cov.astype(out), (k, *cov.shape)))

    def softmax_head_laplace(
        self, h: Any, labels: Any, w: Any, *, prior_mean: Any, prior_precision: Any
    ) -> Posterior:
        """See :func:`bogc_ref.softmax_head_laplace` (float64 inside)."""
        t = self._arrays(
            h=h, labels=labels, w=w, prior_mean=prior_mean, prior_precision=prior_precision
        )
        kwargs = {"prior_mean": prior_mean, "prior_precision": prior_precision}
        sizes = self._check(bogc_ref.softmax_head_laplace, (h, labels, w), kwargs, t,
                            checks.softmax_head_laplace)  # fmt: skip
        out = t["h"].dtype
        targets = _one_hot(t["labels"], sizes.n_classes, np.float64)
        names = ("h", "w", "prior_mean", "prior_precision")

        def compute(d: Any) -> tuple[Any, Any]:
            f64 = [t[n].astype(d) for n in names]
            pair: tuple[Any, Any] = xs.softmax_head_laplace(
                cupy, cupy_linalg, f64[0], targets, *f64[1:]
            )
            return pair

        mean, cov = _without_overflow_nan(
            compute, np.float64, bogc_ref.softmax_head_laplace, (h, labels, w), kwargs
        )
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
        kwargs = {"mask": mask, "mode": mode, "tau": tau, "power": power}
        self._check(bogc_ref.evidence, (var,), kwargs, t, checks.evidence,
                    lambda: self._present(t, v.shape).reshape(*v.shape[:-1], 1))  # fmt: skip
        shape, out = v.shape, v.dtype
        lead, n_sources, dim = self._lead(shape), shape[-2], shape[-1]
        vc = cupy.ascontiguousarray(v.astype(_cdt(out))).reshape(lead, n_sources, dim)
        present = self._present(t, shape)
        log_ref, _ = self._pass1(vc, vc, present, mode_ == "relative", False)
        e = kernels.raw_evidence_kernel(float(np.finfo(out).max))(
            vc, present[:, :, None], log_ref[:, None, None], _clamped_power(power_, vc.dtype),
            math.log(tau_) if tau_ is not None else 0.0, mode_ == "relative",
        )  # fmt: skip
        return e.astype(out).reshape(shape)

    def _evidence_array(self, evidence: Any) -> Any:
        t = self._arrays(evidence=evidence)
        self._check(_evidence_argument, (evidence,), {}, t, checks.evidence_argument)
        return t["evidence"]

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
        kwargs = checks.calibrate_keywords(
            mask, mode, tau, power, prior_weight, normalize, check_finite
        )
        mode_, tau_, power_ = evidence_params(mode, tau, power)
        t = self._arrays(mean=mean, var=var, **({"mask": mask} if mask is not None else {}))
        mu, v = t["mean"], t["var"]
        self._check(bogc_ref.calibrate, (mean, var), kwargs, t, checks.calibrate, check_dtypes=True)
        require_bool(check_finite, "check_finite")
        shape, out = mu.shape, mu.dtype
        lead, n_sources, dim = self._lead(shape), shape[-2], shape[-1]
        # p·log-ratios beyond float32's range: fuse in float64 (see the torch backend)
        cdt = np.float64 if power_ > FLOAT32_POWER_LIMIT else _cdt(out)
        mc = cupy.ascontiguousarray(mu.astype(cdt)).reshape(lead, n_sources, dim)
        vc = cupy.ascontiguousarray(v.astype(cdt)).reshape(lead, n_sources, dim)
        present = self._present(t, shape)

        def replay_if_bad(bad: Any) -> None:
            if bad is not None and bool((bad > 0).any()):
                replay_on_host(bogc_ref.calibrate, (mean, var), kwargs, _host)

        relative = mode_ == "relative"
        log_ref, bad = (
            self._pass1(mc, vc, present, relative, bool(check_finite))
            if relative or check_finite
            else (cupy.zeros(lead), None)
        )
        weight = checks.calibrate_scalars(
            prior_weight, n_sources, normalize, lambda: replay_if_bad(bad)
        )
        replay_if_bad(bad)
        grad = cupy.empty((lead, dim), dtype=cdt)
        unc = cupy.empty((lead, dim), dtype=cdt)
        belief = cupy.empty((lead, n_sources, dim), dtype=cdt)
        evid = cupy.empty((lead, n_sources, dim), dtype=cdt)
        kernel = kernels.fused_kernel(
            n_sources, relative, bool(normalize), "mask" in t, True, float(np.finfo(out).max)
        )
        kernel(
            mc, vc, present, log_ref, _clamped_power(power_, cdt),
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
