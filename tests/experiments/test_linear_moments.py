"""Factored parameter-level moments of nn.Linear layers equal the materialised spec statistic."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import bogc_ref as ref
from bogc_ref.training.linear_moments import calibrated_linear_grads, linear_source_moments
from bogc_ref.training.parameters import calibrated_param_grads, module_loss_fn

B, D_IN, HIDDEN, M = 9, 5, 4, 3


def _net(seed: int, dtype: torch.dtype = torch.float64) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(D_IN, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN, bias=False),
        torch.nn.Tanh(),
        torch.nn.Linear(HIDDEN, M),
    ).to(dtype)


def _sources(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, M) per-sample losses: output m against target m."""
    return 0.5 * (out - y) ** 2 + torch.cos(out)


def _reference(grads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The spec by hand on materialised (B, M, P) gradients: unreached → +inf."""
    moments = ref.empirical_moments(grads)
    return moments.mean, np.where(np.all(grads == 0, axis=0), np.inf, moments.var)


def _loop_grads(net: torch.nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    layers = [net[0], net[2]]
    params = [p for layer in layers for p in layer.parameters()]
    rows = []
    for b in range(x.shape[0]):
        losses = _sources(net(x[b : b + 1]), y[b : b + 1])[0]
        rows.append(
            torch.stack(
                [
                    torch.cat(
                        [
                            g.flatten()
                            for g in torch.autograd.grad(losses[m], params, retain_graph=True)
                        ]
                    )
                    for m in range(M)
                ]
            )
        )
    return torch.stack(rows).detach().numpy()


@pytest.mark.parametrize("moments", ["factored", "materialise"])
def test_moments_equal_the_spec_on_materialised_gradients(moments: str) -> None:
    net = _net(0)
    x, y = torch.randn(B, D_IN, dtype=torch.float64), torch.randn(B, M, dtype=torch.float64)
    x[:, 1] = 0.0  # input 1 is never seen: column 1 of the first weight is unreached
    with torch.no_grad():
        net[0].bias[2] = -100.0  # a dead ReLU unit: row 2 and what it feeds are unreached
    mean, var = linear_source_moments(
        [net[0], net[2]], lambda: _sources(net(x), y), moments=moments
    )
    expected_mean, expected_var = _reference(_loop_grads(net, x, y))
    np.testing.assert_allclose(mean.numpy(), expected_mean, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(var.numpy(), expected_var, rtol=1e-9, atol=1e-20)
    assert np.isinf(expected_var).sum() >= M * (HIDDEN + D_IN), "unreached coordinates expected"


def test_factored_equals_the_vmap_path_of_calibrated_param_grads() -> None:
    net, twin = _net(1), _net(1)
    x, y = torch.randn(B, D_IN, dtype=torch.float64), torch.randn(B, M, dtype=torch.float64)
    mask = torch.tensor([True, True, False])
    calibrated_linear_grads([net[0], net[2]], lambda: _sources(net(x), y), mask=mask)
    calibrated_param_grads(
        twin,
        module_loss_fn(twin, lambda out, yb: _sources(out, yb)[0]),
        (x, y),
        params=["0.weight", "0.bias", "2.weight"],
        mask=mask,
    )
    for name in ("0.weight", "0.bias", "2.weight"):
        got = dict(net.named_parameters())[name].grad
        expected = dict(twin.named_parameters())[name].grad
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-15)
    assert net[4].weight.grad is None


@pytest.mark.parametrize("offset", [1e4, 1e7])
def test_no_cancellation_when_the_mean_dwarfs_the_spread(offset: float) -> None:
    """Per-sample gradients offset + O(1) noise: the one-pass S2 − S1²/B would lose
    log10(offset²) digits of the variance; the factored path must not."""
    torch.manual_seed(2)
    layer = torch.nn.Linear(3, 2).double()
    x = offset + torch.randn(B, 3, dtype=torch.float64)

    def losses() -> torch.Tensor:
        out = layer(x)
        return torch.stack([out[:, 0], out.sum(dim=1)], dim=1)  # δ constant: g_b = a_b

    mean, var = linear_source_moments([layer], losses)
    exact_mean, exact_var = linear_source_moments([layer], losses, moments="materialise")
    grads = np.concatenate([x.numpy(), np.ones((B, 1))], axis=1)  # source 0, row 0 and bias
    np.testing.assert_allclose(var[0, :3].numpy(), grads[:, :3].var(0, ddof=1) / B, rtol=1e-8)
    np.testing.assert_allclose(var.numpy(), exact_var.numpy(), rtol=1e-8)
    np.testing.assert_allclose(mean.numpy(), exact_mean.numpy(), rtol=1e-12)
    assert np.all(np.isinf(var[0, 3:6].numpy())), "source 0 does not reach output 1"


def test_a_source_that_does_not_reach_a_layer_is_vacuous_there() -> None:
    torch.manual_seed(3)
    enc_a, enc_b = torch.nn.Linear(2, 2).double(), torch.nn.Linear(2, 2).double()
    xa, xb = torch.randn(B, 2, dtype=torch.float64), torch.randn(B, 2, dtype=torch.float64)

    def losses() -> torch.Tensor:
        return torch.stack([(enc_a(xa) ** 2).sum(1), (enc_b(xb) ** 2).sum(1)], dim=1)

    result = calibrated_linear_grads([enc_a, enc_b], losses)
    assert np.all(enc_a.weight.grad.numpy() != 0) and np.all(enc_b.weight.grad.numpy() != 0)
    np.testing.assert_array_equal(result.belief.numpy()[1, :6], 0.0)
    np.testing.assert_array_equal(result.belief.numpy()[0, 6:], 0.0)


def test_float32_layers_give_float32_moments() -> None:
    net = _net(4, torch.float32)
    x, y = torch.randn(B, D_IN), torch.randn(B, M)
    mean, var = linear_source_moments([net[0], net[2]], lambda: _sources(net(x), y))
    exact_mean, exact_var = linear_source_moments(
        [net[0], net[2]], lambda: _sources(net(x), y), moments="materialise"
    )
    assert mean.dtype == var.dtype == torch.float32
    torch.testing.assert_close(mean, exact_mean, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(var, exact_var, rtol=1e-4, atol=1e-10)


def test_bad_arguments_are_named() -> None:
    net = _net(5)
    x, y = torch.randn(B, D_IN, dtype=torch.float64), torch.randn(B, M, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"layers\[1\]"):
        linear_source_moments([net[0], net[1]], lambda: _sources(net(x), y))  # type: ignore[list-item]
    with pytest.raises(ValueError, match="B >= 2"):
        linear_source_moments([net[0]], lambda: _sources(net(x[:1]), y[:1]))
    with pytest.raises(ValueError, match="moments"):
        linear_source_moments([net[0]], lambda: _sources(net(x), y), moments="fast")  # type: ignore[arg-type]
    other = torch.nn.Linear(2, 2).double()
    with pytest.raises(ValueError, match="not called"):
        linear_source_moments([net[0], other], lambda: _sources(net(x), y))
    for moments in ("factored", "materialise"):  # no source at all: M = 0
        with pytest.raises(ValueError, match=r"M >= 1 \(the sources axis\), got shape \(9, 0\)"):
            calibrated_linear_grads([net[0]], lambda: _sources(net(x), y)[:, :0], moments=moments)  # type: ignore[arg-type]


def test_bias_cancellation_is_recomputed_exactly() -> None:
    """Per-sample bias gradients offset + O(1) noise: S2 − S1²/B loses about 14 digits."""
    torch.manual_seed(6)
    layer = torch.nn.Linear(3, 2).double()
    x = torch.randn(B, 3, dtype=torch.float64)
    scale = 1e7 + torch.randn(B, dtype=torch.float64)

    def losses() -> torch.Tensor:
        out = layer(x)
        return torch.stack([scale * out[:, 0], scale * out.sum(dim=1)], dim=1)

    mean, var = linear_source_moments([layer], losses)
    exact_mean, exact_var = linear_source_moments([layer], losses, moments="materialise")
    by_hand = scale.numpy().var(ddof=1) / B  # the bias's per-sample gradient is `scale`
    expected = [[by_hand, np.inf], [by_hand, by_hand]]  # source 0 does not reach bias 1
    np.testing.assert_allclose(var[:, 6:].numpy(), expected, rtol=1e-8)
    np.testing.assert_allclose(var.numpy(), exact_var.numpy(), rtol=1e-8)
    np.testing.assert_allclose(mean.numpy(), exact_mean.numpy(), rtol=1e-12)


def test_float64_squares_that_underflow_still_reach() -> None:
    """Products near 1e-170 square to 0 in float64: S2 = 0, yet every sample reaches the
    weights, so they are not vacuous (the materialised statistic decides)."""
    torch.manual_seed(7)
    layer = torch.nn.Linear(3, 2, bias=False).double()
    x = 1e-85 * torch.randn(B, 3, dtype=torch.float64)
    x[:, 2] = 0.0  # column 2 unreached: vacuous

    def losses() -> torch.Tensor:
        return 1e-85 * layer(x)  # δ = 1e-85 per output: products about 1e-170

    mean, var = linear_source_moments([layer], losses)
    exact_mean, exact_var = linear_source_moments([layer], losses, moments="materialise")
    # source m (output m) reaches row m of the weight, columns 0 and 1
    reached = np.array([[1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 0]], dtype=bool)
    assert np.all(np.isfinite(var.numpy()[reached]))
    assert np.all(np.isinf(var.numpy()[~reached]))
    np.testing.assert_array_equal(var.numpy(), exact_var.numpy())
    np.testing.assert_allclose(mean.numpy(), exact_mean.numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_disjoint_supports_are_unreached(dtype: torch.dtype) -> None:
    """Input 0 is nonzero only in samples where the output gradient is 0: no product is
    nonzero although neither the column of a nor the row of δ is all zero."""
    torch.manual_seed(8)
    layer = torch.nn.Linear(2, 2).to(dtype)
    x = torch.randn(B, 2, dtype=dtype)
    x[B // 2 :, 0] = 0.0
    weight = torch.ones(B, dtype=dtype)
    weight[: B // 2] = 0.0  # samples of the first half do not move source 0

    def losses() -> torch.Tensor:
        out = layer(x)
        return torch.stack([weight * out[:, 0], out.sum(dim=1)], dim=1)

    mean, var = linear_source_moments([layer], losses)
    exact_mean, exact_var = linear_source_moments([layer], losses, moments="materialise")
    assert np.isinf(var[0, 0].item()) and np.isinf(exact_var[0, 0].item())
    assert np.isfinite(var[0, 1].item()) and np.isfinite(var[1, 0].item())
    np.testing.assert_array_equal(np.isinf(var.numpy()), np.isinf(exact_var.numpy()))
    tolerance = 1e-4 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(var, exact_var, rtol=tolerance, atol=0.0)
    torch.testing.assert_close(mean, exact_mean, rtol=tolerance, atol=1e-7)


def test_float32_unreached_coordinates_are_vacuous() -> None:
    net = _net(9, torch.float32)
    x, y = torch.randn(B, D_IN), torch.randn(B, M)
    x[:, 1] = 0.0
    with torch.no_grad():
        net[0].bias[2] = -100.0  # a dead ReLU unit
    _, var = linear_source_moments([net[0], net[2]], lambda: _sources(net(x), y))
    _, exact_var = linear_source_moments(
        [net[0], net[2]], lambda: _sources(net(x), y), moments="materialise"
    )
    assert np.isinf(exact_var.numpy()).sum() >= M * (HIDDEN + D_IN)
    np.testing.assert_array_equal(np.isinf(var.numpy()), np.isinf(exact_var.numpy()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_compiled_pass_gives_the_eager_moments(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training loop repeats the shape, so the pass from sums to moments runs compiled:
    same moments (and the same cancellation handling) as the materialised statistic."""
    from bogc_ref.training import _backend

    monkeypatch.setattr(_backend, "COMPILE_AFTER_REPEATS", 1)
    monkeypatch.setattr(_backend, "_SEEN", _backend.Counter())
    net = _net(10, dtype)
    x, y = 1e4 + torch.randn(B, D_IN, dtype=dtype), torch.randn(B, M, dtype=dtype)
    mean, var = linear_source_moments([net[0], net[2]], lambda: _sources(net(x), y))
    exact_mean, exact_var = linear_source_moments(
        [net[0], net[2]], lambda: _sources(net(x), y), moments="materialise"
    )
    assert _backend._SEEN, "the pass was not counted"
    tolerance = 1e-4 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(var, exact_var, rtol=tolerance, atol=0.0)
    torch.testing.assert_close(mean, exact_mean, rtol=tolerance, atol=1e-7)


class _HostReadScale(torch.autograd.Function):
    """2x, with a backward that reads a value on the host: it cannot be batched by vmap."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        return 2 * x

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        return grad * (2.0 if float(grad.abs().max()) >= 0 else 0.0)


def test_a_graph_that_cannot_be_batched_takes_one_backward_per_source() -> None:
    net, twin = _net(11), _net(11)
    x, y = torch.randn(B, D_IN, dtype=torch.float64), torch.randn(B, M, dtype=torch.float64)
    h = net(x)
    out = _HostReadScale.apply(h)
    with pytest.raises(RuntimeError, match="aten::item"):  # a batched backward cannot run it
        ones = torch.ones(2, *out.shape, dtype=out.dtype)
        torch.autograd.grad(out, [h], ones, is_grads_batched=True)
    mean, var = linear_source_moments(
        [net[0], net[2]], lambda: _sources(_HostReadScale.apply(net(x)), y)
    )
    expected_mean, expected_var = linear_source_moments(
        [twin[0], twin[2]], lambda: _sources(2 * twin(x), y), moments="materialise"
    )
    torch.testing.assert_close(mean, expected_mean, rtol=1e-10, atol=1e-15)
    torch.testing.assert_close(var, expected_var, rtol=1e-9, atol=1e-20)


def test_repeated_calls_of_one_shape_give_each_batch_its_own_moments() -> None:
    """The float64 sums live in buffers kept for the next call of the same shape: every
    entry must be rewritten, so that a batch never sees the previous batch's sums."""
    net = _net(12)
    for seed in (13, 14, 15):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(B, D_IN, dtype=torch.float64, generator=gen)
        y = torch.randn(B, M, dtype=torch.float64, generator=gen)
        x[:, seed % D_IN] = 0.0  # a different unreached column each time
        losses = functools.partial(lambda x, y: _sources(net(x), y), x, y)
        mean, var = linear_source_moments([net[0], net[2]], losses)
        exact_mean, exact_var = linear_source_moments(
            [net[0], net[2]], losses, moments="materialise"
        )
        torch.testing.assert_close(mean, exact_mean, rtol=1e-10, atol=1e-15)
        torch.testing.assert_close(var, exact_var, rtol=1e-9, atol=1e-20)


def test_the_training_calibrate_takes_pass_one_by_logarithms(bit_reads: list[str]) -> None:
    """Faster at training sizes on the CPU (see ``training_calibrate``); same result."""
    from bogc_ref.training._backend import training_calibrate

    calls = bit_reads
    mean, var = torch.randn(M, 40, dtype=torch.float64), torch.rand(M, 40, dtype=torch.float64)
    got = training_calibrate(mean, var + 0.1)
    assert calls == []
    torch.testing.assert_close(got.grad, ref_calibrate_torch(mean, var + 0.1), rtol=1e-12, atol=0)


def ref_calibrate_torch(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """The NumPy reference's calibrated gradient, as a tensor."""
    return torch.from_numpy(ref.calibrate(mean.numpy(), var.numpy()).grad)


def test_squares_beyond_float64_give_the_finite_variance_not_vacuous() -> None:
    """Per-sample gradients near 1e154 · spread: S2 = Σ g² overflows float64 although the
    variance of the mean, S2/(B(B-1)) in size, does not. The factored path must give the
    materialised statistic (finite), not +inf, which would make the source vacuous."""
    torch.manual_seed(8)
    layer = torch.nn.Linear(3, 2).double()
    x = torch.randn(B, 3, dtype=torch.float64)
    scale = 3e153 * (1.0 + torch.rand(B, dtype=torch.float64))

    def losses() -> torch.Tensor:
        out = layer(x)
        return torch.stack([scale * out[:, 0], scale * out.sum(dim=1)], dim=1)

    mean, var = linear_source_moments([layer], losses)
    exact_mean, exact_var = linear_source_moments([layer], losses, moments="materialise")
    assert np.isfinite(exact_var[:, 6].numpy()).all(), "the case must have a finite variance"
    np.testing.assert_allclose(var.numpy(), exact_var.numpy(), rtol=1e-8)
    np.testing.assert_allclose(mean.numpy(), exact_mean.numpy(), rtol=1e-12)


@pytest.mark.parametrize("moments", ["factored", "materialise"])
def test_half_layers_calibrate_in_float32(moments: str) -> None:
    """A float16 layer whose gradients' variance leaves float16's range (65504): the moments
    and calibrate run in float32 (cast to float16 the variances would be +inf, every source
    vacuous, the gradient 0), so the gradient is the float64 one to float16 rounding."""
    torch.manual_seed(1)
    layer64 = torch.nn.Linear(3, 2).double()
    x, t = 30 * torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)

    def grad(dtype: torch.dtype) -> torch.Tensor:
        layer = torch.nn.Linear(3, 2).to(dtype)
        layer.load_state_dict({k: p.to(dtype) for k, p in layer64.state_dict().items()})
        xx, tt = x.to(dtype), t.to(dtype)

        def losses() -> torch.Tensor:
            out = layer(xx)
            return torch.stack([((out - tt) ** 2).sum(1), (out**2).sum(1)], 1)

        return calibrated_linear_grads([layer], losses, moments=moments).grad

    want = grad(torch.float64)
    assert float(want.abs().min()) > 1.0
    np.testing.assert_allclose(grad(torch.float16).double().numpy(), want.numpy(), rtol=1e-2)
