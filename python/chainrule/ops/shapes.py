"""Shapes and views: their backward moves the gradient back into the input's shape, and
casts and copies pass it through unchanged (the engine casts it to the input's dtype)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chainrule import _core
from chainrule.ops import kernels
from chainrule.ops.kernels import K
from chainrule.autograd.function import OpNode
from chainrule.ops.table import Case, op

C = _core
Array = _core.Tensor


@op("reshape", saves="the input's shape",
    names=("Tensor.reshape", "view", "flatten", "squeeze", "unsqueeze", "cr.reshape"),
    cases=[Case("reshape", lambda a: a.reshape(4, 3), [(3, 4)]),
           Case("view_squeeze_unsqueeze", lambda a: a.view(-1).unsqueeze(0).squeeze(), [(2, 3, 1)]),
           Case("flatten_of_transposed", lambda a: a.flatten(), [(4, 3)], transposed=(0,))])
class Reshape(OpNode):
    """view, reshape, flatten, squeeze, unsqueeze: g takes the input's shape back."""

    @staticmethod
    def forward(ctx: Any, a: Array, method: str, *args: Any) -> Array:
        ctx.shape = a.shape
        return getattr(a, method)(*args)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return (g.reshape(list(ctx.shape)),) + (None,) * 8


@op("transpose", saves="the two dims", names=("Tensor.transpose", ".T", "cr.transpose"),
    cases=[Case("transpose", lambda a: a.transpose(0, 2), [(2, 3, 4)]),
           Case("T", lambda a, b: a.T * b, [(3, 4), (4, 3)])])
class Transpose(OpNode):
    """g transposed back."""

    @staticmethod
    def forward(ctx: Any, a: Array, d0: int, d1: int) -> Array:
        ctx.d0, ctx.d1 = d0, d1
        return a.transpose(d0, d1)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return g.transpose(ctx.d0, ctx.d1), None, None


@op("permute", saves="the permutation", names=("Tensor.permute", "cr.permute"),
    cases=[Case("permute", lambda a: a.permute(2, 0, 1), [(2, 3, 4)])])
class Permute(OpNode):
    """g permuted by the inverse permutation."""

    @staticmethod
    def forward(ctx: Any, a: Array, dims: list[int]) -> Array:
        out = a.permute(dims)
        ctx.dims = [d % a.ndim for d in dims] if a.ndim else []
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        inverse = [0] * len(ctx.dims)
        for i, d in enumerate(ctx.dims):
            inverse[d] = i
        return g.permute(inverse), None


@op("expand", saves="nothing", names=("Tensor.expand", "expand_as"),
    cases=[Case("expand", lambda a: a.expand(2, 3, 4), [(3, 1)])])
class Expand(OpNode):
    """g as it is: the engine sums the expanded dims back (sum_to)."""

    @staticmethod
    def forward(ctx: Any, a: Array, shape: list[int]) -> Array:
        return a.expand(shape)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return g, None


@op("identity", saves="nothing", names=("Tensor.contiguous", "Tensor.clone"),
    cases=[Case("contiguous", lambda a: a.contiguous(), [(4, 3)], transposed=(0,)),
           Case("clone", lambda a: a.clone() * a, [(3, 4)])])
class Identity(OpNode):
    """contiguous() and clone(): a copy; g passes through unchanged."""

    @staticmethod
    def forward(ctx: Any, a: Array, method: str) -> Array:
        return getattr(a, method)()

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return g, None


@op("cast", saves="nothing", names=("Tensor.to", "float", "double"),
    cases=[Case("cast", lambda a: a.float().double() * a, [(3, 4)], tolerance=(5e-2, 5e-2))])
class Cast(OpNode):
    """g passes through; the engine casts it back to the input's dtype."""

    @staticmethod
    def forward(ctx: Any, a: Array, dtype: Any) -> Array:
        return a.to(dtype)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return g, None


apply_view_steps = kernels.apply_view_steps


@op("index", saves="the input's shape and the view steps", names=("t[ints, slices, None, ...]",),
    cases=[Case("index", lambda a: a[0, ..., 1::2], [(2, 3, 4)]),
           Case("index_overlapping", lambda a: a[0] * a[1:].sum(0) + a[:, 0].sum(), [(3, 4)])])
