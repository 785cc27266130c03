"""The torch backend's input contract (issue 12): it takes what the reference takes, with
the same answer, and refuses what the reference refuses, with the same exception type and
a message naming the argument. Each test failed before the fix."""

from __future__ import annotations

import numpy as np
import pytest

import bogc_ref

torch = pytest.importorskip("torch")
from bogc_ref.backends import get_backend  # noqa: E402

T = get_backend("torch")
RNG = np.random.default_rng(12)
H, LABELS, W = np.ones((1, 1)), np.array([0]), np.zeros((2, 2))


def test_masked_arrays_are_refused_like_the_reference() -> None:
    masked = np.ma.masked_array([[1.0, np.nan], [3.0, 4.0]], mask=[[0, 1], [0, 0]])
    with pytest.raises(TypeError, match=r"mean: masked arrays"):
        T.calibrate(masked, np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"h: masked arrays"):
        T.softmax_head_moments_linearized(np.ma.masked_array(H), LABELS, W, np.eye(4))
    with pytest.raises(TypeError, match=r"array: masked arrays"):
        T.from_numpy(masked)  # the harness's conversion would drop the mask


def test_negative_strides_are_accepted_with_the_reference_answer() -> None:
    mean = RNG.normal(size=(2, 3))
    flipped = np.flip(np.flip(mean, 0).copy(), 0)  # same values, negative strides
    assert flipped.strides[0] < 0
    got = T.calibrate(flipped, np.ones((2, 3)))
    np.testing.assert_allclose(got.grad.numpy(), bogc_ref.calibrate(mean, np.ones((2, 3))).grad)


@pytest.mark.parametrize(
    "bad",
    [
        np.array([["a", "b"], ["c", "d"]]),
        np.ones((2, 2), dtype=object),
        np.ones((2, 2), dtype=np.longdouble),
        None,
    ],
    ids=["str", "object", "longdouble", "None"],
)
def test_arrays_torch_cannot_hold_are_a_type_error_naming_the_argument(bad: object) -> None:
    with pytest.raises(TypeError, match=r"^mean: "):
        T.calibrate(bad, np.ones((2, 2)))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("as_torch", [False, True], ids=["numpy", "tensor"])
def test_unsigned_labels_of_every_width_are_labels(dtype: type, as_torch: bool) -> None:
    """Unsigned labels, as NumPy arrays or tensors (torch has few kernels for uint16 to
    uint64, not even ``<``), give the reference's answer, and out-of-range ones its error."""
    rng = np.random.default_rng(3)
    h, w = rng.normal(size=(3, 2)), rng.normal(size=(3, 3))
    a = rng.normal(size=(9, 9))
    cov = a @ a.T / 50

    def labels(values: list[int]) -> object:
        arr = np.array(values, dtype=dtype)
        return torch.from_numpy(arr) if as_torch else arr

    got = T.softmax_head_moments_linearized(h, labels([0, 2, 1]), w, cov)
    want = bogc_ref.softmax_head_moments_linearized(h, np.array([0, 2, 1]), w, cov)
    np.testing.assert_allclose(got.var.numpy(), want.var)
    top = int(np.iinfo(dtype).max)
    with pytest.raises(ValueError, match=r"^labels: label outside \[0, 3\) at index \(2,\)"):
        T.softmax_head_moments_linearized(h, labels([0, 2, top]), w, cov)


def test_uint64_labels_and_huge_seeds_are_accepted() -> None:
    got = T.softmax_head_moments_linearized(H, LABELS.astype(np.uint64), W, np.eye(4))
    want = bogc_ref.softmax_head_moments_linearized(H, LABELS, W, np.eye(4))
    np.testing.assert_allclose(got.var.numpy(), want.var)
    first = T.softmax_head_moments(H, LABELS, W, np.eye(4), n_samples=3, seed=2**70)
    again = T.softmax_head_moments(H, LABELS, W, np.eye(4), n_samples=3, seed=2**70)
    np.testing.assert_array_equal(first.var.numpy(), again.var.numpy())


def test_no_sources_and_empty_dimensions() -> None:
    with pytest.raises(ValueError, match=r"mean: the sources axis \(axis -2, M\) is empty"):
        T.calibrate(np.zeros((0, 3)), np.ones((0, 3)))
    with pytest.raises(ValueError, match=r"evidence: the sources axis"):
        T.reduced_dempster(np.ones((0, 3)))
    out = T.calibrate(np.ones((2, 0)), np.ones((2, 0)))
    assert tuple(out.grad.shape) == (0,) and tuple(out.belief.shape) == (2, 0)


def test_covariance_that_is_not_psd_is_refused_like_the_reference() -> None:
    with pytest.raises(np.linalg.LinAlgError, match=r"w_cov\[0\]: .*smallest eigenvalue -1"):
        T.linear_head_moments([[1.0]], [[0.0]], [[1.0, 0.0]], [[[-1.0, 0.0], [0.0, 0.0]]])
    with pytest.raises(np.linalg.LinAlgError, match=r"w_cov: .*not positive semi-definite"):
        T.softmax_head_moments(H, LABELS, W, -np.eye(4), n_samples=3, seed=0)
    zero = T.softmax_head_moments(H, LABELS, W, np.zeros((4, 4)), n_samples=3, seed=0)
    np.testing.assert_array_equal(zero.var.numpy(), [[0.0]])


