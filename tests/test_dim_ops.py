"""The dim-wise index and scan ops: gather, scatter, scatter_add (and their in-place forms),
sort, argsort, topk, cumsum, cumprod, F.one_hot. Forward against NumPy always and PyTorch when
installed, backward against PyTorch and float64 gradchecks (the op table's cases are
gradchecked by test_gradients.py too), errors, non-contiguous inputs, negative dims, 0-d and
empty tensors, and sizes large enough for the threaded paths."""
from __future__ import annotations

import chainrule as cr
import chainrule.nn.functional as F
import numpy as np
import pytest
from optional import requires_torch, torch

RNG = np.random.default_rng(17)
DTYPES = [cr.float32, cr.float64, cr.int64, cr.bool]
NP = {cr.float32: np.float32, cr.float64: np.float64, cr.int64: np.int64, cr.bool: np.bool_}


def _values(shape: tuple[int, ...], dtype=cr.float64) -> np.ndarray:
    if dtype == cr.bool:
        return RNG.random(shape) < 0.5
    if dtype == cr.int64:
        return RNG.integers(-50, 50, size=shape)
    return RNG.standard_normal(shape).astype(NP[dtype])


def _torch(a: np.ndarray, requires_grad: bool = False):
    t = torch.from_numpy(np.array(a))
    return t.requires_grad_() if requires_grad else t


# ------------------------------------------------------------------ gather
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_gather_matches_numpy_take_along_axis(dtype, dim):
    a = _values((4, 5, 6), dtype)
    shape = [3, 4, 5]
    shape[dim] = 7  # the gathered dim may be larger than the input's
    index = RNG.integers(0, a.shape[dim], size=shape)
    got = cr.tensor(a).gather(dim, cr.tensor(index))
    assert got.dtype == dtype and got.shape == index.shape
    # take_along_axis needs index sizes equal to a's outside dim: compare on the matching part
    take = [slice(0, s) for s in shape]
    take[dim] = slice(None)
    expected = np.take_along_axis(a[tuple(take)], index, axis=dim)
    np.testing.assert_array_equal(got.numpy(), expected)
    np.testing.assert_array_equal(cr.gather(cr.tensor(a), dim, cr.tensor(index)).numpy(), expected)


def test_gather_of_non_contiguous_input_and_index():
    a = _values((6, 5))
    index = RNG.integers(0, 5, size=(4, 6))
    got = cr.tensor(a).T.gather(0, cr.tensor(index).T)  # both transposed views
    np.testing.assert_array_equal(got.numpy(), np.take_along_axis(a.T[:, :4], index.T, axis=0))
    sliced = cr.tensor(a)[::2, 1:]  # a strided slice
    idx = RNG.integers(0, 3, size=(3, 4))
    np.testing.assert_array_equal(sliced.gather(0, cr.tensor(idx)).numpy(),
                                  np.take_along_axis(a[::2, 1:], idx, axis=0))


def test_gather_zero_dim_and_empty():
    assert cr.tensor(5.0).gather(0, cr.tensor(0)).item() == 5.0
    assert cr.tensor(5.0).gather(-1, cr.tensor([0, 0])).tolist() == [5.0, 5.0]
    assert cr.tensor([1.0, 2.0, 3.0]).gather(0, cr.tensor(2)).shape == ()
    empty = cr.ones(2, 3).gather(1, cr.zeros(2, 0, dtype=cr.int64))
    assert empty.shape == (2, 0)
    assert cr.ones(0, 3).gather(0, cr.zeros(0, 3, dtype=cr.int64)).shape == (0, 3)


