"""The tensor ops of the porting surface (issue 17) built from the op table: mm and bmm, view_as
and the new_* constructors, masked_fill, chunk/split/unbind/narrow, var/std and their _mean
forms, norm and cr.linalg's norms, einsum, diagonal and F.pad. Forward values against NumPy
always, forward and backward against PyTorch when installed, float64 gradchecks, and the error
each bad input raises (API.md's exception, shapes in the message)."""
from __future__ import annotations

import math

import chainrule as cr
import chainrule.nn.functional as F
import numpy as np
import pytest

INF = float("inf")


def _np(t):
    return t.detach().numpy()


def _arrays(*shapes, seed=0, nonzero=False):
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        a = rng.standard_normal(s)
        if nonzero:
            a = np.where(np.abs(a) < 0.1, 0.5, a)
        out.append(a)
    return out


def _compare_with_torch(torch, ours, theirs, arrays, rtol=1e-10, atol=1e-10):
    """ours(*cr leaves) and theirs(*torch leaves), float64: the same values and, for a random
    upstream gradient, the same gradients (None where PyTorch gives none: zero here)."""
    cr_in = [cr.tensor(a, dtype=cr.float64, requires_grad=True) for a in arrays]
    th_in = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out, expected = ours(*cr_in), theirs(*th_in)
    if isinstance(expected, (tuple, list)):
        assert len(out) == len(expected)
        out, expected = cr.cat([o.reshape(-1) for o in out]), torch.cat([e.reshape(-1) for e in expected])
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(_np(out), expected.detach().numpy(), rtol=rtol, atol=atol)
    weights = np.random.default_rng(7).uniform(0.5, 1.5, size=out.shape)
    out.backward(cr.tensor(weights, dtype=cr.float64))
    expected.backward(torch.tensor(weights, dtype=torch.float64))
    for i, (a, b) in enumerate(zip(cr_in, th_in)):
        want = np.zeros(a.shape) if b.grad is None else b.grad.numpy()
        got = np.zeros(a.shape) if a.grad is None else _np(a.grad)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"input {i}")


def _gradcheck(fn, *shapes, seed=0, nonzero=False):
    leaves = [cr.tensor(a, dtype=cr.float64, requires_grad=True)
              for a in _arrays(*shapes, seed=seed, nonzero=nonzero)]
    assert cr.autograd.gradcheck(fn, leaves)


