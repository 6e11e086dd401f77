"""Reductions: sum and mean (native), amax/amin, and max/min along a dim."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chainrule import _core
from chainrule.ops.kernels import K
from chainrule.autograd.function import OpNode
from chainrule.ops.table import Case, native, op

C = _core
Array = _core.Tensor


def _spread(saved: Any, g: Array, mean: bool) -> tuple[Any, ...]:
    """Each input element went into its sum once: its gradient is the sum's, put back in place
    (divided by the count for a mean), as the native unit does."""
    shape = list(saved.input_shape)
    ndim = len(shape)
    kept = list(shape)
    count = 1
    for d in range(ndim):
        if not saved.dims or any(dim == d or dim + ndim == d for dim in saved.dims):
            count *= shape[d]
            kept[d] = 1
    if mean and count > 0:
        g = K.div(g, float(count))
    return (g.reshape(kept).expand(shape),)


@native("sum", "Sum", saves="the reduced dims and the input's shape",
        cases=[Case("sum", lambda a: a.sum((0, 2)), [(2, 3, 4)]),
               Case("sum_all", lambda a: a.sum(), [(3, 4)])],
        names=("Tensor.sum", "cr.sum"))
def sum_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """d sum = g, spread back over the summed elements."""
    return _spread(saved, g, mean=False)


@native("mean", "Mean", saves="the reduced dims and the input's shape",
        cases=[Case("mean", lambda a: a.mean(1, keepdim=True), [(2, 3, 4)]),
               Case("mean_all", lambda a: a.mean(), [(3, 4)])],
        names=("Tensor.mean", "cr.mean"))
def mean_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """d mean = g / count, spread back over the averaged elements."""
    return _spread(saved, g, mean=True)


def _dims_of(ndim: int, dims: Sequence[int]) -> list[int]:
    """Reduced dims as non-negative ints (all dims when `dims` is empty)."""
    if not dims:
        return list(range(ndim))
    return sorted(d + ndim if d < 0 else d for d in dims)


def _keepdim_shape(shape: tuple[int, ...], dims: Sequence[int]) -> list[int]:
    reduced = set(_dims_of(len(shape), dims))
    return [1 if i in reduced else s for i, s in enumerate(shape)]


@op("amax", saves="the input and the output", names=("Tensor.amax", "cr.amax", "Tensor.max()"),
    cases=[Case("amax", lambda a: a.amax((0, 2)), [(2, 3, 4)], ok="distinct"),
           Case("max_all", lambda a: a.max(), [(3, 4)], ok="distinct")])
class Amax(OpNode):
    """g goes to the elements equal to the maximum; ties share it evenly (PyTorch's rule)."""

    reduce = staticmethod(C.amax)

    @classmethod
    def forward(cls, ctx: Any, a: Array, dims: list[int], keepdim: bool) -> Array:
        out = cls.reduce(a, dims, keepdim)
        ctx.dims = dims
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        a, out = ctx.saved_tensors
        keep = _keepdim_shape(a.shape, ctx.dims)
        winners = K.eq(a, out.reshape(keep))
        count = K.sum(winners, ctx.dims, True)
        return K.div(K.mul(winners, g.reshape(keep)), count), None, None


@op("amin", saves="the input and the output", names=("Tensor.amin", "cr.amin", "Tensor.min()"),
    cases=[Case("amin", lambda a: a.amin(1, keepdim=True), [(2, 3, 4)], ok="distinct")])
class Amin(Amax):
    """g goes to the elements equal to the minimum; ties share it evenly."""

    reduce = staticmethod(C.amin)


@op("max_along_dim", saves="the indices chosen", names=("Tensor.max(dim)", "Tensor.min(dim)"),
    cases=[Case("max_dim", lambda a: a.max(1).values, [(2, 3, 4)], ok="distinct"),
           Case("min_dim_keepdim", lambda a: a.min(0, keepdim=True)[0], [(3, 4)], ok="distinct")])
class MaxAlongDim(OpNode):
    """The values of max(dim) / min(dim): g goes to the one index chosen."""

    @staticmethod
    def forward(ctx: Any, a: Array, dim: int, keepdim: bool, indices: Array, largest: bool) -> Array:
        ctx.shape, ctx.dim, ctx.keepdim = a.shape, dim, keepdim
        ctx.save_for_backward(indices)
        return (C.amax if largest else C.amin)(a, [dim], keepdim)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (indices,) = ctx.saved_tensors
        if not ctx.shape:  # a 0-d input is its own maximum
            return g.reshape([]), None, None, None, None
        dim = ctx.dim
        size = ctx.shape[dim]
        keep = list(ctx.shape)
        keep[dim] = 1
        positions = K.arange(0, size, 1, C.DType.int64).reshape([size] + [1] * (len(keep) - dim - 1))
        one_hot = K.eq(positions, indices.reshape(keep))
        return K.mul(one_hot, g.reshape(keep)), None, None, None, None
