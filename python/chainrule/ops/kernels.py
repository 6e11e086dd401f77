"""K: the kernels the backward formulas call, differentiable when a backward is recorded.

The op table's backward formulas are written as `K.mul(g, b)`, `K.where(...)`, ... . Normally
`K.<name>` IS `_core.<name>` (this module's attributes are the `_core` functions themselves,
set at import), so the formulas run on raw arrays at no cost, and the C++ engine is untouched.

A backward with `create_graph=True` (`backward(create_graph=True)`, `autograd.grad(...,
create_graph=True)`) runs the reference walk on Tensors and, for its duration, swaps each
`K.<name>` for a differentiable counterpart (`recording()`), found by name:

1. a composite written here (the fused backward kernels: `sigmoid_backward` is g * y * (1 - y);
   `cat` takes a list; `full` makes a constant),
2. else the op table's entry of that name (`TABLE["mul"]`, `TABLE["pow"]`, ... and any entry
   added later), called on Tensors, so the backward's own ops are recorded,
3. else the `_core` function on the raw arrays: its result is a constant when it cannot carry a
   gradient (a comparison, an int result, or no argument requiring grad); a float result that
   depends on a tensor requiring grad raises RuntimeError("double backward through X is not
   supported").

Each counterpart called with raw arrays only (another thread's ordinary backward, an op's
forward) runs the plain `_core` function, so the swap changes no one else's results.
`tools/convert_backward_to_k.py` turns `C.f(...)` into `K.f(...)` in an ops file's formulas.
"""
from __future__ import annotations

import sys
import threading
from typing import Any, Callable

from chainrule import _core
from chainrule.autograd.create_graph import Derived
from chainrule.autograd.function import NO_RECORD

C = _core
K = sys.modules[__name__]  # `from chainrule.ops.kernels import K`: this module is the namespace

_PLAIN: dict[str, Any] = {name: getattr(C, name) for name in dir(C) if not name.startswith("__")}
globals().update({name: value for name, value in _PLAIN.items() if name not in ("K", "C")})


# ---------------------------------------------------------------- kernels written in Python
# Plain kernels the formulas call as K.<name> that are not `_core` functions: array methods
# (a recorded backward runs them on Tensors) and the kernels of the ops that exist only to make
# a backward differentiable (view_scatter: the backward of a view op, an op-table entry).
def _python_kernel(fn: Callable[..., Any]) -> Callable[..., Any]:
    _PLAIN[fn.__name__] = fn
    globals()[fn.__name__] = fn
    return fn


def apply_view_steps(a: Any, steps: Any) -> Any:
    """The views of basic indexing (t[0, 1:, None]) as a chain of array methods."""
    for method, args in steps:
        a = getattr(a, method)(*args)
    return a


@_python_kernel
def slice(a: Any, dim: int, start: int, stop: int, step: int) -> Any:  # noqa: A001
    """a's elements start:stop:step along dim (a view)."""
    return a.slice(dim, start, stop, step)


@_python_kernel
def select(a: Any, dim: int, index: int) -> Any:
    """a's element `index` along dim, the dim removed (a view)."""
    return a.select(dim, index)


@_python_kernel
def index(a: Any, steps: Any) -> Any:
    """Basic indexing by view steps (the forward of the op table's "index")."""
    return apply_view_steps(a, steps)


@_python_kernel
def view_of(a: Any, view_op: Any, *args: Any) -> Any:
    """The view a view op (an OpNode class: Index, a diagonal, ...) takes of a, with its args:
    its forward run without recording (a recorded backward runs the op itself)."""
    return view_op.forward(NO_RECORD, a, *args)


@_python_kernel
def view_scatter(g: Any, shape: Any, view_op: Any, *args: Any) -> Any:
    """Zeros of `shape` with g written into view_op's view of them: the backward of any view op
    (the op table's "view_scatter", whose own backward is the view again)."""
    out = C.full(list(shape), 0, g.dtype)
    C.copy_(view_of(out, view_op, *args), g)
    return out


# Kernels whose result never carries a gradient (comparisons, signs, new constants).
CONSTANT = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "sign", "full", "arange", "arange_int64",
                      "floor", "ceil", "round", "trunc", "logical_not", "logical_and", "logical_or",
                      "isnan", "isinf", "isfinite", "argmax", "argmin", "zeros_like", "ones_like",
                      "randn", "rand", "empty"})
# Names that are not kernels (types, helpers): never swapped.
_NOT_KERNELS = frozenset({"Tensor", "TensorBase", "Node", "DType", "DTYPES", "apply", "wrap",
                          "from_numpy", "register_classes", "run_backward", "is_grad_enabled",
                          "set_grad_enabled"})

_lock = threading.RLock()
_depth = 0
_differentiable: dict[str, Callable[..., Any]] = {}


# ---------------------------------------------------------------- helpers
def _is_tensor(x: Any) -> bool:
    return isinstance(x, C.TensorBase)


def _any_tensor(args: Any) -> bool:
    for a in args:
        if _is_tensor(a) or (isinstance(a, (list, tuple)) and any(_is_tensor(b) for b in a)):
            return True
    return False


