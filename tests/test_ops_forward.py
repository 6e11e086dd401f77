"""Forward values of every op, compared with NumPy.

Each op runs on contiguous inputs and on non-contiguous views (transposed, permuted, sliced
with steps, offset slices, expanded), with broadcasting shapes, 0-d tensors, and in float32
and float64. The NumPy side applies the same view to the same base array.
"""
from __future__ import annotations

import operator
import os
import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr

DTYPES = [np.float32, np.float64]
CR_DTYPE = {np.dtype(np.float32): cr.float32, np.dtype(np.float64): cr.float64,
            np.dtype(np.int64): cr.int64, np.dtype(np.bool_): cr.bool}


def tol(dtype):
    if np.dtype(dtype) == np.float64:
        return dict(rtol=1e-12, atol=1e-12)
    return dict(rtol=1e-5, atol=1e-6)


def check(got, expected, dtype=None, **kw):
    """Compares a chainrule tensor with a NumPy array: shape, dtype and values."""
    assert isinstance(got, cr.Tensor)
    expected = np.asarray(expected)
    if dtype is None:
        dtype = expected.dtype
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert got.dtype == CR_DTYPE[np.dtype(dtype)], (got.dtype, dtype)
    arr = got.numpy()
    if np.dtype(dtype).kind in "fc":
        t = tol(dtype)
        t.update(kw)
        np.testing.assert_allclose(arr, expected.astype(dtype), **t)
    else:
        np.testing.assert_array_equal(arr, expected)


def sample(shape, dtype, rng, domain="any"):
    if domain == "pos":
        a = rng.uniform(0.5, 2.0, size=shape)
    elif domain == "int":  # small integers as floats: comparisons see ties
        a = rng.integers(-2, 3, size=shape).astype(np.float64)
    elif domain == "nonzero":
        a = rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    else:
        a = rng.uniform(-2.0, 2.0, size=shape)
    return np.asarray(a, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# View recipes: each gives a chainrule view and the NumPy array it must equal, of a target shape.
# ---------------------------------------------------------------------------------------------
LAYOUTS = ["contig", "transposed", "permuted", "step", "offset", "expanded"]


def make(shape, dtype, rng, layout="contig", domain="any"):
    """Returns (numpy_view, chainrule_view) of the given logical shape and layout."""
    shape = tuple(shape)
    nd = len(shape)
    if layout == "contig" or nd == 0:
        base = sample(shape, dtype, rng, domain)
        return base, cr.tensor(base)
    if layout == "transposed":
        if nd == 1:  # a transposed column, then a row of it
            base = sample((shape[0], 2), dtype, rng, domain)
            return base.T[1], cr.tensor(base).T[1]
        bshape = shape[:-2] + (shape[-1], shape[-2])
        base = sample(bshape, dtype, rng, domain)
        if nd == 2:
            return base.T, cr.tensor(base).T
        return np.swapaxes(base, -1, -2), cr.tensor(base).transpose(-1, -2)
    if layout == "permuted":
        if nd == 1:  # a row of a permuted (n, 2) array
            base = sample((shape[0], 2), dtype, rng, domain)
            return np.transpose(base, (1, 0))[0], cr.tensor(base).permute(1, 0)[0]
        perm = tuple(reversed(range(nd)))
        bshape = tuple(shape[p] for p in perm)  # reversing is its own inverse
        base = sample(bshape, dtype, rng, domain)
        return np.transpose(base, perm), cr.tensor(base).permute(*perm)
    if layout == "step":
        bshape = (2 * shape[0],) + shape[1:]
        base = sample(bshape, dtype, rng, domain)
        return base[::2], cr.tensor(base)[::2]
    if layout == "offset":
        bshape = shape[:-1] + (shape[-1] + 1,)
        base = sample(bshape, dtype, rng, domain)
        idx = (slice(None),) * (nd - 1) + (slice(1, None),)
        return base[idx], cr.tensor(base)[idx]
    if layout == "expanded":
        bshape = (1,) + shape[1:]
        base = sample(bshape, dtype, rng, domain)
        return np.broadcast_to(base, shape), cr.tensor(base).expand(*shape)
    raise AssertionError(layout)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.mark.parametrize("layout", LAYOUTS[1:])
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (5,)])
def test_layouts_are_really_non_contiguous(layout, shape, rng):
    a, t = make(shape, np.float32, rng, layout)
    assert t.shape == a.shape == shape
    if not (layout == "offset" and len(shape) == 1):  # t[1:] of a 1-D tensor is contiguous
        assert not t.is_contiguous()
    np.testing.assert_array_equal(t.numpy(), a)
    np.testing.assert_array_equal(t.contiguous().numpy(), a)


