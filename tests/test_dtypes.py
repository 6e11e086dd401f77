"""The dtype rules of API.md's "dtypes" section, as tables.

Promotion between tensors: bool < int64 < float32 < float64. A Python scalar never changes a
float tensor's dtype; a Python float with an int64 or bool tensor gives float32; a Python int
with a bool tensor gives int64. These are PyTorch's rules (with float32 as default dtype). NumPy,
computing in the promoted dtype, is the oracle that always runs; PyTorch (when installed) is the
oracle for both the result dtype and the values where it supports the op.
"""
from __future__ import annotations

import itertools
import operator
from types import SimpleNamespace

import numpy as np
import pytest
from optional import torch

import chainrule as cr

ALL = ["bool", "int64", "float32", "float64"]
CR = {"bool": cr.bool, "int64": cr.int64, "float32": cr.float32, "float64": cr.float64}
NP = {"bool": np.bool_, "int64": np.int64, "float32": np.float32, "float64": np.float64}
RANK = {n: i for i, n in enumerate(ALL)}


def promote(a, b):
    return a if RANK[a] >= RANK[b] else b


def data(name, shape=(2, 3), seed=0):
    rng = np.random.default_rng(seed)
    if name == "bool":
        return rng.random(shape) > 0.5
    if name == "int64":
        return rng.integers(-5, 6, size=shape).astype(np.int64)
    return rng.uniform(-3, 3, size=shape).astype(NP[name])


def in_dtype(name, *arrays):
    """The arrays converted to one dtype: NumPy then computes as chainrule must."""
    return [a.astype(NP[name]) for a in arrays]


def check_values(got, expected_np):
    arr = got.numpy()
    assert arr.dtype == expected_np.dtype
    if expected_np.dtype.kind == "f":
        rtol = 1e-12 if expected_np.dtype == np.float64 else 1e-6
        np.testing.assert_allclose(arr, expected_np, rtol=rtol, atol=rtol)
    else:
        np.testing.assert_array_equal(arr, expected_np)


def test_dtype_objects_and_aliases():
    assert cr.float is cr.float32 or cr.float == cr.float32
    assert cr.double == cr.float64
    assert cr.long == cr.int64
    assert len({cr.float32, cr.float64, cr.int64, cr.bool}) == 4
    assert cr.zeros(2).dtype == cr.float32  # the default


# ---------------------------------------------------------------------------------------------
# tensor-tensor promotion
# ---------------------------------------------------------------------------------------------
PAIRS = list(itertools.product(ALL, ALL))


@pytest.mark.parametrize("opname,op", [("add", operator.add), ("mul", operator.mul),
                                       ("cr.add", cr.add), ("cr.mul", cr.mul)])
@pytest.mark.parametrize("da,db", PAIRS)
def test_tensor_tensor_promotion_add_mul(opname, op, da, db):
    a, b = data(da, seed=1), data(db, (3,), seed=2)
    r = op(cr.tensor(a), cr.tensor(b))
    out = promote(da, db)
    assert r.dtype == CR[out]
    np_op = getattr(NUMPY, opname[3:]) if "cr." in opname else op
    check_values(r, np_op(*in_dtype(out, a, b)))
    if torch is not None:
        tr = op(torch.from_numpy(a), torch.from_numpy(b)) if "cr." not in opname else \
            getattr(torch, opname[3:])(torch.from_numpy(a), torch.from_numpy(b))
        check_values(r, tr.numpy())


@pytest.mark.parametrize("da,db", PAIRS)
def test_tensor_tensor_promotion_matmul(da, db):
    a, b = data(da, (2, 3), seed=3), data(db, (3, 4), seed=4)
    ta, tb = cr.tensor(a), cr.tensor(b)
    if da == db == "bool":
        # promotion says bool; PyTorch refuses bool matmul. Either a bool result equal to
        # NumPy's, or a TypeError, is acceptable.
        try:
            r = ta @ tb
        except TypeError:
            return
        assert r.dtype == cr.bool
        np.testing.assert_array_equal(r.numpy(), a @ b)
        return
    r = ta @ tb
    out = promote(da, db)
    assert r.dtype == CR[out]
    expected = a.astype(NP[out]) @ b.astype(NP[out])
    check_values(r, expected)
    # vector forms promote too
    v = ta[0] @ tb
    assert v.dtype == CR[out]
    check_values(v, a[0].astype(NP[out]) @ b.astype(NP[out]))