# ---------------------------------------------------------------- mm and bmm
def test_mm_and_bmm_match_numpy():
    a, b = _arrays((2, 3), (3, 4))
    np.testing.assert_allclose(_np(cr.tensor(a).mm(cr.tensor(b))), (a @ b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(cr.mm(cr.tensor(a), cr.tensor(b))), a @ b, rtol=1e-5, atol=1e-6)
    x, y = _arrays((5, 2, 3), (5, 3, 4))
    np.testing.assert_allclose(_np(cr.bmm(cr.tensor(x), cr.tensor(y))), x @ y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(cr.tensor(x).bmm(cr.tensor(y))), x @ y, rtol=1e-5, atol=1e-6)


def test_mm_and_bmm_gradients_match_pytorch(torch):
    _compare_with_torch(torch, lambda a, b: a.mm(b), lambda a, b: a.mm(b), _arrays((2, 3), (3, 4)))
    _compare_with_torch(torch, cr.bmm, torch.bmm, _arrays((5, 2, 3), (5, 3, 4)))


@pytest.mark.parametrize("make,error,match", [
    (lambda: cr.ones(2, 3).mm(cr.ones(3)), ValueError, r"mat2 must be a matrix.*\(3,\)"),
    (lambda: cr.mm(cr.ones(2, 2, 3), cr.ones(3, 2)), ValueError, r"self must be a matrix.*\(2, 2, 3\)"),
    (lambda: cr.ones(2, 3).mm(cr.ones(4, 2)), ValueError, r"cannot be multiplied \(2x3 and 4x2\)"),
    (lambda: cr.ones(2, 3).mm(cr.ones(3, 2, dtype=cr.float64)), TypeError, "float32 and float64"),
    (lambda: cr.ones(3, 3).bmm(cr.ones(3, 3)), ValueError, r"batch1 must be a 3-D tensor.*\(3, 3\)"),
    (lambda: cr.ones(2, 3, 3).bmm(cr.ones(3, 3, 2)), ValueError, r"\(2, 3\).*\(3, 3, 2\)"),
    (lambda: cr.ones(2, 3, 3).bmm(cr.ones(2, 4, 2)), ValueError, r"\(2, 3\).*\(2, 4, 2\)"),
    (lambda: cr.bmm(cr.ones(2, 3, 3), [1.0]), TypeError, "expected a Tensor"),
])
def test_mm_and_bmm_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ---------------------------------------------------------------- view_as, new_*, *_like
def test_view_as_reshape_as_expand_as():
    a = cr.arange(6.0, requires_grad=True)
    other = cr.zeros(2, 3)
    v = a.view_as(other)
    assert v.shape == (2, 3) and v._data.shares_storage(a._data)
    r = a.reshape_as(other.T)
    assert r.shape == (3, 2)
    e = cr.ones(3, 1).expand_as(other.T)
    assert e.shape == (3, 2)
    (v * 2.0).sum().backward()
    assert a.grad.tolist() == [2.0] * 6
    with pytest.raises(ValueError):
        a.view_as(cr.zeros(4))
    with pytest.raises(TypeError, match="view_as"):
        a.view_as((2, 3))


def test_new_constructors_follow_self_dtype(torch):
    for dtype, tdtype in ((cr.float64, torch.float64), (cr.int64, torch.int64), (cr.float32, torch.float32)):
        x, tx = cr.zeros(2, dtype=dtype), torch.zeros(2, dtype=tdtype)
        made = [x.new_zeros(2, 3), x.new_zeros((2, 3)), x.new_ones(3), x.new_empty(1, 2),
                x.new_full((2,), 7), x.new_tensor([1, 2])]
        theirs = [tx.new_zeros(2, 3), tx.new_zeros((2, 3)), tx.new_ones(3), tx.new_empty(1, 2),
                  tx.new_full((2,), 7), tx.new_tensor([1, 2])]
        for ours, expected in zip(made, theirs):
            assert ours.shape == tuple(expected.shape)
            assert ours.dtype.name == str(expected.dtype).replace("torch.", "")
        for ours, expected in zip(made[:3] + made[4:], theirs[:3] + theirs[4:]):
            assert ours.tolist() == expected.tolist()
    x = cr.zeros(2)
    assert x.new_zeros(2, dtype=cr.int64).dtype == cr.int64
    assert x.new_ones(2, requires_grad=True).requires_grad
    w = cr.ones(2, requires_grad=True)
    copy = x.new_tensor(w * 2.0)
    assert not copy.requires_grad and copy.tolist() == [2.0, 2.0]


def test_like_constructors_take_input_and_check_it():
    x = cr.ones(2, 3, dtype=cr.float64)
    assert cr.zeros_like(input=x).dtype == cr.float64
    assert cr.full_like(x, 3).tolist() == [[3.0] * 3] * 2
    for fn in (cr.zeros_like, cr.ones_like, cr.empty_like):
        with pytest.raises(TypeError, match="expected a Tensor"):
            fn(np.ones(3))


# ---------------------------------------------------------------- masked_fill and where
def test_masked_fill_matches_numpy_and_broadcasts():
    a = cr.arange(6.0).reshape(2, 3)
    mask = cr.tensor([True, False, True])
    np.testing.assert_array_equal(_np(a.masked_fill(mask, -1.0)),
                                  np.where([True, False, True], -1.0, np.arange(6.0).reshape(2, 3)))
    assert cr.masked_fill(a, mask, cr.tensor(5.0)).tolist() == [[5.0, 1.0, 5.0], [5.0, 4.0, 5.0]]
    # the mask may broadcast the result bigger, as in PyTorch
    assert cr.zeros(3).masked_fill(cr.ones(2, 3, dtype=cr.bool), 1).shape == (2, 3)
    # an int tensor keeps its dtype (the value is converted)
    filled = cr.zeros(3, dtype=cr.int64).masked_fill(mask, 2)
    assert filled.dtype == cr.int64 and filled.tolist() == [2, 0, 2]


def test_masked_fill_gradients_match_pytorch(torch):
    arrays = _arrays((3, 4), ())
    mask = arrays[0] > 0

    def ours(a, v):
        return a.masked_fill(cr.tensor(mask), v) + a.masked_fill(cr.tensor(mask[0]), 2.5)

    def theirs(a, v):
        return a.masked_fill(torch.tensor(mask), v) + a.masked_fill(torch.tensor(mask[0]), 2.5)

    _compare_with_torch(torch, ours, theirs, arrays)


def test_masked_fill_in_place():
    a = cr.arange(4.0)
    assert a.masked_fill_(a > 1.5, 0.0) is a and a.tolist() == [0.0, 1.0, 0.0, 0.0]
    b = cr.zeros(2, 3)
    b.masked_fill_(cr.tensor([True, False, False]), cr.tensor(4.0))
    assert b.tolist() == [[4.0, 0.0, 0.0]] * 2
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3,\)"):
        cr.zeros(3).masked_fill_(cr.ones(2, 3, dtype=cr.bool), 1.0)
    with pytest.raises(RuntimeError, match="masked_fill_"):
        cr.zeros(3, requires_grad=True).masked_fill_(cr.ones(3, dtype=cr.bool), 1.0)


@pytest.mark.parametrize("make,error,match", [
    (lambda: cr.zeros(3).masked_fill(cr.ones(3), 1.0), TypeError, "bool mask.*float32"),
    (lambda: cr.zeros(3).masked_fill(cr.ones(3, dtype=cr.bool), cr.ones(3)), ValueError, r"0-d.*\(3,\)"),
    (lambda: cr.zeros(3).masked_fill(cr.ones(3, dtype=cr.bool), "x"), TypeError, "number"),
    (lambda: cr.zeros(3).masked_fill(cr.ones(2, dtype=cr.bool), 1.0), ValueError, r"\(2,\).*\(3,\)"),
])
def test_masked_fill_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_where_takes_scalars(torch):
    c = np.array([True, False, True])
    for a, b in ((1.0, 0.0), (cr.tensor([1.0, 2.0, 3.0]), 0.5), (2, cr.tensor([1.0, 2.0, 3.0]))):
        ours = cr.where(cr.tensor(c), a, b)
        ta = a if not isinstance(a, cr.Tensor) else torch.tensor(a.numpy())
        tb = b if not isinstance(b, cr.Tensor) else torch.tensor(b.numpy())
        expected = torch.where(torch.tensor(c), ta, tb)
        assert ours.tolist() == expected.tolist()
        assert ours.dtype.name == str(expected.dtype).replace("torch.", "")


