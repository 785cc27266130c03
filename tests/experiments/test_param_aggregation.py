"""Parameter-level BOGC and the torchjd adapter equal empirical_moments + calibrate by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bogc_ref as ref
from bogc_ref.training.parameters import (
    calibrated_param_grads,
    module_loss_fn,
    per_sample_source_grads,
)

B, D_IN, M = 7, 4, 3


def _net(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(D_IN, 3), torch.nn.Tanh(), torch.nn.Linear(3, M)
    ).double()
    x = torch.randn(B, D_IN, dtype=torch.float64)
    y = torch.randn(B, M, dtype=torch.float64)
    return net, x, y


def _sources(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """M per-sample losses: output m against target m (one sample, batch of 1)."""
    return (0.5 * (out - y) ** 2 + torch.cos(out)).squeeze(0)


def _loop_grads(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, names: list[str]):
    """(B, M, P) per-sample, per-source gradients by plain autograd, one sample at a time."""
    params = [dict(net.named_parameters())[n] for n in names]
    rows = []
    for b in range(B):
        losses = _sources(net(x[b : b + 1]), y[b : b + 1])
        per_source = []
        for m in range(M):
            grads = torch.autograd.grad(losses[m], params, retain_graph=True)
            per_source.append(torch.cat([g.flatten() for g in grads]))
        rows.append(torch.stack(per_source))
    return torch.stack(rows).detach().numpy()


def _reference_grad(grads: np.ndarray, **kwargs: object) -> np.ndarray:
    """The spec's answer by hand: empirical moments, var = +inf where a source never moves."""
    moments = ref.empirical_moments(grads)
    var = np.where(np.all(grads == 0, axis=0), np.inf, moments.var)
    return ref.calibrate(moments.mean, var, **kwargs).grad


def test_per_sample_grads_match_a_loop() -> None:
    net, x, y = _net()
    names = [n for n, _ in net.named_parameters()]
    got = per_sample_source_grads(
        module_loss_fn(net, _sources), dict(net.named_parameters()), (x, y)
    )
    np.testing.assert_allclose(got.numpy(), _loop_grads(net, x, y, names), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("normalize", [False, True])
def test_calibrated_grads_equal_empirical_moments_and_calibrate(normalize: bool) -> None:
    net, x, y = _net(1)
    shared = ["0.weight", "0.bias"]  # the first layer, which every source reaches
    mask = torch.tensor([True, False, True])
    calibrated_param_grads(
        net, module_loss_fn(net, _sources), (x, y), params=shared, mask=mask, normalize=normalize
    )
    expected = _reference_grad(
        _loop_grads(net, x, y, shared), mask=mask.numpy(), normalize=normalize
    )
    got = torch.cat([net[0].weight.grad.flatten(), net[0].bias.grad])
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-14)
    assert net[2].weight.grad is None  # not selected, not written


def test_unknown_parameter_is_named() -> None:
    net, x, y = _net()
    with pytest.raises(ValueError, match="'nope'"):
        calibrated_param_grads(net, module_loss_fn(net, _sources), (x, y), params=["nope"])
    with pytest.raises(ValueError, match=r"^params: expected at least one parameter"):
        calibrated_param_grads(net, module_loss_fn(net, _sources), (x, y), params=[])


def test_torchjd_adapter_equals_parameter_level() -> None:
    pytest.importorskip("torchjd", reason="torchjd (experiments extra) not installed")
    from torchjd.autojac import backward, jac_to_grad

    from bogc_ref.training.torchjd_adapter import BOGC

    net, x, y = _net(2)
    params = list(net.parameters())
    losses = torch.stack([_sources(net(x[b : b + 1]), y[b : b + 1]) for b in range(B)])  # (B, M)
    backward(losses.flatten(), inputs=params)
    jac_to_grad(params, BOGC(M))
    got = torch.cat([p.grad.flatten() for p in params]).detach().numpy()

    names = [n for n, _ in net.named_parameters()]
    grads = _loop_grads(net, x, y, names)
    assert np.all(grads[:, 0, -M + 1 :] == 0), "output bias m is reached by source m only"
    np.testing.assert_allclose(got, _reference_grad(grads), rtol=1e-9, atol=1e-14)
    assert np.all(got[-M:] != 0), "a coordinate reached by one source must not freeze"
    with pytest.raises(ValueError, match="B\\*M rows"):
        BOGC(M)(torch.zeros(4, 5, dtype=torch.float64))


def test_a_source_that_does_not_reach_a_parameter_is_vacuous_there() -> None:
    """Late fusion: each view's encoder is reached by its own loss only; none may freeze.

    Before the fix the unreached source's per-sample gradients (all exactly 0) gave var 0,
    i.e. a dogmatic source with mean 0, and the calibrated gradient of the encoder was 0.
    """
    torch.manual_seed(3)
    enc_a, enc_b = torch.nn.Linear(2, 2).double(), torch.nn.Linear(2, 2).double()
    model = torch.nn.ModuleDict({"a": enc_a, "b": enc_b})
    xa, xb = torch.randn(B, 2, dtype=torch.float64), torch.randn(B, 2, dtype=torch.float64)

    def loss_fn(p: dict[str, torch.Tensor], xa_: torch.Tensor, xb_: torch.Tensor) -> torch.Tensor:
        out_a = xa_ @ p["a.weight"].T + p["a.bias"]
        out_b = xb_ @ p["b.weight"].T + p["b.bias"]
        return torch.stack([(out_a**2).sum(), (out_b**2).sum()])

    result = calibrated_param_grads(model, loss_fn, (xa, xb))
    params = dict(model.named_parameters())
    grads = per_sample_source_grads(loss_fn, params, (xa, xb)).numpy()
    assert np.all(grads[:, 1, :6] == 0) and np.all(grads[:, 0, 6:] == 0)
    # Each encoder's update is its own source's mean gradient scaled by its belief, never 0.
    assert np.all(enc_a.weight.grad.numpy() != 0) and np.all(enc_b.weight.grad.numpy() != 0)
    np.testing.assert_array_equal(result.belief.numpy()[1, :6], 0.0)
    np.testing.assert_array_equal(result.belief.numpy()[0, 6:], 0.0)
    np.testing.assert_allclose(
        torch.cat([p.grad.flatten() for p in params.values()]).numpy(),
        _reference_grad(grads),
        rtol=1e-12,
    )
