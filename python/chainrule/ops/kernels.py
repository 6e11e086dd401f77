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

C = _core
K = sys.modules[__name__]  # `from chainrule.ops.kernels import K`: this module is the namespace

_PLAIN: dict[str, Any] = {name: getattr(C, name) for name in dir(C) if not name.startswith("__")}
globals().update({name: value for name, value in _PLAIN.items() if name not in ("K", "C")})

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
    return _tensor(g) * (_tensor(x) > 0).detach().to(_tensor(g).dtype)


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
    """out (zeros made by the formula) += g at `index` along `dim`: recorded as
    index_add (its gradient is index_select of the upstream one)."""
    out_t = _tensor(out)
    if _is_tensor(g) and g.requires_grad:
        raise RuntimeError("double backward through index_add_ is not supported")
    C.index_add_(out_t._data, dim, _raw(index), _raw(g))
    return out_t


_COMPOSITES: dict[str, Callable[..., Any]] = {
    "sigmoid_backward": _sigmoid_backward,
    "tanh_backward": _tanh_backward,
    "relu_backward": _relu_backward,
    "cat": _cat,
    "sum_to": _sum_to,
    "expand": _expand,
    "index_add_": _index_add_,
}


# ---------------------------------------------------------------- lookup
def _from_table(name: str) -> Callable[..., Any] | None:
    table = _ops().TABLE
    entry = table.get(name)
    if entry is None:
        return None
    forward = _ops().forward(name)
    return lambda *args: forward(*(_tensor(a) for a in args))


def _constant_or_refuse(name: str, plain: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        out = plain(*(_raw(a) for a in args))
        if not isinstance(out, C.Tensor):
            return out
        if name not in CONSTANT and out.dtype.is_floating_point and _requires_grad(args):
            raise RuntimeError(
                f"double backward through {name} is not supported (no differentiable op of that "
                "name in the op table); backward with create_graph=True cannot record it")
        return C.wrap(out)

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

    def dispatch(*args: Any) -> Any:
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