def test_gather_errors_name_the_value_dim_and_shapes():
    x = cr.ones(2, 3)
    with pytest.raises(IndexError, match="index 5 is out of bounds for dim 1 with size 3"):
        x.gather(1, cr.tensor([[0, 5]]))
    with pytest.raises(IndexError, match="index -1 is out of bounds for dim 0 with size 2"):
        x.gather(0, cr.tensor([[-1]]))
    with pytest.raises(IndexError, match="int64"):
        x.gather(1, cr.tensor([[0.0]]))
    with pytest.raises(ValueError, match=r"as many dims"):
        x.gather(1, cr.tensor([0]))
    with pytest.raises(ValueError, match=r"\(3, 1\).*\(2, 3\).*dim 1"):
        x.gather(1, cr.tensor([[0], [1], [1]]))
    with pytest.raises(IndexError, match="dim"):
        x.gather(2, cr.tensor([[0]]))
    with pytest.raises(TypeError, match="dim must be an int"):
        x.gather(1.0, cr.tensor([[0]]))
    with pytest.raises(TypeError, match="index must be a Tensor"):
        x.gather(1, [[0]])


# ------------------------------------------------------------------ scatter, scatter_add
def _distinct_index(shape: tuple[int, ...], dim: int, size: int) -> np.ndarray:
    """An index whose values along `dim` never repeat (a scatter's result is then defined)."""
    perms = np.argsort(RNG.random(shape[:dim] + (size,) + shape[dim + 1:]), axis=dim)
    take = [slice(None)] * len(shape)
    take[dim] = slice(0, shape[dim])
    return perms[tuple(take)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_scatter_matches_numpy_put_along_axis(dtype, dim):
    a = _values((5, 6), dtype)
    d = dim % 2
    shape = (3, 6) if d == 0 else (5, 4)
    index = _distinct_index(shape, d, a.shape[d])
    src = _values(shape, dtype)
    expected = a.copy()
    np.put_along_axis(expected, index, src, axis=d)
    got = cr.tensor(a).scatter(dim, cr.tensor(index), cr.tensor(src))
    np.testing.assert_array_equal(got.numpy(), expected)
    t = cr.tensor(a)
    assert t.scatter_(dim, cr.tensor(index), cr.tensor(src)) is t
    np.testing.assert_array_equal(t.numpy(), expected)
    value = True if dtype == cr.bool else 3
    expected = a.copy()
    np.put_along_axis(expected, index, NP[dtype](value), axis=d)
    np.testing.assert_array_equal(cr.tensor(a).scatter(dim, cr.tensor(index), value).numpy(), expected)
    np.testing.assert_array_equal(cr.scatter(cr.tensor(a), dim, cr.tensor(index), value=value).numpy(), expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("dim", [0, 1, 2, -2])
def test_scatter_add_matches_numpy_add_at_with_repeats(dtype, dim):
    a = _values((3, 4, 5), dtype)
    index = RNG.integers(0, a.shape[dim], size=(2, 3, 4))  # positions repeat
    src = _values((3, 3, 5), dtype)  # src may be larger than the index
    expected = a.copy()
    coords = list(np.indices(index.shape))
    coords[dim] = index
    used = src[tuple(slice(0, s) for s in index.shape)]
    if dtype == cr.bool:
        np.logical_or.at(expected, tuple(coords), used)
    else:
        np.add.at(expected, tuple(coords), used)
    got = cr.tensor(a).scatter_add(dim, cr.tensor(index), cr.tensor(src))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    t = cr.tensor(a).permute(2, 1, 0).contiguous().permute(2, 1, 0)  # non-contiguous, written in place
    assert not t.is_contiguous()
    t.scatter_add_(dim, cr.tensor(index), cr.tensor(src))
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(cr.scatter_add(cr.tensor(a), dim, cr.tensor(index), cr.tensor(src)).numpy(),
                               expected, rtol=1e-6)


def test_scatter_zero_dim_empty_and_aliasing():
    assert cr.tensor(1.0).scatter(0, cr.tensor(0), cr.tensor(4.0)).item() == 4.0
    assert cr.zeros(3).scatter_add(0, cr.tensor(1), cr.tensor(2.0)).tolist() == [0.0, 2.0, 0.0]
    x = cr.ones(2, 3)
    assert x.scatter(1, cr.zeros(2, 0, dtype=cr.int64), cr.zeros(2, 0)).tolist() == x.tolist()
    # src is the tensor written: read from a copy, as if out of place
    t = cr.tensor([[1.0, 2.0, 3.0]])
    t.scatter_(1, cr.tensor([[2, 1, 0]]), t)
    assert t.tolist() == [[3.0, 2.0, 1.0]]


def test_scatter_errors():
    x = cr.zeros(2, 3)
    with pytest.raises(IndexError, match="index 3 is out of bounds for dim 1 with size 3"):
        x.scatter_add(1, cr.tensor([[3]]), cr.ones(1, 1))
    with pytest.raises(IndexError, match="index 7 is out of bounds for dim 0 with size 2"):
        x.scatter_(0, cr.tensor([[7]]), 1.0)
    with pytest.raises(TypeError, match="dtype"):
        x.scatter(1, cr.tensor([[0]]), cr.ones(1, 1, dtype=cr.float64))
    with pytest.raises(ValueError, match=r"\(1, 2\).*src's shape \(1, 1\)"):
        x.scatter_add(1, cr.tensor([[0, 0]]), cr.ones(1, 1))
    with pytest.raises(ValueError, match=r"apart from dim 0"):
        x.scatter_add(0, cr.tensor([[0, 0, 0, 0]]), cr.ones(3, 4))
    with pytest.raises(ValueError, match="as many dims"):
        x.scatter_add(0, cr.tensor([[0]]), cr.ones(1))
    with pytest.raises(IndexError, match="int64"):
        x.scatter_(0, cr.tensor([[True]]), 1.0)
    with pytest.raises(TypeError, match="one of src"):
        x.scatter(0, cr.tensor([[0]]))
    with pytest.raises(TypeError, match="one of src"):
        x.scatter(0, cr.tensor([[0]]), cr.ones(1, 1), value=1.0)
    with pytest.raises(ValueError, match="reduce"):
        x.scatter_(0, cr.tensor([[0]]), cr.ones(1, 1), reduce="add")
    with pytest.raises(ValueError, match="expanded"):
        cr.zeros(3).expand(2, 3).scatter_(0, cr.tensor([[0]]), 1.0)


def test_in_place_scatter_follows_the_in_place_rules():
    leaf = cr.zeros(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="scatter_"):
        leaf.scatter_(1, cr.tensor([[0]]), 1.0)
    with pytest.raises(RuntimeError, match="scatter_add_"):
        leaf.scatter_add_(1, cr.tensor([[0]]), cr.ones(1, 1))
    with cr.no_grad():
        leaf.scatter_add_(1, cr.tensor([[2]]), cr.ones(1, 1))
    assert leaf.tolist() == [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    # a saved tensor changed in place afterwards: backward raises
    w = cr.ones(3, requires_grad=True)
    saved = cr.tensor([1.0, 2.0, 3.0])
    y = (w * saved).sum()
    saved.scatter_(0, cr.tensor([0]), 5.0)
    with pytest.raises(RuntimeError):
        y.backward()


# ------------------------------------------------------------------ sort, argsort, topk
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_is_stable_and_matches_numpy(dtype, dim, descending):
    a = _values((7, 9), dtype)
    if dtype in (cr.float32, cr.float64):
        a[a > 0.8] = 0.5  # ties
    t = cr.tensor(a)
    values, indices = t.sort(dim, descending)
    key = -a.astype(np.float64) if descending else a
    order = np.argsort(key, axis=dim, kind="stable")
    np.testing.assert_array_equal(indices.numpy(), order)
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(a, order, axis=dim))
    assert values.dtype == dtype and indices.dtype == cr.int64
    np.testing.assert_array_equal(t.argsort(dim, descending).numpy(), order)
    np.testing.assert_array_equal(cr.argsort(t, dim, descending=descending, stable=True).numpy(), order)
    s = cr.sort(t, dim=dim, descending=descending)
    assert s.values.tolist() == values.tolist() and s[1].tolist() == indices.tolist()


def test_sort_puts_nan_last_ascending_and_first_descending():
    t = cr.tensor([3.0, float("nan"), 1.0, float("nan"), -2.0])
    values, indices = t.sort()
    assert indices.tolist() == [4, 2, 0, 1, 3]
    assert np.isnan(values.numpy()[3:]).all()
    assert t.sort(descending=True).indices.tolist() == [1, 3, 0, 2, 4]
    assert t.topk(2).indices.tolist() == [1, 3]
    assert t.topk(2, largest=False).indices.tolist() == [4, 2]


@pytest.mark.parametrize("dtype", [cr.float32, cr.float64, cr.int64], ids=lambda d: d.name)
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_numpy(dtype, dim, largest):
    a = RNG.permutation(8 * 10).reshape(8, 10).astype(NP[dtype])  # distinct values
    k = 3
    t = cr.tensor(a)
    values, indices = t.topk(k, dim, largest)
    order = np.argsort(-a if largest else a, axis=dim)
    take = [slice(None)] * 2
    take[dim] = slice(0, k)
    np.testing.assert_array_equal(indices.numpy(), order[tuple(take)])
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(a, order[tuple(take)], axis=dim))
    assert cr.topk(t, k, dim=dim, largest=largest).values.tolist() == values.tolist()


def test_sort_topk_zero_dim_empty_and_errors():
    v, i = cr.tensor(3.0).sort()
    assert v.item() == 3.0 and i.item() == 0 and v.shape == () and i.shape == ()
    assert cr.tensor(3.0).topk(1).values.item() == 3.0
    assert cr.ones(0, 3).sort(0).values.shape == (0, 3)
    assert cr.ones(2, 0).topk(0).indices.shape == (2, 0)
    assert cr.ones(2, 4).topk(0, dim=1).values.shape == (2, 0)
    assert cr.tensor([True, False, True]).sort().indices.tolist() == [1, 0, 2]
    with pytest.raises(IndexError, match="k \\(3\\) is out of range"):
        cr.tensor([3.0, 1.0]).topk(3)
    with pytest.raises(IndexError, match="k \\(-1\\)"):
        cr.tensor([3.0, 1.0]).topk(-1)
    with pytest.raises(TypeError, match="bool"):
        cr.tensor([True]).topk(1)
    with pytest.raises(IndexError, match="dim"):
        cr.ones(2, 3).sort(2)
    with pytest.raises(TypeError, match="k must be an int"):
        cr.ones(3).topk(1.5)


def test_sort_and_topk_gradients_go_to_the_positions_named():
    x = cr.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]], requires_grad=True)
    values = x.sort(1, descending=True).values
    (values * cr.tensor([[1.0, 10.0, 100.0]])).sum().backward()
    assert x.grad.tolist() == [[1.0, 100.0, 10.0], [100.0, 1.0, 10.0]]
    x.grad = None
    x.topk(1, dim=0).values.sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
    with cr.no_grad():
        assert x.sort().values.grad_fn is None