def test_float32_overflow_gives_the_reference_answer_not_nan() -> None:
    b, d, k = 6, 3, 2
    h = (RNG.normal(size=(b, d)) * 1e20).astype(np.float32)
    y = RNG.normal(size=(b, k)).astype(np.float32)
    w = RNG.normal(size=(k, d + 1)).astype(np.float32)
    cov = np.stack([np.eye(d + 1)] * k).astype(np.float32)
    got = T.linear_head_moments(h, y, w, cov)
    want = bogc_ref.linear_head_moments(h, y, w, cov)
    assert not torch.isnan(got.var).any()
    np.testing.assert_allclose(got.var.numpy(), want.var, rtol=1e-5)
    np.testing.assert_allclose(got.mean.numpy(), want.mean, rtol=1e-5, atol=1e-5 * 1e20)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_power_keeps_finite_evidence_finite(dtype: type) -> None:
    var = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype)
    e = T.evidence(var, mode="fixed", tau=1e-10, power=1e308)
    assert not torch.isinf(e).any() and not torch.isnan(e).any()
    out = T.calibrate(np.ones((2, 3), dtype), var, power=1e308)
    assert not torch.isnan(out.grad).any()


def test_monte_carlo_moments_repeat_bitwise_for_a_seed_and_thread_count() -> None:
    b, d, k = 8, 4, 3
    n = k * (d + 1)
    a = RNG.normal(size=(n, n)) / np.sqrt(n)
    args = (RNG.normal(size=(b, d)), RNG.integers(0, k, b), RNG.normal(size=(k, d + 1)))
    cov = 0.1 * a @ a.T + 0.01 * np.eye(n)
    runs = {}
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs[threads] = [
                T.softmax_head_moments(*args, cov, n_samples=50, seed=7, chunk_size=9)
                for _ in range(2)
            ]
    finally:
        torch.set_num_threads(before)
    for first, again in runs.values():
        np.testing.assert_array_equal(first.mean.numpy(), again.mean.numpy())
        np.testing.assert_array_equal(first.var.numpy(), again.var.numpy())
    # Across thread counts LAPACK's Cholesky factor may round differently (docs: numerics):
    # the moments then agree to rounding, far inside any Monte Carlo error.
    one, two = runs[1][0], runs[2][0]
    np.testing.assert_allclose(one.mean.numpy(), two.mean.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(one.var.numpy(), two.var.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_prior_weight_below_float32_range_gives_no_nan(power: float) -> None:
    var = np.array([[0.0, 932.8, np.inf], [1.0, 2.0, np.inf]], np.float32)
    mean = np.ones((2, 3), np.float32)
    got = T.calibrate(mean, var, power=power, prior_weight=1e-300)
    want = bogc_ref.calibrate(mean, var, power=power, prior_weight=1e-300)
    np.testing.assert_allclose(got.uncertainty.numpy(), want.uncertainty, atol=1e-7)
    np.testing.assert_allclose(got.belief.numpy(), want.belief, atol=1e-7)


def test_huge_power_keeps_the_most_precise_source_in_float32() -> None:
    # p·log-ratios beyond float32's range: the most precise source must still win.
    var = np.array([[0.8, 716.9], [98.8, np.inf], [6.8, 0.0]], np.float32)
    mean = np.arange(6.0, dtype=np.float32).reshape(3, 2)
    got = T.calibrate(mean, var, power=1e308, normalize=True)
    want = bogc_ref.calibrate(mean, var, power=1e308, normalize=True)
    np.testing.assert_array_equal(got.belief.numpy(), want.belief)
    np.testing.assert_array_equal(got.grad.numpy(), want.grad)
    assert torch.isinf(got.evidence).sum() == 1  # only the dogmatic var = 0


def test_float32_empirical_moments_do_not_overflow_where_float64_does_not() -> None:
    # Squares and their sum beyond float32's range, the variance of the mean (/N(N-1)) not.
    g = (RNG.normal(size=(1000, 3)) * 1.2e19).astype(np.float32)
    got = T.empirical_moments(g)
    want = bogc_ref.empirical_moments(g)
    assert torch.isfinite(got.var).all()
    np.testing.assert_allclose(got.var.numpy(), want.var, rtol=1e-5)
    np.testing.assert_allclose(got.mean.numpy(), want.mean, rtol=1e-5)


def test_prior_weight_above_float32_range_gives_no_nan() -> None:
    # p = 1 and W = 1e300 in float32: W and the evidence scale both overflow (inf / inf).
    mean = np.array([[1.73, 0.12]], np.float32)
    var = np.array([[2.56e-15, 5.57]], np.float32)
    kwargs = {"mode": "fixed", "tau": 1e-30, "prior_weight": 1e300, "normalize": True}
    got = T.calibrate(mean, var, **kwargs)
    want = bogc_ref.calibrate(mean, var, **kwargs)
    np.testing.assert_allclose(got.belief.numpy(), want.belief, atol=1e-7)
    np.testing.assert_allclose(got.uncertainty.numpy(), want.uncertainty, atol=1e-7)


def test_structure_checked_once_values_checked_every_call() -> None:
    """The checks on stubs run once per structure (``_replay.PASSED``); a later call of that
    structure with bad values still gets the reference's error, a scalar argument of
    another value (``check_cov``) is another structure, and a structure that failed is
    checked, and refused, every time."""
    from bogc_ref.backends import _replay

    h, y = RNG.normal(size=(4, 2)), RNG.normal(size=(4, 3))
    w_mean, w_cov = RNG.normal(size=(3, 3)), np.stack([np.eye(3)] * 3)
    args = [torch.from_numpy(a) for a in (h, y, w_mean, w_cov)]
    _replay.PASSED.clear()
    first = T.linear_head_moments(*args)
    assert len(_replay.PASSED) == 1
    again = T.linear_head_moments(*args)
    torch.testing.assert_close(first.var, again.var, rtol=0, atol=0)
    bad_h = args[0].clone()
    bad_h[2, 1] = np.inf
    with pytest.raises(ValueError) as planned:
        T.linear_head_moments(bad_h, *args[1:])
    with pytest.raises(ValueError) as reference:
        bogc_ref.linear_head_moments(bad_h.numpy(), y, w_mean, w_cov)
    assert str(planned.value) == str(reference.value) and "h:" in str(planned.value)
    asymmetric = args[3].clone()
    asymmetric[0, 0, 1] = 5.0
    with pytest.raises(ValueError, match=r"^w_cov: "):
        T.linear_head_moments(*args[:3], asymmetric)
    T.linear_head_moments(*args[:3], asymmetric, check_cov=False)  # vouched for: no check
    assert len(_replay.PASSED) == 2
    for _ in range(2):
        with pytest.raises(ValueError, match=r"^y: "):
            T.linear_head_moments(args[0], args[1][:, :2], *args[2:])
    assert len(_replay.PASSED) == 2


@pytest.mark.parametrize("impl", [bogc_ref, T], ids=["reference", "torch"])
@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"check_finite": "no"}, TypeError, r"^check_finite: expected a bool, got str"),
        ({"check_finite": 0}, TypeError, r"^check_finite: expected a bool, got int"),
        ({"power": 10**400}, ValueError, r"^power: must be finite and > 0, got an integer"),
        ({"mode": "fixed", "tau": 10**400}, ValueError, r"^tau: must be finite and > 0"),
        ({"prior_weight": 10**400}, ValueError, r"^prior_weight: must be finite and > 0"),
    ],
)
def test_scalar_arguments_are_checked_naming_them(
    impl: object, kwargs: dict[str, object], exc: type[Exception], pattern: str
) -> None:
    """A flag that is not a bool would act by its truth value ("no" is true, so checks ran;
    0 switched them off); an int beyond float64 raised a bare OverflowError."""
    ones = np.ones((2, 3))
    with pytest.raises(exc, match=pattern):
        impl.calibrate(ones, ones, **kwargs)  # type: ignore[attr-defined]


