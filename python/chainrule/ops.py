"""The differentiable ops written in Python: each op's forward (one or a few `_core` calls)
beside its backward (the local chain rule), one small class each. The ops a training step spends
its time in (+ - * / @, neg, exp, log, sigmoid, tanh, relu, sum, mean, linear, cross-entropy)
are native instead: their forward and backward sit side by side in `csrc/python/native_ops.cpp`,
with no Python on either path. Both kinds of node run in the same engine, and the gradient
tests walk both.

Conventions: inputs arrive as raw `_core.Tensor` arrays or Python numbers, in call order;
`backward` returns one entry per input (None where no gradient flows), in the output's shape
(the engine sums broadcast gradients down with `sum_to`) and any float dtype (the engine
casts to the input's).
"""
from __future__ import annotations

from typing import Any, Sequence

from chainrule import _core
from chainrule.autograd.function import Function

C = _core
Array = _core.Tensor


def _is_array(x: Any) -> bool:
    return isinstance(x, Array)


# ---------------------------------------------------------------- elementwise binary
class Pow(Function):
    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Array:
        out = C.pow(a, b)
        ctx.a, ctx.b, ctx.out = a, b, out
        ctx.save_for_backward(*[x for x in (a, b, out) if _is_array(x)])
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        ctx.saved_tensors
        a, b = ctx.a, ctx.b
        ga = gb = None
        zero = C.full((), 0, g.dtype)
        if _is_array(a):
            # d(a^b)/da = b * a^(b-1), taken as 0 where b == 0 (a^0 is constant, even at a = 0)
            ga = C.mul(g, C.mul(b, C.pow(a, C.sub(b, 1) if _is_array(b) else b - 1)))
            if _is_array(b):
                ga = C.where(C.eq(b, 0), zero, ga)
            elif b == 0:
                ga = C.full(list(g.shape), 0, g.dtype)
        if _is_array(b):
            # d(a^b)/db = a^b * log(a), taken as 0 where a == 0 and b >= 0 (the limit from b's side)
            log_a = C.log(a) if _is_array(a) else C.log(C.full((), a, b.dtype))
            gb = C.mul(g, C.mul(ctx.out, log_a))
            gb = C.where(C.mul(C.eq(a, 0) if _is_array(a) else C.full((), a == 0, C.DType.bool),
                               C.ge(b, 0)), zero, gb)
        return ga, gb


class Maximum(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, b: Array) -> Array:
        ctx.save_for_backward(a, b)
        return C.maximum(a, b)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        a, b = ctx.saved_tensors
        return _split_by_winner(g, C.gt(a, b), C.eq(a, b))


class Minimum(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, b: Array) -> Array:
        ctx.save_for_backward(a, b)
        return C.minimum(a, b)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        a, b = ctx.saved_tensors
        return _split_by_winner(g, C.lt(a, b), C.eq(a, b))


def _split_by_winner(g: Array, a_wins: Array, tie: Array) -> tuple[Array, Array]:
    # The gradient goes to the winner; a tie splits it evenly (as PyTorch does).
    share_a = C.add(C.mul(a_wins, 1.0), C.mul(tie, 0.5))
    ga = C.mul(g, share_a)
    return ga, C.sub(g, ga)


class Where(Function):
    @staticmethod
    def forward(ctx: Any, condition: Array, a: Array, b: Array) -> Array:
        ctx.save_for_backward(condition)
        return C.where(condition, a, b)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (condition,) = ctx.saved_tensors
        zero = C.full((), 0, g.dtype)
        return None, C.where(condition, g, zero), C.where(condition, zero, g)