def _tensor(x: Any) -> Any:
    """A Tensor for a kernel argument: raw arrays become constants."""
    if isinstance(x, C.Tensor):
        return C.wrap(x)
    return x


def _raw(x: Any) -> Any:
    if _is_tensor(x):
        return x._data
    if isinstance(x, (list, tuple)):
        return type(x)(_raw(a) for a in x)
    return x


def _requires_grad(args: Any) -> bool:
    for a in args:
        if _is_tensor(a) and a.requires_grad:
            return True
        if isinstance(a, (list, tuple)) and _requires_grad(a):
            return True
    return False


def _ops() -> Any:
    from chainrule import ops

    return ops


# ---------------------------------------------------------------- composites
def _sigmoid_backward(g: Any, y: Any) -> Any:
    return g * y * (1.0 - y)


def _tanh_backward(g: Any, y: Any) -> Any:
    return g * (1.0 - y * y)


def _relu_backward(g: Any, x: Any) -> Any:
    # 0 where x <= 0, else g: a NaN input passes g on, as PyTorch's threshold_backward does
    return _tensor(g) * (_tensor(x) <= 0).logical_not().detach().to(_tensor(g).dtype)


def _cat(arrays: Any, dim: int) -> Any:
    import chainrule as cr

    return cr.cat([_tensor(a) for a in arrays], dim)


def _sum_to(x: Any, shape: Any) -> Any:
    x = _tensor(x)
    shape = tuple(shape)
    if tuple(x.shape) == shape:
        return x
    lead = x.ndim - len(shape)
    dims = list(range(lead)) + [lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1]
    out = x.sum(dims, keepdim=True) if dims else x
    return out.reshape(shape)


def _expand(x: Any, shape: Any) -> Any:
    return _tensor(x).expand(*shape)


def _index_add_(out: Any, dim: int, index: Any, g: Any) -> Any:
    """out (zeros made by the formula) += g at `index` along `dim`, in place. Recorded as
    g's rows moved by a one-hot matrix product (its gradient is index_select of the upstream
    one); out must not require grad."""
    if _is_tensor(out) and out.requires_grad:
        raise RuntimeError("double backward through index_add_ is not supported (into a tensor "
                           "that requires grad)")
    if not (_is_tensor(g) and g.requires_grad):
        C.index_add_(_raw(out), dim, _raw(index), _raw(g))
        return out
    import chainrule as cr

    g = _tensor(g)
    size = out.shape[dim]
    index = _raw(index)
    one_hot = C.wrap(C.eq(index.reshape([-1, 1]), C.arange_int64(0, size, 1).reshape([1, size])).to(g.dtype))
    moved = g.transpose(dim, g.ndim - 1) @ one_hot  # (..., size) with the dim last
    added = moved.transpose(dim, g.ndim - 1)
    return added if _is_zero(out) else _tensor(out) + added


def _is_zero(x: Any) -> bool:
    import numpy as np

    return not np.any(_raw(x).numpy())


def _view_of(a: Any, view_op: Any, *args: Any) -> Any:
    return C.apply(view_op, _tensor(a), *args)


def _cross_entropy_backward(g: Any, logits: Any, target: Any) -> Any:
    """g (per sample) times softmax(logits) - one_hot(target), along dim 1, recorded."""
    logits, g = _tensor(logits), _tensor(g)
    classes = logits.shape[1]
    shifted = logits - logits.amax(1, keepdim=True).detach()
    e = shifted.exp()
    p = e / e.sum(1, keepdim=True)
    target = _raw(target)
    shape = [1, classes] + [1] * (logits.ndim - 2)
    one_hot = C.wrap(C.eq(target.unsqueeze(1), C.arange_int64(0, classes, 1).reshape(shape)).to(logits.dtype))
    return g.unsqueeze(1) * (p - one_hot)


def _slice(a: Any, dim: int, start: int, stop: int, step: int) -> Any:
    import builtins

    return _tensor(a)[(builtins.slice(None),) * dim + (builtins.slice(start, stop, step),)]


def _select(a: Any, dim: int, index: int) -> Any:
    import builtins

    return _tensor(a)[(builtins.slice(None),) * dim + (index,)]


def _norm_parts(x: Any, dims: list[int], mean: Any, invstd: Any) -> tuple[Any, Any]:
    """The statistics of x over dims, recomputed on Tensors (so recorded): x - mean and 1/std,
    with the eps the forward used, recovered from its invstd (1/invstd^2 - var)."""
    import numpy as np

    centered = x - x.mean(dims, keepdim=True)
    var = (centered * centered).mean(dims, keepdim=True)
    saved = invstd.array if isinstance(invstd, Derived) else _raw(invstd)
    saved = saved.numpy().astype(np.float64).reshape(-1)
    eps = float(np.mean(1.0 / saved ** 2 - var.detach().numpy().astype(np.float64).reshape(-1)))
    return centered, (var + eps) ** -0.5