@pytest.mark.filterwarnings("error")
def test_an_infinite_covariance_is_the_reference_error_without_a_warning() -> None:
    """The structural checks compared w_cov with its transpose before its values were
    checked: inf - inf warned (RuntimeWarning from NumPy), an exception under ``-W error``
    in place of the reference's ValueError."""
    rng = np.random.default_rng(1)
    h, y, w = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), rng.normal(size=(2, 3))
    a = rng.normal(size=(2, 3, 3))
    cov = a @ a.transpose(0, 2, 1) / 10
    cov[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"^w_cov: infinite value at index \(0, 0, 0\)"):
        T.linear_head_moments(*(torch.from_numpy(x) for x in (h, y, w, cov)))


@pytest.mark.filterwarnings("error")
def test_read_only_arrays_are_read_without_a_warning() -> None:
    """torch.as_tensor shares a NumPy array's memory and warns when it is read-only (it
    could be written through the tensor): the backend copies such an array instead."""
    mean = RNG.normal(size=(2, 3))
    mean.flags.writeable = False
    got = T.calibrate(mean, np.ones((2, 3)))
    np.testing.assert_allclose(got.grad.numpy(), bogc_ref.calibrate(mean, np.ones((2, 3))).grad)


def test_the_reference_names_a_tensor_it_cannot_read() -> None:
    """A tensor that requires grad cannot become a NumPy array: a TypeError naming the
    argument, not torch's bare RuntimeError."""
    mean = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(TypeError, match=r"^mean: cannot be read as an array"):
        bogc_ref.calibrate(mean, np.ones((2, 3)))
