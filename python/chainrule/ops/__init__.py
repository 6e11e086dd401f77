"""The differentiable ops, one table entry each (see `table.py` for what an entry holds).

    elementwise.py  + - * / (native), pow, maximum, minimum, where, neg, exp, log, sigmoid,
                    tanh, relu (native), sqrt, abs, sin, cos, square, clamp, softplus, masked_fill
    reductions.py   sum, mean (native), amax, amin, max/min along a dim, var, std, vector_norm
    products.py     matmul, linear (native)
    shapes.py       reshape and views, transpose, permute, expand, copies, casts, indexing, cat,
                    diagonal, constant padding
    losses.py       cross_entropy (native), binary cross-entropy with and without logits,
                    nll_loss, huber (smooth L1)
    convolution.py  conv2d, max_pool2d, avg_pool2d
    normalization.py  batch_norm, layer_norm, embedding
    recurrent.py    the LSTM, GRU and RNN recurrences over whole sequences, LSTM and GRU cell updates
    activations.py  erf, gelu, leaky_relu, elu
    indexing.py     gather (also sort's and topk's values), scatter, scatter with a value, scatter_add
    scans.py        cumsum, cumprod

Adding an op that needs no new kernel is one entry (an OpNode subclass with `@op(...)`) plus
its gradcheck case; `method=True`, `function=True`, `functional=True` make `Tensor.name`,
`cr.name` and `F.name` from it (then run `python -m chainrule.ops.stubs` to refresh the
declarations type checkers read).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from chainrule import _core
from chainrule.ops import elementwise, losses, products, reductions, shapes  # noqa: F401  (registers)
from chainrule.ops import convolution, normalization, recurrent  # noqa: F401  (registers)
from chainrule.ops import activations  # noqa: F401  (registers)
from chainrule.ops import indexing, scans  # noqa: F401  (registers)
from chainrule.ops.elementwise import (
    Abs,
    Clamp,
    Cos,
    MaskedFill,
    Maximum,
    Minimum,
    Pow,
    Sin,
    Sqrt,
    Square,
    Where,
)
from chainrule.ops.indexing import Gather, Scatter, ScatterAdd, ScatterValue
from chainrule.ops.losses import BinaryCrossEntropy, BinaryCrossEntropyWithLogits
from chainrule.ops.reductions import Amax, Amin, MaxAlongDim, Std, Var, VectorNorm
from chainrule.ops.scans import Cumprod, Cumsum
from chainrule.ops.shapes import (
    Cast,
    Cat,
    ConstantPad,
    Diagonal,
    Expand,
    Identity,
    Index,
    IndexSelect,
    Permute,
    Reshape,
    Transpose,
    apply_view_steps,
)
from chainrule.ops.table import TABLE, Case, Op, names

__all__ = [
    "TABLE",
    "Abs",
    "Amax",
    "Amin",
    "BinaryCrossEntropy",
    "BinaryCrossEntropyWithLogits",
    "Case",
    "Cast",
    "Cat",
    "Clamp",
    "ConstantPad",
    "Cos",
    "Cumprod",
    "Cumsum",
    "Diagonal",
    "Expand",
    "Gather",
    "Identity",
    "Index",
    "IndexSelect",
    "MaskedFill",
    "MaxAlongDim",
    "Maximum",
    "Minimum",
    "Op",
    "Permute",
    "Pow",
    "Reshape",
    "Scatter",
    "ScatterAdd",
    "ScatterValue",
    "Sin",
    "Sqrt",
    "Square",
    "Std",
    "Transpose",
    "Var",
    "VectorNorm",
    "Where",
    "apply_view_steps",
    "forward",
    "functions",
    "install_methods",
    "names",
    "native_backward",
]


def forward(name: str) -> Callable[..., Any]:
    """The op's forward as a function of Tensors: the native entry, or `apply` of its node."""
    entry = TABLE[name]
    if entry.native:
        return entry.forward
    node, apply = entry.forward, _core.apply
    return lambda *args: apply(node, *args)


def _make(entry: Op, name: str, method: bool, operand: Callable[[Any, str], Any]) -> Callable[..., Any]:
    """`Tensor.name(self, *params)` (method) or `name(input, *params)` from an entry. A function
    turns its input into a Tensor with `operand` (NumPy arrays); a native entry checks its
    operand itself."""
    call = entry.forward
    apply = _core.apply
    if entry.params:
        return _with_params(entry, name, method, operand)
    if entry.native and method:
        def made(self: Any) -> Any:
            return call(self)
    elif entry.native:
        def made(input: Any) -> Any:
            return call(input)
    elif method:
        def made(self: Any) -> Any:
            return apply(call, self)
    else:
        def made(input: Any) -> Any:
            return apply(call, operand(input, name))
    made.__name__ = made.__qualname__ = name
    made.__doc__ = entry.doc
    return made


def _with_params(entry: Op, name: str, method: bool, operand: Callable[[Any, str], Any]) -> Callable[..., Any]:
    """An op with arguments after its input (softplus's beta and threshold), bound by name."""
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    signature = inspect.Signature([inspect.Parameter("self" if method else "input", keyword)] + [
        inspect.Parameter(p, keyword, default=d) for p, d in entry.params])
    call, apply = entry.forward, _core.apply

    def made(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        first, *params = bound.arguments.values()
        if not method:
            first = operand(first, name)
        return call(first, *params) if entry.native else apply(call, first, *params)

    made.__signature__ = signature  # type: ignore[attr-defined]
    made.__name__ = made.__qualname__ = name
    made.__doc__ = entry.doc
    return made


def _no_operand(x: Any, name: str) -> Any:
    return x


def install_methods(cls: type) -> None:
    """Tensor methods of the entries that ask for one."""
    for entry in TABLE.values():
        if entry.method:
            method = _make(entry, entry.method, True, _no_operand)
            method.__qualname__ = f"{cls.__name__}.{entry.method}"
            setattr(cls, entry.method, method)


def functions(kind: str, operand: Callable[[Any, str], Any], module: str) -> dict[str, Callable[..., Any]]:
    """The functions of the entries that ask for one: kind "function" (cr.) or "functional" (F.)."""
    made = {}
    for entry in TABLE.values():
        name = getattr(entry, kind)
        if name:
            made[name] = _make(entry, name, False, operand)
            made[name].__module__ = module
    return made