@pytest.mark.parametrize("da,db", [p for p in PAIRS if "bool" not in p])
def test_tensor_tensor_promotion_sub_div_pow(da, db):
    a, b = data(da, seed=5), data(db, (3,), seed=6)
    if db != "bool":
        b = np.where(b == 0, 1, b).astype(b.dtype)
    ta, tb = cr.tensor(a), cr.tensor(b)
    out = promote(da, db)
    r = ta - tb
    assert r.dtype == CR[out]
    np_a, np_b = in_dtype(out, a, b)
    check_values(r, np_a - np_b)
    if torch is not None:
        check_values(r, (torch.from_numpy(a) - torch.from_numpy(b)).numpy())
    r = ta / tb
    div_out = out if out.startswith("float") else "float32"  # true division of integers
    assert r.dtype == CR[div_out]
    np_a, np_b = in_dtype(div_out, a, b)
    check_values(r, np_a / np_b)
    if torch is not None:
        expected = (torch.from_numpy(a) / torch.from_numpy(b)).numpy()
        assert r.dtype == CR[str(expected.dtype)]
        check_values(r, expected)


@pytest.mark.parametrize("da,db", PAIRS)
def test_tensor_tensor_promotion_maximum_where(da, db):
    a, b = data(da, seed=7), data(db, (3,), seed=8)
    out = promote(da, db)
    r = cr.maximum(cr.tensor(a), cr.tensor(b))
    assert r.dtype == CR[out]
    check_values(r, np.maximum(*in_dtype(out, a, b)))
    if torch is not None:
        check_values(r, torch.maximum(torch.from_numpy(a), torch.from_numpy(b)).numpy())
    c = data("bool", seed=9)
    r = cr.where(cr.tensor(c), cr.tensor(a), cr.tensor(b))
    assert r.dtype == CR[out]
    check_values(r, np.where(c, *in_dtype(out, a, b)))
    if torch is not None:
        check_values(r, torch.where(torch.from_numpy(c), torch.from_numpy(a),
                                    torch.from_numpy(b)).numpy())


@pytest.mark.parametrize("da,db", PAIRS)
def test_comparisons_of_mixed_dtypes_give_bool(da, db):
    a, b = data(da, seed=10), data(db, (3,), seed=11)
    for op in (operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge):
        r = op(cr.tensor(a), cr.tensor(b))
        assert r.dtype == cr.bool
        np.testing.assert_array_equal(r.numpy(), op(*in_dtype(promote(da, db), a, b)))
        if torch is not None:
            np.testing.assert_array_equal(r.numpy(), op(torch.from_numpy(a),
                                                        torch.from_numpy(b)).numpy())


# ---------------------------------------------------------------------------------------------
# Python scalars with tensors
# ---------------------------------------------------------------------------------------------
SCALARS = [2, -3, 0.5, 2.0]
SCALAR_OPS = [
    ("t+s", lambda t, s: t + s),
    ("s+t", lambda t, s: s + t),
    ("t*s", lambda t, s: t * s),
    ("s*t", lambda t, s: s * t),
    ("t-s", lambda t, s: t - s),
    ("s-t", lambda t, s: s - t),
    ("t/s", lambda t, s: t / s),
    ("s/t", lambda t, s: s / t),
    ("t**s", lambda t, s: t ** s),
    ("cr.add(t,s)", lambda t, s: _module_of(t).add(t, s)),
    ("cr.mul(t,s)", lambda t, s: _module_of(t).mul(t, s)),
]


def _module_of(t):
    """The library whose function `cr.add` stands for: chainrule, PyTorch or NumPy."""
    return cr if isinstance(t, cr.Tensor) else NUMPY if isinstance(t, np.ndarray) else torch


NUMPY = SimpleNamespace(add=np.add, mul=np.multiply)  # PyTorch's names for NumPy's functions


def expected_scalar_dtype(tname, s):
    if tname in ("float32", "float64"):
        return tname  # a scalar never changes a float tensor's dtype
    if isinstance(s, float):
        return "float32"
    return "int64"  # int with int64 or bool


def _scalar_cases():
    for opname, op in SCALAR_OPS:
        for tname in ALL:
            for s in SCALARS:
                if tname == "bool" and "-" in opname:
                    continue  # bool subtraction raises: see test_bool_subtraction_*
                if opname == "t**s" and tname in ("int64", "bool") and s == -3:
                    continue  # integers to negative integer powers: an error in PyTorch
                yield pytest.param(opname, op, tname, s, id=f"{opname}-{tname}-{s!r}")


