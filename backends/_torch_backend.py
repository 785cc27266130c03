"""The PyTorch backend: every stage of the spec on ``torch.Tensor``, any device.

* Semantics are the reference's (``bogc_ref``): same defaults, same dogmatic, vacuous
  and mask handling, same errors. Structural checks run the reference's validation
  helpers on zero-cost stubs; value checks are one fused reduction plus one scalar
  device-to-host sync, and only on failure are the inputs copied to the host so the
  reference raises its own message (argument, what, index, shape). See ``_replay``.
* dtype: float32 and float64 compute in their own precision; float16 and bfloat16
  inputs are computed in float32 and returned in their own dtype. Posterior fits and
  Cholesky factors use float64 internally (as the reference).
* No autograd: every call runs under ``torch.no_grad()``; outputs carry no graph.
* Random draws: ``torch.Generator`` on the input's device seeded with ``seed``;
  results are deterministic for a given (seed, chunk_size, device), and for a given
  ``eps`` they do not depend on ``chunk_size`` beyond rounding.

calibrate with ``check_finite=True`` costs the fused check (it reads ``mean`` once in
the reduction pass; compiled, it shares the pass that reads ``var``) and one scalar
sync. ``check_finite=False`` skips both: no host round-trip at all, and NaN or negative
inputs give unspecified (NaN) results instead of an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch

import bogc_ref
from bogc_ref._dempster import _evidence_argument, prior_weight_value
from bogc_ref._evidence import evidence_params
from bogc_ref._heads import covariance, head_weights, representation
from bogc_ref._linear_head import _targets
from bogc_ref._results import Calibration, Moments, Opinion, Posterior
from bogc_ref._softmax_head import DEFAULT_CHUNK_ELEMENTS, _noise
from bogc_ref._validation import (
    bool_mask,
    common_dtype,
    float_array,
    labels_array,
    positive_scalar,
    require_min_ndim,
    require_shape,
)

from . import _torch_stage1 as stage1
from ._errors import BackendUnavailable
from ._replay import replay
from ._torch_calibrate import (
    CoreOptions,
    checked_out,
    linear_evidence,
    run_core,
    scalars_for,
)
from ._torch_common import (
    HALF_DTYPES,
    any_flag,
    as_tensor,
    compute_dtype,
    host,
    not_all_finite,
    not_symmetric,
    same_device,
    saturate_exp,
    stub_of,
)
from ._torch_fusion import fuse, log_ref_precision, raw_log_evidence


def _any(x: torch.Tensor) -> Any:
    return cast(Any, x)


def _same_dtype(tensors: dict[str, torch.Tensor]) -> None:
    """TypeError when float tensors that must share a dtype do not (half types included)."""
    items = list(tensors.items())
    first_name, first = items[0]
    for name, t in items[1:]:
        if t.dtype != first.dtype:
            raise TypeError(
                f"{name}: dtype {t.dtype} does not match {first_name}'s dtype {first.dtype}; "
                "pass them in one dtype"
            )


class TorchBackend:
    """BOGC on PyTorch tensors. ``device`` is where ``from_numpy`` puts arrays.

    Functions run on the device of their tensor inputs; non-tensor inputs are moved to
    the device of the first tensor argument (or ``device``).
    """

    name = "torch"

    def __init__(self, device: str | None = None) -> None:
        dev = torch.device(device if device is not None else "cpu")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(
                f"backend 'torch' on {dev}: CUDA is not available to this PyTorch "
                f"({torch.__version__}); install a CUDA build of PyTorch on a machine with an "
                "NVIDIA GPU, or use device='cpu'"
            )
        self.device = str(dev)
        #: "auto", "always" or "never": how calibrate uses torch.compile (tests set it).
        self.compile_mode = "auto"

    def __repr__(self) -> str:
        return f"TorchBackend(device={self.device!r}, compile_mode={self.compile_mode!r})"

    def from_numpy(self, array: Any) -> torch.Tensor:
        """A tensor on ``device`` holding a copy of ``array`` (same dtype)."""
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    # ------------------------------------------------------------------ plumbing
    def _tensors(self, **values: object) -> dict[str, torch.Tensor]:
        anchor = next((v for v in values.values() if isinstance(v, torch.Tensor)), None)
        device = anchor.device if anchor is not None else torch.device(self.device)
        out = {name: as_tensor(v, device) for name, v in values.items()}
        first = next(iter(out.values()))
        same_device(first, out)
        return out

    @staticmethod
    def _check(
        reference: Callable[..., Any],
        args: tuple[object, ...],
        kwargs: dict[str, object],
        structure: Callable[[], None],
        flags: Callable[[], list[torch.Tensor]],
    ) -> None:
        """Structural checks on stubs, then one fused value check; replay on failure."""
        host_args = lambda: (tuple(host(a) for a in args), {k: host(v) for k, v in kwargs.items()})  # noqa: E731
        try:
            structure()
        except (TypeError, ValueError):
            a, kw = host_args()
            reference(*a, **kw)  # raises the reference's own error when it sees one
            raise
        if any_flag(flags()):
            a, kw = host_args()
            replay(reference, a, kw)

    # ------------------------------------------------------------------ stage 1
    def linear_head_moments(self, h: Any, y: Any, w_mean: Any, w_cov: Any) -> Moments:
        """See :func:`bogc_ref.linear_head_moments`; tensors (B, D) out."""
        with torch.no_grad():
            t = self._tensors(h=h, y=y, w_mean=w_mean, w_cov=w_cov)

            def structure() -> None:
                hs = representation(stub_of(t["h"]))
                ys = _targets(stub_of(t["y"]), hs.shape[0])
                mu = head_weights(stub_of(t["w_mean"]), "w_mean", hs.shape[1])
                if ys.shape[1] != mu.shape[0]:
                    raise ValueError("y: columns do not match w_mean's rows")
                k, d1 = mu.shape
                cov = covariance(stub_of(t["w_cov"]), "w_cov", (k, d1, d1), "(K, D+1, D+1)")
                common_dtype([("h", hs), ("y", ys), ("w_mean", mu), ("w_cov", cov)])
                _same_dtype(t)

            self._check(
                bogc_ref.linear_head_moments,
                (h, y, w_mean, w_cov),
                {},
                structure,
                lambda: [*map(not_all_finite, t.values()), not_symmetric(t["w_cov"])],
            )
            out = t["h"].dtype
            cdt = compute_dtype(out)
            mean, var = stage1.linear_head_moments(*(v.to(cdt) for v in t.values()))
            return Moments(_any(mean.to(out)), _any(var.to(out)))

    def _softmax_structure(
        self, t: dict[str, torch.Tensor], weight_name: str
    ) -> tuple[int, int, int]:
        hs = representation(stub_of(t["h"]))
        n_rows, dim = hs.shape
        mu = head_weights(stub_of(t[weight_name]), weight_name, dim)
        labels_array(stub_of(t["labels"]), "labels", mu.shape[0], n_rows)
        return n_rows, dim, mu.shape[0]

    @staticmethod
    def _label_flags(labels: torch.Tensor, n_classes: int) -> list[torch.Tensor]:
        return [((labels < 0) | (labels >= n_classes)).any()]

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
        """See :func:`bogc_ref.softmax_head_moments`. Draws: ``torch.Generator`` seeded
        with ``seed`` on the input's device, one ``randn`` call per chunk."""
        with torch.no_grad():
            given = {"h": h, "labels": labels, "w_mean": w_mean, "w_cov": w_cov}
            if eps is not None:
                given["eps"] = eps
            t = self._tensors(**given)
            sizes: dict[str, int] = {}

            def structure() -> None:
                n_rows, dim, k = self._softmax_structure(t, "w_mean")
                n_params = k * (dim + 1)
                cov = covariance(
                    stub_of(t["w_cov"]), "w_cov", (n_params, n_params), "(K(D+1), K(D+1))"
                )
                common_dtype(
                    [("h", stub_of(t["h"])), ("w_mean", stub_of(t["w_mean"])), ("w_cov", cov)]
                )
                _same_dtype({n: t[n] for n in ("h", "w_mean", "w_cov")})
                eps_stub = stub_of(t["eps"]) if "eps" in t else None
                sizes["count"], _ = _noise(eps_stub, n_samples, seed, n_params)
                sizes["chunk"] = _chunk(chunk_size, sizes["count"], n_rows, dim, k, n_params)
                sizes["k"] = k

            def flags() -> list[torch.Tensor]:
                names = ["h", "w_mean", "w_cov", *(["eps"] if "eps" in t else [])]
                return [
                    *(not_all_finite(t[n]) for n in names),
                    not_symmetric(t["w_cov"]),
                    *self._label_flags(t["labels"], sizes["k"]),
                ]

            kwargs = {"eps": eps, "n_samples": n_samples, "seed": seed, "chunk_size": chunk_size}
            self._check(bogc_ref.softmax_head_moments, (h, labels, w_mean, w_cov), kwargs,
                        structure, flags)  # fmt: skip
            out = t["h"].dtype
            cdt = compute_dtype(out)
            hc = t["h"].to(cdt)
            generator = None
            if eps is None and seed is not None:
                generator = torch.Generator(device=hc.device)
                generator.manual_seed(int(seed))
            targets = torch.nn.functional.one_hot(t["labels"].long(), sizes["k"]).to(cdt)
            mean, var = stage1.softmax_head_moments(
                hc,
                targets,
                t["w_mean"].to(cdt),
                t["w_cov"],
                eps=t["eps"].to(cdt) if "eps" in t else None,
                count=sizes["count"],
                generator=generator,
                chunk=sizes["chunk"],
            )
            return Moments(_any(mean.to(out)), _any(var.to(out)))

    def softmax_head_moments_linearized(
        self, h: Any, labels: Any, w_mean: Any, w_cov: Any
    ) -> Moments:
        """See :func:`bogc_ref.softmax_head_moments_linearized`."""
        with torch.no_grad():
            t = self._tensors(h=h, labels=labels, w_mean=w_mean, w_cov=w_cov)
            sizes: dict[str, int] = {}

            def structure() -> None:
                _, dim, k = self._softmax_structure(t, "w_mean")
                n_params = k * (dim + 1)
                cov = covariance(
                    stub_of(t["w_cov"]), "w_cov", (n_params, n_params), "(K(D+1), K(D+1))"
                )
                common_dtype(
                    [("h", stub_of(t["h"])), ("w_mean", stub_of(t["w_mean"])), ("w_cov", cov)]
                )
                _same_dtype({n: t[n] for n in ("h", "w_mean", "w_cov")})
                sizes["k"] = k

            self._check(
                bogc_ref.softmax_head_moments_linearized,
                (h, labels, w_mean, w_cov),
                {},
                structure,
                lambda: [
                    *(not_all_finite(t[n]) for n in ("h", "w_mean", "w_cov")),
                    not_symmetric(t["w_cov"]),
                    *self._label_flags(t["labels"], sizes["k"]),
                ],
            )
            out = t["h"].dtype
            cdt = compute_dtype(out)
            targets = torch.nn.functional.one_hot(t["labels"].long(), sizes["k"]).to(cdt)
            mean, var = stage1.softmax_head_moments_linearized(
                t["h"].to(cdt), targets, t["w_mean"].to(cdt), t["w_cov"].to(cdt)
            )
            return Moments(_any(mean.to(out)), _any(var.to(out)))

    def empirical_moments(self, per_sample_grads: Any) -> Moments:
        """See :func:`bogc_ref.empirical_moments`."""
        with torch.no_grad():
            g = self._tensors(per_sample_grads=per_sample_grads)["per_sample_grads"]

            def structure() -> None:
                arr = float_array(stub_of(g), "per_sample_grads")
                require_min_ndim(arr, "per_sample_grads", 2, "(N, ..., D)")
                if arr.shape[0] < 2:
                    raise ValueError("per_sample_grads: need N >= 2")

            self._check(
                bogc_ref.empirical_moments,
                (per_sample_grads,),
                {},
                structure,
                lambda: [not_all_finite(g)],
            )
            mean, var = stage1.empirical_moments(g.to(compute_dtype(g.dtype)))
            return Moments(_any(mean.to(g.dtype)), _any(var.to(g.dtype)))

    def linear_head_posterior(
        self, h: Any, y: Any, *, prior_mean: Any, prior_precision: Any, noise_var: float
    ) -> Posterior:
        """See :func:`bogc_ref.linear_head_posterior` (float64 inside)."""
        with torch.no_grad():
            t = self._tensors(h=h, y=y, prior_mean=prior_mean, prior_precision=prior_precision)
            scalars: dict[str, float] = {}

            def structure() -> None:
                hs = representation(stub_of(t["h"]))
                n_rows, dim = hs.shape
                ys = _targets(stub_of(t["y"]), n_rows)
                m0 = head_weights(stub_of(t["prior_mean"]), "prior_mean", dim)
                require_shape(m0, "prior_mean", (ys.shape[1], dim + 1), "(K, D+1)")
                p0 = covariance(
                    stub_of(t["prior_precision"]), "prior_precision", (dim + 1, dim + 1), "D+1"
                )
                scalars["noise_var"] = positive_scalar(noise_var, "noise_var")
                common_dtype([("h", hs), ("y", ys), ("prior_mean", m0), ("prior_precision", p0)])
                _same_dtype(t)

            self._check(
                bogc_ref.linear_head_posterior,
                (h, y),
                {"prior_mean": prior_mean, "prior_precision": prior_precision,
                 "noise_var": noise_var},
                structure,
                lambda: [*map(not_all_finite, t.values()), not_symmetric(t["prior_precision"])],
            )  # fmt: skip
            out = t["h"].dtype
            f64 = torch.float64
            mean, cov = stage1.linear_head_posterior(
                t["h"].to(f64), t["y"].to(f64), t["prior_mean"].to(f64),
                t["prior_precision"].to(f64), scalars["noise_var"],
            )  # fmt: skip
            k = mean.shape[0]
            covs = cov.to(out).expand(k, *cov.shape)
            return Posterior(_any(mean.to(out)), _any(covs))

    def softmax_head_laplace(
        self, h: Any, labels: Any, w: Any, *, prior_mean: Any, prior_precision: Any
    ) -> Posterior:
        """See :func:`bogc_ref.softmax_head_laplace` (float64 inside)."""
        with torch.no_grad():
            t = self._tensors(
                h=h, labels=labels, w=w, prior_mean=prior_mean, prior_precision=prior_precision
            )
            sizes: dict[str, int] = {}

            def structure() -> None:
                _, dim, k = self._softmax_structure(t, "w")
                m0 = head_weights(stub_of(t["prior_mean"]), "prior_mean", dim)
                if m0.shape != (k, dim + 1):
                    raise ValueError("prior_mean: shape differs from w's")
                n_params = k * (dim + 1)
                p0 = covariance(
                    stub_of(t["prior_precision"]), "prior_precision", (n_params, n_params), "KD"
                )
                common_dtype(
                    [("h", stub_of(t["h"])), ("w", stub_of(t["w"])), ("prior_mean", m0),
                     ("prior_precision", p0)]
                )  # fmt: skip
                _same_dtype({n: t[n] for n in ("h", "w", "prior_mean", "prior_precision")})
                sizes["k"] = k

            self._check(
                bogc_ref.softmax_head_laplace,
                (h, labels, w),
                {"prior_mean": prior_mean, "prior_precision": prior_precision},
                structure,
                lambda: [
                    *(not_all_finite(t[n]) for n in ("h", "w", "prior_mean", "prior_precision")),
                    not_symmetric(t["prior_precision"]),
                    *self._label_flags(t["labels"], sizes["k"]),
                ],
            )
            out = t["h"].dtype
            f64 = torch.float64
            targets = torch.nn.functional.one_hot(t["labels"].long(), sizes["k"]).to(f64)
            mean, cov = stage1.softmax_head_laplace(
                t["h"].to(f64), targets, t["w"].to(f64), t["prior_mean"].to(f64),
                t["prior_precision"].to(f64),
            )  # fmt: skip
            return Posterior(_any(mean.to(out)), _any(cov.to(out)))

    # ------------------------------------------------------------------ stage 2, 3
    def _present(self, t: dict[str, torch.Tensor], shape: tuple[int, ...]) -> torch.Tensor | None:
        """The (..., M) mask broadcast to ``shape[:-1]``, or None."""
        if "mask" not in t:
            return None
        return t["mask"].expand(shape[:-1])

    def evidence(
        self,
        var: Any,
        *,
        mask: Any = None,
        mode: str = "relative",
        tau: float | None = None,
        power: float = 1.0,
    ) -> torch.Tensor:
        """See :func:`bogc_ref.evidence`; a tensor (..., M, D) in ``var``'s dtype."""
        with torch.no_grad():
            mode_, tau_, power_ = evidence_params(mode, tau, power)
            t = self._tensors(var=var, **({"mask": mask} if mask is not None else {}))
            v = t["var"]

            def structure() -> None:
                arr = float_array(stub_of(v), "var")
                require_min_ndim(arr, "var", 2, "(..., M, D)")
                if "mask" in t:
                    bool_mask(stub_of(t["mask"]), "mask", arr.shape[:-1])

            def flags() -> list[torch.Tensor]:
                bad = torch.isnan(v) | (v < 0)
                present = self._present(t, tuple(v.shape))
                if present is not None:
                    bad = bad & present.unsqueeze(-1)
                return [bad.any()]

            self._check(bogc_ref.evidence, (var,),
                        {"mask": mask, "mode": mode, "tau": tau, "power": power},
                        structure, flags)  # fmt: skip
            present = self._present(t, tuple(v.shape))
            vc = v.to(compute_dtype(v.dtype))
            log_ref = log_ref_precision(vc, present).unsqueeze(-2) if mode_ == "relative" else None
            p = present.unsqueeze(-1) if present is not None else None
            log_tau = math.log(tau_) if tau_ is not None else 0.0
            raw = raw_log_evidence(vc, log_ref, p, power_, log_tau)
            return saturate_exp(raw, v.dtype)

    def _evidence_tensor(self, evidence: Any) -> torch.Tensor:
        e = self._tensors(evidence=evidence)["evidence"]

        def structure() -> None:
            arr = float_array(stub_of(e), "evidence")
            require_min_ndim(arr, "evidence", 2, "(..., M, D)")

        self._check(
            _evidence_argument, (evidence,), {}, structure,
            lambda: [(torch.isnan(e) | (e < 0)).any()],
        )  # fmt: skip
        return e

    def opinions(self, evidence: Any, *, prior_weight: float | None = None) -> Opinion:
        r"""See :func:`bogc_ref.opinions`: :math:`b = e/(e+W)`, :math:`u = W/(e+W)`."""
        with torch.no_grad():
            e = self._evidence_tensor(evidence)
            log_w = math.log(prior_weight_value(prior_weight, e.shape[-2]))
            log_e = torch.log(e.to(compute_dtype(e.dtype)))
            log_den = torch.logaddexp(log_e, torch.full_like(log_e, log_w))
            belief = torch.where(log_e == math.inf, 1.0, torch.exp(log_e - log_den))
            uncertainty = torch.exp(log_w - log_den)
            return Opinion(_any(belief.to(e.dtype)), _any(uncertainty.to(e.dtype)))

    def reduced_dempster(self, evidence: Any, *, prior_weight: float | None = None) -> Opinion:
        r"""See :func:`bogc_ref.reduced_dempster`: :math:`\hat b_m = e_m/(W + \sum_n e_n)`."""
        with torch.no_grad():
            e = self._evidence_tensor(evidence)
            n_sources = e.shape[-2]
            log_w = math.log(prior_weight_value(prior_weight, n_sources))
            log_e = torch.log(e.to(compute_dtype(e.dtype)))
            fused = fuse([log_e[..., m, :] for m in range(n_sources)], log_w, want_weights=False)
            belief = torch.stack(fused.belief, dim=-2)
            return Opinion(_any(belief.to(e.dtype)), _any(fused.uncertainty.to(e.dtype)))

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
        out: Calibration | None = None,
    ) -> Calibration:
        r"""See :func:`bogc_ref.calibrate`: Calibration of tensors in ``mean``'s dtype.

        Two passes over memory in relative mode (one in fixed mode); compiled for large
        inputs (see ``_torch_calibrate``). For p = 1 the evidence is the variance ratio
        :math:`e_m = v_\mathrm{ref}/v_m` (no log or exp in the second pass).

        ``out``: an optional :class:`~bogc_ref.Calibration` of tensors (grad (..., D),
        belief (..., M, D), uncertainty (..., D), evidence (..., M, D)) in ``mean``'s dtype
        and on its device, not overlapping the inputs or each other; the results are written
        into them and ``out`` is returned, like NumPy's ``out=``. Reusing ``out`` across
        calls saves allocating and first-touching fresh memory (for large D most of a call's
        time on a CPU). If the call raises, ``out``'s contents are unspecified.
        """
        result = self._calibrate(
            mean, var, mask, mode, tau, power, prior_weight, normalize, check_finite, True, out
        )
        grad, belief, uncertainty, evidence = result
        return Calibration(_any(grad), _any(belief), _any(uncertainty), _any(evidence))

    def calibrate_grad(
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
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``calibrate(...).grad`` without writing belief, uncertainty and evidence.

        Same checks and the same arithmetic; it only skips the (..., M, D) outputs, so
        the fused pass writes D values instead of (2M + 2) D. ``out``: an optional
        (..., D) tensor to write the gradient into (see :meth:`calibrate`). Not part of
        the spec.
        """
        (grad,) = self._calibrate(
            mean, var, mask, mode, tau, power, prior_weight, normalize, check_finite, False, out
        )
        return grad

    def _calibrate(
        self,
        mean: Any,
        var: Any,
        mask: Any,
        mode: str,
        tau: float | None,
        power: float,
        prior_weight: float | None,
        normalize: bool,
        check_finite: bool,
        want_all: bool,
        out: object,
    ) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            kwargs: dict[str, object] = {
                "mask": mask, "mode": mode, "tau": tau, "power": power,
                "prior_weight": prior_weight, "normalize": normalize,
                "check_finite": check_finite,
            }  # fmt: skip
            mode_, tau_, power_ = evidence_params(mode, tau, power)
            t = self._tensors(mean=mean, var=var, **({"mask": mask} if mask is not None else {}))
            mu, v = t["mean"], t["var"]

            def structure() -> None:
                ms = float_array(stub_of(mu), "mean")
                vs = float_array(stub_of(v), "var")
                common_dtype([("mean", ms), ("var", vs)])
                _same_dtype({"mean": mu, "var": v})
                require_min_ndim(ms, "mean", 2, "(..., M, D)")
                require_shape(vs, "var", ms.shape, "the shape of mean")
                if "mask" in t:
                    bool_mask(stub_of(t["mask"]), "mask", ms.shape[:-1])

            self._check(bogc_ref.calibrate, (mean, var), kwargs, structure, lambda: [])
            present = self._present(t, tuple(mu.shape))

            def value_error() -> None:
                bad = torch.isnan(v) | (v < 0) | ~torch.isfinite(mu)
                if present is not None:
                    bad = bad & present.unsqueeze(-1)
                if bool(bad.any()):
                    replay(bogc_ref.calibrate, (host(mean), host(var)),
                           {k: host(x) for k, x in kwargs.items()})  # fmt: skip

            try:
                weight = prior_weight_value(prior_weight, mu.shape[-2])
                if not isinstance(normalize, bool | np.bool_):
                    raise TypeError(f"normalize: expected a bool, got {type(normalize).__name__}")
            except (TypeError, ValueError):
                if check_finite:
                    value_error()  # the reference checks values before these two
                raise
            targets = checked_out(out, want_all, mu, t) if out is not None else None
            options = CoreOptions(
                n_sources=mu.shape[-2],
                relative=mode_ == "relative",
                normalize=bool(normalize),
                has_mask=present is not None,
                want_all=want_all,
                check=bool(check_finite),
                out_dtype=mu.dtype,
                linear=linear_evidence(power_, tau_, mu.dtype),
            )
            result = run_core(
                mu, v, present, scalars_for(tau_, power_, weight), options,
                out=targets, compile_mode=self.compile_mode,
            )  # fmt: skip
            if check_finite:
                *result_list, bad = result
                if bool(bad.item()):
                    replay(bogc_ref.calibrate, (host(mean), host(var)),
                           {k: host(x) for k, x in kwargs.items()})  # fmt: skip
                result = tuple(result_list)
            return result


def _chunk(chunk_size: object, count: int, n_rows: int, dim: int, k: int, n_params: int) -> int:
    """Draws per chunk: the reference's default (about 2**22 elements) or ``chunk_size``."""
    if chunk_size is None:
        per_draw = n_rows * (dim + 2 * k) + 2 * n_params
        return max(1, min(count, DEFAULT_CHUNK_ELEMENTS // per_draw))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise TypeError(f"chunk_size: expected an int, got {type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size: must be >= 1, got {chunk_size}")
    return int(chunk_size)


__all__ = ["HALF_DTYPES", "TorchBackend"]
