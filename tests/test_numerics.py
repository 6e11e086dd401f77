"""Numerics: NaN and inf propagate as in NumPy through elementwise ops and reductions (in
every position of a long array, so the vectorized loops, their tails and the threaded paths
are all covered), reductions over empty dims give NumPy's results, and float32 sums of ten
million elements stay within 1e-6 of the float64 sum.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import chainrule as cr
import numpy as np
import pytest
from chainrule import _core

PYTHON_DIR = str(Path(cr.__file__).resolve().parents[1])

NAN, INF = float("nan"), float("inf")
SPECIALS = [NAN, INF, -INF, 0.0, -0.0, 1.0, -1.0, 0.5, 1e30, -1e30, 88.0, -88.0, 710.0]
FLOATS = [np.float32, np.float64]
# long arrays with the specials scattered: head, SIMD-width boundaries, middle and tail
LENGTHS = [len(SPECIALS), 67, 40_003]


def special_array(n, dtype, seed=0, specials=SPECIALS):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-3, 3, n)
    positions = sorted({0, 1, 7, 8, 15, 16, 31, 32, n // 2, n - 17, n - 2, n - 1} |
                       set(range(min(n, len(specials)))))
    positions = [p for p in positions if 0 <= p < n]
    for i, p in enumerate(positions):
        a[p] = specials[i % len(specials)]
    return a.astype(dtype)


def check(got, expected):
    assert got.shape == expected.shape, (got.shape, expected.shape)
    array = got.numpy()
    assert array.dtype == expected.dtype, (array.dtype, expected.dtype)
    nan_got, nan_exp = np.isnan(array), np.isnan(expected)
    bad = np.flatnonzero((nan_got != nan_exp).reshape(-1))
    assert bad.size == 0, (f"NaN mismatch at {bad[:10]}: got {array.reshape(-1)[bad[:10]]}, "
                           f"expected {expected.reshape(-1)[bad[:10]]}")
    inf_mismatch = np.flatnonzero((np.isinf(array) != np.isinf(expected)).reshape(-1)
                                  | ((np.isinf(expected) & (array != expected)).reshape(-1)))
    assert inf_mismatch.size == 0, (
        f"inf mismatch at {inf_mismatch[:10]}: got {array.reshape(-1)[inf_mismatch[:10]]}, "
        f"expected {expected.reshape(-1)[inf_mismatch[:10]]}")
    rtol = 1e-5 if expected.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(array, expected, rtol=rtol, atol=1e-30, equal_nan=True)


def np_sigmoid(x):
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


UNARY = {
    "exp": (lambda t: t.exp(), np.exp),
    "log": (lambda t: t.log(), np.log),
    "sqrt": (lambda t: t.sqrt(), np.sqrt),
    "abs": (lambda t: t.abs(), np.abs),
    "neg": (lambda t: -t, np.negative),
    "square": (lambda t: t.square(), np.square),
    "sigmoid": (lambda t: t.sigmoid(), np_sigmoid),
    "tanh": (lambda t: t.tanh(), np.tanh),
    "relu": (lambda t: t.relu(), lambda a: np.maximum(a, a.dtype.type(0))),
    "clamp": (lambda t: t.clamp(-1.0, 2.0), lambda a: np.clip(a, a.dtype.type(-1), a.dtype.type(2))),
    "clamp_min": (lambda t: t.clamp(min=0.25), lambda a: np.maximum(a, a.dtype.type(0.25))),
    "sin": (lambda t: t.sin(), np.sin),
    "cos": (lambda t: t.cos(), np.cos),
    "scalar_mul": (lambda t: t * 2.0, lambda a: a * a.dtype.type(2.0)),
    "scalar_rdiv": (lambda t: 1.0 / t, lambda a: a.dtype.type(1.0) / a),
    "scalar_pow": (lambda t: t ** 2.0, lambda a: a ** a.dtype.type(2.0)),
    "scalar_rpow": (lambda t: 2.0 ** t, lambda a: a.dtype.type(2.0) ** a),
}


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_specials_match_numpy(name, dtype, n):
    a = special_array(n, dtype)
    call, npf = UNARY[name]
    with np.errstate(all="ignore"):
        expected = np.asarray(npf(a), dtype)
    if name in ("sin", "cos"):  # only the special values are compared exactly for trig
        check(call(cr.tensor(a))[:len(SPECIALS)], expected[:len(SPECIALS)])
        return
    check(call(cr.tensor(a)), expected)


@pytest.mark.parametrize("n", [3, 40_003])
@pytest.mark.parametrize("bound", ["min", "max"])
def test_clamp_with_a_nan_bound_gives_nan(bound, n):
    a = np.linspace(-3, 3, n).astype(np.float32)
    got = cr.tensor(a).clamp(**{bound: NAN}).numpy()
    with np.errstate(invalid="ignore"):
        expected = np.clip(a, NAN if bound == "min" else None, NAN if bound == "max" else None)
    assert np.all(np.isnan(expected))
    assert np.all(np.isnan(got)), got[:5]


BINARY = {
    "add": (lambda x, y: x + y, np.add),
    "sub": (lambda x, y: x - y, np.subtract),
    "mul": (lambda x, y: x * y, np.multiply),
    "div": (lambda x, y: x / y, np.true_divide),
    "pow": (lambda x, y: x ** y, np.power),
    "maximum": (cr.maximum, np.maximum),
    "minimum": (cr.minimum, np.minimum),
}


def pair_arrays(dtype):
    """Every ordered pair of specials, plus a long tail so the vector loops see them."""
    s = np.array(SPECIALS, dtype=np.float64)
    a, b = np.meshgrid(s, s, indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    tail_a = special_array(5003, np.float64, seed=1)
    tail_b = special_array(5003, np.float64, seed=2)[::-1]
    return (np.concatenate([a, tail_a]).astype(dtype), np.concatenate([b, tail_b]).astype(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_specials_match_numpy(name, dtype):
    a, b = pair_arrays(dtype)
    call, npf = BINARY[name]
    with np.errstate(all="ignore"):
        expected = np.asarray(npf(a, b), dtype)
    check(call(cr.tensor(a), cr.tensor(b)), expected)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_specials_broadcast_match_numpy(name, dtype):
    """(13, 1) against (1, 13): the broadcast loop, not only the contiguous one."""
    s = np.array(SPECIALS, dtype=dtype)
    a, b = s[:, None], s[None, :]
    call, npf = BINARY[name]
    with np.errstate(all="ignore"):
        expected = np.asarray(npf(a, b), dtype)
    check(call(cr.tensor(a), cr.tensor(b)), expected)


COMPARISONS = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
               "gt": np.greater, "ge": np.greater_equal}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_comparisons_with_nan_and_inf_match_numpy(name, dtype):
    a, b = pair_arrays(dtype)
    got = getattr(cr, name)(cr.tensor(a), cr.tensor(b))
    assert got.dtype == cr.bool
    np.testing.assert_array_equal(got.numpy(), COMPARISONS[name](a, b))


@pytest.mark.parametrize("dtype", FLOATS)
def test_where_passes_nan_and_inf_through(dtype):
    a = special_array(1001, dtype, seed=3)
    b = special_array(1001, dtype, seed=4)[::-1].copy()
    cond = np.arange(1001) % 3 == 0
    check(cr.where(cr.tensor(cond), cr.tensor(a), cr.tensor(b)), np.where(cond, a, b))


# ------------------------------------------------------------------ reductions with NaN and inf
REDUCE = {
    "sum": (lambda t, d: t.sum(d), np.sum),
    "mean": (lambda t, d: t.mean(d), np.mean),
    "amax": (lambda t, d: t.amax(d), np.amax),
    "amin": (lambda t, d: t.amin(d), np.amin),
}


@pytest.mark.parametrize("n", [1, 5, 8, 9, 16, 17, 33, 1000, 100_003])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(REDUCE))
def test_single_nan_anywhere_propagates(name, dtype, n):
    """One NaN at the start, at each SIMD-lane position near the start, in the middle and at the
    end: the reduction of the whole array is NaN every time (a max instruction that drops NaN,
    or a tail loop that skips it, shows here)."""
    call, _ = REDUCE[name]
    rng = np.random.default_rng(n)
    base = rng.uniform(-5, 5, n).astype(dtype)
    positions = sorted({0, 1, 3, 7, 8, 15, 16, n // 2, n - 2, n - 1} & set(range(n)))
    wrong = []
    for p in positions:
        a = base.copy()
        a[p] = np.nan
        value = call(cr.tensor(a), None).item()
        if not np.isnan(value):
            wrong.append((p, value))
    assert not wrong, f"{name} of {n} elements with one NaN at (position, result): {wrong}"


@pytest.mark.parametrize("n", [9, 17, 100_003])
@pytest.mark.parametrize("dtype", FLOATS)
def test_argmax_argmin_point_at_the_first_nan(dtype, n):
    """As NumPy (and PyTorch): NaN counts as the extreme, the first one wins."""
    rng = np.random.default_rng(n)
    a = rng.uniform(-5, 5, n).astype(dtype)
    a[[n // 3, n // 2]] = np.nan
    a[n - 1] = np.inf
    a[0] = -np.inf
    t = cr.tensor(a)
    assert t.argmax().item() == np.argmax(a) == n // 3
    assert t.argmin().item() == np.argmin(a) == n // 3


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(REDUCE))
@pytest.mark.parametrize("dim", [0, 1, -1, (0, 1)])
def test_reductions_along_dims_with_specials_match_numpy(name, dim, dtype):
    rows = [[1.0, 2.0, 3.0, 4.0], [NAN, 1.0, 2.0, 3.0], [INF, 1.0, 2.0, 3.0],
            [INF, -INF, 0.0, 1.0], [-INF, -INF, -INF, -INF], [1.0, 2.0, 3.0, NAN],
            [1e38, 1e38, 1e38, 1e38], [INF, NAN, -INF, 0.0]]
    a = np.array(rows, dtype=dtype)
    call, npf = REDUCE[name]
    with np.errstate(all="ignore"):
        # mean: NumPy's float32 mean overflows its float32 running sum on the 1e38 row; the
        # mean itself (1e38) is representable, so the float64 mean is the reference
        wide = a.astype(np.float64) if name == "mean" else a
        expected = np.asarray(npf(wide, axis=dim), dtype)
    check(call(cr.tensor(a), dim), expected)
    check(call(cr.tensor(np.ascontiguousarray(a.T)).T, dim), expected)  # strided input


@pytest.mark.parametrize("dtype", FLOATS)
def test_max_min_with_dim_values_and_indices_with_nan(dtype):
    a = np.array([[1.0, NAN, 3.0, NAN], [2.0, 5.0, -INF, 4.0], [INF, 1.0, INF, 0.0]], dtype)
    t = cr.tensor(a)
    for largest, npv, npi in ((True, np.amax, np.argmax), (False, np.amin, np.argmin)):
        for dim in (0, 1):
            values, indices = t.max(dim) if largest else t.min(dim)
            check(values, np.asarray(npv(a, axis=dim), dtype))
            np.testing.assert_array_equal(indices.numpy(), npi(a, axis=dim))


@pytest.mark.parametrize("dtype", FLOATS)
def test_sum_and_mean_of_infinities(dtype):
    assert cr.tensor(np.array([INF, 1.0, 2.0], dtype)).sum().item() == INF
    assert cr.tensor(np.array([1.0, -INF], dtype)).sum().item() == -INF
    assert np.isnan(cr.tensor(np.array([INF, 1.0, -INF], dtype)).sum().item())
    assert cr.tensor(np.array([INF, 3.0], dtype)).mean().item() == INF
    big = np.full(100_003, 1.0, dtype)
    big[77_777] = INF
    assert cr.tensor(big).sum().item() == INF
    big[5] = -INF
    assert np.isnan(cr.tensor(big).sum().item())


def test_float32_sum_overflow_gives_inf_as_numpy():
    a = np.full(10, 3e38, np.float32)
    with np.errstate(over="ignore"):
        expected = np.float32(a.sum(dtype=np.float32))
    assert np.isinf(expected)
    assert cr.tensor(a).sum().item() == expected


# ------------------------------------------------------------------ empty reductions
@pytest.mark.parametrize("dtype", FLOATS + [np.int64])
def test_sum_over_empty_is_zero(dtype):
    a = np.zeros((0, 3), dtype)
    t = cr.tensor(a)
    s = t.sum()
    assert s.shape == () and s.item() == 0
    assert s.dtype == {np.float32: cr.float32, np.float64: cr.float64, np.int64: cr.int64}[dtype]
    np.testing.assert_array_equal(t.sum(0).numpy(), np.zeros(3, dtype))
    assert t.sum(1).shape == (0,)
    assert t.sum(0, keepdim=True).shape == (1, 3)
    assert cr.tensor(np.zeros((2, 0, 4), dtype)).sum((0, 1)).numpy().tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("dtype", FLOATS + [np.int64])
def test_mean_over_empty_is_nan(dtype):
    a = np.zeros((0, 3), dtype)
    t = cr.tensor(a)
    m = t.mean()
    assert m.shape == () and np.isnan(m.item())
    out = np.float32 if dtype == np.int64 else dtype
    assert m.numpy().dtype == out
    col = t.mean(0)
    assert col.shape == (3,) and np.all(np.isnan(col.numpy()))
    assert t.mean(1).shape == (0,)
    assert t.mean(-1, keepdim=True).shape == (0, 1)


@pytest.mark.parametrize("dtype", FLOATS + [np.int64])
@pytest.mark.parametrize("name", ["amax", "amin", "max", "min", "argmax", "argmin"])
def test_extremes_of_empty_raise_value_error(name, dtype):
    t = cr.tensor(np.zeros((0, 3), dtype))
    with pytest.raises(ValueError):
        getattr(t, name)()
    with pytest.raises(ValueError):
        getattr(t, name)(0)                     # along the empty dim
    if name in ("amax", "amin"):
        assert getattr(t, name)(1).shape == (0,)  # along a non-empty dim: fine, and empty
    with pytest.raises(ValueError):
        getattr(cr.tensor(np.zeros(0, dtype)), name)()


# ------------------------------------------------------------------ accuracy of long sums
TEN_MILLION = 10_000_000


@pytest.fixture(scope="module")
def ten_million():
    rng = np.random.default_rng(5)
    return {"uniform": rng.random(TEN_MILLION).astype(np.float32),
            "tenth": np.full(TEN_MILLION, 0.1, np.float32),
            "signed": (rng.standard_normal(TEN_MILLION) + 0.5).astype(np.float32)}


@pytest.mark.parametrize("kind", ["uniform", "tenth", "signed"])
def test_float32_sum_of_ten_million_is_accurate(ten_million, kind):
    """Within 1e-6 relative error of the float64 sum (a naive float32 loop is off by ~1e-1 for
    the constant 0.1)."""
    a = ten_million[kind]
    reference = a.astype(np.float64).sum()
    scale = np.abs(a.astype(np.float64)).sum()
    t = cr.tensor(a)
    got = t.sum()
    assert got.dtype == cr.float32
    assert abs(got.item() - reference) <= 1e-6 * scale, (got.item(), reference)
    assert abs(t.mean().item() - reference / a.size) <= 1e-6 * scale / a.size


@pytest.mark.parametrize("layout", ["strided", "rows", "columns", "transposed"])
def test_float32_long_sums_along_dims_are_accurate(ten_million, layout):
    a = ten_million["tenth"]
    if layout == "strided":
        t, x, dim = cr.tensor(a)[::2], a[::2], None
    elif layout == "rows":       # (10, 1e6): reduce the contiguous dim
        t, x, dim = cr.tensor(a.reshape(10, -1)), a.reshape(10, -1), 1
    elif layout == "columns":    # (1e6, 10): reduce the outer dim, 1e6 terms per column
        t, x, dim = cr.tensor(a.reshape(-1, 10)), a.reshape(-1, 10), 0
    else:                        # a transposed view of (10, 1e6), reduced over its rows
        t, x, dim = cr.tensor(a.reshape(10, -1)).T, a.reshape(10, -1).T, 0
    reference = x.astype(np.float64).sum(axis=dim)
    got = t.sum(dim).numpy().astype(np.float64)
    np.testing.assert_allclose(got, reference, rtol=1e-6)


# ------------------------------------------------------------------ every SIMD variant
OTHER_ISAS = [isa for isa in ("generic", "avx2", "avx512")
              if _core.cpu_supports(isa) and isa != _core.active_isa()]


@pytest.mark.parametrize("isa", OTHER_ISAS)
def test_numerics_hold_under_every_simd_variant(isa):
    """NaN handling is where SIMD variants differ (a max instruction returns its second operand
    when one is NaN): run this file again with CHAINRULE_ISA forcing each other variant."""
    env = dict(os.environ, CHAINRULE_ISA=isa)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    check_isa = [sys.executable, "-c", "from chainrule import _core; print(_core.active_isa())"]
    assert subprocess.run(check_isa, check=False, env=env, capture_output=True, text=True,
                          timeout=60).stdout.strip() == isa
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(Path(__file__).resolve()), "-q", "-x",
         "-p", "no:cacheprovider", "-k", "not simd_variant"],
        check=False, env=env, capture_output=True, text=True, timeout=300,
        cwd=str(Path(__file__).parent))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("engine_name", ["cpp", "python"])
@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("dtype", FLOATS)
def test_relu_backward_passes_the_gradient_at_nan(engine_name, create_graph, dtype):
    """As PyTorch's threshold_backward: 0 where x <= 0, else the gradient, so a NaN input passes
    it on (and relu(NaN) is NaN). 37 elements cross every SIMD width's tail."""
    from chainrule.autograd import engine

    a = np.resize(np.array([NAN, -INF, -1.0, -0.0, 0.0, 0.5, INF], dtype), 37)
    g = np.arange(1, 38).astype(dtype)
    expected = np.where(a <= 0, 0, g).astype(dtype)
    previous = engine.set_engine(engine_name)
    try:
        x = cr.tensor(a, requires_grad=True)
        y = cr.relu(x)
        check(y.detach(), np.where(np.isnan(a), a, np.maximum(a, 0)).astype(dtype))
        y.backward(cr.tensor(g), create_graph=create_graph)
        check(x.grad.detach(), expected)
    finally:
        engine.set_engine(previous)


def test_relu_rnn_passes_the_gradient_at_nan():
    """The relu RNN's fused backward follows the same rule as relu's."""
    torch = pytest.importorskip("torch")
    x = np.zeros((1, 1, 2))
    x[0, 0, 0] = np.nan
    ours = cr.nn.RNN(2, 3, nonlinearity="relu").double()
    theirs = torch.nn.RNN(2, 3, nonlinearity="relu").double()
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.from_numpy(getattr(ours, name).detach().numpy()))
    xo, xt = cr.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours(xo)[0].sum().backward()
    theirs(xt)[0].sum().backward()
    for name, p in theirs.named_parameters():
        np.testing.assert_array_equal(getattr(ours, name).grad.numpy(), p.grad.numpy(), err_msg=name)
    np.testing.assert_array_equal(xo.grad.numpy(), xt.grad.numpy())