# ------------------------------------------------------------------ cumsum, cumprod
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_cumsum_and_cumprod_match_numpy(dtype, dim):
    a = _values((3, 4, 5), dtype)
    if dtype == cr.int64:
        a = RNG.integers(-3, 4, size=(3, 4, 5))
    t = cr.tensor(a)
    expected_dtype = dtype if dtype.is_floating_point else cr.int64
    got = t.cumsum(dim)
    assert got.dtype == expected_dtype
    rtol = 1e-6 if dtype == cr.float32 else 1e-12
    np.testing.assert_allclose(got.numpy(), np.cumsum(a.astype(np.float64), axis=dim), rtol=rtol, atol=1e-6)
    got = cr.cumprod(t, dim)
    assert got.dtype == expected_dtype
    np.testing.assert_allclose(got.numpy(), np.cumprod(a.astype(np.float64), axis=dim), rtol=rtol, atol=1e-6)
    # non-contiguous input
    np.testing.assert_allclose(cr.tensor(a).transpose(0, 2).cumsum(dim).numpy(),
                               np.cumsum(np.swapaxes(a, 0, 2).astype(np.float64), axis=dim), rtol=rtol, atol=1e-6)


def test_cumsum_dtype_zero_dim_empty_and_errors():
    assert cr.tensor([1, 2]).cumsum(0, dtype=cr.float32).tolist() == [1.0, 3.0]
    assert cr.tensor([1, 2]).cumsum(0, dtype=cr.float32).dtype == cr.float32
    assert cr.tensor(3.0).cumsum(0).item() == 3.0 and cr.tensor(3.0).cumprod(-1).shape == ()
    assert cr.ones(0, 3).cumsum(0).shape == (0, 3)
    assert cr.ones(2, 0).cumprod(1).shape == (2, 0)
    with pytest.raises(IndexError, match="dim"):
        cr.ones(2, 3).cumsum(2)
    with pytest.raises(TypeError, match="dim must be an int"):
        cr.ones(2, 3).cumsum(None)


