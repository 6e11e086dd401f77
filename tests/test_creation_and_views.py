"""Creation functions, conversion to Python/NumPy, shape ops, views and basic indexing.

NumPy is the oracle for values and view semantics (a NumPy view of the same base array); PyTorch
for the few spots where its behaviour is what API.md adopts (repr, squeeze of a non-1 dim).
"""
from __future__ import annotations

import numpy as np
import pytest
from optional import requires_torch, torch

import chainrule as cr

CR = {np.dtype(np.float32): cr.float32, np.dtype(np.float64): cr.float64,
      np.dtype(np.int64): cr.int64, np.dtype(np.bool_): cr.bool}


def check(t, expected):
    expected = np.asarray(expected)
    assert isinstance(t, cr.Tensor)
    assert t.shape == expected.shape, (t.shape, expected.shape)
    assert t.dtype == CR[expected.dtype], (t.dtype, expected.dtype)
    np.testing.assert_array_equal(t.numpy(), expected)


def base(shape=(3, 4, 5), dtype=np.float32):
    """A from_numpy tensor over an arange array: writes to the array show through views."""
    a = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    return a, cr.from_numpy(a)


# ---------------------------------------------------------------------------------------------
# creation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn,npf", [(cr.zeros, np.zeros), (cr.ones, np.ones)],
                         ids=["zeros", "ones"])
@pytest.mark.parametrize("shape", [(2, 3), (4,), (2, 1, 3), (0, 2), ()], ids=str)
def test_zeros_ones_shapes(fn, npf, shape):
    check(fn(*shape), npf(shape, dtype=np.float32))
    check(fn(shape), npf(shape, dtype=np.float32))
    check(fn(shape, dtype=cr.float64), npf(shape, dtype=np.float64))
    check(fn(*shape, dtype=cr.int64), npf(shape, dtype=np.int64))


@pytest.mark.parametrize("shape", [(2, 3), (4,), (0, 3), ()], ids=str)
def test_empty_shape_and_dtype(shape):
    for args in (shape, (shape,)):
        t = cr.empty(*args)
        assert t.shape == shape and t.dtype == cr.float32
        assert t.numel() == int(np.prod(shape))
    assert cr.empty(shape, dtype=cr.int64).dtype == cr.int64


def test_creation_requires_grad_and_list_shape():
    t = cr.zeros(2, 3, requires_grad=True)
    assert t.requires_grad and t.is_leaf and t.grad is None
    check(cr.ones([2, 2]), np.ones((2, 2), np.float32))


@pytest.mark.parametrize("shape,value", [((2, 3), 1.5), ((4,), -2), ((2, 2), True), ((), 7.25),
                                         (3, 0.5)], ids=str)
def test_full(shape, value):
    expected = np.full(shape, value)
    dt = {bool: np.bool_, int: np.int64, float: np.float32}[type(value)]
    check(cr.full(shape, value), expected.astype(dt))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_zeros_like_ones_like(dtype):
    src = cr.tensor(np.array([[1, 0, 3], [4, 5, 0]], dtype=dtype)).T
    check(cr.zeros_like(src), np.zeros((3, 2), dtype=dtype))
    check(cr.ones_like(src), np.ones((3, 2), dtype=dtype))


@pytest.mark.parametrize("n", [0, 1, 3, 6])
def test_eye(n):
    check(cr.eye(n), np.eye(n, dtype=np.float32))


ARANGE = [
    (5,), (0,), (2, 9), (0, 10, 3), (5, 0, -1), (10, 1, -3), (3, 3),
    (0.0, 1.0, 0.25), (1.0, 0.0, -0.25), (-2.5, 2.5), (0, 1, 0.1), (2.5,),
]


@pytest.mark.parametrize("args", [(5, 2), (0, 3, -1), (2.0, 1.0)], ids=str)
def test_arange_empty_when_step_points_away(args):
    # NumPy gives an empty array (PyTorch raises); an empty result or a ValueError is accepted
    try:
        t = cr.arange(*args)
    except ValueError:
        return
    assert t.shape == (0,)
    assert t.numel() == 0