class Index(OpNode):
    """Basic indexing (ints, slices, None, ...) as a chain of views; g is scattered into zeros
    of the input's shape through the same views."""

    @staticmethod
    def forward(ctx: Any, a: Array, steps: list[tuple[str, tuple[Any, ...]]]) -> Array:
        ctx.shape, ctx.dtype, ctx.steps = a.shape, a.dtype, steps
        return apply_view_steps(a, steps)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return K.view_scatter(g, list(ctx.shape), Index, ctx.steps), None


def _view_scatter_case(g: Any) -> Any:
    return _core.apply(ViewScatter, g, [3, 4], Index, [("select", (0, 1)), ("slice", (0, 0, 4, 2))])


def _view_scatter_transposed_case(g: Any) -> Any:
    return _core.apply(ViewScatter, g, [2, 3], Transpose, 0, 1)


@op("view_scatter", saves="the view op and its arguments", names=("the backward of a view op",),
    cases=[Case("view_scatter", _view_scatter_case, [(2,)]),
           Case("view_scatter_transposed", _view_scatter_transposed_case, [(3, 2)])])
class ViewScatter(OpNode):
    """Zeros of a shape with g written into a view op's view of them (indexing's, a diagonal's):
    the backward of any view op, as an op of its own so that a backward recorded with
    create_graph=True is differentiable again. Its backward is the view op itself:
    `K.view_scatter(g, shape, ViewOp, *args)` in a view op's backward is all it takes."""

    @staticmethod
    def forward(ctx: Any, g: Array, shape: list[int], view_op: Any, *args: Any) -> Array:
        ctx.view_op, ctx.args = view_op, args
        return K.view_scatter(g, shape, view_op, *args)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return (K.view_of(g, ctx.view_op, *ctx.args), None, None) + (None,) * len(ctx.args)


def _index_select_case(a: Any) -> Any:
    import chainrule as cr

    return a[cr.tensor([1, 1, 0])] + a.index_select(1, cr.tensor([3, 0, 3, 1]))[:3, :]


@op("index_select", saves="the index", names=("t[index tensor]", "Tensor.index_select", "cr.index_select"),
    cases=[Case("index_select", _index_select_case, [(3, 4)])])
class IndexSelect(OpNode):
    """A gather along a dim by an int64 index; g is scattered back with index_add_ (an index
    that repeats a position adds its gradients up)."""

    @staticmethod
    def forward(ctx: Any, a: Array, dim: int, index: Array) -> Array:
        ctx.shape, ctx.dim = a.shape, dim
        ctx.save_for_backward(index)
        return C.index_select(a, dim, index)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (index,) = ctx.saved_tensors
        out = K.full(list(ctx.shape), 0, g.dtype)
        added = K.index_add_(out, ctx.dim, index, g)  # a new Tensor when recorded, None in place
        out = out if added is None else added
        return out, None, None


def _cat_case(a: Any, b: Any) -> Any:
    import chainrule as cr

    return cr.cat([a, b, a], dim=1) + cr.stack([a, a], dim=-1).sum(-1).sum(1, keepdim=True)


@op("cat", saves="the dim and each input's size along it", names=("cr.cat", "cr.stack"),
    cases=[Case("cat", _cat_case, [(2, 3), (2, 1)])])
class Cat(OpNode):
    """Each input's gradient is its slice of g."""

    @staticmethod
    def forward(ctx: Any, dim: int, *arrays: Array) -> Array:
        out = C.cat(list(arrays), dim)
        dim = dim % out.ndim
        ctx.dim, ctx.sizes = dim, [a.shape[dim] for a in arrays]
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        grads: list[Any] = [None]
        offset = 0
        for size in ctx.sizes:
            grads.append(K.slice(g, ctx.dim, offset, offset + size, 1))
            offset += size
        return tuple(grads)