@pytest.mark.parametrize("opname,op,tname,s", list(_scalar_cases()))
def test_scalar_promotion(opname, op, tname, s):
    a = data(tname, seed=12)
    if "s/t" in opname:
        a = np.where(a == 0, 1, a).astype(a.dtype) if tname != "bool" else np.ones_like(a)
    r = op(cr.tensor(a), s)
    if opname in ("t/s", "s/t"):
        out = tname if tname in ("float32", "float64") else "float32"
    else:
        out = expected_scalar_dtype(tname, s)
    assert r.dtype == CR[out], (opname, tname, s, r.dtype)
    # NumPy on the array already in the result's dtype (a Python scalar keeps it, NEP 50)
    with np.errstate(invalid="ignore"):  # negative ** 0.5 is nan in every library
        check_values(r, op(a.astype(NP[out]), s))
    if torch is not None:
        expected = op(torch.from_numpy(a), s).numpy()
        assert str(expected.dtype) == out  # the oracle agrees with API.md's rule
        check_values(r, expected)


@pytest.mark.parametrize("tname", ["float32", "float64"])
@pytest.mark.parametrize("s", [2, 0.1, True, 1e300], ids=repr)
def test_scalar_never_changes_float_dtype(tname, s):
    a = data(tname, seed=13)
    t = cr.tensor(a)
    for op in (operator.add, operator.mul, operator.truediv, operator.sub):
        if op is operator.sub and isinstance(s, bool):
            # PyTorch refuses subtraction with any bool operand, a Python bool included
            with pytest.raises(TypeError, match="bool"):
                op(t, s)
            continue
        r = op(t, s)
        assert r.dtype == CR[tname]
        r = op(s, t) if op is not operator.truediv else op(t, s)
        assert r.dtype == CR[tname]


def test_scalar_examples_from_api():
    i = cr.tensor([1, 2, 3])
    b = cr.tensor([True, False, True])
    f = cr.tensor([1.0, 2.0], dtype=cr.float64)
    assert (i + 0.5).dtype == cr.float32
    np.testing.assert_allclose((i + 0.5).numpy(), [1.5, 2.5, 3.5])
    assert (b * 2.5).dtype == cr.float32
    np.testing.assert_allclose((b * 2.5).numpy(), [2.5, 0.0, 2.5])
    assert (b + 1).dtype == cr.int64
    np.testing.assert_array_equal((b + 1).numpy(), [2, 1, 2])
    assert (2 * b).dtype == cr.int64
    assert (i * 3).dtype == cr.int64
    np.testing.assert_array_equal((i * 3).numpy(), [3, 6, 9])
    assert (f * 3).dtype == cr.float64
    assert (f + 0.1).dtype == cr.float64
    np.testing.assert_array_equal((f + 0.1).numpy(), np.array([1.0, 2.0]) + 0.1)  # in float64


# ---------------------------------------------------------------------------------------------
# true division, float functions, int-keeping functions
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("da,db", [("int64", "int64"), ("bool", "int64"), ("int64", "bool"),
                                   ("bool", "bool")])
def test_true_division_of_integers_is_float32(da, db):
    a = data(da, seed=14)
    b = np.ones((3,), dtype=NP[db]) if db == "bool" else np.array([2, -4, 3], dtype=np.int64)
    r = cr.tensor(a) / cr.tensor(b)
    assert r.dtype == cr.float32
    np.testing.assert_allclose(r.numpy(), (a.astype(np.float64) / b).astype(np.float32),
                               rtol=1e-6)
    r = cr.div(cr.tensor(a), cr.tensor(b))
    assert r.dtype == cr.float32


def test_true_division_int_scalar():
    i = cr.tensor([1, 2, 7])
    r = i / 2
    assert r.dtype == cr.float32
    np.testing.assert_allclose(r.numpy(), [0.5, 1.0, 3.5])
    r = 7 / i
    assert r.dtype == cr.float32
    np.testing.assert_allclose(r.numpy(), np.float32([7.0, 3.5, 1.0]))


