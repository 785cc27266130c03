"""The PyTorch backend: every stage of the spec on ``torch.Tensor``, any device.

* Semantics are the reference's (``bogc_ref``): same defaults, same dogmatic, vacuous
  and mask handling, same errors. Structural checks run the reference's validation
  helpers on zero-cost stubs, once per call structure (shapes, dtypes, scalar arguments);
  value checks, on every call, are one fused reduction plus one scalar device-to-host
  sync, and only on failure are the inputs copied to the host so the reference raises its
  own message (argument, what, index, shape). See ``_replay``.
* dtype: float32 and float64 compute in their own precision; float16 and bfloat16
  inputs are computed in float32 and returned in their own dtype (a stage-1 moment
  beyond the half type's range is a ValueError naming the input: as +inf, a variance
  would read as *no information*). Posterior fits and Cholesky factors use float64
  internally (as the reference).
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

import functools
import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple, cast

import numpy as np
import torch

import bogc_ref
from bogc_ref._dempster import _evidence_argument, prior_weight_value
from bogc_ref._evidence import evidence_params
from bogc_ref._results import Calibration, Moments, Opinion, Posterior
from bogc_ref._validation import plain_array, require_bool

from . import _checks as checks
from . import _torch_stage1 as stage1
from ._errors import BackendUnavailable
from ._replay import (
    StructureCache,
    check_vouched_covariance,
    hashable_or_none,
    replay_on_host,
    typed,
    validate,
)
from ._torch_calibrate import (
    CoreOptions,
    CoreScalars,
    checked_out,
    linear_evidence,
    reference_log_var,
    run_core,
    scalars_for,
)
from ._torch_common import (
    HALF_DTYPES,
    any_flag,
    as_tensor,
    compute_dtype,
    generator_seed,
    host,
    in_dtype,
    maybe_not_psd,
    not_all_finite,
    not_symmetric,
    results_have_nan,
    same_device,
    saturate_exp,
    stub_of,
)
from ._torch_dempster import dempster_combine as _dempster_combine
from ._torch_fusion import fuse, raw_log_evidence


def _any(x: torch.Tensor) -> Any:
    return cast(Any, x)


class _TorchOps:
    """The tensor operations the shared validation (``_replay.validate``) runs on."""

    stub = staticmethod(stub_of)
    host = staticmethod(host)
    not_finite = staticmethod(not_all_finite)
    not_symmetric = staticmethod(not_symmetric)
    isnan = staticmethod(torch.isnan)
    any_set = staticmethod(any_flag)
    maybe_not_psd = staticmethod(maybe_not_psd)

    @staticmethod
    def same_dtype(tensors: Mapping[str, torch.Tensor]) -> None:
        """TypeError when float tensors that must share a dtype do not (half types included)."""
        items = list(tensors.items())
        first_name, first = items[0]
        for name, t in items[1:]:
            if t.dtype != first.dtype:
                raise TypeError(
                    f"{name}: dtype {t.dtype} does not match {first_name}'s dtype "
                    f"{first.dtype}; pass them in one dtype"
                )


_OPS = _TorchOps()


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
        #: Pass 1 of calibrate's relative mode on the CPU: "auto" (from the floats' bits,
        #: falling back to one logarithm per entry) or "logs" (one logarithm per entry).
        self.log_mean = "auto"

    def __repr__(self) -> str:
        return f"TorchBackend(device={self.device!r}, compile_mode={self.compile_mode!r})"

    def from_numpy(self, array: Any) -> torch.Tensor:
        """A tensor on ``device`` holding a copy of ``array`` (same dtype).

        A masked array is refused (TypeError), as by every function: its mask would be lost.
        """
        plain = plain_array(array, "array")
        return torch.from_numpy(np.ascontiguousarray(plain)).to(self.device)

    # ------------------------------------------------------------------ plumbing
    def _tensors(self, **values: object) -> dict[str, torch.Tensor]:
        anchor = next((v for v in values.values() if isinstance(v, torch.Tensor)), None)
        device = anchor.device if anchor is not None else torch.device(self.device)
        out = {name: as_tensor(v, device, name) for name, v in values.items()}
        first = next(iter(out.values()))
        same_device(first, out)
        return out

    def _check(
        self,
        reference: Callable[..., Any],
        args: tuple[object, ...],
        kwargs: dict[str, object],
        t: Mapping[str, torch.Tensor],
        structure: Callable[[checks.Stubs], checks.Checked],
        present: Callable[[], Any] | None = None,
    ) -> checks.Checked:
        """Structural checks on stubs, then one fused value check; replay on failure."""
        return validate(_OPS, reference, args, kwargs, t, structure, present=present)

    # ------------------------------------------------------------------ stage 1
    def linear_head_moments(
        self, h: Any, y: Any, w_mean: Any, w_cov: Any, *, check_cov: bool = True
    ) -> Moments:
        """See :func:`bogc_ref.linear_head_moments` (``check_cov`` too); tensors (B, D) out."""
        with torch.no_grad():
            t = self._tensors(h=h, y=y, w_mean=w_mean, w_cov=w_cov)
            args, kwargs = (h, y, w_mean, w_cov), checks.check_cov_keyword(check_cov)
            structure = functools.partial(checks.linear_head_moments, check_cov=check_cov)
            self._check(bogc_ref.linear_head_moments, args, kwargs, t, structure)
            out = t["h"].dtype
            mean, var = _without_overflow_nan(
                lambda d: stage1.linear_head_moments(*(in_dtype(v, d) for v in t.values())),
                compute_dtype(out), bogc_ref.linear_head_moments, args, kwargs, not check_cov,
            )  # fmt: skip
            return _moments_in(mean, var, out, "h")

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
            kwargs = {"eps": eps, "n_samples": n_samples, "seed": seed, "chunk_size": chunk_size}
            sizes = self._check(
                bogc_ref.softmax_head_moments, (h, labels, w_mean, w_cov), kwargs, t,
                lambda s: checks.softmax_head_moments(s, n_samples, seed, chunk_size),
            )  # fmt: skip
            out = t["h"].dtype

            def compute(cdt: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
                hc = in_dtype(t["h"], cdt)
                generator = None
                if eps is None and seed is not None:
                    generator = torch.Generator(device=hc.device)
                    generator.manual_seed(generator_seed(seed, hc.device))
                return stage1.softmax_head_moments(
                    hc,
                    _one_hot(t["labels"], sizes.n_classes, cdt),
                    in_dtype(t["w_mean"], cdt),
                    t["w_cov"],
                    eps=in_dtype(t["eps"], cdt) if "eps" in t else None,
                    count=sizes.count,
                    generator=generator,
                    chunk=sizes.chunk,
                )

            mean, var = _without_overflow_nan(
                compute, compute_dtype(out), bogc_ref.softmax_head_moments,
                (h, labels, w_mean, w_cov), kwargs,
            )  # fmt: skip
            return _moments_in(mean, var, out, "h")

    def softmax_head_moments_linearized(
        self, h: Any, labels: Any, w_mean: Any, w_cov: Any, *, check_cov: bool = True
    ) -> Moments:
        """See :func:`bogc_ref.softmax_head_moments_linearized` (``check_cov`` too)."""
        with torch.no_grad():
            t = self._tensors(h=h, labels=labels, w_mean=w_mean, w_cov=w_cov)
            args, kwargs = (h, labels, w_mean, w_cov), checks.check_cov_keyword(check_cov)
            reference = bogc_ref.softmax_head_moments_linearized
            structure = functools.partial(
                checks.softmax_head_moments_linearized, check_cov=check_cov
            )
            sizes = self._check(reference, args, kwargs, t, structure)
            out = t["h"].dtype
            mean, var = _without_overflow_nan(
                lambda d: stage1.softmax_head_moments_linearized(
                    in_dtype(t["h"], d), _one_hot(t["labels"], sizes.n_classes, d),
                    in_dtype(t["w_mean"], d), in_dtype(t["w_cov"], d), clamp=check_cov,
                ),
                compute_dtype(out), reference, args, kwargs, not check_cov,
            )  # fmt: skip
            var = var.clamp_min(0.0)  # rounding below 0 is 0 (done above with check_cov)
            return _moments_in(mean, var, out, "h")

    def empirical_moments(self, per_sample_grads: Any) -> Moments:
        """See :func:`bogc_ref.empirical_moments`."""
        with torch.no_grad():
            t = self._tensors(per_sample_grads=per_sample_grads)
            self._check(bogc_ref.empirical_moments, (per_sample_grads,), {}, t,
                        checks.empirical_moments)  # fmt: skip
            g = t["per_sample_grads"]
            mean, var = stage1.empirical_moments(g.to(compute_dtype(g.dtype)))
            if not bool((torch.isfinite(mean).all() & torch.isfinite(var).all()).item()):
                # squares beyond the compute dtype's range: float64 with each entry scaled
                # by its largest sample, as the reference does (a correct inf stays inf)
                mean, var = stage1.empirical_moments_scaled(g.to(torch.float64))
            return _moments_in(mean, var, g.dtype, "per_sample_grads")

    def linear_head_posterior(
        self, h: Any, y: Any, *, prior_mean: Any, prior_precision: Any, noise_var: float
    ) -> Posterior:
        """See :func:`bogc_ref.linear_head_posterior` (float64 inside)."""
        with torch.no_grad():
            t = self._tensors(h=h, y=y, prior_mean=prior_mean, prior_precision=prior_precision)
            kwargs = {"prior_mean": prior_mean, "prior_precision": prior_precision,
                      "noise_var": noise_var}  # fmt: skip
            sizes = self._check(bogc_ref.linear_head_posterior, (h, y), kwargs, t,
                                lambda s: checks.linear_head_posterior(s, noise_var))  # fmt: skip
            out = t["h"].dtype
            mean, cov = _without_overflow_nan(
                lambda d: stage1.linear_head_posterior(
                    in_dtype(t["h"], d), in_dtype(t["y"], d), in_dtype(t["prior_mean"], d),
                    in_dtype(t["prior_precision"], d), sizes.noise_var,
                ),
                torch.float64, bogc_ref.linear_head_posterior, (h, y), kwargs,
            )  # fmt: skip
            k = mean.shape[0]
            covs = in_dtype(cov, out) if cov.ndim == 3 else in_dtype(cov, out).expand(k, *cov.shape)
            return Posterior(_any(in_dtype(mean, out)), _any(covs))

    def softmax_head_laplace(
        self, h: Any, labels: Any, w: Any, *, prior_mean: Any, prior_precision: Any
    ) -> Posterior:
        """See :func:`bogc_ref.softmax_head_laplace` (float64 inside)."""
        with torch.no_grad():
            t = self._tensors(
                h=h, labels=labels, w=w, prior_mean=prior_mean, prior_precision=prior_precision
            )
            kwargs = {"prior_mean": prior_mean, "prior_precision": prior_precision}
            sizes = self._check(bogc_ref.softmax_head_laplace, (h, labels, w), kwargs, t,
                                checks.softmax_head_laplace)  # fmt: skip
            out = t["h"].dtype
            mean, cov = _without_overflow_nan(
                lambda d: stage1.softmax_head_laplace(
                    in_dtype(t["h"], d), _one_hot(t["labels"], sizes.n_classes, d),
                    in_dtype(t["w"], d), in_dtype(t["prior_mean"], d),
                    in_dtype(t["prior_precision"], d),
                ),
                torch.float64, bogc_ref.softmax_head_laplace, (h, labels, w), kwargs,
            )  # fmt: skip
            return Posterior(_any(in_dtype(mean, out)), _any(in_dtype(cov, out)))

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

            def where() -> torch.Tensor | None:
                present = self._present(t, tuple(v.shape))
                return present.unsqueeze(-1) if present is not None else None

            self._check(bogc_ref.evidence, (var,),
                        {"mask": mask, "mode": mode, "tau": tau, "power": power},
                        t, checks.evidence, where)  # fmt: skip
            present = self._present(t, tuple(v.shape))
            vc = v.to(compute_dtype(v.dtype))
            log_ref = (
                reference_log_var(vc, present).to(vc.dtype).unsqueeze(-2)
                if mode_ == "relative"
                else None
            )
            p = present.unsqueeze(-1) if present is not None else None
            log_tau = math.log(tau_) if tau_ is not None else 0.0
            raw = raw_log_evidence(vc, log_ref, p, power_, log_tau)
            return saturate_exp(raw, v.dtype)

    def _evidence_tensor(self, evidence: Any) -> torch.Tensor:
        t = self._tensors(evidence=evidence)
        self._check(_evidence_argument, (evidence,), {}, t, checks.evidence_argument)
        return t["evidence"]

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

    def dempster_combine(self, m1: Any, m2: Any) -> Any:
        r"""See :func:`bogc_ref.dempster_combine`: Dempster's rule for two mass functions."""
        with torch.no_grad():
            return _any(_dempster_combine(m1, m2, self._tensors, host))

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
            kwargs = checks.calibrate_keywords(
                mask, mode, tau, power, prior_weight, normalize, check_finite
            )
            key = _structure(mean, var, kwargs, want_all) if out is None else None
            plan = _PLANS.get(key)
            if plan is not None:  # this structure passed every structural check already
                mu, v, targets = mean, var, None
                present = mask.expand(mean.shape[:-1]) if mask is not None else None
            else:
                mode_, tau_, power_ = evidence_params(mode, tau, power)
                t = self._tensors(
                    mean=mean, var=var, **({"mask": mask} if mask is not None else {})
                )
                mu, v = t["mean"], t["var"]
                self._check(bogc_ref.calibrate, (mean, var), kwargs, t, checks.calibrate)
                require_bool(check_finite, "check_finite")
                if power_ > FLOAT32_POWER_LIMIT and compute_dtype(mu.dtype) != torch.float64:
                    targets = checked_out(out, want_all, mu, t) if out is not None else None
                    wide = self._calibrate(
                        mu.double(), v.double(), mask, mode, tau, power, prior_weight, normalize,
                        check_finite, want_all, None,
                    )  # fmt: skip
                    return _narrowed(wide, mu.dtype, targets)
                present = self._present(t, tuple(mu.shape))

                def value_error() -> None:
                    bad = torch.isnan(v) | (v < 0) | ~torch.isfinite(mu)
                    if present is not None:
                        bad = bad & present.unsqueeze(-1)
                    if check_finite and bool(bad.any()):
                        replay_on_host(bogc_ref.calibrate, (mean, var), kwargs, host)

                weight = checks.calibrate_scalars(
                    prior_weight, mu.shape[-2], normalize, value_error
                )
                targets = checked_out(out, want_all, mu, t) if out is not None else None
                options = CoreOptions(
                    n_sources=mu.shape[-2],
                    relative=mode_ == "relative",
                    normalize=bool(normalize),
                    has_mask=present is not None,
                    want_all=want_all,
                    check=bool(check_finite),
                    out_dtype=mu.dtype,
                    linear=linear_evidence(power_, tau_, mu.dtype, weight),
                )
                plan = _Plan(options, scalars_for(tau_, power_, weight))
            result = run_core(
                mu, v, present, plan.scalars, plan.options,
                out=targets, compile_mode=self.compile_mode, log_mean=self.log_mean,
            )  # fmt: skip
            result = _without_flag(result, check_finite, (mean, var), kwargs)
            _PLANS.put(key, plan)
            return result


