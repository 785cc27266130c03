"""Wrong on purpose: linear_head_moments with a one-pass variance, E[g²] − E[g]².

Per output k, g_i = w_ki r_k is a product of jointly Gaussian scalars with means a_i and
ρ, variances σ_i² and s², covariance c_i. This implementation takes
E[(w r)²] = (a² + σ²)(ρ² + s²) + 2c² + 4aρc and subtracts E[w r]² = (aρ + c)² in the
input's dtype (BayesAgg-MTL's formula). Exact in exact arithmetic, it cancels
catastrophically when the posterior is concentrated: a relative error of ε·E[g]²/Var[g],
1e-3 in float32 at covariance ×1e-3. Everything else is the reference.
"""

from types import SimpleNamespace
from typing import Any

import numpy as np

import bogc_ref
from bogc_ref.interface import STAGES


def linear_head_moments(h: Any, y: Any, w_mean: Any, w_cov: Any) -> bogc_ref.Moments:
    dtype = np.asarray(h).dtype
    h, y, mu, cov = (np.asarray(a, dtype=dtype) for a in (h, y, w_mean, w_cov))
    h_tilde = np.concatenate([h, np.ones((h.shape[0], 1), dtype=dtype)], axis=1)
    d = h.shape[1]
    rho = h_tilde @ mu.T - y  # (B, K)
    sigma_h = np.einsum("kij,bj->bki", cov, h_tilde)
    s2 = np.einsum("bki,bi->bk", sigma_h, h_tilde)[..., None]
    c = sigma_h[..., :d]
    a = mu[:, :d]
    sigma2 = np.diagonal(cov, axis1=1, axis2=2)[:, :d]
    r = rho[..., None]
    first = r * a + c
    second = (a * a + sigma2) * (r * r + s2) + 2 * c * c + 4 * a * r * c
    var = np.sum(second - first * first, axis=1)
    return bogc_ref.Moments(first.sum(axis=1).astype(dtype), var.astype(dtype))


impl = SimpleNamespace(**{f: getattr(bogc_ref, f) for names in STAGES.values() for f in names})
impl.linear_head_moments = linear_head_moments
