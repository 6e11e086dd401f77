"""Reductions: sum and mean (native), amax/amin, max/min along a dim, var (std), vector norms."""
from __future__ import annotations

import math
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


def _reduced_count(shape: Sequence[int], dims: Sequence[int]) -> int:
    count = 1
    for d in _dims_of(len(shape), dims):
        count *= shape[d]
    return count


def _var_case(a: Any) -> Any:
    return a.var(1) + a.var((0, 2), correction=0, keepdim=True).sum() + a.var()


@op("var", saves="the input", names=("Tensor.var", "cr.var", "cr.var_mean"),
    cases=[Case("var", _var_case, [(2, 3, 4)])])
class Var(OpNode):
    """sum((x - mean)^2) / (n - correction) over the dims; d var = g * 2 (x - mean) / (n -
    correction) (the mean's own gradient sums to zero)."""

    @staticmethod
    def forward(ctx: Any, a: Array, dims: list[int], correction: float, keepdim: bool) -> Array:
        mean = C.mean(a, dims, True)  # checks the dims
        ctx.dims, ctx.keepdim = dims, keepdim
        ctx.denominator = denominator = float(max(0.0, _reduced_count(a.shape, dims) - correction))
        ctx.save_for_backward(a)
        diff = C.sub(a, mean)
        return C.div(C.sum(C.square(diff), dims, keepdim), denominator)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        diff = K.sub(a, K.mean(a, ctx.dims, True))
        g = g.reshape(_keepdim_shape(a.shape, ctx.dims))
        return K.mul(diff, K.div(K.mul(g, 2.0), ctx.denominator)), None, None, None


@op("std", saves="the input and the output", names=("Tensor.std", "cr.std", "cr.std_mean"),
    cases=[Case("std", lambda a: a.std(0, unbiased=False) + a.std(), [(3, 4)]),
           Case("std_keepdim", lambda a: a.std((0, 2), keepdim=True, correction=2), [(3, 2, 4)])])
class Std(OpNode):
    """sqrt(var); d std = d var * g / (2 std), taken as 0 where std is 0 (PyTorch's rule: constant
    data gets a zero gradient, not NaN)."""

    @staticmethod
    def forward(ctx: Any, a: Array, dims: list[int], correction: float, keepdim: bool) -> Array:
        out = C.sqrt(Var.forward(ctx, a, dims, correction, keepdim))
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        a, out = ctx.saved_tensors
        zero = K.full((), 0, g.dtype)
        g_var = K.where(K.eq(out, 0), zero, K.div(g, K.mul(out, 2.0)))
        diff = K.sub(a, K.mean(a, ctx.dims, True))
        g_var = g_var.reshape(_keepdim_shape(a.shape, ctx.dims))
        return K.mul(diff, K.div(K.mul(g_var, 2.0), ctx.denominator)), None, None, None


def _norm_case(a: Any) -> Any:
    import chainrule as cr

    return (a.norm() + a.norm(1, dim=1).sum() + cr.linalg.vector_norm(a, 3.5, dim=0).sum()
            + cr.linalg.vector_norm(a, 0.5) + cr.linalg.vector_norm(a, 1.5, dim=(0, 1)))


def _norm_inf_case(a: Any) -> Any:
    import chainrule as cr

    inf = float("inf")
    return cr.linalg.vector_norm(a, inf, dim=1) + cr.linalg.vector_norm(a, -inf, dim=1, keepdim=True)


@op("vector_norm", saves="the input and the norm",
    names=("cr.linalg.vector_norm", "cr.linalg.norm", "Tensor.norm", "cr.norm"),
    cases=[Case("vector_norm", _norm_case, [(3, 4)], "nonzero"),
           Case("vector_norm_inf", _norm_inf_case, [(3, 4)], "nonzero", ok="distinct"),
           Case("vector_norm_negative_ord", lambda a: a.norm(-1.5, dim=0), [(3, 4)], "nonzero")])
class VectorNorm(OpNode):
    """(sum |x|^p)^(1/p) over the dims; p = inf / -inf: the largest / smallest |x|; p = 0: the
    count of nonzeros. The gradient is PyTorch's (norm_backward), 0 where the norm is 0:
    p = 1: g sign(x); p = 2: g x / norm; inf: g sign(x) at the elements where |x| is the norm,
    ties sharing it; p < 1: g sign(x) |x|^(p-1) norm^(1-p), 0 where x = 0; else
    g x |x|^(p-2) / norm^(p-1); p = 0: zero."""

    @staticmethod
    def forward(ctx: Any, a: Array, ord: float, dims: list[int], keepdim: bool) -> Array:
        ctx.ord, ctx.dims = ord, dims
        if ord == 0:
            out = C.sum(C.ne(a, 0), dims, keepdim).to(a.dtype)
        elif ord == math.inf:
            out = C.amax(C.abs(a), dims, keepdim)
        elif ord == -math.inf:
            out = C.amin(C.abs(a), dims, keepdim)
        elif ord == 1:
            out = C.sum(C.abs(a), dims, keepdim)
        elif ord == 2:
            out = C.sqrt(C.sum(C.square(a), dims, keepdim))
        else:
            out = C.pow(C.sum(C.pow(C.abs(a), ord), dims, keepdim), 1.0 / ord)
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        a, norm = ctx.saved_tensors
        p = ctx.ord
        keep = _keepdim_shape(a.shape, ctx.dims)
        g, norm = g.reshape(keep), norm.reshape(keep)
        zero = K.full((), 0, g.dtype)
        if p == 0:
            grad = K.full(list(a.shape), 0, g.dtype)
        elif p == 1:
            grad = K.mul(K.sign(a), g)
        elif p == 2:
            grad = K.mul(g, K.where(K.eq(norm, 0), zero, K.div(a, norm)))
        elif math.isinf(p):
            magnitude = K.abs(a)
            mask = K.maximum(K.eq(magnitude, norm), K.ne(magnitude, magnitude))  # or NaN
            count = K.sum(mask, ctx.dims, True)
            grad = K.mul(K.sign(a), K.mul(K.div(g, count), mask))
        elif p < 1:
            scaled = K.mul(K.sign(a), K.where(K.eq(a, 0), zero, K.pow(K.abs(a), p - 1)))
            grad = K.mul(K.mul(scaled, g), K.pow(norm, 1 - p))
        else:
            scaled = (K.mul(K.sign(a), K.pow(K.abs(a), p - 1)) if p < 2
                      else K.mul(a, K.pow(K.abs(a), p - 2)))
            scale = K.where(K.eq(norm, 0), zero, K.div(g, K.pow(norm, p - 1)))
            grad = K.mul(scaled, scale)
        return grad, None, None, None