class _Plan(NamedTuple):
    """What calibrate derives from a call's structure once it has passed the checks."""

    options: CoreOptions
    scalars: CoreScalars


#: calibrate's plans by call structure (:func:`_structure`): its structural checks (the
#: reference's validators on stubs, the keyword checks) read nothing else. The values are
#: checked on every call (fused into the loop).
_PLANS = StructureCache(64)


def _structure(
    mean: object, var: object, kwargs: dict[str, object], want_all: bool
) -> Hashable | None:
    """What calibrate's structural checks read of a call: the shapes, dtypes and devices of
    ``mean``, ``var`` and ``mask`` (if any), and each keyword's type and value; None (no
    plan) unless the arrays are all tensors and the keywords hashable."""
    mask = kwargs["mask"]
    arrays = [mean, var] if mask is None else [mean, var, mask]
    if not all(isinstance(a, torch.Tensor) for a in arrays):
        return None
    layout = tuple((tuple(a.shape), a.dtype, a.device) for a in cast(list[torch.Tensor], arrays))
    keywords = typed({k: v for k, v in kwargs.items() if k != "mask"})
    return hashable_or_none((layout, keywords, want_all))


def _without_flag(
    result: tuple[torch.Tensor, ...],
    check_finite: bool,
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> tuple[torch.Tensor, ...]:
    """``run_core``'s outputs without its bad-input flag; when the flag is set, the reference
    replayed on host copies of ``args``, ``kwargs`` raises its own error (what, where, shape)."""
    if not check_finite:
        return result
    *outputs, bad = result
    if bool(bad.item()):
        replay_on_host(bogc_ref.calibrate, args, kwargs, host)
    return tuple(outputs)


#: Above this power, p · log(λ/λ_ref) can exceed float32's range (|log ratio| <= ~800 with
#: τ from 1e-308 to 1e308): float32 and half inputs are then fused in float64, so that the
#: most precise source still wins instead of several tying at the saturated value.
FLOAT32_POWER_LIMIT = 1e35


def _narrowed(
    wide: tuple[torch.Tensor, ...], dtype: torch.dtype, targets: tuple[torch.Tensor, ...] | None
) -> tuple[torch.Tensor, ...]:
    """float64 results (grad, then belief, uncertainty, evidence) cast to ``dtype``, the
    evidence saturating at its largest finite value (+inf kept for dogmatic), written into
    ``targets`` (the checked ``out=`` tensors) when given."""
    big = torch.finfo(dtype).max
    results = [x.to(dtype) for x in wide]
    if len(wide) == 4:
        e = wide[3]
        results[3] = torch.where(torch.isposinf(e), e, e.clamp(max=big)).to(dtype)
    if targets is None:
        return tuple(results)
    for target, value in zip(targets, results, strict=True):
        target.copy_(value)
    return targets


def _without_overflow_nan(
    compute: Callable[[torch.dtype], tuple[torch.Tensor, torch.Tensor]],
    cdt: torch.dtype,
    reference: Callable[..., Any],
    args: tuple[object, ...],
    kwargs: dict[str, object],
    vouched: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``compute(cdt)`` for validated, finite inputs, where a NaN can only be an overflow.

    On a NaN (one scalar sync to find out): again in float64 if ``cdt`` is narrower
    (float32 overflows near 1e19 where float64 does not); if float64 overflows too, the
    reference on host copies, which raises its clear error naming the inputs (or, should
    it return, its answer is used). Monte Carlo draws differ on that path (float64 or
    NumPy draws).

    ``vouched``: moments (mean, var) from a covariance the caller vouched for
    (``check_cov=False``): a negative variance then also sends the call to the reference,
    which checks the covariance and raises naming it (``check_vouched_covariance``); the
    smallest variance, one reduction, screens for both a NaN and a negative entry.
    """
    results = compute(cdt)
    if vouched and _plausible_moments(*results):
        return results
    if not results_have_nan(results):
        if vouched:
            check_vouched_covariance(reference, args, False, lambda: True, host)
        return results
    if cdt != torch.float64:
        results = compute(torch.float64)
        if not results_have_nan(results):
            return results
    answer = reference(*(host(a) for a in args), **{k: host(v) for k, v in kwargs.items()})
    device = results[0].device
    first, second = (torch.as_tensor(np.asarray(x), device=device) for x in answer)
    return first, second


def _moments_in(
    mean: torch.Tensor, var: torch.Tensor, dtype: torch.dtype, argument: str
) -> Moments:
    """The moments in the inputs' ``dtype``. For a half dtype, a ValueError naming
    ``argument`` where a finite moment lies beyond its range: cast, it would be ±inf, and a
    variance of +inf means *no information* to ``calibrate`` (the source would be dropped
    without a word), not "too large for float16". float32 and float64 results are cast as
    the reference rounds them."""
    results = (in_dtype(mean, dtype), in_dtype(var, dtype))
    if dtype in HALF_DTYPES:
        for name, wide, narrow in zip(("mean", "var"), (mean, var), results, strict=True):
            beyond = torch.isfinite(wide) & ~torch.isfinite(narrow)
            if bool(beyond.any()):
                index = tuple(int(i) for i in beyond.nonzero()[0])
                raise ValueError(
                    f"{argument}: the result's {name} at index {index} (shape "
                    f"{tuple(wide.shape)}) is {float(wide[index]):.6g}, beyond {dtype}'s "
                    f"range ({torch.finfo(dtype).max:.6g}); pass {argument} in float32"
                )
    return Moments(_any(results[0]), _any(results[1]))


def _plausible_moments(mean: torch.Tensor, var: torch.Tensor) -> bool:
    """No NaN in ``mean`` (its sum is not NaN) and every variance a number >= 0: two
    reductions, read back in one sync on a device and as two numbers on the CPU (fewer
    operations there)."""
    if var.numel() == 0:
        return True
    if var.device.type == "cpu":
        total, least = mean.sum().item(), var.amin().item()
        return not math.isnan(total) and least >= 0  # a NaN least fails the comparison
    return bool((~mean.sum().isnan()) & (var.amin() >= 0))


def _one_hot(labels: torch.Tensor, n_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot targets (B, K) in ``dtype`` from checked integer labels (B,)."""
    return torch.nn.functional.one_hot(labels.long(), n_classes).to(dtype)


__all__ = ["HALF_DTYPES", "TorchBackend"]