FLOAT_FUNCS = [
    ("exp", lambda t: t.exp(), np.exp),
    ("log", lambda t: t.log(), np.log),
    ("sqrt", lambda t: t.sqrt(), np.sqrt),
    ("sigmoid", lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
    ("tanh", lambda t: t.tanh(), np.tanh),
    ("sin", lambda t: t.sin(), np.sin),
    ("cos", lambda t: t.cos(), np.cos),
    ("cr.exp", lambda t: cr.exp(t), np.exp),
    ("softmax", lambda t: t.softmax(-1),
     lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True)),
    ("log_softmax", lambda t: t.log_softmax(1),
     lambda a: a - np.log(np.exp(a).sum(1, keepdims=True))),
    ("cr.softmax", lambda t: cr.softmax(t, 0),
     lambda a: np.exp(a) / np.exp(a).sum(0, keepdims=True)),
    ("mean", lambda t: t.mean(), np.mean),
    ("mean_dim", lambda t: t.mean(0), lambda a: a.mean(0)),
    ("mean_keepdim", lambda t: t.mean(1, keepdim=True), lambda a: a.mean(1, keepdims=True)),
]


def _float_func_cases():
    for name, f, npf in FLOAT_FUNCS:
        for tname in ("int64", "bool"):
            yield pytest.param(name, f, npf, tname, id=f"{name}-{tname}")