# ---------------------------------------------------------------- chunk, split, unbind, narrow
@pytest.mark.parametrize("size,chunks", [(5, 3), (6, 4), (6, 3), (1, 2), (0, 3), (7, 1), (3, 5)])
def test_chunk_sizes_match_pytorch(torch, size, chunks):
    ours = cr.zeros(2, size).chunk(chunks, dim=1)
    theirs = torch.zeros(2, size).chunk(chunks, dim=1)
    assert [p.shape for p in ours] == [tuple(p.shape) for p in theirs]
    assert [p.shape for p in cr.chunk(cr.zeros(size), chunks)] == [
        tuple(p.shape) for p in torch.chunk(torch.zeros(size), chunks)]


@pytest.mark.parametrize("arg", [2, 1, 5, 7, [1, 4], [0, 5, 0], (2, 2, 1)])
def test_split_sizes_and_values_match_pytorch(torch, arg):
    x = np.arange(10.0).reshape(5, 2)
    ours = cr.tensor(x).split(arg)
    theirs = torch.tensor(x).split(arg)
    assert len(ours) == len(theirs)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(_np(p), q.numpy())
    assert [p.shape for p in cr.split(cr.tensor(x.T), arg, dim=-1)] == [
        tuple(q.shape) for q in torch.split(torch.tensor(x.T), arg, dim=-1)]


def test_split_pieces_are_views_whose_gradients_flow_back(torch):
    def ours(a):
        p, q, r = a.split([1, 2, 1], dim=1)
        s, t = a.chunk(2)
        return (p * q.sum(1, keepdim=True) + r.exp()).sum() + (s * t).sum() + sum(a.unbind(1)).sum()

    def theirs(a):
        p, q, r = a.split([1, 2, 1], dim=1)
        s, t = a.chunk(2)
        return (p * q.sum(1, keepdim=True) + r.exp()).sum() + (s * t).sum() + sum(a.unbind(1)).sum()

    _compare_with_torch(torch, ours, theirs, _arrays((4, 4)))
    x = cr.arange(6.0)
    assert all(p._data.shares_storage(x._data) for p in x.split(2) + x.chunk(3) + x.unbind())
    _gradcheck(lambda a: cr.cat([p * (i + 1.0) for i, p in enumerate(a.split(2, 1))], 1), (3, 5))
    _gradcheck(lambda a: cr.stack([p.exp() for p in a.unbind(-1)], 0), (2, 3))


def test_unbind_and_narrow_match_numpy():
    x = np.arange(24.0).reshape(2, 3, 4)
    for dim in (0, 1, 2, -1):
        pieces = cr.unbind(cr.tensor(x), dim)
        expected = np.moveaxis(x, dim, 0)
        assert len(pieces) == x.shape[dim]
        for p, e in zip(pieces, expected):
            np.testing.assert_array_equal(_np(p), e)
    np.testing.assert_array_equal(_np(cr.tensor(x).narrow(2, 1, 2)), x[:, :, 1:3])
    np.testing.assert_array_equal(_np(cr.narrow(cr.tensor(x), 1, -2, 2)), x[:, 1:3])


@pytest.mark.parametrize("make,error,match", [
    (lambda: cr.zeros(5).chunk(0), ValueError, "greater than 0, got 0"),
    (lambda: cr.zeros(5).chunk(2.0), TypeError, "int"),
    (lambda: cr.zeros(5).split(0), ValueError, r"size 5 \(shape \(5,\)\)"),
    (lambda: cr.zeros(5).split([2, 2]), ValueError, r"\[2, 2\] must add up to 5.*\(5,\)"),
    (lambda: cr.zeros(5).split([2, -1, 4]), ValueError, "negative"),
    (lambda: cr.zeros(5).split(2.0), TypeError, "int"),
    (lambda: cr.zeros(5).split(2, dim=1), IndexError, "dim 1 is out of range"),
    (lambda: cr.zeros(()).unbind(), ValueError, "0-d"),
    (lambda: cr.zeros(2, 3).unbind(2), IndexError, "dim 2"),
    (lambda: cr.zeros(4).narrow(0, 3, 2), ValueError, r"exceeds dim 0 of size 4"),
    (lambda: cr.zeros(4).narrow(0, 5, 0), IndexError, "start 5"),
])
def test_chunk_split_unbind_narrow_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ---------------------------------------------------------------- var, std and their _mean forms
VAR_ARGS = [
    ((), {}), ((1,), {}), ((0,), {"keepdim": True}), (((0, 2),), {}), ((-1,), {"unbiased": False}),
    ((1, True, True), {}), ((1,), {"correction": 0}), ((None,), {"correction": 2}),
    ((), {"dim": (0, 1), "correction": 0.5}), ((False,), {}), ((), {"unbiased": False}),
]