# ---------------------------------------------------------------- elementwise unary
class Sqrt(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        out = C.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (out,) = ctx.saved_tensors
        return (C.div(g, C.mul(out, 2.0)),)  # (sqrt x)' = 1 / (2 sqrt x)


class Abs(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        ctx.save_for_backward(a)
        return C.abs(a)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        return (C.mul(g, C.sign(a)),)


class Sin(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        ctx.save_for_backward(a)
        return C.sin(a)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        return (C.mul(g, C.cos(a)),)


class Cos(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        ctx.save_for_backward(a)
        return C.cos(a)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        return (C.neg(C.mul(g, C.sin(a))),)


class Square(Function):
    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        ctx.save_for_backward(a)
        return C.square(a)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        return (C.mul(g, C.mul(a, 2.0)),)


class Clamp(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, low: Any, high: Any) -> Array:
        ctx.save_for_backward(a)
        ctx.low, ctx.high = low, high
        return C.clamp(a, low, high)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        # The gradient passes where the input was inside [low, high].
        inside = None
        if ctx.low is not None:
            inside = C.ge(a, ctx.low)
        if ctx.high is not None:
            below = C.le(a, ctx.high)
            inside = below if inside is None else C.mul(inside, below)
        return C.mul(g, inside), None, None


# ---------------------------------------------------------------- reductions
def _dims_of(ndim: int, dims: Sequence[int]) -> list[int]:
    """Reduced dims as non-negative ints (all dims when `dims` is empty)."""
    if not dims:
        return list(range(ndim))
    return sorted(d + ndim if d < 0 else d for d in dims)


def _keepdim_shape(shape: tuple[int, ...], dims: Sequence[int]) -> list[int]:
    reduced = set(_dims_of(len(shape), dims))
    return [1 if i in reduced else s for i, s in enumerate(shape)]


class Amax(Function):
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
        # Ties share the gradient evenly (PyTorch's amax rule).
        winners = C.eq(a, out.reshape(keep))
        count = C.sum(winners, ctx.dims, True)
        return C.div(C.mul(winners, g.reshape(keep)), count), None, None


class Amin(Amax):
    reduce = staticmethod(C.amin)


class MaxAlongDim(Function):
    """The values of max(dim) / min(dim): the gradient goes to the one index chosen."""

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
        positions = C.arange(0, size, 1, C.DType.int64).reshape([size] + [1] * (len(keep) - dim - 1))
        one_hot = C.eq(positions, indices.reshape(keep))
        return C.mul(one_hot, g.reshape(keep)), None, None, None, None


# ---------------------------------------------------------------- shapes and views
class Reshape(Function):
    """view, reshape, flatten, squeeze, unsqueeze: the gradient takes the input's shape back."""

    @staticmethod
    def forward(ctx: Any, a: Array, method: str, *args: Any) -> Array:
        ctx.shape = a.shape
        return getattr(a, method)(*args)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return (g.reshape(list(ctx.shape)),) + (None,) * 8


class Transpose(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, d0: int, d1: int) -> Array:
        ctx.d0, ctx.d1 = d0, d1
        return a.transpose(d0, d1)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return g.transpose(ctx.d0, ctx.d1), None, None


class Permute(Function):
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


class Expand(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, shape: list[int]) -> Array:
        return a.expand(shape)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return g, None  # the engine sums the expanded dims back (sum_to)


class Identity(Function):
    """contiguous() and clone(): a copy whose gradient passes through unchanged."""

    @staticmethod
    def forward(ctx: Any, a: Array, method: str) -> Array:
        return getattr(a, method)()

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return g, None


class Cast(Function):
    @staticmethod
    def forward(ctx: Any, a: Array, dtype: Any) -> Array:
        return a.to(dtype)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return g, None  # the engine casts back to the input's dtype


class Index(Function):
    """Basic indexing (ints, slices, None, ...) as a chain of views; backward scatters the
    gradient into zeros of the input's shape through the same views."""

    @staticmethod
    def forward(ctx: Any, a: Array, steps: list[tuple[str, tuple[Any, ...]]]) -> Array:
        ctx.shape, ctx.dtype, ctx.steps = a.shape, a.dtype, steps
        return apply_view_steps(a, steps)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        out = C.full(list(ctx.shape), 0, g.dtype)
        C.copy_(apply_view_steps(out, ctx.steps), g)
        return out, None


class BinaryCrossEntropy(Function):
    """-(y log h + (1 - y) log(1 - h)) elementwise, logs clamped at -100 (PyTorch's rule), as one
    op so that h = 0 or 1 has a finite gradient: d/dh = (h - y) / max(h (1 - h), 1e-12)."""

    @staticmethod
    def forward(ctx: Any, h: Array, y: Array) -> Array:
        ctx.save_for_backward(h, y)
        log_h = C.clamp(C.log(h), -100.0, None)
        log_not_h = C.clamp(C.log(C.sub(1.0, h)), -100.0, None)
        return C.neg(C.add(C.mul(y, log_h), C.mul(C.sub(1.0, y), log_not_h)))

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        h, y = ctx.saved_tensors
        gh = C.div(C.mul(g, C.sub(h, y)), C.maximum(C.mul(h, C.sub(1.0, h)), C.full((), 1e-12, h.dtype)))
        # d/dy = log(1 - h) - log(h), with the same clamps as the forward
        gy = C.mul(g, C.sub(C.clamp(C.log(C.sub(1.0, h)), -100.0, None), C.clamp(C.log(h), -100.0, None)))
        return gh, gy


class BinaryCrossEntropyWithLogits(Function):
    """Sigmoid then binary cross-entropy, stably, as one op. With l = 1 + (pw - 1) y (l = 1
    without pos_weight): loss = (1 - y) x + l softplus(-x), and d/dx = l sigmoid(x) - pw y,
    exact at x = 0 too (piecewise forms like relu(x) would give a subgradient there)."""

    @staticmethod
    def forward(ctx: Any, x: Array, y: Array, pos_weight: Any) -> Array:
        ctx.save_for_backward(*[a for a in (x, y, pos_weight) if a is not None])
        ctx.has_pos_weight = pos_weight is not None
        # softplus(-x) = log(1 + e^-|x|) + max(-x, 0), without overflow
        softplus = C.add(C.log(C.add(C.exp(C.neg(C.abs(x))), 1.0)), C.relu(C.neg(x)))
        ctx.softplus = softplus
        scale = C.add(C.mul(C.sub(pos_weight, 1.0), y), 1.0) if pos_weight is not None else None
        return C.add(C.mul(C.sub(1.0, y), x), softplus if scale is None else C.mul(scale, softplus))

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        saved = ctx.saved_tensors
        x, y = saved[0], saved[1]
        s = C.sigmoid(x)
        if not ctx.has_pos_weight:
            return C.mul(g, C.sub(s, y)), C.mul(g, C.neg(x)), None
        pw = saved[2]
        scale = C.add(C.mul(C.sub(pw, 1.0), y), 1.0)
        gx = C.mul(g, C.sub(C.mul(scale, s), C.mul(pw, y)))
        gy = C.mul(g, C.add(C.neg(x), C.mul(C.sub(pw, 1.0), ctx.softplus)))
        gpw = C.mul(g, C.mul(y, ctx.softplus))
        return gx, gy, gpw


class IndexSelect(Function):
    """t[index] along a dim by an int64 index: a gather; backward scatters with index_add_
    (an index that repeats a position adds its gradients up)."""

    @staticmethod
    def forward(ctx: Any, a: Array, dim: int, index: Array) -> Array:
        ctx.shape, ctx.dim = a.shape, dim
        ctx.save_for_backward(index)
        return C.index_select(a, dim, index)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (index,) = ctx.saved_tensors
        out = C.full(list(ctx.shape), 0, g.dtype)
        C.index_add_(out, ctx.dim, index, g)
        return out, None, None


class Cat(Function):
    """cat(tensors, dim): each input's gradient is its slice of the output's."""

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
            grads.append(g.slice(ctx.dim, offset, offset + size, 1))
            offset += size
        return tuple(grads)


def apply_view_steps(a: Array, steps: list[tuple[str, tuple[Any, ...]]]) -> Array:
    for method, args in steps:
        a = getattr(a, method)(*args)
    return a