@pytest.mark.parametrize("name,f,npf,tname", list(_float_func_cases()))
def test_float_functions_of_int_and_bool_give_float32(name, f, npf, tname):
    if tname == "int64":
        a = np.array([[1, 2, 3], [4, 5, 7]], dtype=np.int64)
    else:
        a = np.array([[True, False, True], [False, False, True]])
    r = f(cr.tensor(a))
    assert r.dtype == cr.float32
    with np.errstate(divide="ignore"):
        expected = npf(a.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(r.numpy(), expected, rtol=1e-6, atol=1e-6)


KEEP_INT = [
    ("abs", lambda t: t.abs(), np.abs),
    ("relu", lambda t: t.relu(), lambda a: np.maximum(a, 0)),
    ("clamp", lambda t: t.clamp(-2, 3), lambda a: np.clip(a, -2, 3)),
    ("clamp_min", lambda t: t.clamp(min=0), lambda a: np.maximum(a, 0)),
    ("clamp_max", lambda t: t.clamp(max=1), lambda a: np.minimum(a, 1)),
    ("sum", lambda t: t.sum(), np.sum),
    ("sum_dim", lambda t: t.sum(1), lambda a: a.sum(1)),
    ("sum_tuple_keepdim", lambda t: t.sum((0, 1), keepdim=True),
     lambda a: a.sum((0, 1), keepdims=True)),
    ("amax", lambda t: t.amax(), np.amax),
    ("amax_dim", lambda t: t.amax(0), lambda a: a.max(0)),
    ("amin", lambda t: t.amin(-1), lambda a: a.min(-1)),
    ("max", lambda t: t.max(), np.max),
    ("min", lambda t: t.min(), np.min),
    ("neg", lambda t: -t, np.negative),
    ("square", lambda t: t.square(), np.square),
    ("cr.sum", lambda t: cr.sum(t), np.sum),
]


@pytest.mark.parametrize("name,f,npf", KEEP_INT, ids=[k[0] for k in KEEP_INT])
def test_int64_kept(name, f, npf):
    a = np.array([[-4, 2, 9], [5, -1, 0]], dtype=np.int64)
    r = f(cr.tensor(a))
    assert r.dtype == cr.int64
    np.testing.assert_array_equal(r.numpy(), npf(a))


def test_large_int64_sum_is_exact():
    a = np.array([2 ** 53 + 1, 1, 2 ** 40], dtype=np.int64)
    r = cr.tensor(a).sum()
    assert r.dtype == cr.int64
    assert r.item() == int(a.sum())
    assert cr.tensor(a).amax().item() == 2 ** 53 + 1


@pytest.mark.parametrize("form", ["sum()", "sum(0)", "sum(1, keepdim=True)", "cr.sum"])
def test_bool_sum_gives_int64(form):
    a = np.array([[True, False, True], [True, True, True]])
    t = cr.tensor(a)
    r = {"sum()": lambda: t.sum(), "sum(0)": lambda: t.sum(0),
         "sum(1, keepdim=True)": lambda: t.sum(1, keepdim=True), "cr.sum": lambda: cr.sum(t)}[form]()
    assert r.dtype == cr.int64
    expected = {"sum()": a.sum(), "sum(0)": a.sum(0), "sum(1, keepdim=True)":
                a.sum(1, keepdims=True), "cr.sum": a.sum()}[form]
    np.testing.assert_array_equal(r.numpy(), expected)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
# (name, f(m, b, i, f) where m is the module: chainrule or torch, bool operands only)
BOOL_SUB_BOTH = [
    ("bool-bool", lambda m, b, i, f: b - b),
    ("sub(bool,bool)", lambda m, b, i, f: m.sub(b, b)),
    ("bool.sub(bool)", lambda m, b, i, f: b.sub(b)),
    ("-bool", lambda m, b, i, f: -b),
    ("neg(bool)", lambda m, b, i, f: m.neg(b)),
    ("bool.neg()", lambda m, b, i, f: b.neg()),
]
# one operand bool: PyTorch refuses these too ("Subtraction, the `-` operator, with a bool
# tensor is not supported")
BOOL_SUB_MIXED = [
    ("bool-int64", lambda m, b, i, f: b - i),
    ("int64-bool", lambda m, b, i, f: i - b),
    ("float-bool", lambda m, b, i, f: f - b),
    ("bool-float", lambda m, b, i, f: b - f),
    ("bool-1", lambda m, b, i, f: b - 1),
    ("1-bool", lambda m, b, i, f: 1 - b),
    ("bool-0.5", lambda m, b, i, f: b - 0.5),
    ("sub(int64,bool)", lambda m, b, i, f: m.sub(i, b)),
]


def _bool_sub_case(f):
    if torch is not None:  # the oracle: PyTorch refuses the same thing
        with pytest.raises(RuntimeError):
            f(torch, torch.tensor([True, False, True]), torch.tensor([1, 2, 3]),
              torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError):
        f(cr, cr.tensor([True, False, True]), cr.tensor([1, 2, 3]), cr.tensor([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("name,f", BOOL_SUB_BOTH, ids=[b[0] for b in BOOL_SUB_BOTH])
def test_bool_subtraction_and_negation_raise(name, f):
    _bool_sub_case(f)


@pytest.mark.parametrize("name,f", BOOL_SUB_MIXED, ids=[b[0] for b in BOOL_SUB_MIXED])
def test_bool_subtraction_with_one_bool_operand_raises(name, f):
    _bool_sub_case(f)


REQ_GRAD = [
    ("tensor_int", lambda: cr.tensor([1, 2], requires_grad=True)),
    ("tensor_bool", lambda: cr.tensor([True], requires_grad=True)),
    ("tensor_dtype_int", lambda: cr.tensor([1.0, 2.0], dtype=cr.int64, requires_grad=True)),
    ("zeros_int", lambda: cr.zeros(2, 3, dtype=cr.int64, requires_grad=True)),
    ("ones_bool", lambda: cr.ones(2, dtype=cr.bool, requires_grad=True)),
    ("requires_grad_", lambda: cr.tensor([1, 2]).requires_grad_()),
    ("requires_grad_bool", lambda: cr.tensor([True]).requires_grad_(True)),
    ("setter", lambda: setattr(cr.tensor([1, 2]), "requires_grad", True)),
    ("setter_bool", lambda: setattr(cr.tensor([False]), "requires_grad", True)),
]


@pytest.mark.parametrize("name,f", REQ_GRAD, ids=[r[0] for r in REQ_GRAD])
def test_requires_grad_on_int_or_bool_raises(name, f):
    with pytest.raises(TypeError):
        f()


def test_requires_grad_false_on_int_is_fine():
    t = cr.tensor([1, 2])
    t.requires_grad_(False)
    assert t.requires_grad is False
    t2 = cr.tensor([1, 2], requires_grad=False)
    assert t2.requires_grad is False


@pytest.mark.parametrize("tname", ["float32", "float64"])
def test_requires_grad_on_float_is_fine(tname):
    t = cr.tensor([1.0, 2.0], dtype=CR[tname], requires_grad=True)
    assert t.requires_grad and t.dtype == CR[tname]


# ---------------------------------------------------------------------------------------------
# conversions
# ---------------------------------------------------------------------------------------------
CONV_SRC = {
    "float32": np.array([-1.7, -0.5, 0.0, 0.4, 2.9, 3.0], dtype=np.float32),
    "float64": np.array([-1.7, -0.5, 0.0, 0.4, 2.9, 1e10], dtype=np.float64),
    "int64": np.array([-3, 0, 1, 7, 2 ** 40, -(2 ** 33)], dtype=np.int64),
    "bool": np.array([True, False, True, True, False, False]),
}
CONVERSIONS = [
    ("float", lambda t: t.float(), "float32"),
    ("double", lambda t: t.double(), "float64"),
    ("long", lambda t: t.long(), "int64"),
    ("bool", lambda t: t.bool(), "bool"),
    ("to(float32)", lambda t: t.to(cr.float32), "float32"),
    ("to(float64)", lambda t: t.to(cr.float64), "float64"),
    ("to(int64)", lambda t: t.to(cr.int64), "int64"),
    ("to(bool)", lambda t: t.to(cr.bool), "bool"),
    ("to(dtype=)", lambda t: t.to(dtype=cr.float64), "float64"),
    ("to(cr.long)", lambda t: t.to(cr.long), "int64"),
]
TORCH_DT = {} if torch is None else {"float32": torch.float32, "float64": torch.float64,
                                      "int64": torch.int64, "bool": torch.bool}


@pytest.mark.parametrize("src", ALL)
@pytest.mark.parametrize("name,f,out", CONVERSIONS, ids=[c[0] for c in CONVERSIONS])
def test_conversions(name, f, out, src):
    a = CONV_SRC[src]
    t = cr.tensor(a)
    r = f(t)
    assert r.dtype == CR[out]
    assert r.shape == a.shape
    check_values(r, a.astype(NP[out]))  # truncation toward zero, != 0
    if torch is not None:
        check_values(r, torch.from_numpy(a).to(TORCH_DT[out]).numpy())
    np.testing.assert_array_equal(t.numpy(), a)  # source untouched


@pytest.mark.parametrize("name,f,out", CONVERSIONS, ids=[c[0] for c in CONVERSIONS])
def test_conversion_of_non_contiguous(name, f, out):
    a = np.arange(12, dtype=np.float64).reshape(3, 4) / 3 - 2
    r = f(cr.tensor(a).T[::2])
    expected = a.T[::2].astype(NP[out])
    assert r.shape == expected.shape
    check_values(r, expected)
    if torch is not None:
        check_values(r, torch.from_numpy(a).T[::2].to(TORCH_DT[out]).numpy())


def test_conversion_to_same_dtype_keeps_values_and_grad():
    t = cr.tensor([1.5, 2.5], requires_grad=True)
    r = t.float()
    assert r.dtype == cr.float32
    np.testing.assert_array_equal(r.numpy(), [1.5, 2.5])
    d = t.double()
    assert d.requires_grad  # conversion between floats is differentiable
    d.sum().backward()
    assert t.grad is not None and t.grad.dtype == cr.float32
    np.testing.assert_array_equal(t.grad.numpy(), [1.0, 1.0])


# ---------------------------------------------------------------------------------------------
# dtype inference at creation
# ---------------------------------------------------------------------------------------------
INFER = [
    ("float", 1.5, "float32"),
    ("int", 3, "int64"),
    ("bool", True, "bool"),
    ("float list", [1.0, 2.5], "float32"),
    ("int list", [1, 2, 3], "int64"),
    ("bool list", [True, False], "bool"),
    ("nested floats", [[1.0, 2.0], [3.0, 4.0]], "float32"),
    ("nested ints", [[1, 2], [3, 4]], "int64"),
    ("mixed int float", [1, 2.5], "float32"),
    ("np float32", np.array([1.0, 2.0], dtype=np.float32), "float32"),
    ("np float64", np.array([1.0, 2.0], dtype=np.float64), "float64"),
    ("np int64", np.array([1, 2], dtype=np.int64), "int64"),
    ("np bool", np.array([True, False]), "bool"),
    ("np int32", np.array([1, -2], dtype=np.int32), "int64"),
    ("np int16", np.array([1, -2], dtype=np.int16), "int64"),
    ("np int8", np.array([1, -2], dtype=np.int8), "int64"),
    ("np uint8", np.array([1, 255], dtype=np.uint8), "int64"),
    ("np uint16", np.array([1, 65535], dtype=np.uint16), "int64"),
    ("np uint32", np.array([1, 2 ** 32 - 1], dtype=np.uint32), "int64"),
    ("np 0-d float64", np.array(2.5), "float64"),
    ("np 2-d int32", np.arange(6, dtype=np.int32).reshape(2, 3), "int64"),
]


@pytest.mark.parametrize("name,value,out", INFER, ids=[i[0] for i in INFER])
def test_tensor_dtype_inference(name, value, out):
    t = cr.tensor(value)
    assert t.dtype == CR[out]
    expected = np.asarray(value).astype(NP[out])
    assert t.shape == expected.shape
    check_values(t, expected)


def test_tensor_numpy_non_contiguous_and_copy():
    a = np.arange(12, dtype=np.int32).reshape(3, 4).T
    t = cr.tensor(a)
    assert t.dtype == cr.int64
    np.testing.assert_array_equal(t.numpy(), a)
    b = np.arange(4, dtype=np.float32)
    t = cr.tensor(b)
    b[0] = 100  # cr.tensor copies
    assert t.numpy()[0] == 0


@pytest.mark.parametrize("dt", ALL)
@pytest.mark.parametrize("value", [[1, 0, 2], [1.5, 0.0, -2.0], [True, False, True]], ids=str)
def test_tensor_explicit_dtype(value, dt):
    t = cr.tensor(value, dtype=CR[dt])
    assert t.dtype == CR[dt]
    check_values(t, np.array(value).astype(NP[dt]))
    if torch is not None:
        check_values(t, torch.tensor(value, dtype=TORCH_DT[dt]).numpy())


FULL = [
    (1.5, "float32"),
    (2, "int64"),
    (-7, "int64"),
    (True, "bool"),
    (False, "bool"),
    (0.0, "float32"),
]


@pytest.mark.parametrize("value,out", FULL, ids=repr)
def test_full_dtype_from_value(value, out):
    t = cr.full((2, 3), value)
    assert t.dtype == CR[out]
    assert t.shape == (2, 3)
    check_values(t, np.full((2, 3), value, dtype=NP[out]))


@pytest.mark.parametrize("dt", ALL)
def test_full_explicit_dtype(dt):
    t = cr.full((3,), 2, dtype=CR[dt])
    assert t.dtype == CR[dt]
    check_values(t, np.full(3, 2, dtype=NP[dt]))


ARANGE = [
    ((5,), {}, "int64"),
    ((2, 7), {}, "int64"),
    ((0, 10, 3), {}, "int64"),
    ((5, 0, -2), {}, "int64"),
    ((5.0,), {}, "float32"),
    ((0, 2.5), {}, "float32"),
    ((0, 2, 0.5), {}, "float32"),
    ((1.5, 4), {}, "float32"),
    ((1, 0, -0.25), {}, "float32"),
    ((5,), {"dtype": cr.float64}, "float64"),
    ((0, 3, 0.5), {"dtype": cr.float64}, "float64"),
    ((4,), {"dtype": cr.float32}, "float32"),
]


@pytest.mark.parametrize("args,kw,out", ARANGE, ids=str)
def test_arange_dtype(args, kw, out):
    t = cr.arange(*args, **kw)
    assert t.dtype == CR[out]
    check_values(t, np.arange(*args, dtype=NP[out]))
    if torch is not None:
        check_values(t, torch.arange(*args, dtype=TORCH_DT[out]).numpy())


def test_arange_keywords():
    t = cr.arange(0, 10, step=2)
    assert t.dtype == cr.int64
    np.testing.assert_array_equal(t.numpy(), [0, 2, 4, 6, 8])
    t = cr.arange(5, dtype=cr.float64)
    assert t.dtype == cr.float64
    np.testing.assert_array_equal(t.numpy(), [0, 1, 2, 3, 4])


def test_arange_stop_keyword():
    t = cr.arange(1, stop=4)
    assert t.dtype == cr.int64
    np.testing.assert_array_equal(t.numpy(), [1, 2, 3])
    t = cr.arange(start=0.0, stop=1.0, step=0.5)
    assert t.dtype == cr.float32
    np.testing.assert_array_equal(t.numpy(), [0.0, 0.5])


@pytest.mark.parametrize("dt", ALL)
def test_creation_dtype_keywords(dt):
    for f in (cr.zeros, cr.ones, cr.empty):
        t = f(2, 3, dtype=CR[dt])
        assert t.dtype == CR[dt] and t.shape == (2, 3)
    np.testing.assert_array_equal(cr.ones(2, dtype=CR[dt]).numpy(), np.ones(2, dtype=NP[dt]))
    base = cr.tensor(data(dt))
    assert cr.zeros_like(base).dtype == CR[dt]
    assert cr.ones_like(base).dtype == CR[dt]