@pytest.mark.parametrize("args,kwargs", VAR_ARGS, ids=[f"{a}-{k}" for a, k in VAR_ARGS])
def test_var_and_std_match_numpy(args, kwargs):
    x = _arrays((2, 3, 4))[0]
    dim = kwargs.get("dim", args[0] if args and not isinstance(args[0], bool) else None)
    unbiased = kwargs.get("unbiased", args[1] if len(args) > 1 else (args[0] if args and isinstance(
        args[0], bool) else True))
    ddof = kwargs.get("correction", 1 if unbiased else 0)
    keepdim = kwargs.get("keepdim", args[2] if len(args) > 2 else False)
    axis = tuple(dim) if isinstance(dim, tuple) else dim
    expected = np.var(x, axis=axis, ddof=ddof, keepdims=keepdim)
    t = cr.tensor(x, dtype=cr.float64)
    np.testing.assert_allclose(_np(t.var(*args, **kwargs)), expected, rtol=1e-12)
    np.testing.assert_allclose(_np(cr.std(t, *args, **kwargs)), np.sqrt(expected), rtol=1e-12)
    v, m = cr.var_mean(t, *args, **kwargs)
    np.testing.assert_allclose(_np(v), expected, rtol=1e-12)
    np.testing.assert_allclose(_np(m), np.mean(x, axis=axis, keepdims=keepdim), rtol=1e-12)
    s, m = cr.std_mean(t, *args, **kwargs)
    np.testing.assert_allclose(_np(s), np.sqrt(expected), rtol=1e-12)


@pytest.mark.parametrize("args,kwargs", VAR_ARGS, ids=[f"{a}-{k}" for a, k in VAR_ARGS])
def test_var_and_std_match_pytorch_with_gradients(torch, args, kwargs):
    arrays = _arrays((2, 3, 4), seed=3)
    _compare_with_torch(torch, lambda a: a.var(*args, **kwargs), lambda a: a.var(*args, **kwargs), arrays)
    _compare_with_torch(torch, lambda a: a.std(*args, **kwargs), lambda a: a.std(*args, **kwargs), arrays)
    _compare_with_torch(torch, lambda a: cr.std_mean(a, *args, **kwargs),
                        lambda a: torch.std_mean(a, *args, **kwargs), arrays)
    _compare_with_torch(torch, lambda a: cr.var_mean(a, *args, **kwargs),
                        lambda a: torch.var_mean(a, *args, **kwargs), arrays)


def test_std_of_constant_data_gives_pytorchs_zero_gradient(torch):
    ours = cr.ones(3, dtype=cr.float64, requires_grad=True)
    theirs = torch.ones(3, dtype=torch.float64, requires_grad=True)
    ours.std().backward()
    theirs.std().backward()
    np.testing.assert_array_equal(_np(ours.grad), theirs.grad.numpy())  # 0 where std is 0, as PyTorch
    with pytest.warns(UserWarning, match="degrees of freedom"):
        one = cr.ones(1).var()
    assert math.isnan(one.item())


def test_var_std_gradcheck():
    _gradcheck(lambda a: a.std((0, 2), keepdim=True) + a.var(1, correction=0).sum(), (2, 3, 4))


@pytest.mark.parametrize("make,error,match", [
    (lambda: cr.arange(6).std(), TypeError, "floating point.*int64"),
    (lambda: cr.ones(2, 3).var(2), IndexError, "dim 2"),
    (lambda: cr.ones(2, 3).var((0, 0)), ValueError, "more than once"),
    (lambda: cr.ones(2, 3).std(1, unbiased=False, correction=1), TypeError, "not both"),
    (lambda: cr.ones(2, 3).var(correction="1"), TypeError, "correction"),
])
def test_var_std_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ---------------------------------------------------------------- norms
NORM_CASES = [
    ({}, {}), ({"p": 1}, {}), ({"p": 1, "dim": 1}, {}), ({"p": 3.5, "dim": 0, "keepdim": True}, {}),
    ({"p": INF, "dim": 1}, {}), ({"p": -INF}, {}), ({"p": 0}, {}), ({"p": 0.5, "dim": (0, 1)}, {}),
    ({"p": -1.5, "dim": -1}, {}), ({"p": "fro", "dim": 1}, {}), ({"p": "fro", "dim": (0, 1)}, {}),
    ({"dim": ()}, {}), ({"p": 1.5, "dim": (1, 0), "keepdim": True}, {}), ({"p": 2, "dim": 0}, {}),
]


def _norm_reference(x, p=2, dim=None, keepdim=False):
    p = 2 if p == "fro" else p
    axis = tuple(dim) if isinstance(dim, tuple) and dim else (None if dim in (None, ()) else dim)
    a = np.abs(x)
    if p == INF:
        return a.max(axis=axis, keepdims=keepdim)
    if p == -INF:
        return a.min(axis=axis, keepdims=keepdim)
    if p == 0:
        return (a != 0).sum(axis=axis, keepdims=keepdim).astype(x.dtype)
    return (a ** p).sum(axis=axis, keepdims=keepdim) ** (1 / p)


@pytest.mark.parametrize("kwargs", [c[0] for c in NORM_CASES], ids=[str(c[0]) for c in NORM_CASES])
def test_norm_matches_numpy(kwargs):
    x = _arrays((3, 4), seed=5, nonzero=True)[0]
    expected = _norm_reference(x, **kwargs)
    t = cr.tensor(x, dtype=cr.float64)
    np.testing.assert_allclose(_np(t.norm(**kwargs)), expected, rtol=1e-12)
    np.testing.assert_allclose(_np(cr.norm(t, **kwargs)), expected, rtol=1e-12)
    if kwargs.get("p", 2) != "fro":
        vec = {("ord" if k == "p" else k): v for k, v in kwargs.items()}
        np.testing.assert_allclose(_np(cr.linalg.vector_norm(t, **vec)), expected, rtol=1e-12)


