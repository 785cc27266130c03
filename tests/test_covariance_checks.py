"""The covariance checks of the stage-1 functions and the caller's opt-out ``check_cov``.

``check_cov=True`` (the default) proves ``w_cov`` finite, symmetric and positive
semi-definite; ``check_cov=False`` skips that proof, and the checks then run only when the
results show an invalid covariance (a NaN, a negative variance). Both paths are tested on
the reference and on the torch backend (which must raise the reference's errors).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import bogc_ref
from bogc_ref._heads import covariance
from bogc_ref._linalg import LAPACK_ORDER, require_psd
from bogc_ref._validation import CHECK_BLOCK_BYTES, require_finite, symmetric

RNG = np.random.default_rng(7)


def _linear_inputs(d: int = 5, b: int = 4, k: int = 2) -> tuple[np.ndarray, ...]:
    factor = RNG.normal(size=(k, d + 1, d + 1))
    w_cov = factor @ factor.transpose(0, 2, 1) / (d + 1)
    return RNG.normal(size=(b, d)), RNG.normal(size=(b, k)), RNG.normal(size=(k, d + 1)), w_cov


def _softmax_inputs(d: int = 3, b: int = 4, k: int = 3) -> tuple[np.ndarray, ...]:
    n = k * (d + 1)
    factor = RNG.normal(size=(n, n))
    w_cov = factor @ factor.T / n
    return RNG.normal(size=(b, d)), RNG.integers(0, k, size=b), RNG.normal(size=(k, d + 1)), w_cov


def _reference(name: str) -> Callable[..., Any]:
    return getattr(bogc_ref, name)  # type: ignore[no-any-return]


def _torch(name: str) -> Callable[..., Any]:
    torch = pytest.importorskip("torch")
    from bogc_ref.backends import get_backend

    function = getattr(get_backend("torch"), name)

    def call(*args: Any, **kwargs: Any) -> Any:
        out = function(*(torch.from_numpy(np.asarray(a)) for a in args), **kwargs)
        return type(out)(*(x.numpy() for x in out))

    return call


BACKENDS = [pytest.param(_reference, id="reference"), pytest.param(_torch, id="torch")]
FUNCTIONS = [
    pytest.param("linear_head_moments", _linear_inputs, id="linear"),
    pytest.param("softmax_head_moments_linearized", _softmax_inputs, id="linearized"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "inputs"), FUNCTIONS)
def test_opt_out_gives_the_checked_answer_on_a_valid_covariance(
    backend: Callable[[str], Callable[..., Any]], name: str, inputs: Callable[[], tuple[Any, ...]]
) -> None:
    function = backend(name)
    args = inputs()
    checked = function(*args)
    vouched = function(*args, check_cov=False)
    np.testing.assert_array_equal(vouched.mean, checked.mean)
    np.testing.assert_array_equal(vouched.var, checked.var)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "inputs"), FUNCTIONS)
def test_opt_out_still_names_a_covariance_whose_nan_reaches_the_results(
    backend: Callable[[str], Callable[..., Any]], name: str, inputs: Callable[[], tuple[Any, ...]]
) -> None:
    h, target, w_mean, w_cov = inputs()
    w_cov = w_cov.copy()
    w_cov[..., 1, 1] = np.nan  # a diagonal entry: read directly, so it always reaches var
    with pytest.raises(ValueError, match=r"^w_cov: NaN at index"):
        backend(name)(h, target, w_mean, w_cov, check_cov=False)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "inputs"), FUNCTIONS)
def test_opt_out_still_names_an_indefinite_covariance_that_makes_a_variance_negative(
    backend: Callable[[str], Callable[..., Any]], name: str, inputs: Callable[[], tuple[Any, ...]]
) -> None:
    h, target, w_mean, w_cov = inputs()
    negative = -np.broadcast_to(np.eye(w_cov.shape[-1]), w_cov.shape).copy()
    unchecked = _reference(name)  # the formula on -I gives negative variances
    with pytest.raises(np.linalg.LinAlgError, match=r"w_cov.*not positive semi-definite"):
        unchecked(h, target, w_mean, negative)
    with pytest.raises(np.linalg.LinAlgError, match=r"w_cov.*not positive semi-definite"):
        backend(name)(h, target, w_mean, negative, check_cov=False)


def test_opt_out_skips_the_proof_only_for_w_cov() -> None:
    h, y, w_mean, w_cov = _linear_inputs()
    bad_h = h.copy()
    bad_h[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"^h: infinite value at index \(0, 0\)"):
        bogc_ref.linear_head_moments(bad_h, y, w_mean, w_cov, check_cov=False)
    with pytest.raises(ValueError, match=r"^w_cov: expected shape"):
        bogc_ref.linear_head_moments(h[:, :2], y, w_mean[:, :3], w_cov, check_cov=False)


def test_finite_check_accepts_finite_entries_whose_sum_overflows() -> None:
    require_finite(np.full(8, 1e308), "x")  # the sum is inf: the entrywise test decides
    bad = np.full(8, 1e308)
    bad[5] = np.inf
    with pytest.raises(ValueError, match=r"^x: infinite value at index \(5,\)"):
        require_finite(bad, "x")


@pytest.mark.parametrize("order", [8, 40, 300])
def test_symmetry_tolerance_is_the_same_on_every_path(order: int) -> None:
    base = RNG.normal(size=(2, order, order))
    base = base + base.transpose(0, 2, 1)
    scale = np.max(np.abs(base), axis=(1, 2))
    within = base.copy()
    within[1, 0, order - 1] += 100 * np.finfo(np.float64).eps * scale[1]
    symmetric(within, "a")  # inexact but within 1e3 eps max|a|
    beyond = base.copy()
    beyond[1, order - 1, 2] += 1e4 * np.finfo(np.float64).eps * scale[1]
    with pytest.raises(
        ValueError, match=rf"^a: matrix is not symmetric at index \(1, 2, {order - 1}\)"
    ):
        symmetric(beyond, "a")


def test_symmetry_check_of_an_inexact_matrix_holds_blocks_not_copies() -> None:
    order = 700  # 3.7 MiB, several blocks of CHECK_BLOCK_BYTES
    a = RNG.normal(size=(order, order))
    a = a + a.T
    a[3, 600] += 1e-14  # inexact: the exact pass fails and the blocks run
    tracemalloc.start()
    try:
        covariance(a, "a", a.shape, "test")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 2 * CHECK_BLOCK_BYTES < a.nbytes


@pytest.mark.parametrize("order", [3, LAPACK_ORDER + 5])
def test_psd_check_accepts_covariances_and_names_the_indefinite_matrix(order: int) -> None:
    factor = RNG.normal(size=(3, order, order))
    good = factor @ factor.transpose(0, 2, 1)
    require_psd(good, "w_cov")
    bad = good.copy()
    bad[2] -= (np.linalg.eigvalsh(bad[2])[-1] + 1.0) * np.eye(order)
    with pytest.raises(np.linalg.LinAlgError, match=r"^w_cov\[2\]: .*not positive semi-definite"):
        require_psd(bad, "w_cov")


def test_diagonal_matrices_are_decided_by_their_diagonal() -> None:
    require_psd(np.stack([np.diag([1.0, 0.0, 2.0]), np.zeros((3, 3))]), "p")
    with pytest.raises(np.linalg.LinAlgError, match=r"^p\[1\]: .*smallest eigenvalue -2"):
        require_psd(np.stack([np.eye(3), np.diag([1.0, -2.0, 2.0])]), "p")
