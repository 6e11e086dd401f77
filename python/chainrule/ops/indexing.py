"""Gathering and scattering along a dim by an int64 index (PyTorch's gather, scatter,
scatter_add), each the other's backward: gather's gradient is scattered back with scatter_add,
scatter_add's is gathered, and scatter's is gathered for src and masked (scatter of a zero)
for the input. sort and topk take their values with gather, so their gradient goes back to
the positions their indices name."""
from __future__ import annotations

from typing import Any

from chainrule import _core
from chainrule.ops.kernels import K
from chainrule.autograd.function import OpNode
from chainrule.ops.table import Case, op

C = _core
Array = _core.Tensor


def _index(rows: list[list[int]]) -> Any:
    import chainrule as cr

    return cr.tensor(rows)


def _fit(g: Array, shape: tuple[int, ...]) -> Array:
    """g (the index's shape) as the gradient of a src that may be larger than the index: the
    elements the index never reached get zero."""
    if tuple(g.shape) == tuple(shape):
        return g
    from chainrule.ops.shapes import Index

    return K.view_scatter(g, list(shape), Index, [("slice", (d, 0, size, 1)) for d, size in enumerate(g.shape)])


@op("gather", saves="the index and the input's shape",
    names=("Tensor.gather", "cr.gather", "Tensor.sort", "cr.sort", "Tensor.topk", "cr.topk"),
    cases=[Case("gather", lambda a: a.gather(1, _index([[0, 2, 2], [3, 0, 1], [1, 1, 1]])), [(3, 4)]),
           Case("gather_dim0_transposed", lambda a: a.gather(0, _index([[2, 0, 1, 1]])), [(3, 4)],
                transposed=(0,)),
           Case("gather_negative_dim", lambda a: a.gather(-1, _index([[[1], [0]], [[2], [2]]])), [(2, 3, 3)]),
           Case("sort_values", lambda a: a.sort(1).values * a.sort(0, descending=True)[0], [(3, 4)],
                ok="distinct"),
           Case("topk_values",
                lambda a: a.topk(2, dim=1).values.sum(1, keepdim=True) * a.topk(1, 0, largest=False)[0],
                [(3, 4)], ok="distinct")])
class Gather(OpNode):
    """out = a gathered along dim at index; g is added back at the positions read (an index
    that repeats a position adds its gradients up)."""

    @staticmethod
    def forward(ctx: Any, a: Array, dim: int, index: Array) -> Array:
        ctx.shape, ctx.dim = a.shape, dim
        ctx.save_for_backward(index)
        return C.gather(a, dim, index)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (index,) = ctx.saved_tensors
        return K.scatter_add(K.full(list(ctx.shape), 0, g.dtype), ctx.dim, index, g), None, None


@op("scatter_add", saves="the index and src's shape", names=("Tensor.scatter_add", "cr.scatter_add"),
    cases=[Case("scatter_add", lambda a, b: a.scatter_add(1, _index([[0, 0, 3], [2, 1, 2]]), b) * a,
                [(2, 4), (2, 3)]),
           Case("scatter_add_larger_src", lambda a, b: a.scatter_add(0, _index([[1, 0], [1, 1]]), b),
                [(2, 3), (3, 3)], transposed=(1,))])
class ScatterAdd(OpNode):
    """out = a with src added at index along dim: g passes to a, and src's gradient is g
    gathered at the same positions."""

    @staticmethod
    def forward(ctx: Any, a: Array, dim: int, index: Array, src: Array) -> Array:
        ctx.dim, ctx.src_shape = dim, src.shape
        ctx.save_for_backward(index)
        return C.scatter_add(a, dim, index, src)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (index,) = ctx.saved_tensors
        return g, None, None, _fit(K.gather(g, ctx.dim, index), ctx.src_shape)


@op("scatter", saves="the index and src's shape", names=("Tensor.scatter", "cr.scatter"),
    cases=[Case("scatter", lambda a, b: a.scatter(1, _index([[3, 0], [1, 2]]), b) * a, [(2, 4), (2, 2)]),
           Case("scatter_dim0_larger_src", lambda a, b: a.scatter(0, _index([[2, 0, 1]]), b),
                [(3, 3), (2, 4)], transposed=(0,))])
class Scatter(OpNode):
    """out = a with src written at index along dim: the positions written take no gradient
    from a, and src's gradient is g gathered there."""

    @staticmethod
    def forward(ctx: Any, a: Array, dim: int, index: Array, src: Array) -> Array:
        ctx.dim, ctx.src_shape = dim, src.shape
        ctx.save_for_backward(index)
        return C.scatter(a, dim, index, src)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (index,) = ctx.saved_tensors
        return (K.scatter_value(g, ctx.dim, index, 0.0), None, None,
                _fit(K.gather(g, ctx.dim, index), ctx.src_shape))


@op("scatter_value", saves="the index", names=("Tensor.scatter(dim, index, value)",),
    cases=[Case("scatter_value", lambda a: a.scatter(0, _index([[1, 0, 1, 2]]), 2.5) * a, [(3, 4)])])
class ScatterValue(OpNode):
    """out = a with one value written at index along dim: those positions take no gradient."""

    @staticmethod
    def forward(ctx: Any, a: Array, dim: int, index: Array, value: Any) -> Array:
        ctx.dim = dim
        ctx.save_for_backward(index)
        return C.scatter_value(a, dim, index, value)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (index,) = ctx.saved_tensors
        return K.scatter_value(g, ctx.dim, index, 0.0), None, None, None
