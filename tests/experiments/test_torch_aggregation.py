"""Representation-level aggregator: equals a hand-made pipeline of the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bogc_ref as ref
from bogc_ref.training.representation import RepresentationAggregator, Source

B, D_IN, D, K = 9, 5, 4, 3
PRIOR_VAR, NOISE_VAR = 2.0, 0.5


def _problem(seed: int = 0) -> dict[str, torch.Tensor | torch.nn.Module]:
    torch.manual_seed(seed)
    enc = torch.nn.Linear(D_IN, D).double()
    lin = torch.nn.Linear(2, K).double()  # reads columns 0:2
    soft = torch.nn.Linear(D, K).double()  # reads every column
    x = torch.randn(B, D_IN, dtype=torch.float64)
    y = torch.randn(B, K, dtype=torch.float64)
    labels = torch.randint(0, K, (B,))
    return {"enc": enc, "lin": lin, "soft": soft, "x": x, "y": y, "labels": labels}


def _w(head: torch.nn.Linear) -> np.ndarray:
    return np.concatenate([head.weight.detach().numpy(), head.bias.detach().numpy()[:, None]], 1)


def _hand_moments(p: dict, h: np.ndarray, rows: np.ndarray | None = None):
    """Per-sample moments (B, 2, D) built directly from the NumPy reference."""
    rows = np.ones(B, bool) if rows is None else rows
    y, labels = p["y"].numpy(), p["labels"].numpy()
    post = ref.linear_head_posterior(
        h[rows, :2],
        y[rows],
        prior_mean=np.zeros((K, 3)),
        prior_precision=np.eye(3) / PRIOR_VAR,
        noise_var=NOISE_VAR,
    )
    m_lin = ref.linear_head_moments(h[:, :2], y, post.mean, post.cov)
    lap = ref.softmax_head_laplace(
        h,
        labels,
        _w(p["soft"]),
        prior_mean=np.zeros((K, D + 1)),
        prior_precision=np.eye(K * (D + 1)) / PRIOR_VAR,
    )
    m_soft = ref.softmax_head_moments_linearized(h, labels, lap.mean, lap.cov)
    mean = np.zeros((B, 2, D))
    var = np.full((B, 2, D), np.inf)
    mean[:, 0, :2], var[:, 0, :2] = m_lin.mean, m_lin.var
    mean[:, 1], var[:, 1] = m_soft.mean, m_soft.var
    return mean, var


def _aggregator(p: dict, **kwargs: object) -> RepresentationAggregator:
    sources = [Source(p["lin"], "linear", slice(0, 2)), Source(p["soft"], "softmax")]
    return RepresentationAggregator(sources, prior_var=PRIOR_VAR, noise_var=NOISE_VAR, **kwargs)


@pytest.mark.parametrize("normalize", [False, True])
def test_encoder_gradient_equals_hand_calibration(normalize: bool) -> None:
    p = _problem()
    h = p["enc"](p["x"])
    _aggregator(p, normalize=normalize).backward(h, [p["y"], p["labels"]])

    mean, var = _hand_moments(p, h.detach().numpy())
    dh = ref.calibrate(mean, var, normalize=normalize).grad / B  # (B, D)
    x = p["x"].numpy()
    # h = x Aᵀ + c, so dL/dA = dhᵀ x and dL/dc = Σ_b dh_b (chain rule by hand).
    np.testing.assert_allclose(p["enc"].weight.grad.numpy(), dh.T @ x, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p["enc"].bias.grad.numpy(), dh.sum(0), rtol=1e-9, atol=1e-12)
    # The heads are not touched by the aggregator.
    assert p["lin"].weight.grad is None and p["soft"].weight.grad is None


def test_unreached_dimensions_are_vacuous_not_dogmatic() -> None:
    p = _problem(1)
    h = p["enc"](p["x"])
    agg = _aggregator(p)
    mean, var, present = agg.moments(h, [p["y"], p["labels"]])
    assert torch.isposinf(var[:, 0, 2:]).all() and (mean[:, 0, 2:] == 0).all()
    assert torch.isfinite(var[:, 0, :2]).all() and (var[:, 0, :2] > 0).all()
    cal = agg._bogc.calibrate(mean, var, mask=present)
    assert (cal.belief[:, 0, 2:] == 0).all() and (cal.evidence[:, 0, 2:] == 0).all()
    # There only the softmax source speaks: ĝ = e_2 μ_2 / (W + e_2) with W = M = 2.
    e2 = cal.evidence[:, 1, 2:]
    torch.testing.assert_close(cal.grad[:, 2:], e2 * mean[:, 1, 2:] / (2.0 + e2))


def test_missing_source_is_masked_and_left_out_of_the_posterior() -> None:
    p = _problem(2)
    h = p["enc"](p["x"])
    mask = torch.ones(B, 2, dtype=torch.bool)
    mask[[0, 3, 4], 0] = False
    _aggregator(p).backward(h, [p["y"], p["labels"]], mask)

    rows = mask[:, 0].numpy()
    mean, var = _hand_moments(p, h.detach().numpy(), rows)
    mean[~rows, 0] = np.nan  # an absent source's mean is ignored, whatever it is
    dh = ref.calibrate(mean, var, mask=mask.numpy()).grad / B
    np.testing.assert_allclose(
        p["enc"].weight.grad.numpy(), dh.T @ p["x"].numpy(), rtol=1e-9, atol=1e-12
    )


def test_refresh_every_reuses_the_posterior() -> None:
    p = _problem(3)
    agg = _aggregator(p, refresh_every=2)
    h1 = p["enc"](p["x"]).detach()
    agg.moments(h1, [p["y"], p["labels"]])
    h2 = h1 + 0.5  # a new batch of representations; the posterior must not move
    mean, _, _ = agg.moments(h2, [p["y"], p["labels"]])
    stale, _ = _hand_moments(p, h1.numpy())  # posterior of h1 ...
    post = ref.linear_head_posterior(
        h1[:, :2].numpy(),
        p["y"].numpy(),
        prior_mean=np.zeros((K, 3)),
        prior_precision=np.eye(3) / PRIOR_VAR,
        noise_var=NOISE_VAR,
    )  # ... evaluated at h2
    expected = ref.linear_head_moments(h2[:, :2].numpy(), p["y"].numpy(), post.mean, post.cov)
    np.testing.assert_allclose(mean[:, 0, :2].numpy(), expected.mean, rtol=1e-9)
    assert not np.allclose(stale[:, 0, :2], expected.mean)


def test_every_refit_gives_the_spec_moments_of_its_batch() -> None:
    """With a refit at every call, each call's moments are the reference's on that call's
    batch: nothing derived from an earlier fit (such as Σ rearranged for the linearized
    moments) outlives the fit."""
    p = _problem(5)
    agg = _aggregator(p, refresh_every=1)
    h = p["enc"](p["x"]).detach()
    for step in range(3):
        h_step = h * (1.0 + step) + 0.3 * step
        mean, var, _ = agg.moments(h_step, [p["y"], p["labels"]])
        want_mean, want_var = _hand_moments(p, h_step.numpy())
        np.testing.assert_allclose(mean.numpy(), want_mean, rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(var.numpy(), want_var, rtol=1e-8, atol=1e-15)


def test_softmax_mean_follows_the_head_between_refits() -> None:
    """Between refits the covariance is the last fit's and the mean is the spec's Newton step
    from the head's current weights on the current batch: μ = θ − Σ ∇(θ)."""
    p = _problem(6)
    agg = _aggregator(p, refresh_every=3)
    h1 = p["enc"](p["x"]).detach()
    labels = p["labels"].numpy()
    agg.moments(h1, [p["y"], p["labels"]])
    fit = ref.softmax_head_laplace(
        h1.numpy(),
        labels,
        _w(p["soft"]),
        prior_mean=np.zeros((K, D + 1)),
        prior_precision=np.eye(K * (D + 1)) / PRIOR_VAR,
    )
    with torch.no_grad():  # the head trains between the two calls
        p["soft"].weight.add_(0.3)
        p["soft"].bias.sub_(0.2)
    h2 = h1 * 1.5 - 0.1
    mean, var, _ = agg.moments(h2, [p["y"], p["labels"]])

    theta = _w(p["soft"])
    h_tilde = np.concatenate([h2.numpy(), np.ones((B, 1))], axis=1)
    logits = h_tilde @ theta.T
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    grad = ((prob - np.eye(K)[labels]).T @ h_tilde).ravel() + theta.ravel() / PRIOR_VAR
    newton = (theta.ravel() - fit.cov @ grad).reshape(K, D + 1)
    expected = ref.softmax_head_moments_linearized(h2.numpy(), labels, newton, fit.cov)
    np.testing.assert_allclose(mean[:, 1].numpy(), expected.mean, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(var[:, 1].numpy(), expected.var, rtol=1e-8, atol=1e-15)
    # Refitting instead (refresh_every=1) gives the spec's posterior at the new weights.
    refit = _aggregator(p, refresh_every=1)
    mean1, _, _ = refit.moments(h2, [p["y"], p["labels"]])
    assert not np.allclose(mean1[:, 1].numpy(), expected.mean)


def test_bad_values_name_the_argument_and_index() -> None:
    p = _problem(7)
    agg = _aggregator(p)
    h = p["enc"](p["x"])
    bad_labels = p["labels"].clone()
    bad_labels[4] = K
    with pytest.raises(ValueError, match=r"targets\[1\]: label 3 at index 4 is outside"):
        agg.moments(h, [p["y"], bad_labels])
    bad_y = p["y"].clone()
    bad_y[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"targets\[0\]: not finite at index \(2, 1\)"):
        agg.moments(h, [bad_y, p["labels"]])
    bad_h = h.detach().clone()
    bad_h[5, 3] = float("inf")
    with pytest.raises(ValueError, match=r"h: not finite at index \(5, 3\)"):
        agg.moments(bad_h, [p["y"], p["labels"]])
    with pytest.raises(ValueError, match=r"targets\[1\]: expected integer labels"):
        agg.moments(h, [p["y"], p["labels"].double()])
    bad_labels[4], bad_labels[6] = 0, -1
    with pytest.raises(ValueError, match=r"targets\[1\]: label -1 at index 6 is outside"):
        agg.moments(h, [p["y"], bad_labels])
    big = h.detach().clone()
    big[0, 0] = big[1, 0] = 1e308  # finite, though their sum overflows
    try:
        agg.moments(big, [p["y"], p["labels"]])
    except ValueError as exc:  # the fit may refuse the overflow; h itself is valid
        assert not str(exc).startswith("h:"), exc


def test_mc_moments_follow_the_seed() -> None:
    p = _problem(4)
    h = p["enc"](p["x"]).detach()
    kw = {"softmax_moments": "mc", "n_samples": 16, "seed": 7}
    a, _, _ = _aggregator(p, **kw).moments(h, [p["y"], p["labels"]])
    b, _, _ = _aggregator(p, **kw).moments(h, [p["y"], p["labels"]])
    lin, _, _ = _aggregator(p).moments(h, [p["y"], p["labels"]])
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a[:, 1], lin[:, 1])