def _layer_norm_backward(g: Any, input: Any, mean: Any, invstd: Any, weight: Any) -> Any:
    """Layer norm's backward on Tensors, its statistics recomputed from the input:
    dx = invstd (gw - mean(gw) - x^ mean(gw x^)) with gw = g w, per row."""
    x, g = _tensor(input), _tensor(g)
    rows = (mean.array if isinstance(mean, Derived) else _raw(mean)).numel()
    n = x.numel() // rows
    xr, gr = x.reshape(rows, n), g.reshape(rows, n)
    centered, inv = _norm_parts(xr, [1], mean, invstd)
    xhat = centered * inv
    gw = gr * _tensor(weight).reshape(n) if weight is not None else gr
    gx = inv * (gw - gw.mean(1, keepdim=True) - xhat * (gw * xhat).mean(1, keepdim=True))
    return gx.reshape(*x.shape), (gr * xhat).sum(0), gr.sum(0)


def _batch_norm_backward(g: Any, input: Any, mean: Any, invstd: Any, weight: Any, training: bool) -> Any:
    """Batch norm's backward on Tensors (N, C, *), per channel; in training the batch's
    statistics are recomputed from the input, in eval they are constants."""
    x, g = _tensor(input), _tensor(g)
    shape = [1, x.shape[1]] + [1] * (x.ndim - 2)
    dims = [0] + list(range(2, x.ndim))
    w = _tensor(weight).reshape(*shape) if weight is not None else None
    if training:
        centered, inv = _norm_parts(x, dims, mean, invstd)
        xhat = centered * inv
        gx = inv * (g - g.mean(dims, keepdim=True) - xhat * (g * xhat).mean(dims, keepdim=True))
    else:
        inv = _tensor(invstd).reshape(*shape)
        xhat = (x - _tensor(mean).reshape(*shape)) * inv
        gx = g * inv
    if w is not None:
        gx = gx * w
    return gx, (g * xhat).sum(dims), g.sum(dims)


_COMPOSITES: dict[str, Callable[..., Any]] = {
    "sigmoid_backward": _sigmoid_backward,
    "tanh_backward": _tanh_backward,
    "relu_backward": _relu_backward,
    "cat": _cat,
    "sum_to": _sum_to,
    "expand": _expand,
    "index_add_": _index_add_,
    "cross_entropy_backward": _cross_entropy_backward,
    "slice": _slice,
    "view_of": _view_of,
    "select": _select,
    "layer_norm_backward": _layer_norm_backward,
    "conv2d_backward_bias": lambda g: _tensor(g).sum([0, 2, 3]),
    "batch_norm_backward": _batch_norm_backward,
}
_READS_DERIVED = frozenset({"layer_norm_backward", "batch_norm_backward"})


# ---------------------------------------------------------------- lookup
def _from_table(name: str) -> Callable[..., Any] | None:
    table = _ops().TABLE
    entry = table.get(name)
    if entry is None:
        return None
    forward = _ops().forward(name)
    return lambda *args: forward(*(_tensor(a) for a in args))


def _constant_or_refuse(name: str, plain: Callable[..., Any]) -> Callable[..., Any]:
    def refuse() -> None:
        raise RuntimeError(
            f"double backward through {name} is not supported (no differentiable op of that "
            "name in the op table); backward with create_graph=True cannot record it")

    def call(*args: Any) -> Any:
        if name.endswith("_") and _requires_grad(args):  # an in-place kernel: cannot record it
            refuse()
        out = plain(*(_raw(a) for a in args))
        several = isinstance(out, (tuple, list))
        items = out if several else (out,)
        if name not in CONSTANT and _requires_grad(args) and any(
                isinstance(o, C.Tensor) and o.dtype.is_floating_point for o in items):
            refuse()
        wrapped = tuple(C.wrap(o) if isinstance(o, C.Tensor) else o for o in items)
        return wrapped if several else wrapped[0]

    return call


def differentiable(name: str) -> Callable[..., Any]:
    """The counterpart of `_core.<name>` that records on Tensors (see the module's text)."""
    fn = _differentiable.get(name)
    if fn is not None:
        return fn
    plain = _PLAIN[name]
    recorded = _COMPOSITES.get(name)
    if recorded is None and name not in CONSTANT:
        recorded = _from_table(name)
    if recorded is None:
        recorded = _constant_or_refuse(name, plain)

    tolerant = name in _READS_DERIVED

    def dispatch(*args: Any) -> Any:
        if not tolerant:
            for a in args:
                if isinstance(a, Derived):
                    a.refuse()
        if not _any_tensor(args):
            return plain(*args)
        return recorded(*args)

    dispatch.__name__ = name
    _differentiable[name] = dispatch
    return dispatch


class recording:
    """Within: K's kernels are the differentiable counterparts (nested and thread-safe: the
    swap lasts while any thread is inside)."""

    def __enter__(self) -> "recording":
        global _depth
        with _lock:
            if _depth == 0:
                for name, value in _PLAIN.items():
                    if callable(value) and not isinstance(value, type) and name not in _NOT_KERNELS:
                        setattr(K, name, differentiable(name))
            _depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        global _depth
        with _lock:
            _depth -= 1
            if _depth == 0:
                for name, value in _PLAIN.items():
                    setattr(K, name, value)
