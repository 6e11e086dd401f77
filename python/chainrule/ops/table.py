"""The op table: one entry per differentiable op, from which the rest is derived.

An entry holds the op's forward, what it saves, its backward (the local chain rule: the
upstream gradient times the local derivative), its names (Tensor method, `cr.` function,
`nn.functional`) and its gradient-check cases. For the hot ops, forward and backward run in
C++ (`native`: the name of the unit in `csrc/python/native_*.cpp`); the entry's Python
backward is then the same formula with the same kernels, which the reference engine runs and
the tests hold to the native one bit for bit.

From the table come: the Tensor methods, `cr.` and `nn.functional` functions of the simple ops
(`install_methods`, `functions`), their type-checker declarations (`chainrule.ops.stubs`), the
gradcheck cases (tests/test_gradients.py, tests/test_ops_table.py), the reference engine's
formulas for native nodes (`NATIVE_BACKWARD`), and what `cr.compile` will replay.

Which steps `cr.compile` fuses into one pass is not a column of this table: an entry's forward
and backward are calls of `_core` kernels, and each elementwise kernel (add, mul, sigmoid, the
activations' backward formulas, ...) declares its own loop when it is recorded
(`record::Elementwise` in csrc/include/chainrule/record.h). So GELU, softplus or a loss written
here with those kernels fuses with no flag of its own (docs/compile.md, "Fused elementwise chains").
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from chainrule import _core
from chainrule.autograd.function import NATIVE_BACKWARD, NO_RECORD

C = _core


@dataclass(frozen=True)
class Case:
    """One gradient check: `fn` of float64 leaves of `shapes`, sampled from `domain` ("any",
    "positive", "nonzero", "clamp", or one per input); `ok` names a condition the sample must
    meet ("distinct": no ties, "apart": two inputs never close); `transposed` lists inputs made
    as non-contiguous leaves; `tolerance` (rtol, atol) loosens the comparison for an op whose
    forward rounds (a cast through float32)."""

    name: str
    fn: Callable[..., Any]
    shapes: Sequence[tuple[int, ...]]
    domain: Any = "any"
    ok: str | None = None
    transposed: Sequence[int] = ()
    tolerance: tuple[float, float] | None = None


@dataclass(frozen=True)
class Op:
    name: str
    saves: str                          # what the forward keeps for backward
    backward: Callable[..., Any]        # (ctx, grad) -> one gradient per input
    forward: Callable[..., Any]         # an OpNode subclass (Python op) or the _core entry
    cases: tuple[Case, ...]
    native: str | None = None           # the C++ unit ("Sigmoid"), for the hot ops
    method: str | None = None           # Tensor method made from the table (None: written by hand)
    function: str | None = None         # cr. function made from the table
    functional: str | None = None       # nn.functional function made from the table
    params: tuple[tuple[str, Any], ...] = ()  # arguments after the input, with defaults
    doc: str = ""
    names: tuple[str, ...] = field(default=())  # hand-written spellings of this op (for the docs)


TABLE: dict[str, Op] = {}


def _add(op: Op) -> None:
    if op.name in TABLE:
        raise ValueError(f"op table: {op.name} is defined twice")
    TABLE[op.name] = op


def op(name: str, *, saves: str, cases: Sequence[Case], method: bool = False, function: bool = False,
       functional: bool = False, params: Sequence[tuple[str, Any]] = (),
       names: Sequence[str] = ()) -> Callable[[type], type]:
    """Registers an OpNode subclass (forward and backward side by side) as the op `name`.
    method/function/functional: make `Tensor.name`, `cr.name`, `F.name` from the table."""

    def register(cls: type) -> type:
        _record_io(cls)
        _add(Op(name, saves, cls.backward, cls, tuple(cases), None, name if method else None,
                name if function else None, name if functional else None, tuple(params),
                (cls.__doc__ or "").strip(), tuple(names)))
        return cls

    return register


def _record_io(cls: type) -> None:
    """Wraps the op's forward so that a recorded node knows which of the arrays it keeps were
    its inputs (ids of the arguments, then the output's: `_io`) and its output: a backward with create_graph=True turns
    them back into the Tensors they were (autograd/create_graph.py, graph_tensor). Ids only, so
    nothing is kept alive. (An array kept without ids is refused by create_graph, never
    guessed.)"""
    forward = cls.__dict__.get("forward")
    if forward is None or getattr(forward, "__func__", forward).__dict__.get("records_io"):
        return
    plain = getattr(forward, "__func__", forward)
    try:  # an op that saves no array (a view, cat, a cast) needs no ids: its forward stays as is
        if "save_for_backward" not in inspect.getsource(plain):
            return
    except (OSError, TypeError):
        pass
    if isinstance(forward, classmethod):
        def recorded(owner: Any, ctx: Any, *args: Any) -> Any:
            out = plain(owner, ctx, *args)
            if ctx is not NO_RECORD:
                ctx._io = (*map(id, args), id(out))
            return out
    else:
        def recorded(ctx: Any, *args: Any) -> Any:  # type: ignore[misc]
            out = plain(ctx, *args)
            if ctx is not NO_RECORD:
                ctx._io = (*map(id, args), id(out))
            return out

    recorded.records_io = True  # type: ignore[attr-defined]
    recorded.__name__, recorded.__qualname__ = plain.__name__, plain.__qualname__
    recorded.__doc__, recorded.__wrapped__ = plain.__doc__, plain  # type: ignore[attr-defined]
    cls.forward = (classmethod if isinstance(forward, classmethod) else staticmethod)(recorded)  # type: ignore[attr-defined]


def native(name: str, unit: str, *, saves: str, cases: Sequence[Case], method: bool = False,
           function: bool = False, functional: bool = False,
           names: Sequence[str] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers the Python form of a native op's backward, `backward(saved, grad)`; its forward
    is `_core.grad_<name>` (C++ unit `unit`, which records the node itself)."""

    def register(backward: Callable[..., Any]) -> Callable[..., Any]:
        _add(Op(name, saves, backward, getattr(C, "grad_" + name), tuple(cases), unit,
                name if method else None, name if function else None, name if functional else None,
                (), (backward.__doc__ or "").strip(), tuple(names)))
        NATIVE_BACKWARD[unit] = backward  # what the reference engine runs for the unit's nodes
        return backward

    return register


def names(kind: str) -> list[str]:
    """The names made from the table: kind "method", "function" or "functional"."""
    return sorted(getattr(e, kind) for e in TABLE.values() if getattr(e, kind))