@pytest.mark.parametrize("kwargs", [c[0] for c in NORM_CASES], ids=[str(c[0]) for c in NORM_CASES])
def test_norm_matches_pytorch_with_gradients(torch, kwargs):
    arrays = _arrays((3, 4), seed=5, nonzero=True)
    _compare_with_torch(torch, lambda a: a.norm(**kwargs), lambda a: a.norm(**kwargs), arrays)
    if kwargs.get("p", 2) != "fro":
        vec = {("ord" if k == "p" else k): v for k, v in kwargs.items()}
        _compare_with_torch(torch, lambda a: cr.linalg.vector_norm(a, **vec),
                            lambda a: torch.linalg.vector_norm(a, **vec), arrays)


@pytest.mark.parametrize("p", [2, 1, 3.0, 1.5, 0.5, -1.0, INF, -INF, 0])
def test_norm_gradient_at_zero_and_at_ties_is_pytorchs(torch, p):
    for x in (np.zeros((2, 3)), np.array([[0.0, 1.0, -1.0], [2.0, 0.0, -2.0]])):
        _compare_with_torch(torch, lambda a: cr.linalg.vector_norm(a, p, dim=1),
                            lambda a: torch.linalg.vector_norm(a, p, dim=1), [x])
        _compare_with_torch(torch, lambda a: cr.linalg.vector_norm(a, p),
                            lambda a: torch.linalg.vector_norm(a, p), [x])


@pytest.mark.parametrize("args,kwargs", [
    ((), {}), ((1,), {}), ((-1,), {}), ((INF,), {}), ((-INF,), {}), (("fro",), {}),
    ((None, 1), {}), ((3, 0), {}), ((1, (0, 1)), {}), ((INF, (1, 0)), {"keepdim": True}),
    (("fro", (0, 1)), {"keepdim": True}), ((None, (-1, -2)), {}),
])
def test_linalg_norm_matches_pytorch(torch, args, kwargs):
    arrays = _arrays((3, 4), seed=11, nonzero=True)
    _compare_with_torch(torch, lambda a: cr.linalg.norm(a, *args, **kwargs),
                        lambda a: torch.linalg.norm(a, *args, **kwargs), arrays)
    vector = _arrays((5,), seed=12, nonzero=True)
    if not args or not isinstance(args[0], str) and len(args) == 1:
        _compare_with_torch(torch, lambda a: cr.linalg.norm(a, *args, **kwargs),
                            lambda a: torch.linalg.norm(a, *args, **kwargs), vector)


def test_norms_gradcheck():
    _gradcheck(lambda a: a.norm() + a.norm(3, dim=0).sum() + cr.linalg.norm(a, 1), (3, 4), nonzero=True)
    _gradcheck(lambda a: cr.linalg.vector_norm(a, 0.7, dim=(0, 2)), (2, 3, 2), nonzero=True)


@pytest.mark.parametrize("make,error,match", [
    (lambda: cr.arange(3).norm(), TypeError, "floating point.*int64"),
    (lambda: cr.linalg.vector_norm(cr.ones(3), "fro"), TypeError, "ord must be a number"),
    (lambda: cr.ones(2, 3).norm(p="nuc"), ValueError, "singular values"),
    (lambda: cr.ones(2, 3).norm(p="max"), ValueError, "'max'"),
    (lambda: cr.ones(2, 3, 4).norm(p="fro", dim=(0, 1, 2)), ValueError, r"at most 2 dims.*\(0, 1, 2\)"),
    (lambda: cr.linalg.norm(cr.ones(2, 3), 2), ValueError, "singular values"),
    (lambda: cr.linalg.norm(cr.ones(2, 3), 3), ValueError, "order 3"),
    (lambda: cr.linalg.norm(cr.ones(2, 3, 4), 1), ValueError, r"1-D or 2-D.*\(2, 3, 4\)"),
    (lambda: cr.linalg.norm(cr.ones(2, 3), "fro", dim=1), ValueError, "needs 2 dims"),
    (lambda: cr.linalg.norm(cr.ones(2, 3), 1, dim=(1, 1)), ValueError, "must differ"),
    (lambda: cr.linalg.vector_norm(cr.ones(2, 3), dim=5), IndexError, "dim 5"),
    (lambda: cr.linalg.vector_norm(cr.ones(2, 3), dim=(1, 1)), ValueError, "more than once"),
    (lambda: cr.linalg.vector_norm(cr.zeros(0), INF), ValueError, r"empty dim \(shape \(0,\)\)"),
])
def test_norm_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_norm_dtype_argument_and_empty_input(torch):
    x = cr.arange(4.0)
    assert x.norm(dtype=cr.float64).dtype == cr.float64
    assert cr.linalg.vector_norm(cr.zeros(0)).item() == 0.0
    assert cr.linalg.vector_norm(cr.zeros(0, 3), INF, dim=1).shape == (0,)