@pytest.mark.parametrize("args", ARANGE, ids=str)
def test_arange_values(args):
    t = cr.arange(*args)
    all_int = all(isinstance(a, int) for a in args)
    expected = np.arange(*args).astype(np.int64 if all_int else np.float32)
    assert t.shape == expected.shape
    assert t.dtype == (cr.int64 if all_int else cr.float32)
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6, atol=1e-6)
    if torch is not None:
        np.testing.assert_allclose(t.numpy(), torch.arange(*args).numpy(), rtol=1e-6, atol=1e-6)


def test_arange_step_zero_raises():
    with pytest.raises(ValueError):
        cr.arange(0, 5, 0)


@pytest.mark.parametrize("args", [(0, 1, 5), (-1, 1, 3), (2.0, 3.0, 1), (0, 10, 11), (1, 0, 4),
                                  (0, 1, 0)], ids=str)
def test_linspace(args):
    t = cr.linspace(*args)
    expected = np.linspace(*args)
    assert t.dtype == cr.float32
    assert t.shape == expected.shape
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6, atol=1e-6)
    if torch is not None:
        np.testing.assert_allclose(t.numpy(), torch.linspace(*args).numpy(), rtol=1e-6, atol=1e-6)


def test_rand_range_and_distribution():
    t = cr.rand(200, 50)
    assert t.shape == (200, 50) and t.dtype == cr.float32
    a = t.numpy()
    assert a.min() >= 0.0 and a.max() < 1.0
    assert abs(a.mean() - 0.5) < 0.02
    assert abs(a.std() - np.sqrt(1 / 12)) < 0.02
    assert len(np.unique(a)) > 9000  # not a constant or a short cycle
    assert cr.rand((3, 2)).shape == (3, 2)


def test_randn_distribution():
    t = cr.randn(100, 100)
    assert t.shape == (100, 100) and t.dtype == cr.float32
    a = t.numpy().astype(np.float64)
    assert abs(a.mean()) < 0.05
    assert abs(a.std() - 1.0) < 0.05
    assert 0.64 < np.mean(np.abs(a) < 1.0) < 0.72  # 68% within one sigma
    assert cr.randn((4,)).shape == (4,)


@pytest.mark.parametrize("low,high,shape", [(0, 10, (2000,)), (-3, 4, (40, 50)),
                                            (5, 6, (7,))], ids=str)
def test_randint_range(low, high, shape):
    t = cr.randint(low, high, shape)
    assert t.dtype == cr.int64 and t.shape == shape
    a = t.numpy()
    assert a.min() >= low and a.max() < high
    if a.size >= 1000:
        assert set(np.unique(a).tolist()) == set(range(low, high))  # every value is drawn


def test_randint_low_ge_high_raises():
    with pytest.raises(ValueError):
        cr.randint(3, 3, (2,))


@pytest.mark.parametrize("make", [lambda: cr.rand(5, 3), lambda: cr.randn(7),
                                  lambda: cr.randint(0, 1000, (10,))],
                         ids=["rand", "randn", "randint"])
def test_manual_seed_reproducible(make):
    cr.manual_seed(123)
    first = make().numpy().copy()
    second = make().numpy().copy()
    cr.manual_seed(123)
    np.testing.assert_array_equal(make().numpy(), first)
    np.testing.assert_array_equal(make().numpy(), second)
    assert not np.array_equal(first, second)  # the stream moves on
    cr.manual_seed(124)
    assert not np.array_equal(make().numpy(), first)


def test_manual_seed_shared_across_functions():
    cr.manual_seed(5)
    a = cr.rand(4).numpy().copy()
    b = cr.randn(4).numpy().copy()
    cr.manual_seed(5)
    np.testing.assert_array_equal(cr.rand(4).numpy(), a)
    np.testing.assert_array_equal(cr.randn(4).numpy(), b)
    cr.manual_seed(5)
    cr.randn(4)  # a different draw first changes what rand gives next
    assert not np.array_equal(cr.rand(4).numpy(), a)