def test_float32_cumsum_accumulates_in_double():
    x = np.full(1 << 20, 0.1, dtype=np.float32)
    got = cr.tensor(x).cumsum(0).numpy()
    exact = np.cumsum(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(got, exact)


def test_cumprod_gradient_is_exact_with_zeros():
    cases = [[1.5, 0.0, 2.0, 0.0, 3.0], [0.0, 2.0, 3.0], [2.0, 3.0, 0.0], [0.0, 0.0, 2.0], [1.0, -2.0, 0.5]]
    for values in cases:
        x = cr.tensor(values, dtype=cr.float64, requires_grad=True)
        assert cr.autograd.gradcheck(lambda t: t.cumprod(0), (x,))
    x = cr.tensor([[1.5, 0.0, 2.0], [0.0, 2.0, 0.0], [3.0, 1.0, 2.0]], dtype=cr.float64, requires_grad=True)
    assert cr.autograd.gradcheck(lambda t: t.cumprod(0) * t.cumprod(1), (x,))
    # overflow after a zero must not turn the gradient into NaN
    big = cr.tensor([0.0, 1e30, 1e30, 1e30], requires_grad=True)
    big.cumprod(0).sum().backward()
    assert big.grad.tolist()[1:] == [0.0, 0.0, 0.0]


# ------------------------------------------------------------------ one_hot
def test_one_hot():
    assert F.one_hot(cr.tensor([0, 2])).tolist() == [[1, 0, 0], [0, 0, 1]]
    out = F.one_hot(cr.tensor([[1], [0]]), num_classes=4)
    assert out.dtype == cr.int64 and out.shape == (2, 1, 4)
    assert out.tolist() == [[[0, 1, 0, 0]], [[1, 0, 0, 0]]]
    assert F.one_hot(cr.tensor(1), 3).tolist() == [0, 1, 0]
    assert F.one_hot(cr.zeros(0, dtype=cr.int64), 3).shape == (0, 3)
    with pytest.raises(ValueError, match="empty"):
        F.one_hot(cr.zeros(0, dtype=cr.int64))
    with pytest.raises(IndexError, match="non-negative"):
        F.one_hot(cr.tensor([0, -1]), 3)
    with pytest.raises(IndexError, match="num_classes=2"):
        F.one_hot(cr.tensor([0, 2]), 2)
    with pytest.raises(TypeError, match="int64"):
        F.one_hot(cr.tensor([0.0, 1.0]), 3)


# ------------------------------------------------------------------ large: the threaded paths
def test_large_inputs_take_the_threaded_paths_and_agree_with_numpy():
    before = cr.get_num_threads()
    try:
        cr.set_num_threads(2)
        a = RNG.standard_normal((700, 600))
        for dim in (0, 1):
            index = RNG.integers(0, a.shape[dim], size=(700, 600))
            np.testing.assert_array_equal(cr.tensor(a).gather(dim, cr.tensor(index)).numpy(),
                                          np.take_along_axis(a, index, axis=dim))
            # integer-valued float64 sums are exact in any order: equality checks for races
            src = RNG.integers(-5, 6, size=(700, 600)).astype(np.float64)
            expected = np.zeros_like(a)
            coords = list(np.indices(index.shape))
            coords[dim] = index
            np.add.at(expected, tuple(coords), src)
            got = cr.zeros(700, 600, dtype=cr.float64).scatter_add(dim, cr.tensor(index), cr.tensor(src))
            np.testing.assert_array_equal(got.numpy(), expected)
            np.testing.assert_allclose(cr.tensor(a).cumsum(dim).numpy(), np.cumsum(a, axis=dim), rtol=1e-10,
                                       atol=1e-10)
            order = np.argsort(a, axis=dim, kind="stable")
            np.testing.assert_array_equal(cr.tensor(a).sort(dim).indices.numpy(), order)
            indices = cr.tensor(a).topk(5, dim).indices
            np.testing.assert_array_equal(indices.numpy(),
                                          np.take(np.argsort(-a, axis=dim), range(5), axis=dim))
        one_d = RNG.standard_normal(300_000)
        np.testing.assert_array_equal(cr.tensor(one_d).sort().values.numpy(), np.sort(one_d))
        index = RNG.integers(0, one_d.size, size=400_000)
        np.testing.assert_array_equal(cr.tensor(one_d).gather(0, cr.tensor(index)).numpy(), one_d[index])
    finally:
        cr.set_num_threads(before)


# ------------------------------------------------------------------ PyTorch
@requires_torch
@pytest.mark.parametrize("dtype", [cr.float32, cr.float64], ids=lambda d: d.name)
def test_forward_and_backward_match_pytorch(dtype):
    np_dtype = NP[dtype]
    a = RNG.standard_normal((4, 6)).astype(np_dtype)
    g = RNG.standard_normal((4, 6)).astype(np_dtype)
    index = RNG.integers(0, 6, size=(4, 3))
    distinct = _distinct_index((4, 3), 1, 6)
    src = RNG.standard_normal((4, 3)).astype(np_dtype)  # PyTorch's backward needs src of index's shape
    a_zeros = a.copy()
    a_zeros[1, 2] = a_zeros[2, 0] = a_zeros[2, 4] = a_zeros[3, 5] = 0.0

    def run(lib, make):
        ops = {
            "gather": lambda x, s: lib.gather(x, 1, make(index)),
            "gather_dim0": lambda x, s: x.gather(0, make(index.T[:, :4] % 4)),
            "scatter": lambda x, s: x.scatter(1, make(distinct), s),
            "scatter_value": lambda x, s: x.scatter(-1, make(distinct), 2.0),
            "scatter_add": lambda x, s: lib.scatter_add(x, 1, make(index), s),
            "sort": lambda x, s: x.sort(1, descending=True).values,
            "sort_dim0": lambda x, s: lib.sort(x, 0).values,
            "topk": lambda x, s: x.topk(2, dim=1).values,
            "topk_smallest": lambda x, s: lib.topk(x, 3, dim=0, largest=False).values,
            "cumsum": lambda x, s: x.cumsum(1),
            "cumsum_dim0": lambda x, s: lib.cumsum(x, dim=-2),
            "cumprod": lambda x, s: x.cumprod(1),
            "cumprod_dim0": lambda x, s: lib.cumprod(x, 0),
        }
        results = {}
        for name, op in ops.items():
            x = make(a_zeros if name.startswith("cumprod") else a, True)
            s = make(src, True)
            out = op(x, s)
            out.backward(make(g[tuple(slice(0, n) for n in out.shape)]))
            results[name] = (out.detach().numpy(), x.grad.numpy(),
                             None if s.grad is None else s.grad.numpy())
        return results

    def make_cr(array, requires_grad=False):
        return cr.tensor(np.array(array), requires_grad=requires_grad)

    ours = run(cr, make_cr)
    theirs = run(torch, _torch)
    rtol = 1e-5 if dtype == cr.float32 else 1e-12
    for name in ours:
        for mine, reference in zip(ours[name], theirs[name]):
            if reference is None:
                assert mine is None or not mine.any(), name
                continue
            np.testing.assert_allclose(mine, reference, rtol=rtol, atol=rtol, err_msg=name)


@requires_torch
def test_indices_and_integer_results_match_pytorch():
    a = RNG.integers(-3, 4, size=(5, 7))
    t, tt = cr.tensor(a), torch.from_numpy(a)
    for dim in (0, 1):
        for descending in (False, True):
            expected = tt.sort(dim=dim, descending=descending, stable=True).indices
            assert t.sort(dim, descending).indices.tolist() == expected.tolist()
        assert t.cumsum(dim).tolist() == tt.cumsum(dim).tolist()
        assert t.cumprod(dim).tolist() == tt.cumprod(dim).tolist()
    b = RNG.random((6,)) < 0.5
    assert cr.tensor(b).cumsum(0).tolist() == torch.from_numpy(b).cumsum(0).tolist()
    assert cr.tensor(b).sort().indices.tolist() == torch.from_numpy(b).sort(stable=True).indices.tolist()
    labels = RNG.integers(0, 5, size=(3, 4))
    assert F.one_hot(cr.tensor(labels)).tolist() == torch.nn.functional.one_hot(torch.from_numpy(labels)).tolist()
    x = np.float32(RNG.standard_normal(100_000))
    np.testing.assert_array_equal(cr.tensor(x).cumsum(0).numpy(), torch.from_numpy(x).cumsum(0).numpy())


def test_topk_ties_and_nan_agree_with_the_stable_sort_on_both_paths():
    a = RNG.integers(0, 5, size=(3, 300)).astype(np.float64)
    a[1, 17] = a[2, 250] = np.nan
    for k in (1, 3, 32, 200):  # one-pass selection (k <= 32, k <= n / 8) and partial sort
        for largest in (True, False):
            for dim, data in ((1, a), (0, a.T)):
                values, indices = cr.tensor(data).topk(k, dim, largest)
                sort = cr.tensor(data).sort(dim, descending=largest)
                take = [slice(None)] * 2
                take[dim] = slice(0, k)
                np.testing.assert_array_equal(indices.numpy(), sort.indices.numpy()[tuple(take)])
                np.testing.assert_array_equal(values.numpy(), sort.values.numpy()[tuple(take)])


def test_signatures_follow_pytorch():
    import inspect

    def params(fn):
        return [(p.name, p.default, p.kind == p.KEYWORD_ONLY) for p in inspect.signature(fn).parameters.values()]

    empty = inspect.Parameter.empty
    assert params(cr.gather) == [("input", empty, False), ("dim", empty, False), ("index", empty, False),
                                 ("sparse_grad", False, True)]
    assert params(cr.scatter_add) == [("input", empty, False), ("dim", empty, False), ("index", empty, False),
                                      ("src", empty, False)]
    assert params(cr.sort) == [("input", empty, False), ("dim", -1, False), ("descending", False, False),
                               ("stable", False, True)]
    assert params(cr.argsort) == params(cr.sort)
    assert params(cr.topk)[:5] == [("input", empty, False), ("k", empty, False), ("dim", None, False),
                                   ("largest", True, False), ("sorted", True, False)]
    assert params(cr.cumsum) == [("input", empty, False), ("dim", empty, False), ("dtype", None, True)]
    assert params(cr.cumprod) == params(cr.cumsum)
    assert params(F.one_hot) == [("tensor", empty, False), ("num_classes", -1, False)]
    for name in ("gather", "scatter", "scatter_", "scatter_add", "scatter_add_", "sort", "argsort", "topk",
                 "cumsum", "cumprod"):
        assert callable(getattr(cr.Tensor, name)), name
    for name in ("gather", "scatter", "scatter_add", "sort", "argsort", "topk", "cumsum", "cumprod"):
        assert name in cr.__all__, name


def test_compiled_step_replays_the_dim_ops_bit_for_bit():
    import warnings

    cr.manual_seed(0)
    w = cr.randn(4, 6, requires_grad=True)
    index = cr.tensor([[0, 2], [1, 1], [5, 3], [4, 0]])
    opt = cr.optim.SGD([w], lr=0.1)
    x = cr.randn(4, 6)

    def step(x):
        opt.zero_grad()
        y = w * x
        loss = (y.gather(1, index).sum() + y.cumsum(1).sum() * 0.01 + y.sort(1).values[:, -1].sum()
                + y.topk(2, dim=0).values.sum() + cr.zeros(4, 6).scatter_add(1, index, y.gather(1, index)).sum()
                + y.scatter(1, index, 0.5).cumprod(1).sum() * 0.001)
        loss.backward()
        opt.step()
        return loss

    start = w.detach().clone()
    eager = [step(x).item() for _ in range(3)]
    with cr.no_grad():
        w.copy_(start)
    compiled = cr.compile(step)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing falls back to eager
        assert [compiled(x).item() for _ in range(3)] == eager