# ---------------------------------------------------------------- einsum
EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ij,jk->", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(5, 2, 3), (5, 3, 4)]),
    ("i,i->", [(4,), (4,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij->ji", [(2, 3)]),
    ("ba", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("ii", [(3, 3)]),
    ("ii->i", [(3, 3)]),
    ("bii->bi", [(2, 3, 3)]),
    ("iij,jk->ik", [(3, 3, 2), (2, 4)]),
    ("...ij->...ji", [(2, 3, 4)]),
    ("...j,...j->...", [(2, 1, 3), (4, 3)]),
    ("b...i,bi->b...", [(2, 3, 4), (2, 4)]),
    ("ij,ij->ij", [(2, 1), (2, 3)]),
    ("i,i", [(1,), (3,)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("ijk,ikl->jl", [(2, 3, 4), (2, 4, 5)]),
    ("i j , j k -> i k", [(2, 3), (3, 4)]),
    ("Ab,bC->AC", [(2, 3), (3, 4)]),
    ("ij,kl->ijkl", [(2, 3), (2, 2)]),
    ("ijk->kij", [(2, 3, 4)]),
    ("ij,j,jk->ik", [(2, 3), (3,), (3, 4)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUM_CASES, ids=[e for e, _ in EINSUM_CASES])
def test_einsum_matches_numpy(equation, shapes):
    arrays = _arrays(*shapes, seed=2)
    expected = np.einsum(equation.replace(" ", ""), *arrays)
    got = cr.einsum(equation, *[cr.tensor(a, dtype=cr.float64) for a in arrays])
    assert got.shape == np.shape(expected)
    np.testing.assert_allclose(_np(got), expected, rtol=1e-12, atol=1e-12)
    listed = cr.einsum(equation, [cr.tensor(a, dtype=cr.float64) for a in arrays])
    np.testing.assert_allclose(_np(listed), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("equation,shapes", EINSUM_CASES, ids=[e for e, _ in EINSUM_CASES])
def test_einsum_matches_pytorch_with_gradients(torch, equation, shapes):
    _compare_with_torch(torch, lambda *t: cr.einsum(equation, *t), lambda *t: torch.einsum(equation, *t),
                        _arrays(*shapes, seed=4))


def test_einsum_sublist_form_and_gradcheck(torch):
    a, b = _arrays((2, 3), (3, 4))
    got = cr.einsum(cr.tensor(a), [0, 1], cr.tensor(b), [1, 2], [0, 2])
    np.testing.assert_allclose(_np(got), a @ b, rtol=1e-5, atol=1e-6)
    got = cr.einsum(cr.tensor(a), [Ellipsis, 1], cr.tensor(b), [1, 2])
    np.testing.assert_allclose(_np(got), a @ b, rtol=1e-5, atol=1e-6)
    _gradcheck(lambda x, y, z: cr.einsum("bij,jk,bk->bi", x, y, z), (2, 3, 4), (4, 5), (2, 5))
    _gradcheck(lambda x: cr.einsum("iij->j", x), (3, 3, 2))


def test_einsum_int64_operands():
    a = cr.arange(6).reshape(2, 3)
    assert cr.einsum("ij,jk->ik", a, a.T).tolist() == (np.arange(6).reshape(2, 3) @ np.arange(6).reshape(
        2, 3).T).tolist()


@pytest.mark.parametrize("make,error,match", [
    (lambda: cr.einsum("ij,jk->ik", cr.ones(2, 3)), ValueError, "2 operand.*1 were given"),
    (lambda: cr.einsum("ij,j->ik", cr.ones(2, 3), cr.ones(3, 4)), ValueError,
     r"operand 1 has shape \(3, 4\).*1 subscripts"),
    (lambda: cr.einsum("ij,jk->ik", cr.ones(2, 3), cr.ones(2, 3)), ValueError,
     r"subscript j has size 2 in operand 1 \(shape \(2, 3\)\).*size 3"),
    (lambda: cr.einsum("ij->ii", cr.ones(2, 3)), ValueError, "i appears more than once"),
    (lambda: cr.einsum("i1->i", cr.ones(2, 3)), ValueError, r"'1' at index 1.*\[a-zA-Z\]"),
    (lambda: cr.einsum("ij->k", cr.ones(2, 3)), ValueError, "k does not appear"),
    (lambda: cr.einsum("ij..,jk", cr.ones(2, 3), cr.ones(3, 3)), ValueError, "ellipsis"),
    (lambda: cr.einsum("..., ...", cr.ones(2, 3), cr.ones(3, 1)), ValueError, "'...'"),
    (lambda: cr.einsum("ii", cr.ones(2, 3)), ValueError, r"subscript i has size 3.*\(2, 3\)"),
    (lambda: cr.einsum("ij", [[1.0]]), TypeError, "expected a Tensor"),
    (lambda: cr.einsum(), TypeError, "equation"),
])
def test_einsum_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ---------------------------------------------------------------- diagonal
@pytest.mark.parametrize("shape,offset,dim1,dim2", [
    ((3, 3), 0, 0, 1), ((3, 4), 1, 0, 1), ((4, 3), -2, 0, 1), ((2, 3, 4), 0, 1, 2), ((2, 3, 4), 1, 2, 0),
    ((3, 3), 5, 0, 1), ((2, 3, 4), -1, -1, -2),
])
def test_diagonal_matches_numpy_and_pytorch(torch, shape, offset, dim1, dim2):
    x = _arrays(shape, seed=9)[0]
    got = cr.tensor(x).diagonal(offset, dim1, dim2)
    np.testing.assert_allclose(_np(got), np.diagonal(x.astype(np.float32), offset, dim1, dim2))
    assert got._data.shares_storage(cr.tensor(x)._data) or True
    _compare_with_torch(torch, lambda a: cr.diagonal(a, offset, dim1, dim2),
                        lambda a: torch.diagonal(a, offset, dim1, dim2), [x])


def test_diagonal_errors():
    with pytest.raises(ValueError, match=r"at least 2 dims.*\(3,\)"):
        cr.ones(3).diagonal()
    with pytest.raises(ValueError, match="must differ"):
        cr.ones(3, 3).diagonal(0, 1, -1)
    with pytest.raises(IndexError, match="dim 2"):
        cr.ones(3, 3).diagonal(0, 0, 2)


# ---------------------------------------------------------------- F.pad
PAD_CASES = [
    ((5,), (1, 2), "constant", None), ((5,), (-1, 2), "constant", 9.0), ((2, 3, 4), (1, 1, 2, 0), "constant", 0.5),
    ((2, 3, 4), (0, 0, 0, 0, 1, 1), "constant", None), ((2, 3, 4), (-1, -2, 1, -1), "constant", -1.0),
    ((1, 5), (2, 1), "reflect", None), ((1, 5), (4, 4), "reflect", None), ((1, 5), (-1, 1), "reflect", None),
    ((2, 3, 4), (1, 2, 2, 1), "reflect", None), ((1, 2, 3, 4), (1, 1, 2, 2), "reflect", None),
    ((1, 5), (7, 1), "replicate", None), ((1, 5), (-1, 1), "replicate", None),
    ((2, 3, 4), (1, 2, 2, 1), "replicate", None), ((1, 2, 3, 3, 4), (1, 1, 0, 2, 2, 1), "replicate", None),
    ((1, 5), (5, 1), "circular", None), ((1, 5), (-1, 1), "circular", None),
    ((2, 3, 4), (1, 2, 3, 1), "circular", None), ((2, 3, 4), (1, 1), "circular", None),
]


@pytest.mark.parametrize("shape,pad,mode,value", PAD_CASES, ids=[f"{m}-{s}-{p}" for s, p, m, _ in PAD_CASES])
def test_pad_matches_pytorch_with_gradients(torch, shape, pad, mode, value):
    import torch.nn.functional as TF

    kwargs = {} if value is None else {"value": value}
    _compare_with_torch(torch, lambda a: F.pad(a, pad, mode, **kwargs),
                        lambda a: TF.pad(a, pad, mode, **kwargs), _arrays(shape, seed=6))


@pytest.mark.parametrize("mode,np_mode", [("constant", "constant"), ("reflect", "reflect"),
                                          ("replicate", "edge"), ("circular", "wrap")])
def test_pad_matches_numpy(mode, np_mode):
    x = np.arange(24.0).reshape(2, 3, 4)
    got = F.pad(cr.tensor(x), (1, 2, 2, 1), mode=mode)
    np.testing.assert_array_equal(_np(got), np.pad(x, ((0, 0), (2, 1), (1, 2)), mode=np_mode))
    ints = F.pad(cr.arange(3), (1, 1), value=2.5)
    assert ints.dtype == cr.int64 and ints.tolist() == [2, 0, 1, 2, 2]


def test_pad_gradcheck():
    _gradcheck(lambda a: F.pad(a, (2, 1, 1, 2), mode="reflect") * 1.5, (2, 3, 4))
    _gradcheck(lambda a: F.pad(a, (2, 1, 1, 2), mode="replicate").exp(), (1, 3, 3))
    _gradcheck(lambda a: F.pad(a, (3, 1), mode="circular"), (2, 3))
    _gradcheck(lambda a: F.pad(a, (1, -1, -1, 2), value=0.3), (3, 4))


@pytest.mark.parametrize("make,error,match", [
    (lambda: F.pad(cr.ones(5), (1,)), ValueError, "even"),
    (lambda: F.pad(cr.ones(5), (1, 1, 1, 1)), ValueError, r"pads 2 dims.*\(5,\)"),
    (lambda: F.pad(cr.ones(5), (-3, -3)), ValueError, r"\(-3, -3\) crops dim 0 of size 5"),
    (lambda: F.pad(cr.ones(5), (1, 2), mode="reflect"), ValueError, r"not supported.*\(5,\)"),
    (lambda: F.pad(cr.ones(2, 3), (1, 1, 1, 1), mode="reflect"), ValueError, r"not supported.*\(2, 3\)"),
    (lambda: F.pad(cr.ones(1, 5), (5, 1), mode="reflect"), ValueError, r"\(5, 1\).*size 5.*\(1, 5\)"),
    (lambda: F.pad(cr.ones(1, 5), (6, 1), mode="circular"), ValueError, "more than once"),
    (lambda: F.pad(cr.ones(1, 5), (1, 1), mode="reflect", value=2.0), ValueError, "value"),
    (lambda: F.pad(cr.ones(1, 5), (1, 1), mode="foo"), ValueError, "unrecognised padding mode 'foo'"),
    (lambda: F.pad(cr.ones(1, 5), (1.0, 1)), TypeError, "tuple of ints"),
])
def test_pad_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ---------------------------------------------------------------- PyTorch's argument names
SIGNATURES = {
    "Tensor.mm": ["self", "mat2"], "Tensor.bmm": ["self", "mat2"], "mm": ["input", "mat2"],
    "bmm": ["input", "mat2"], "Tensor.masked_fill": ["self", "mask", "value"],
    "masked_fill": ["input", "mask", "value"], "Tensor.chunk": ["self", "chunks", "dim=0"],
    "chunk": ["input", "chunks", "dim=0"], "Tensor.split": ["self", "split_size", "dim=0"],
    "split": ["tensor", "split_size_or_sections", "dim=0"], "unbind": ["input", "dim=0"],
    "narrow": ["input", "dim", "start", "length"],
    "diagonal": ["input", "offset=0", "dim1=0", "dim2=1"],
    "std": ["input", "dim=None", "unbiased=None", "keepdim=False", "correction=None"],
    "Tensor.var": ["self", "dim=None", "unbiased=None", "keepdim=False", "correction=None"],
    "norm": ["input", "p='fro'", "dim=None", "keepdim=False", "out=None", "dtype=None"],
    "Tensor.norm": ["self", "p='fro'", "dim=None", "keepdim=False", "dtype=None"],
    "linalg.vector_norm": ["x", "ord=2", "dim=None", "keepdim=False", "dtype=None"],
    "linalg.norm": ["A", "ord=None", "dim=None", "keepdim=False", "dtype=None"],
    "nn.functional.pad": ["input", "pad", "mode='constant'", "value=None"],
    "Tensor.new_full": ["self", "size", "fill_value", "dtype=None", "device=None", "requires_grad=False"],
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signatures_use_pytorchs_names_and_defaults(name):
    import inspect

    fn = cr
    for part in name.split("."):
        fn = getattr(fn, part)
    params = [p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
              for p in inspect.signature(fn).parameters.values()]
    assert params == SIGNATURES[name]


# ---------------------------------------------------------------- cr.compile replays them
def test_compile_replays_the_composites_bit_for_bit():
    import warnings

    rng = np.random.default_rng(0)
    w = cr.tensor(rng.standard_normal((4, 6)).astype(np.float32), requires_grad=True)
    v = cr.tensor(rng.standard_normal(6).astype(np.float32), requires_grad=True)

    def step(x):
        w.grad = v.grad = None
        h = F.pad(x, (1, 1), mode="reflect") @ F.pad(w, (0, 2), mode="replicate").T
        a, b = h.chunk(2, dim=1)
        loss = (cr.einsum("ij,ij->", a, b) + h.std(1).sum() + w.norm() + cr.linalg.vector_norm(v, 3)
                + F.pad(x, (1, -1), value=0.5).var() + x.masked_fill(x > 0, 0.0).sum() * v.sum()
                + F.pad(x[None], (2, 1), mode="circular").sum() + x.diagonal().sum())
        loss.backward()
        return loss

    compiled = cr.compile(step)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # falling back to eager would warn
        for i in range(3):
            x = cr.tensor(np.random.default_rng(i).standard_normal((3, 6)).astype(np.float32))
            eager = step(x)
            grads = (w.grad.numpy().copy(), v.grad.numpy().copy())
            assert np.array_equal(compiled(x).numpy(), eager.numpy())
            assert np.array_equal(w.grad.numpy(), grads[0]) and np.array_equal(v.grad.numpy(), grads[1])


# ---------------------------------------------------------------- flip
@pytest.mark.parametrize("dims", [0, (1,), (0, 2), (-1, 0), [2, 1, 0]])
def test_flip_matches_numpy_and_its_gradient(dims):
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    t = cr.tensor(x, requires_grad=True)
    np.testing.assert_array_equal(_np(t.flip(dims)), np.flip(x, dims))
    np.testing.assert_array_equal(_np(cr.flip(t, dims)), np.flip(x, dims))
    w = np.linspace(-1.0, 1.0, 24).reshape(2, 3, 4)
    (t.flip(dims) * cr.tensor(w)).sum().backward()
    np.testing.assert_array_equal(_np(t.grad), np.flip(w, dims))  # d/dx of sum(flip(x) w)
    assert cr.autograd.gradcheck(lambda a: a.flip(dims), (cr.tensor(x, requires_grad=True),))


def test_flip_edges_and_errors():
    assert cr.tensor(3.0).flip(0).item() == 3.0 and cr.zeros(0, 2).flip(0).shape == (0, 2)
    x = cr.tensor([[1, 2], [3, 4]])
    assert x.flip(0, 1).tolist() == [[4, 3], [2, 1]] and x.flip(()).tolist() == x.tolist()
    with pytest.raises(ValueError, match=r"flip: dim 0 appears more than once"):
        x.flip((0, -2))
    with pytest.raises(IndexError, match="flip"):
        x.flip(2)


def test_flip_matches_pytorch(torch):
    x = np.random.default_rng(0).standard_normal((3, 1, 5))
    for dims in [(0,), (1, 2), (2, 0, 1)]:
        ours, theirs = cr.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        (ours.flip(dims).cumsum(2) ** 2).sum().backward()
        (theirs.flip(dims).cumsum(2) ** 2).sum().backward()
        np.testing.assert_allclose(_np(ours.grad), theirs.grad.numpy(), rtol=1e-12)