# ---------------------------------------------------------------------------------------------
# numpy / python conversion
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_from_numpy_shares_memory_both_ways(dtype):
    a = np.zeros((2, 3), dtype=dtype)
    t = cr.from_numpy(a)
    assert t.dtype == CR[np.dtype(dtype)] and t.shape == (2, 3)
    a[1, 2] = 1
    assert t.numpy()[1, 2] == 1
    assert t[1, 2].item() == 1
    t[0, 1] = 1  # __setitem__ on a tensor that does not require grad
    assert a[0, 1] == 1
    if dtype != np.bool_:
        t.add_(2)
        np.testing.assert_array_equal(a, np.array([[0, 1, 0], [0, 0, 1]], dtype=dtype) + 2)
    assert np.shares_memory(t.numpy(), a)


def test_from_numpy_non_contiguous_array():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    view = a.T[::2]
    t = cr.from_numpy(view)
    check(t, view)
    a[0, 0] = -1  # shares memory with the strided array too
    assert t[0, 0].item() == -1
    check(t, a.T[::2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_numpy_shares_memory_for_contiguous(dtype):
    t = cr.zeros(2, 3, dtype=CR[np.dtype(dtype)])
    a = t.numpy()
    assert a.dtype == dtype and a.shape == (2, 3)
    a[0, 2] = 1
    assert t[0, 2].item() == 1
    t.fill_(1)
    assert a.all()
    assert np.shares_memory(a, t.numpy())


def test_numpy_of_non_contiguous_and_requires_grad():
    a, t = base((3, 4))
    v = t.T[1:]
    check(cr.tensor(v.numpy()), a.T[1:])
    np.testing.assert_array_equal(v.numpy(), a.T[1:])
    g = cr.tensor([[1.0, 2.0]], requires_grad=True)
    np.testing.assert_array_equal(g.numpy(), [[1.0, 2.0]])
    np.testing.assert_array_equal((g * 2).numpy(), [[2.0, 4.0]])


def test_np_asarray():
    t = cr.tensor([[1.5, 2.0], [3.0, 4.0]])
    a = np.asarray(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    np.testing.assert_array_equal(a, [[1.5, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(np.asarray(t.T), [[1.5, 3.0], [2.0, 4.0]])
    np.testing.assert_array_equal(np.asarray(cr.tensor([1, 2]), dtype=np.float64), [1.0, 2.0])
    assert np.asarray(cr.tensor([1, 2]), dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(np.array(cr.tensor([True, False])), [True, False])
    np.testing.assert_allclose(np.exp(np.asarray(cr.tensor([0.0, 1.0]))), [1.0, np.e], rtol=1e-6)


def test_item_and_float():
    assert cr.tensor(2.5).item() == 2.5 and isinstance(cr.tensor(2.5).item(), float)
    assert cr.tensor([7]).item() == 7 and isinstance(cr.tensor([7]).item(), int)
    assert cr.tensor([[True]]).item() is True
    assert float(cr.tensor(0.25)) == 0.25
    assert float(cr.tensor([3])) == 3.0 and isinstance(float(cr.tensor([3])), float)
    assert cr.tensor(1.0 / 3.0, dtype=cr.float64).item() == 1.0 / 3.0
    assert cr.tensor([[1.0, 2.0]])[0, 1].item() == 2.0
    with pytest.raises(ValueError):
        cr.tensor([1.0, 2.0]).item()


@pytest.mark.parametrize("value", [[[1.5, 2.0], [3.0, -4.0]], [1, 2, 3], [True, False], 3, 2.5,
                                   [[[1], [2]]], []], ids=str)
def test_tolist(value):
    t = cr.tensor(value)
    assert t.tolist() == value
    assert t.tolist() == np.array(value).tolist()
    if torch is not None:
        assert t.tolist() == torch.tensor(value).tolist()


def test_tolist_types_and_views():
    assert type(cr.tensor([1, 2]).tolist()[0]) is int
    assert type(cr.tensor([1.0]).tolist()[0]) is float
    assert type(cr.tensor([True]).tolist()[0]) is bool
    a, t = base((2, 3))
    assert t.T.tolist() == a.T.tolist()


def test_len():
    assert len(cr.zeros(4, 2)) == 4
    assert len(cr.zeros(0, 3)) == 0
    assert len(cr.zeros(3, 5).T) == 5
    with pytest.raises(TypeError):
        len(cr.tensor(1.0))


REPRS = [
    ([[0.5, 1.0]], {}),
    ([[0.5, 1.25], [3.0, -4.0]], {}),
    ([0.1234, -2.5], {}),
    (3.5, {}),
    ([1, 2, 3], {}),
    ([[1, -2], [30, 4]], {}),
    ([True, False], {}),
    ([[0.5, 1.0]], {"requires_grad": True}),
]


@requires_torch  # PyTorch's repr is the only oracle here
@pytest.mark.parametrize("value,kw", REPRS, ids=str)
def test_repr_like_pytorch(value, kw):
    r = repr(cr.tensor(value, **kw))
    assert r == repr(torch.tensor(value, **kw))


def test_repr_api_example():
    assert repr(cr.tensor([[0.5, 1.0]], requires_grad=True)) == \
        "tensor([[0.5000, 1.0000]], requires_grad=True)"
    assert repr(cr.tensor([[0.5, 1.0]])) == "tensor([[0.5000, 1.0000]])"


# ---------------------------------------------------------------------------------------------
# shape ops
# ---------------------------------------------------------------------------------------------
RESHAPES = [
    ((3, 4, 5), (60,)),
    ((3, 4, 5), (12, 5)),
    ((3, 4, 5), (-1,)),
    ((3, 4, 5), (3, -1)),
    ((3, 4, 5), (-1, 5)),
    ((3, 4, 5), (2, -1, 3)),
    ((3, 4, 5), (5, 4, 3)),
    ((3, 4, 5), (1, 60, 1)),
    ((6,), (2, 3)),
    ((1,), ()),
    ((), (1, 1)),
    ((0, 4), (4, -1)),
]


@pytest.mark.parametrize("src,dst", RESHAPES, ids=str)
def test_reshape_and_view_of_contiguous_is_a_view(src, dst):
    a, t = base(src)
    for r, args in ((t.reshape(*dst), dst), (t.reshape(dst), dst), (t.view(*dst), dst),
                    (t.view(dst), dst)):
        check(r, a.reshape(args))
    r = t.reshape(*dst)
    v = t.view(*dst)
    if a.size:
        a.reshape(-1)[-1] = -7  # write the base, see it in the views
        assert r.numpy().reshape(-1)[-1] == -7
        assert v.numpy().reshape(-1)[-1] == -7


NON_VIEWABLE = [
    # chainrule view, the same view in NumPy, target shape
    ("transpose", lambda t: t.transpose(0, 2), lambda a: np.swapaxes(a, 0, 2), (-1,)),
    ("permute", lambda t: t.permute(1, 0, 2), lambda a: a.transpose(1, 0, 2), (12, 5)),
    ("step", lambda t: t[:, :, ::2], lambda a: a[:, :, ::2], (-1,)),
    ("offset", lambda t: t[:, :, 1:], lambda a: a[:, :, 1:], (3, 16)),
    ("expand", lambda t: t[:, :1].expand(3, 4, 5),
     lambda a: np.broadcast_to(a[:, :1], (3, 4, 5)), (60,)),
]


@pytest.mark.parametrize("name,f,nf,dst", NON_VIEWABLE, ids=[n[0] for n in NON_VIEWABLE])
def test_reshape_of_non_viewable_copies(name, f, nf, dst):
    a, t = base()
    src = f(t)
    expected = nf(a).reshape(dst).copy()
    r = src.reshape(*dst)
    check(r, expected)
    a[...] = -1  # the reshape copied: a write to the base must not show
    np.testing.assert_array_equal(r.numpy(), expected)
    with pytest.raises(ValueError):
        src.view(*dst)


def test_reshape_flatten_of_viewable_non_contiguous_is_a_view():
    a, t = base((4, 6))
    src = t[:, ::2]  # shape (4, 3), strides (6, 2): splitting dim 0 is expressible
    v = src.view(2, 2, 3)
    r = src.reshape(2, 2, 3)
    check(v, a[:, ::2].reshape(2, 2, 3))
    check(r, a[:, ::2].reshape(2, 2, 3))
    a[3, 4] = -5
    assert v[1, 1, 2].item() == -5
    assert r[1, 1, 2].item() == -5
    b, t3 = base((3, 4, 5))
    s3 = t3[:, ::2]  # (3, 2, 5), strides (20, 10, 1): dims 0 and 1 merge
    v3 = s3.reshape(-1, 5)
    check(v3, b[:, ::2].reshape(-1, 5))
    check(s3.view(6, 5), b[:, ::2].reshape(6, 5))
    b[2, 2, 4] = -9
    assert v3[5, 4].item() == -9
    w = t.T.view(6, 4)  # a no-op view of a non-contiguous tensor
    check(w, a.T)
    u = t.T.unsqueeze(0).view(6, 1, 4)
    check(u, a.T[:, None, :])


def test_view_of_transposed_raises():
    _, t = base((3, 4))
    with pytest.raises(ValueError):
        t.T.view(12)
    with pytest.raises(ValueError):
        t.T.view(-1)
    with pytest.raises(ValueError):
        t.transpose(0, 1).view(4, 3).view(2, 6)


@pytest.mark.parametrize("src,dst", [((3, 4), (5, -1)), ((3, 4), (-1, -1)), ((3, 4), (7,)),
                                     ((3, 4), (2, 5))], ids=str)
def test_reshape_invalid_raises(src, dst):
    _, t = base(src)
    with pytest.raises(ValueError):
        t.reshape(*dst)
    with pytest.raises(ValueError):
        t.view(*dst)


def test_transpose_T_permute():
    a, t = base((3, 4, 5))
    check(t.transpose(0, 2), np.swapaxes(a, 0, 2))
    check(t.transpose(-1, 0), np.swapaxes(a, -1, 0))
    check(t.transpose(1, 1), a)
    check(cr.transpose(t, 0, 1), np.swapaxes(a, 0, 1))
    check(t.permute(2, 0, 1), a.transpose(2, 0, 1))
    check(t.permute((1, 2, 0)), a.transpose(1, 2, 0))
    check(t.permute(-1, -2, -3), a.transpose(2, 1, 0))
    check(cr.permute(t, (0, 2, 1)), a.transpose(0, 2, 1))
    b, m = base((3, 4))
    check(m.T, b.T)
    check(m.T.T, b)
    assert not m.T.is_contiguous() and m.T.T.is_contiguous()
    with pytest.raises((ValueError, IndexError)):
        t.permute(0, 1)
    with pytest.raises((ValueError, IndexError)):
        t.permute(0, 1, 1)


@pytest.mark.parametrize("shape,dim", [((3, 4), 0), ((3, 4), 1), ((3, 4), 2), ((3, 4), -1),
                                       ((3, 4), -3), ((), 0), ((5,), -1)], ids=str)
def test_unsqueeze(shape, dim):
    a, t = base(shape)
    u = t.unsqueeze(dim)
    check(u, np.expand_dims(a, dim))
    check(cr.unsqueeze(t, dim), np.expand_dims(a, dim))
    if a.size:
        a.reshape(-1)[0] = 99
        assert u.numpy().reshape(-1)[0] == 99  # a view


SQUEEZES = [
    ((1, 3, 1), None), ((1, 3, 1), 0), ((1, 3, 1), 1), ((1, 3, 1), 2), ((1, 3, 1), -1),
    ((1, 3, 1), -2), ((3, 4), 0), ((3, 4), None), ((1, 1), None), ((1,), 0), ((2, 1, 1, 3), 2),
]


@pytest.mark.parametrize("shape,dim", SQUEEZES, ids=str)
def test_squeeze(shape, dim):
    a, t = base(shape)
    r = t.squeeze() if dim is None else t.squeeze(dim)
    # NumPy raises for a non-1 dim; PyTorch (and chainrule) leave the shape unchanged
    squeezable = dim is None or a.shape[dim] == 1
    expected = (np.squeeze(a) if dim is None else np.squeeze(a, dim)) if squeezable else a
    check(r, expected)
    check(cr.squeeze(t, dim) if dim is not None else cr.squeeze(t), expected)
    if torch is not None:
        theirs = torch.from_numpy(a.copy())
        check(r, (theirs.squeeze() if dim is None else theirs.squeeze(dim)).numpy())
    a.reshape(-1)[0] = -3
    assert r.numpy().reshape(-1)[0] == -3  # a view


FLATTENS = [((2, 3, 4, 5), 0, -1), ((2, 3, 4, 5), 1, 2), ((2, 3, 4, 5), 1, -1),
            ((2, 3, 4, 5), 0, 1), ((2, 3, 4, 5), -2, -1), ((2, 3, 4, 5), 2, 2), ((), 0, -1),
            ((4,), 0, 0)]


def _flatten(a, start, end):
    """NumPy's spelling of flatten(start, end): dims start..end become one (0-d gives (1,))."""
    if a.ndim == 0:
        return a.reshape(1)
    start, end = start % a.ndim, end % a.ndim
    return a.reshape(a.shape[:start] + (-1,) + a.shape[end + 1:])


@pytest.mark.parametrize("shape,s,e", FLATTENS, ids=str)
def test_flatten(shape, s, e):
    a, t = base(shape)
    expected = _flatten(a, s, e)
    if torch is not None:
        np.testing.assert_array_equal(expected, torch.from_numpy(a.copy()).flatten(s, e).numpy())
    check(t.flatten(s, e), expected)
    check(t.flatten(start_dim=s, end_dim=e), expected)
    check(cr.flatten(t, s, e), expected)
    f = t.flatten(s, e)
    a.reshape(-1)[0] = 42
    assert f.numpy().reshape(-1)[0] == 42  # contiguous: a view


def test_flatten_default_and_non_contiguous_copy():
    a, t = base((2, 3, 4))
    check(t.flatten(), a.reshape(-1))
    f = t.transpose(0, 2).flatten()
    expected = np.swapaxes(a, 0, 2).reshape(-1).copy()
    check(f, expected)
    a[...] = 0
    np.testing.assert_array_equal(f.numpy(), expected)  # a copy
    check(t.permute(2, 0, 1).flatten(1), a.transpose(2, 0, 1).reshape(4, 6))


@pytest.mark.parametrize("shape,target", [((3, 1), (3, 4)), ((1, 4), (3, 4)), ((4,), (2, 3, 4)),
                                          ((3, 1), (-1, 4)), ((1,), (5,)), ((), (2, 2)),
                                          ((2, 1, 3), (4, 2, 5, 3)), ((3, 4), (3, 4))], ids=str)
def test_expand(shape, target):
    a, t = base(shape)
    e = t.expand(*target)
    full_target = tuple(s if s != -1 else a.shape[i - len(target) + a.ndim]
                        for i, s in enumerate(target))
    check(e, np.broadcast_to(a, full_target))
    check(t.expand(target), np.broadcast_to(a, full_target))
    a.reshape(-1)[0] = 77
    assert e.numpy().reshape(-1)[0] == 77  # a view
    np.testing.assert_array_equal(e.numpy(), np.broadcast_to(a, full_target))


@pytest.mark.parametrize("shape,target", [((3, 2), (3, 4)), ((3,), (2,)), ((2, 3), (3,))],
                         ids=str)
def test_expand_invalid_raises(shape, target):
    _, t = base(shape)
    with pytest.raises(ValueError):
        t.expand(*target)


def test_contiguous_and_is_contiguous():
    a, t = base((3, 4))
    assert t.is_contiguous()
    c = t.contiguous()
    a[0, 0] = 11
    assert c[0, 0].item() == 11  # no copy when already contiguous
    for v, nv in ((t.T, a.T), (t[:, ::2], a[:, ::2]), (t[:, 1:], a[:, 1:]),
                  (t[:1].expand(3, 4), np.broadcast_to(a[:1], (3, 4))),
                  (t.unsqueeze(0).permute(2, 0, 1), a[None].transpose(2, 0, 1))):
        assert not v.is_contiguous()
        c = v.contiguous()
        assert c.is_contiguous()
        expected = nv.copy()
        check(c, expected)
        a[...] += 1  # the copy does not follow the base
        np.testing.assert_array_equal(c.numpy(), expected)
    assert t[1].is_contiguous()
    assert t[1:3].is_contiguous()
    assert t.T.T.is_contiguous()


# ---------------------------------------------------------------------------------------------
# views share storage; __setitem__
# ---------------------------------------------------------------------------------------------
VIEW_FUNCS = [
    ("view", lambda x: x.view(12, 5), lambda x: x.reshape(12, 5)),
    ("transpose", lambda x: x.transpose(0, 2), lambda x: np.swapaxes(x, 0, 2)),
    ("T_of_2d", lambda x: x[0].T, lambda x: x[0].T),
    ("permute", lambda x: x.permute(1, 2, 0), lambda x: x.transpose(1, 2, 0)),
    ("expand", lambda x: x[:, :1].expand(3, 4, 5), lambda x: np.broadcast_to(x[:, :1], (3, 4, 5))),
    ("unsqueeze", lambda x: x.unsqueeze(1), lambda x: x[:, None]),
    ("squeeze", lambda x: x[:, :1].squeeze(1), lambda x: x[:, 0]),
    ("int", lambda x: x[1], lambda x: x[1]),
    ("slice_step", lambda x: x[::2, 1:, ::3], lambda x: x[::2, 1:, ::3]),
    ("ellipsis_none", lambda x: x[..., None, 2], lambda x: x[..., None, 2]),
    ("reshape", lambda x: x.reshape(3, 20), lambda x: x.reshape(3, 20)),
    ("flatten", lambda x: x.flatten(1), lambda x: x.reshape(3, 20)),
    ("detach", lambda x: x.detach(), lambda x: x),
]


@pytest.mark.parametrize("name,f,nf", VIEW_FUNCS, ids=[v[0] for v in VIEW_FUNCS])
def test_views_share_storage_via_numpy(name, f, nf):
    a, t = base()
    v = f(t)
    check(v, nf(a))
    a *= -2  # write through the base array: the view follows
    check(v, nf(a))


@pytest.mark.parametrize("name,f,nf", [v for v in VIEW_FUNCS if v[0] != "expand"],
                         ids=[v[0] for v in VIEW_FUNCS if v[0] != "expand"])
def test_setitem_through_view_shows_in_base(name, f, nf):
    a = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    t = cr.tensor(a)  # a copy: only the tensor's own storage is involved
    v = f(t)
    v[0] = -1.0  # write the first sub-block of the view
    nf(a)[0] = -1.0  # the same on NumPy's side (a view there too)
    check(t, a)
    check(v, nf(a))


def test_setitem_forms_against_numpy():
    a = np.arange(24, dtype=np.float64).reshape(4, 6)
    t = cr.tensor(a)
    for idx, val in (((1, 2), 100.0), ((slice(None), 0), -1.0), ((slice(1, 3),), 5.5),
                     ((Ellipsis, -1), 7.0), ((slice(None, None, 2), slice(1, None, 2)), 0.25)):
        t[idx] = val
        a[idx] = val
        check(t, a)
    row = np.array([9.0, 8, 7, 6, 5, 4])
    t[3] = cr.tensor(row)
    a[3] = row
    check(t, a)
    t[:, 2] = cr.tensor([1.0, 2.0, 3.0, 4.0])
    a[:, 2] = [1.0, 2.0, 3.0, 4.0]
    check(t, a)
    t[0:2] = cr.tensor([-1.0, -2.0, -3.0, -4.0, -5.0, -6.0])  # broadcast assignment
    a[0:2] = [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]
    check(t, a)


def test_setitem_base_shows_in_view():
    t = cr.zeros(3, 4)
    v = t.T[1:]
    t[2, 3] = 5.0
    t[0] = 1.0
    a = np.zeros((3, 4), np.float32)
    a[2, 3] = 5
    a[0] = 1
    check(v, a.T[1:])


def test_setitem_on_requires_grad_leaf_raises():
    t = cr.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        t[0] = 1.0
    with cr.no_grad():
        t[0] = 1.0
    np.testing.assert_array_equal(t.numpy(), [1.0, 0.0, 0.0])


# ---------------------------------------------------------------------------------------------
# basic indexing against NumPy
# ---------------------------------------------------------------------------------------------
E = Ellipsis
INDICES = [
    0, 2, -1, -3,
    slice(1, 3), slice(None, None, 2), slice(-2, None), slice(None, -1), slice(5, 10),
    slice(2, 1), slice(1, None, 2), slice(-100, 100),
    (1, 2), (1, 2, 3), (-1, -2, -3), (slice(None), 1), (slice(None), -1, slice(1, 4)),
    (E, None), (E, 1), (E, slice(None, None, 2)), (None, 0), (None, E, None),
    (0, None, slice(None), None), (slice(None), None, 2), (E,), (1, E), (1, E, 2),
    (slice(None, None, 3), slice(1, None), slice(None, None, 2)),
    (slice(1, 2), slice(None, None, 2), -1), (None,), (),
    pytest.param(None, id="None"),
]


@pytest.mark.parametrize("idx", INDICES, ids=repr)
def test_basic_indexing_contiguous(idx):
    a, t = base((3, 4, 5))
    r = t[idx]
    expected = a[idx]
    check(r, expected)
    if expected.size:
        a[...] += 1000  # basic indexing gives views
        np.testing.assert_array_equal(r.numpy(), a[idx])


@pytest.mark.parametrize("idx", INDICES, ids=repr)
@pytest.mark.parametrize("layout", ["transpose", "permute", "step", "expand"])
def test_basic_indexing_non_contiguous(idx, layout):
    a, t = base((3, 4, 5))
    tv, nv = {
        "transpose": (t.transpose(0, 1), np.swapaxes(a, 0, 1)),  # (4, 3, 5)
        "permute": (t.permute(2, 0, 1), a.transpose(2, 0, 1)),  # (5, 3, 4)
        "step": (t[:, :, 1::2], a[:, :, 1::2]),  # (3, 4, 2)
        "expand": (t[:1].expand(3, 4, 5), np.broadcast_to(a[:1], (3, 4, 5))),
    }[layout]
    try:
        expected = nv[idx]
    except IndexError:
        with pytest.raises(IndexError):
            tv[idx]
        return
    check(tv[idx], expected)


def test_indexing_chain_and_2d():
    a, t = base((4, 6))
    check(t[1][2], np.array(a[1][2]))
    check(t[:, 1], a[:, 1])
    check(t[..., None], a[..., None])
    check(t[::2][:, 1::3], a[::2][:, 1::3])
    check(t.T[1:4:2, -1], a.T[1:4:2, -1])
    check(t[-1, -1], np.array(a[-1, -1]))


@pytest.mark.parametrize("idx", [3, -4, (0, 4), (slice(None), 5), (0, 0, 0)], ids=repr)
def test_index_out_of_range_raises(idx):
    _, t = base((3, 4))
    with pytest.raises(IndexError):
        t[idx]


def test_integer_tensor_index_copies():
    a, t = base((4, 3))
    idx = cr.tensor([2, 0, 2, -1])
    r = t[idx]
    check(r, a[[2, 0, 2, -1]])
    a[...] = 0
    np.testing.assert_array_equal(r.numpy(), np.arange(12, dtype=np.float32).reshape(4, 3)
                                  [[2, 0, 2, -1]])