def test_bad_inputs_name_the_argument() -> None:
    p = _problem()
    agg = _aggregator(p)
    h = p["enc"](p["x"])
    with pytest.raises(ValueError, match="targets"):
        agg.backward(h, [p["y"]])
    with pytest.raises(ValueError, match="mask"):
        agg.backward(h, [p["y"], p["labels"]], torch.ones(B, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask"):
        agg.backward(h, [p["y"], p["labels"]], torch.ones(B, 2))
    with pytest.raises(ValueError, match="h: does not require grad"):
        agg.backward(h.detach(), [p["y"], p["labels"]])
    with pytest.raises(ValueError, match="kind"):
        RepresentationAggregator([Source(p["lin"], "poisson")])  # type: ignore[arg-type]
    sources = [Source(p["lin"], "linear", slice(0, 2))]
    with pytest.raises(TypeError, match=r"refresh_every: expected an int, got 2\.5"):
        RepresentationAggregator(sources, refresh_every=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"prior_var, noise_var: must be finite and > 0"):
        RepresentationAggregator(sources, prior_var=float("inf"))  # a singular posterior


@pytest.mark.parametrize("kind", ["linear", "softmax"])
def test_a_reach_that_does_not_fit_its_head_is_refused(kind: str) -> None:
    """A column read twice would need the sum of two entries of the head's gradient in one
    moment (the aggregator kept only the last, half of dL/dh); a head whose input width is
    not its reach's would read the wrong columns. Both are refused, naming the source."""
    p = _problem()
    h = p["enc"](p["x"]).detach()
    target = p["y"] if kind == "linear" else p["labels"]
    twice = RepresentationAggregator([Source(p["lin"], kind, [1, 1])])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"reach: column 1 is repeated \(at position 1 of"):
        twice.moments(h, [target])
    wide = RepresentationAggregator([Source(p["lin"], kind, [0, 1, 2])])  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"sources\[0\]\.head: in_features = 2, but its reach gives 3"
    ):
        wide.moments(h, [target])
    whole = RepresentationAggregator([Source(p["lin"], kind)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"reach gives 4 columns of h \(shape \(B, 4\)\)"):
        whole.moments(h, [target])


def test_float32_model_gets_the_float64_calibration_cast_back() -> None:
    p = _problem(5)
    enc32 = torch.nn.Linear(D_IN, D)
    with torch.no_grad():
        enc32.weight.copy_(p["enc"].weight)
        enc32.bias.copy_(p["enc"].bias)
    h32 = enc32(p["x"].float())
    _aggregator(p).backward(h32, [p["y"].float(), p["labels"]])
    assert enc32.weight.grad.dtype == torch.float32
    mean, var = _hand_moments(p, h32.detach().double().numpy())
    dh = ref.calibrate(mean, var).grad / B
    np.testing.assert_allclose(
        enc32.weight.grad.numpy(), dh.T @ p["x"].float().double().numpy(), rtol=1e-5, atol=1e-7
    )


def test_a_saturated_head_is_vacuous_on_that_sample_not_dogmatic() -> None:
    """Inside a head's reach a variance can still be exactly 0: a softmax head whose logits
    saturate (gap far beyond exp's range) gives p = y exactly, so the linearized gradient and
    its variance are exactly 0. That source moves nothing for the sample; as an unreached
    column it must be vacuous there. Before the fix it was dogmatic: belief 1, gradient 0,
    and the other source's gradient for that sample was dropped."""
    torch.manual_seed(5)
    n, dim = 6, 2
    soft, lin = torch.nn.Linear(dim, K).double(), torch.nn.Linear(dim, K).double()
    h_fit = torch.randn(n, dim, dtype=torch.float64)
    labels, targets = torch.randint(0, K, (n,)), torch.randn(n, K, dtype=torch.float64)
    kwargs = {"prior_var": PRIOR_VAR, "noise_var": NOISE_VAR, "refresh_every": 2}
    both = RepresentationAggregator([Source(soft, "softmax"), Source(lin, "linear")], **kwargs)
    alone = RepresentationAggregator([Source(lin, "linear")], prior_weight=2.0, **kwargs)
    both.moments(h_fit, [labels, targets])  # fits and caches the posteriors on h_fit
    alone.moments(h_fit, [targets])
    post_mean = both._posteriors[0].mean[:, :dim]
    h = torch.randn(n, dim, dtype=torch.float64)
    h[0] = 1e5 * (post_mean[0] - post_mean[1])  # class 0 wins sample 0 by a logit gap of ~1e5
    new_labels = labels.clone()
    new_labels[0] = int((h[0] @ post_mean.T).argmax())
    _, var, _ = both.moments(h, [new_labels, targets])
    both.step = 1  # evaluate calibrate with the same cached posterior
    got = both.calibrate(h, [new_labels, targets])
    alone.step = 1
    expected = alone.calibrate(h, [targets])
    assert torch.all(torch.isinf(var[0, 0])), "the saturated head's variance must be +inf"
    np.testing.assert_array_equal(got.belief[0, 0].numpy(), 0.0)
    assert torch.all(got.grad[0] != 0)
    np.testing.assert_allclose(got.grad[0].numpy(), expected.grad[0].numpy(), rtol=1e-12)
    # The other samples are untouched by the rule: the softmax head still has a say there.
    assert torch.all(torch.isfinite(var[1:, 0])) and torch.all(got.belief[1:, 0] > 0)


def _softmax_newton(h: np.ndarray, labels: np.ndarray, theta: np.ndarray, cov: np.ndarray):
    """μ = θ − Σ ∇(θ) on (h, labels), the prior N(0, PRIOR_VAR I) (NumPy, by hand)."""
    k = theta.shape[0]
    h_tilde = np.concatenate([h, np.ones((h.shape[0], 1))], axis=1)
    logits = h_tilde @ theta.T
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    grad = ((prob - np.eye(k)[labels]).T @ h_tilde).ravel() + theta.ravel() / PRIOR_VAR
    return (theta.ravel() - cov @ grad).reshape(theta.shape)


@pytest.mark.parametrize("with_absent", [True, False])
def test_stacked_heads_equal_the_reference_head_by_head(with_absent: bool) -> None:
    """Softmax heads of one shape are computed as one stack (posterior, Newton step and
    moments); heads of other shapes stay apart. Every source's moments must equal the NumPy
    reference for that head alone: three stacked heads (slice, index-list and slice
    reaches; two share their present rows, one has other rows), one with another K and one
    with another D that cannot stack, a fourth stacked source with no present row (vacuous;
    with ``with_absent=False`` it is present everywhere, so that every member of the stack
    has a posterior and the stack writes its moments in one indexed write) and a linear
    head, over a refit and a Newton step."""
    torch.manual_seed(11)
    n, dim, k = 10, 6, 3
    heads = [torch.nn.Linear(2, k).double() for _ in range(3)]
    other_k, other_d = torch.nn.Linear(2, k + 1).double(), torch.nn.Linear(dim, k).double()
    absent, lin = torch.nn.Linear(2, k).double(), torch.nn.Linear(2, k).double()
    sources = [
        Source(heads[0], "softmax", slice(0, 2)),
        Source(heads[1], "softmax", [5, 1]),
        Source(other_k, "softmax", slice(4, 6)),
        Source(heads[2], "softmax", slice(2, 4)),
        Source(other_d, "softmax"),
        Source(absent, "softmax", slice(0, 2)),
        Source(lin, "linear", slice(3, 5)),
    ]
    reaches = [src.reach for src in sources]
    agg = RepresentationAggregator(
        sources, prior_var=PRIOR_VAR, noise_var=NOISE_VAR, refresh_every=2
    )
    cpu = torch.device("cpu")
    stacks = agg._softmax_stacks(dim, agg._columns(dim, cpu), cpu)
    assert sorted(len(s.members) for s in stacks) == [1, 1, 4]  # K = 3 on two columns
    mask = torch.ones(n, len(sources), dtype=torch.bool)
    mask[[1, 4], 0] = mask[[1, 4], 1] = False  # heads 0 and 1 share their rows
    mask[[0, 7, 8], 3] = False
    mask[[2], 2] = mask[[3, 9], 4] = False
    if with_absent:
        mask[:, 5] = False
    labels = [torch.randint(0, s.head.out_features, (n,)) for s in sources[:6]]
    y = torch.randn(n, k, dtype=torch.float64)
    targets = [*labels, y]

    def cols(m: int, h: np.ndarray) -> np.ndarray:
        reach = reaches[m]
        return h if reach is None else h[:, reach]

    fits: dict[int, np.ndarray] = {}
    h_first = np.zeros((n, dim))  # the batch of the refit (the linear posterior's)
    for step in range(2):
        h = torch.randn(n, dim, dtype=torch.float64) * (1.0 + step)
        with torch.no_grad():  # the heads train between the two calls
            for src in sources:
                src.head.weight.add_(0.1 * step)
        mean, var, _ = agg.moments(h, targets, mask)
        h_np = h.numpy()
        if step == 0:
            h_first = h_np
        for m in range(5 if with_absent else 6):
            rows = mask[:, m].numpy()
            lab = labels[m].numpy()
            theta = _w(sources[m].head)
            k_m, width = theta.shape
            if step == 0:
                fit = ref.softmax_head_laplace(
                    cols(m, h_np)[rows],
                    lab[rows],
                    theta,
                    prior_mean=np.zeros_like(theta),
                    prior_precision=np.eye(k_m * width) / PRIOR_VAR,
                )
                fits[m] = fit.cov
                post_mean = fit.mean
            else:
                post_mean = _softmax_newton(cols(m, h_np)[rows], lab[rows], theta, fits[m])
            expected = ref.softmax_head_moments_linearized(cols(m, h_np), lab, post_mean, fits[m])
            got_mean = cols(m, mean[:, m].numpy())
            got_var = cols(m, var[:, m].numpy())
            np.testing.assert_allclose(got_mean, expected.mean, rtol=1e-9, atol=1e-13)
            np.testing.assert_allclose(got_var, expected.var, rtol=1e-8, atol=1e-15)
            if reaches[m] is not None:  # columns outside the reach stay vacuous
                outside = np.ones(dim, bool)
                outside[reaches[m]] = False
                assert np.all(np.isinf(var[:, m].numpy()[:, outside]))
        if with_absent:
            assert torch.all(torch.isinf(var[:, 5])) and torch.all(mean[:, 5] == 0)
        post = ref.linear_head_posterior(
            h_first[:, 3:5],
            y.numpy(),
            prior_mean=np.zeros((k, 3)),
            prior_precision=np.eye(3) / PRIOR_VAR,
            noise_var=NOISE_VAR,
        )
        expected_lin = ref.linear_head_moments(h_np[:, 3:5], y.numpy(), post.mean, post.cov)
        np.testing.assert_allclose(mean[:, 6, 3:5].numpy(), expected_lin.mean, rtol=1e-9)


def test_a_head_without_bias_is_a_head_with_bias_zero() -> None:
    """W = [weight, 0] for a head without a bias, alone or stacked with one that has it."""
    p = _problem(8)
    h = p["enc"](p["x"]).detach()
    no_bias = torch.nn.Linear(D, K, bias=False).double()
    zero_bias = torch.nn.Linear(D, K).double()
    with torch.no_grad():
        no_bias.weight.copy_(p["soft"].weight)
        zero_bias.weight.copy_(p["soft"].weight)
        zero_bias.bias.zero_()
    labels = [p["labels"], p["labels"]]
    got = RepresentationAggregator([Source(no_bias, "softmax"), Source(p["soft"], "softmax")])
    want = RepresentationAggregator([Source(zero_bias, "softmax"), Source(p["soft"], "softmax")])
    for a, b in zip(got.moments(h, labels), want.moments(h, labels), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("starts", [(0, 2, 4), (1, 3, 5), (0, 2, 5)], ids=str)
def test_stacked_heads_on_slices_write_the_same_moments_as_on_index_lists(
    starts: tuple[int, ...],
) -> None:
    """Heads reaching slices write their moments into the (B, M, D) arrays the same as heads
    reaching the same columns by index lists (always indexed writes): stacked heads on
    evenly spaced slices (one strided copy) or not ((0, 2, 5): indexed writes), and a head
    of another shape on all columns (a stack of one)."""
    torch.manual_seed(3)
    n, dim, k = 9, 8, 4
    heads = [torch.nn.Linear(2, k).double() for _ in starts]
    other = torch.nn.Linear(dim, 3).double()
    h = torch.randn(n, dim, dtype=torch.float64)
    labels = [torch.randint(0, k, (n,)) for _ in starts] + [torch.randint(0, 3, (n,))]
    mask = torch.ones(n, len(starts) + 1, dtype=torch.bool)
    mask[[2, 5], 1] = False

    def moments(as_slices: bool) -> tuple[torch.Tensor, ...]:
        reach = [slice(s, s + 2) if as_slices else [s, s + 1] for s in starts]
        sources = [Source(head, "softmax", r) for head, r in zip(heads, reach, strict=True)]
        sources.append(Source(other, "softmax", None if as_slices else list(range(dim))))
        return RepresentationAggregator(sources, refresh_every=1).moments(h, labels, mask)

    for a, b in zip(moments(True), moments(False), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    _, var, _ = moments(True)
    for m, start in enumerate(starts):
        reached = torch.zeros(dim, dtype=torch.bool)
        reached[start : start + 2] = True
        assert torch.all(torch.isinf(var[:, m, ~reached]))
        assert torch.all(var[:, m, reached] < torch.inf)


@pytest.mark.parametrize("refresh_every", [1, 10], ids=["refit", "newton-step"])
def test_a_softmax_head_with_nan_weights_is_named(refresh_every: int) -> None:
    """A NaN in a softmax head's weights reached the caller as an overflow of the Laplace
    precision (refit) or as NaN in ``mean`` (Newton step): arguments never passed. The
    error names the head's parameter and the index."""
    p = _problem(3)
    agg = _aggregator(p, refresh_every=refresh_every)
    h = p["enc"](p["x"])
    agg.backward(h, [p["y"], p["labels"]])
    with torch.no_grad():
        p["soft"].weight[2, 1] = float("nan")
    h = p["enc"](p["x"])
    with pytest.raises(
        ValueError, match=r"^sources\[1\]\.head\.weight: not finite at index \(2, 1\)"
    ):
        agg.backward(h, [p["y"], p["labels"]])