def diagonal_view(a: Array, offset: int, dim1: int, dim2: int) -> Array:
    """The diagonal of dims dim1 and dim2 (non-negative, distinct) as a view: those dims
    dropped, one dim of the diagonal's length appended (NumPy's and PyTorch's layout)."""
    shape, strides = list(a.shape), list(a.strides)
    start = a.offset
    if offset >= 0:
        length = max(0, min(shape[dim1], shape[dim2] - offset))
        start += offset * strides[dim2] if length else 0
    else:
        length = max(0, min(shape[dim1] + offset, shape[dim2]))
        start += -offset * strides[dim1] if length else 0
    step = strides[dim1] + strides[dim2]
    kept = [d for d in range(len(shape)) if d not in (dim1, dim2)]
    return a.as_strided([shape[d] for d in kept] + [length], [strides[d] for d in kept] + [step], start)


def _diagonal_case(a: Any) -> Any:
    import chainrule as cr

    return a.diagonal().sum(-1) + cr.diagonal(a, 1, 2, 0).sum(-1) + a.diagonal(-1, 1, 2).sum(-1)


@op("diagonal", saves="the input's shape and the dims", names=("Tensor.diagonal", "cr.diagonal"),
    cases=[Case("diagonal", _diagonal_case, [(3, 3, 3)]),
           Case("diagonal_rectangular", lambda a: a.diagonal(1) * 2.0, [(3, 4)], transposed=(0,))])
class Diagonal(OpNode):
    """A view of a diagonal; g is written into zeros of the input's shape along the same
    diagonal."""

    @staticmethod
    def forward(ctx: Any, a: Array, offset: int, dim1: int, dim2: int) -> Array:
        ctx.shape, ctx.offset, ctx.dim1, ctx.dim2 = a.shape, offset, dim1, dim2
        return diagonal_view(a, offset, dim1, dim2)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return K.view_scatter(g, list(ctx.shape), Diagonal, ctx.offset, ctx.dim1, ctx.dim2), None, None, None


def _pad_views(shape: Sequence[int], pad: Sequence[int]) -> tuple[list[int], list[Any], list[Any]]:
    """F.pad's constant mode: the output's shape, the input's cropped region and where it lands
    in the output, as (dim, start, stop) slices. pad holds (before, after) pairs from the last
    dim backwards; a negative entry crops."""
    out_shape = list(shape)
    crop, place = [], []
    for i in range(len(pad) // 2):
        dim = len(shape) - 1 - i
        before, after = pad[2 * i], pad[2 * i + 1]
        size = shape[dim]
        kept = size - max(0, -before) - max(0, -after)
        out_shape[dim] = size + before + after
        crop.append((dim, max(0, -before), max(0, -before) + max(0, kept)))
        place.append((dim, max(0, before), max(0, before) + max(0, kept)))
    return out_shape, crop, place


def _sliced(a: Array, slices: list[Any]) -> Array:
    for dim, start, stop in slices:
        a = a.slice(dim, start, stop, 1)
    return a


def _pad_case(a: Any) -> Any:
    from chainrule.nn import functional as F

    cropped = F.pad(a[0], (-1, -1, 1, 0), value=-1.0)[1:].sum(-1, keepdim=True)
    return F.pad(a, (1, 2, -1, 1), value=0.5)[:, :3, :].sum(0) + F.pad(a[1], (2, 1)) + cropped


@op("pad", saves="the input's shape and the padding",
    names=("F.pad", "F.pad(mode='constant')"),
    cases=[Case("pad_constant", _pad_case, [(2, 3, 4)])])
class ConstantPad(OpNode):
    """F.pad's constant mode: the input written into a tensor filled with `value`; a negative
    pad crops. g's region over the input is its gradient (zeros where it was cropped)."""

    @staticmethod
    def forward(ctx: Any, a: Array, pad: list[int], value: Any) -> Array:
        out_shape, crop, place = _pad_views(a.shape, pad)
        ctx.shape, ctx.crop, ctx.place = a.shape, crop, place
        out = C.full(out_shape, value, a.dtype)
        C.copy_(_sliced(out, place), _sliced(a, crop))
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        region = K.view_of(g, Index, [("slice", (d, start, stop, 1)) for d, start, stop in ctx.place])
        if list(region.shape) == list(ctx.shape):
            return region, None, None
        crop = [("slice", (d, start, stop, 1)) for d, start, stop in ctx.crop]
        return K.view_scatter(region, list(ctx.shape), Index, crop), None, None