# ---------------------------------------------------------------------------------------------
# Binary arithmetic
# ---------------------------------------------------------------------------------------------
BINARY = [
    # name, operator, package function, numpy, domain of a, domain of b
    ("add", operator.add, cr.add, np.add, "any", "any"),
    ("sub", operator.sub, cr.sub, np.subtract, "any", "any"),
    ("mul", operator.mul, cr.mul, np.multiply, "any", "any"),
    ("div", operator.truediv, cr.div, np.divide, "any", "nonzero"),
    ("pow", operator.pow, cr.pow, np.power, "pos", "any"),
    ("maximum", cr.maximum, cr.maximum, np.maximum, "int", "int"),
    ("minimum", cr.minimum, cr.minimum, np.minimum, "int", "int"),
]
BINARY_IDS = [b[0] for b in BINARY]

BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 1), (4,)),
    ((2, 3, 4), (3, 1)),
    ((), (3, 4)),
    ((3, 4), ()),
    ((2, 1, 4), (3, 1)),
    ((1,), (5,)),
    ((), ()),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name,op,fn,npf,da,db", BINARY, ids=BINARY_IDS)
def test_binary_broadcast(name, op, fn, npf, da, db, shapes, dtype, rng):
    sa, sb = shapes
    a, ta = make(sa, dtype, rng, "contig", da)
    b, tb = make(sb, dtype, rng, "contig", db)
    expected = npf(a, b)
    check(op(ta, tb), expected, dtype)
    check(fn(ta, tb), expected, dtype)
    # the inputs are not modified
    np.testing.assert_array_equal(ta.numpy(), a)
    np.testing.assert_array_equal(tb.numpy(), b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lb", LAYOUTS)
@pytest.mark.parametrize("la", LAYOUTS)
@pytest.mark.parametrize("name,op,fn,npf,da,db", BINARY, ids=BINARY_IDS)
def test_binary_non_contiguous(name, op, fn, npf, da, db, la, lb, dtype, rng):
    a, ta = make((3, 4), dtype, rng, la, da)
    b, tb = make((3, 4), dtype, rng, lb, db)
    check(op(ta, tb), npf(a, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name,op,fn,npf,da,db", BINARY, ids=BINARY_IDS)
def test_binary_non_contiguous_broadcast(name, op, fn, npf, da, db, layout, dtype, rng):
    # a 3-D non-contiguous operand against a broadcast (4,) and a broadcast (3, 1) operand
    a, ta = make((2, 3, 4), dtype, rng, layout, da)
    b, tb = make((3, 4), dtype, rng, layout, db)
    check(op(ta, tb[:, :1]), npf(a, b[:, :1]), dtype)
    c, tc = make((3, 4), dtype, rng, layout, da)
    d, td = make((2, 3, 4), dtype, rng, layout, db)
    check(op(tc[0], td), npf(c[0], d), dtype)


SCALAR_FORMS = [
    ("t+2", lambda t: t + 2, lambda a: a + 2, "any"),
    ("2+t", lambda t: 2 + t, lambda a: 2 + a, "any"),
    ("t-1.5", lambda t: t - 1.5, lambda a: a - 1.5, "any"),
    ("1-t", lambda t: 1 - t, lambda a: 1 - a, "any"),
    ("2*t", lambda t: 2 * t, lambda a: 2 * a, "any"),
    ("t*0.5", lambda t: t * 0.5, lambda a: a * 0.5, "any"),
    ("t/4", lambda t: t / 4, lambda a: a / 4, "any"),
    ("3/t", lambda t: 3 / t, lambda a: 3 / a, "nonzero"),
    ("t**2", lambda t: t ** 2, lambda a: a ** 2, "any"),
    ("t**0.5", lambda t: t ** 0.5, lambda a: a ** 0.5, "pos"),
    ("t**-1", lambda t: t ** -1, lambda a: a ** -1.0, "nonzero"),
    ("2**t", lambda t: 2 ** t, lambda a: 2 ** a, "any"),
    ("1.5**t", lambda t: 1.5 ** t, lambda a: 1.5 ** a, "any"),
    ("t.pow(3)", lambda t: t.pow(3), lambda a: a ** 3, "any"),
    ("-t", lambda t: -t, lambda a: -a, "any"),
    ("cr.add(t,1)", lambda t: cr.add(t, 1), lambda a: a + 1, "any"),
    ("cr.mul(t,3)", lambda t: cr.mul(t, 3), lambda a: a * 3, "any"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name,f,npf,domain", SCALAR_FORMS, ids=[s[0] for s in SCALAR_FORMS])
def test_scalar_and_reflected(name, f, npf, domain, layout, dtype, rng):
    a, t = make((3, 4), dtype, rng, layout, domain)
    check(f(t), npf(a).astype(dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scalar_forms_on_0d(dtype):
    t = cr.tensor(np.array(1.5, dtype=dtype))
    check(1 - t, np.array(-0.5, dtype=dtype), dtype)
    check(2 * t, np.array(3.0, dtype=dtype), dtype)
    check(2 ** t, np.array(2 ** 1.5, dtype=dtype), dtype)
    check(t / 3, np.array(0.5, dtype=dtype), dtype)


def test_binary_float64_precision():
    # values that float32 arithmetic would round off
    a = np.array([1.0 + 1e-12, 1e16, 1.0 / 3.0])
    b = np.array([1.0, 1.0, 3.0])
    ta, tb = cr.tensor(a), cr.tensor(b)
    np.testing.assert_array_equal((ta - tb).numpy(), a - b)
    np.testing.assert_array_equal((ta + tb).numpy(), a + b)
    np.testing.assert_array_equal((ta * tb).numpy(), a * b)


# ---------------------------------------------------------------------------------------------
# where
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), ()),
                                    ((4,), (3, 1), (3, 4)), ((2, 1, 4), (3, 1), (1,))], ids=str)
def test_where_broadcast(shapes, dtype, rng):
    sc, sa, sb = shapes
    c = rng.random(sc) > 0.5
    a = sample(sa, dtype, rng)
    b = sample(sb, dtype, rng)
    check(cr.where(cr.tensor(c), cr.tensor(a), cr.tensor(b)), np.where(c, a, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_where_non_contiguous(layout, dtype, rng):
    a, ta = make((3, 4), dtype, rng, layout)
    b, tb = make((3, 4), dtype, rng, layout)
    c, tc = make((3, 4), np.float64, rng, layout)
    check(cr.where(tc > 0, ta, tb), np.where(c > 0, a, b), dtype)


# ---------------------------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------------------------
COMPARISONS = [
    ("eq", operator.eq, cr.eq, np.equal),
    ("ne", operator.ne, cr.ne, np.not_equal),
    ("lt", operator.lt, cr.lt, np.less),
    ("le", operator.le, cr.le, np.less_equal),
    ("gt", operator.gt, cr.gt, np.greater),
    ("ge", operator.ge, cr.ge, np.greater_equal),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name,op,fn,npf", COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_comparison_broadcast(name, op, fn, npf, shapes, dtype, rng):
    a, ta = make(shapes[0], dtype, rng, "contig", "int")
    b, tb = make(shapes[1], dtype, rng, "contig", "int")
    check(op(ta, tb), npf(a, b), np.bool_)
    check(fn(ta, tb), npf(a, b), np.bool_)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name,op,fn,npf", COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_comparison_non_contiguous_and_scalar(name, op, fn, npf, layout, rng):
    a, ta = make((3, 4), np.float32, rng, layout, "int")
    b, tb = make((3, 4), np.float32, rng, "step", "int")
    check(op(ta, tb), npf(a, b), np.bool_)
    check(op(ta, 1.0), npf(a, np.float32(1.0)), np.bool_)
    check(op(ta, 0), npf(a, 0), np.bool_)


@pytest.mark.parametrize("name,op,fn,npf", COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_comparison_not_differentiable(name, op, fn, npf):
    t = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    r = op(t, 2.0)
    assert r.dtype == cr.bool
    assert r.requires_grad is False
    np.testing.assert_array_equal(r.numpy(), npf(np.array([1.0, 2.0, 3.0]), 2.0))


@pytest.mark.parametrize("np_dtype", [np.int64, np.bool_])
@pytest.mark.parametrize("name,op,fn,npf", COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_comparison_int_and_bool(name, op, fn, npf, np_dtype, rng):
    a = rng.integers(0, 2, size=(3, 4)).astype(np_dtype)
    b = rng.integers(0, 2, size=(4,)).astype(np_dtype)
    check(op(cr.tensor(a), cr.tensor(b)), npf(a, b), np.bool_)


# ---------------------------------------------------------------------------------------------
# Unary
# ---------------------------------------------------------------------------------------------
def np_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def np_softmax(a, dim):
    a = a.astype(np.float64)
    e = np.exp(a - a.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def np_log_softmax(a, dim):
    a = a.astype(np.float64)
    m = a.max(axis=dim, keepdims=True)
    return a - m - np.log(np.exp(a - m).sum(axis=dim, keepdims=True))


UNARY = [
    # name, method call, package function (or None), numpy reference, domain
    ("exp", lambda t: t.exp(), cr.exp, np.exp, "any"),
    ("log", lambda t: t.log(), cr.log, np.log, "pos"),
    ("sqrt", lambda t: t.sqrt(), cr.sqrt, np.sqrt, "pos"),
    ("abs", lambda t: t.abs(), cr.abs, np.abs, "any"),
    ("abs_builtin", lambda t: abs(t), None, np.abs, "any"),
    ("sigmoid", lambda t: t.sigmoid(), cr.sigmoid, np_sigmoid, "any"),
    ("tanh", lambda t: t.tanh(), cr.tanh, np.tanh, "any"),
    ("relu", lambda t: t.relu(), cr.relu, lambda a: np.maximum(a, 0), "any"),
    ("sin", lambda t: t.sin(), cr.sin, np.sin, "any"),
    ("cos", lambda t: t.cos(), cr.cos, np.cos, "any"),
    ("square", lambda t: t.square(), cr.square, np.square, "any"),
    ("neg", lambda t: t.neg(), cr.neg, np.negative, "any"),
    ("clamp_both", lambda t: t.clamp(-0.5, 0.75), lambda t: cr.clamp(t, -0.5, 0.75),
     lambda a: np.clip(a, -0.5, 0.75), "any"),
    ("clamp_min", lambda t: t.clamp(min=0.25), lambda t: cr.clamp(t, min=0.25),
     lambda a: np.maximum(a, 0.25), "any"),
    ("clamp_max", lambda t: t.clamp(max=-0.25), lambda t: cr.clamp(t, max=-0.25),
     lambda a: np.minimum(a, -0.25), "any"),
    ("softmax_last", lambda t: t.softmax(-1), lambda t: cr.softmax(t, -1),
     lambda a: np_softmax(a, -1), "any"),
    ("softmax_0", lambda t: t.softmax(0), lambda t: cr.softmax(t, 0),
     lambda a: np_softmax(a, 0), "any"),
    ("log_softmax_last", lambda t: t.log_softmax(-1), lambda t: cr.log_softmax(t, -1),
     lambda a: np_log_softmax(a, -1), "any"),
    ("log_softmax_0", lambda t: t.log_softmax(0), lambda t: cr.log_softmax(t, 0),
     lambda a: np_log_softmax(a, 0), "any"),
]
UNARY_IDS = [u[0] for u in UNARY]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5), (7,)], ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name,meth,fn,npf,domain", UNARY, ids=UNARY_IDS)
def test_unary(name, meth, fn, npf, domain, layout, shape, dtype, rng):
    a, t = make(shape, dtype, rng, layout, domain)
    expected = npf(a).astype(dtype)
    check(meth(t), expected, dtype)
    if fn is not None:
        check(fn(t), expected, dtype)
    np.testing.assert_array_equal(t.numpy(), a)  # input untouched


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,meth,fn,npf,domain",
                         [u for u in UNARY if not u[0].endswith("_0") and "softmax" not in u[0]],
                         ids=[u[0] for u in UNARY
                              if not u[0].endswith("_0") and "softmax" not in u[0]])
def test_unary_0d(name, meth, fn, npf, domain, dtype, rng):
    a = sample((), dtype, rng, domain)
    check(meth(cr.tensor(a)), npf(a).astype(dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_middle_dim_and_large_values(dtype, rng):
    a = sample((2, 3, 4), dtype, rng) * 50 + 500  # would overflow exp without the max shift
    t = cr.tensor(a)
    check(t.softmax(1), np_softmax(a, 1).astype(dtype), dtype)
    check(t.log_softmax(-2), np_log_softmax(a, -2).astype(dtype), dtype, rtol=1e-5, atol=2e-5)
    check(t.softmax(1).sum(1), np.ones((2, 4), dtype=dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_tanh_extremes(dtype):
    a = np.array([-100.0, -20.0, 0.0, 20.0, 100.0], dtype=dtype)
    t = cr.tensor(a)
    check(t.sigmoid(), np_sigmoid(a.astype(np.float64)).astype(dtype), dtype)
    check(t.tanh(), np.tanh(a), dtype)
    with np.errstate(over="ignore"):  # exp(100) is inf in float32
        expected = np.exp(a.astype(np.float64)).astype(dtype)
    check(t.exp(), expected, dtype)


# ---------------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------------
REDUCTIONS = [
    ("sum", np.sum),
    ("mean", np.mean),
    ("amax", np.amax),
    ("amin", np.amin),
]
DIMS = [None, 0, 1, 2, -1, -2, -3, (0, 2), (-1, 0), (1,), (0, 1, 2), (2, -3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("name,npf", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction_dims(name, npf, dim, keepdim, dtype, rng):
    a, t = make((2, 3, 4), dtype, rng)
    expected = npf(a.astype(np.float64), axis=dim, keepdims=keepdim).astype(dtype)
    check(getattr(t, name)(dim=dim, keepdim=keepdim), expected, dtype)
    check(getattr(cr, name)(t, dim, keepdim=keepdim), expected, dtype)
    if not keepdim:
        check(getattr(t, name)(dim), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [None, 0, -1, (0, 2), 1], ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name,npf", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction_non_contiguous(name, npf, layout, dim, dtype, rng):
    a, t = make((2, 3, 4), dtype, rng, layout)
    for keepdim in (False, True):
        expected = npf(a.astype(np.float64), axis=dim, keepdims=keepdim).astype(dtype)
        check(getattr(t, name)(dim=dim, keepdim=keepdim), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,npf", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduction_0d_and_1d(name, npf, dtype, rng):
    a = sample((), dtype, rng)
    check(getattr(cr.tensor(a), name)(), npf(a), dtype)
    b = sample((7,), dtype, rng)
    check(getattr(cr.tensor(b), name)(), npf(b.astype(np.float64)).astype(dtype), dtype)
    check(getattr(cr.tensor(b), name)(0, keepdim=True),
          npf(b.astype(np.float64), axis=0, keepdims=True).astype(dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_large(dtype, rng):
    a = sample((1000, 37), dtype, rng)
    t = cr.tensor(a)
    exp = a.astype(np.float64)
    check(t.sum(), exp.sum().astype(dtype), dtype, rtol=1e-4, atol=1e-3)
    check(t.sum(0), exp.sum(0).astype(dtype), dtype, rtol=1e-5, atol=1e-4)
    check(t.T.sum(1), exp.sum(0).astype(dtype), dtype, rtol=1e-5, atol=1e-4)
    check(t.mean(1), exp.mean(1).astype(dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_of_empty(dtype):
    t = cr.tensor(np.zeros((0, 3), dtype=dtype))
    check(t.sum(), np.array(0.0, dtype=dtype), dtype)
    check(t.sum(0), np.zeros(3, dtype=dtype), dtype)
    check(t.sum(1), np.zeros(0, dtype=dtype), dtype)


# max/min/argmax/argmin ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_max_min_without_dim(layout, dtype, rng):
    a, t = make((3, 4), dtype, rng, layout)
    for m, npf in (("max", np.max), ("min", np.min)):
        r = getattr(t, m)()
        check(r, npf(a), dtype)
        assert r.shape == ()
        check(getattr(cr, m)(t), npf(a), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_max_min_with_dim(layout, dim, keepdim, dtype, rng):
    # random floats (no ties), so the index of the extreme is unique
    a, t = make((2, 3, 4), dtype, rng, layout if layout != "expanded" else "contig")
    for m, npf, npi in (("max", np.max, np.argmax), ("min", np.min, np.argmin)):
        r = getattr(t, m)(dim, keepdim=keepdim)
        values, indices = r  # a named tuple unpacks
        assert r.values is values and r.indices is indices
        assert r[0] is values and r[1] is indices
        check(values, npf(a, axis=dim, keepdims=keepdim), dtype)
        idx = npi(a, axis=dim)
        if keepdim:
            idx = np.expand_dims(idx, dim)
        check(indices, idx.astype(np.int64), np.int64)
        r2 = getattr(t, m)(dim=dim, keepdim=keepdim)
        check(r2.values, npf(a, axis=dim, keepdims=keepdim), dtype)
        r3 = getattr(cr, m)(t, dim, keepdim)
        check(r3.indices, idx.astype(np.int64), np.int64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_argmax_argmin(layout, dtype, rng):
    a, t = make((3, 4), dtype, rng, layout if layout != "expanded" else "contig")
    for m, npf in (("argmax", np.argmax), ("argmin", np.argmin)):
        r = getattr(t, m)()
        check(r, np.array(npf(a), dtype=np.int64), np.int64)  # flat index, logical order
        check(getattr(cr, m)(t), np.array(npf(a), dtype=np.int64), np.int64)
        for dim in (0, 1, -1, -2):
            check(getattr(t, m)(dim), npf(a, axis=dim).astype(np.int64), np.int64)
            check(getattr(t, m)(dim=dim, keepdim=True),
                  np.expand_dims(npf(a, axis=dim), dim).astype(np.int64), np.int64)


def test_argmax_expanded_first_occurrence():
    # ties: the first occurrence wins, as in NumPy and PyTorch
    t = cr.tensor([[1.0, 5.0, 5.0, 2.0]]).expand(3, 4)
    check(t.argmax(1), np.array([1, 1, 1]), np.int64)
    check(t.argmax(0), np.array([0, 0, 0, 0]), np.int64)
    check(t.argmax(), np.array(1), np.int64)
    check(t.argmin(), np.array(0), np.int64)


def test_argmax_int64():
    a = np.array([[3, -7, 9], [9, 2, -7]], dtype=np.int64)
    t = cr.tensor(a)
    check(t.argmax(), np.array(2), np.int64)
    check(t.argmin(1), np.argmin(a, 1), np.int64)
    check(t.max(1).values, a.max(1), np.int64)
    check(t.amin(0), a.min(0), np.int64)


# ---------------------------------------------------------------------------------------------
# matmul
# ---------------------------------------------------------------------------------------------
MATMUL_SHAPES = [
    ((4,), (4,)),
    ((4,), (4, 3)),
    ((3, 4), (4,)),
    ((3, 4), (4, 5)),
    ((1, 1), (1, 1)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 3, 4), (4, 5)),
    ((3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 3)),
    ((1, 3, 4), (6, 4, 2)),
    ((17, 33), (33, 9)),
    ((0,), (0,)),
    ((3, 0), (0, 4)),
    ((2, 3, 0), (0, 5)),
    ((0, 4), (4, 3)),
    ((3, 4), (4, 0)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul_shapes(shapes, dtype, rng):
    a = sample(shapes[0], dtype, rng)
    b = sample(shapes[1], dtype, rng)
    expected = np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(dtype)
    ta, tb = cr.tensor(a), cr.tensor(b)
    check(ta @ tb, expected, dtype)
    check(cr.matmul(ta, tb), expected, dtype)
    check(ta.matmul(tb), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lb", LAYOUTS)
@pytest.mark.parametrize("la", LAYOUTS)
def test_matmul_non_contiguous_2d(la, lb, dtype, rng):
    a, ta = make((3, 4), dtype, rng, la)
    b, tb = make((4, 5), dtype, rng, lb)
    expected = (a.astype(np.float64) @ b.astype(np.float64)).astype(dtype)
    check(ta @ tb, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_matmul_non_contiguous_batched_and_vectors(layout, dtype, rng):
    a, ta = make((2, 3, 4), dtype, rng, layout)
    b, tb = make((2, 4, 5), dtype, rng, layout)
    v, tv = make((4,), dtype, rng, "step" if layout != "contig" else "contig")
    f = lambda x: x.astype(np.float64)  # noqa: E731
    check(ta @ tb, (f(a) @ f(b)).astype(dtype), dtype)
    check(ta @ tv, (f(a) @ f(v)).astype(dtype), dtype)
    check(tv @ tb, (f(v) @ f(b)).astype(dtype), dtype)
    check(ta[0] @ tb[1], (f(a[0]) @ f(b[1])).astype(dtype), dtype)
    check(tv @ tv, (f(v) @ f(v)).astype(dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_broadcast_batch_expanded(dtype, rng):
    # the batch dim comes from expand (stride 0) on one side
    a = sample((1, 3, 4), dtype, rng)
    b = sample((5, 4, 2), dtype, rng)
    ta = cr.tensor(a).expand(5, 3, 4)
    expected = (np.broadcast_to(a, (5, 3, 4)).astype(np.float64) @ b).astype(dtype)
    check(ta @ cr.tensor(b), expected, dtype)
    c = sample((2, 1, 3, 4), dtype, rng)
    tc = cr.tensor(c).permute(0, 1, 3, 2)  # (2,1,4,3)
    d = sample((5, 3, 2), dtype, rng)
    expected = (np.transpose(c, (0, 1, 3, 2)).astype(np.float64) @ d).astype(dtype)
    check(tc @ cr.tensor(d), expected, dtype)


def test_matmul_int64():
    a = np.arange(12, dtype=np.int64).reshape(3, 4) - 5
    b = np.arange(8, dtype=np.int64).reshape(4, 2) * 3
    check(cr.tensor(a) @ cr.tensor(b), a @ b, np.int64)
    check(cr.tensor(a).T @ cr.tensor(a), a.T @ a, np.int64)


# ---------------------------------------------------------------------------------------------
# Zero-size tensors. Run in a child process: a crash there must fail the test, not the session
# (an earlier build died with SIGFPE on every elementwise op of a zero-size tensor).
# ---------------------------------------------------------------------------------------------
EMPTY_CASES = [
    # expression on z(*shape) (float32 zeros from NumPy), expected shape, expected values or None
    ("z(0, 3) + z(3)", (0, 3)),
    ("z(0, 3) * z(0, 1)", (0, 3)),
    ("z(0) - z(0)", (0,)),
    ("z(0, 3) + 1", (0, 3)),
    ("z(0, 3).exp()", (0, 3)),
    ("z(3, 0).T.sigmoid()", (0, 3)),
    ("z(0, 3).softmax(1)", (0, 3)),
    ("z(0, 3) > z(3)", (0, 3)),
    ("cr.where(z(0, 3) > 0, z(0, 3), z(3))", (0, 3)),
    ("cr.zeros(0, 3, dtype=cr.float64).relu()", (0, 3)),
]
EMPTY_OK = [
    ("z(0, 3).sum()", ()),
    ("z(0, 3).sum(0)", (3,)),
    ("z(0, 3).mean(1)", (0,)),
    ("z(3, 0) @ z(0, 4)", (3, 4)),
    ("z(0) @ z(0)", ()),
]
# Subprocesses import the same chainrule as this test (site-packages, or a dev tree).
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(cr.__file__)))


def run_isolated(expr):
    code = (
        "import numpy as np, chainrule as cr\n"
        "z = lambda *s: cr.tensor(np.zeros(s, np.float32))\n"
        f"r = {expr}\n"
        "print(repr(tuple(r.shape)), float(np.asarray(r.numpy(), dtype=np.float64).sum()), sep='|')\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = _PACKAGE_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("expr,shape", EMPTY_CASES, ids=[e[0] for e in EMPTY_CASES])
def test_elementwise_on_zero_size(expr, shape):
    p = run_isolated(expr)
    assert p.returncode == 0, f"{expr}: exit status {p.returncode}\n{p.stderr[-2000:]}"
    assert p.stdout.strip().split("|") == [repr(shape), "0.0"]


@pytest.mark.parametrize("expr,shape", EMPTY_OK, ids=[e[0] for e in EMPTY_OK])
def test_reduction_and_matmul_on_zero_size(expr, shape):
    p = run_isolated(expr)
    assert p.returncode == 0, f"{expr}: exit status {p.returncode}\n{p.stderr[-2000:]}"
    assert p.stdout.strip().split("|") == [repr(shape), "0.0"]
