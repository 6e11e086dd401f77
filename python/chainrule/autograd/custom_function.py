"""`cr.autograd.Function`: PyTorch's extension API, for an op written by the user.

    class Exp(cr.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * y

    y = Exp.apply(x)

The user's forward and backward see and return chainrule Tensors, as in PyTorch. Underneath,
a call records one graph node of the same kind as the op table's (`OpNode`), so both engines
run it: its edges lead to the Tensor arguments, and its backward calls the user's backward.
A forward that returns several tensors records one node whose output is their concatenation
(flattened, in one float dtype), and each output tensor gets a small node that places its
gradient in that concatenation; the user's backward gets one gradient per output.

Saved tensors: an input is kept as the input Tensor itself (so a backward run with
create_graph=True differentiates through it), an output as its array plus "this node's output",
anything else as a detached array; each with its version, checked on reading (RuntimeError when
it was changed in place since).
"""
from __future__ import annotations

from typing import Any

from chainrule import _core
from chainrule.autograd.function import NO_RECORD, OpNode
from chainrule.autograd.grad_mode import no_grad

C = _core

_INPUT, _OUTPUT, _OTHER = 0, 1, 2


def _wrap(array: Any, node: Any = None) -> Any:
    from chainrule.tensor import _wrap as wrap

    return wrap(array, node)


class FunctionCtx:
    """The methods PyTorch's ctx has; both the recorded node and the no-grad ctx have them."""

    def save_for_backward(self, *tensors: Any) -> None:
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, C.TensorBase):
                raise TypeError(f"save_for_backward: argument {i} is a {type(t).__name__}; "
                                "only Tensors (or None) can be saved")
        self._to_save = tensors

    def mark_non_differentiable(self, *tensors: Any) -> None:
        self._non_differentiable = tensors

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = bool(value)

    def mark_dirty(self, *tensors: Any) -> None:
        """forward changed these inputs in place and returns them: each returned one becomes
        the call's output, its history this node (as PyTorch's in-place ops)."""
        self._dirty = tensors

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        return getattr(self, "_to_save", ())


class _Ctx(FunctionCtx):
    """The ctx of a call that records nothing (no_grad, or no input requires grad)."""

    needs_input_grad: tuple[bool, ...] = ()


class CustomNode(FunctionCtx, OpNode):
    """The graph node of one call of a user's Function (it is also the user's ctx)."""

    function: type = None  # type: ignore[assignment]  # the user's Function subclass
    materialize_grads = True

    @staticmethod
    def forward(ctx: Any, call: "_Call", *arrays: Any) -> Any:
        return call.run(ctx)

    # The engines call this with an array gradient; a backward with create_graph=True calls
    # backward_tensors with a Tensor one.
    @staticmethod
    def backward(ctx: Any, grad: Any) -> tuple[Any, ...]:
        with no_grad():
            grads = ctx.backward_tensors(_wrap(grad))
        return tuple(g._data if isinstance(g, C.TensorBase) else g for g in grads)

    def backward_tensors(self, grad: Any) -> tuple[Any, ...]:
        """The user's backward on Tensor gradients: (None for the call object, *grads)."""
        layout = self._layout
        if layout is None:
            grads: tuple[Any, ...] = (grad,)
        else:
            grads = tuple(_unflatten(grad, layout, self._received))
            self._received = [False] * len(layout)
        if self.materialize_grads:
            grads = tuple(_zeros_like_output(spec) if g is None else g
                          for g, spec in zip(grads, layout or [None]))
        result = self.function.backward(self, *grads)
        if not isinstance(result, tuple):
            result = (result,)
        n = len(self.edges) - 1
        if len(result) < n or any(r is not None for r in result[n:]):
            raise RuntimeError(
                f"{self.name()}: function backward returned an incorrect number of gradients "
                f"(expected {n}, got {len(result)})")
        for i, (r, edge) in enumerate(zip(result, self.edges[1:])):
            if r is not None and not isinstance(r, C.TensorBase):
                raise TypeError(f"{self.name()}: backward returned a {type(r).__name__} as gradient "
                                f"{i}; expected a Tensor or None")
            if r is not None and edge is not None and tuple(r.shape) != tuple(edge[1]):
                try:
                    C.sum_to(r._data, list(edge[1]))
                except Exception:
                    raise RuntimeError(
                        f"{self.name()}: backward returned a gradient of shape {tuple(r.shape)} for "
                        f"input {i}, which has shape {tuple(edge[1])}") from None
        return (None, *result[:n])

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        if self._freed:
            raise RuntimeError(
                f"{self.name()}: trying to backward through the graph a second time (its saved "
                "tensors were freed after the first backward); pass retain_graph=True to the first "
                "backward if you need to run it twice")
        out = []
        for kind, value, version, k in self._saved:
            if kind is None:
                out.append(None)
                continue
            array = value._data if kind == _INPUT else value
            if array.version != version:
                raise RuntimeError(
                    f"{self.name()}: a tensor of shape {tuple(array.shape)} and dtype "
                    f"{array.dtype.name} saved for backward was modified by an in-place operation: "
                    f"it was saved at version {version} and is now at version {array.version}")
            if kind == _INPUT:
                out.append(value)
            elif kind == _OUTPUT and self._layout is None:
                out.append(_wrap(value, self))
            elif kind == _OUTPUT:
                out.append(self._saved_output(value, k))
            else:
                out.append(_wrap(value))
        return tuple(out)

    def _saved_output(self, array: Any, k: int) -> Any:
        """Output k of several, saved: under create_graph it leads back to this node (through
        the concatenation, as the output itself does), so a second derivative sees it."""
        if not C.is_grad_enabled():
            return _wrap(array)
        start, n, _, _ = self._layout[-1]
        flat = _wrap(C.full([start + n], 0, C.DType.float64), self)  # stands for the concatenation
        return C.apply(_Select, flat, self, k, array)

    def release(self) -> None:
        if self._saved:
            self.__dict__.clear()
            self._freed = True


class _Select(OpNode):
    """Output k of a Function with several outputs: its gradient placed in the concatenation."""

    @staticmethod
    def forward(ctx: Any, flat: Any, parent: Any, k: int, array: Any) -> Any:
        ctx.parent, ctx.k = parent, k
        return array

    @staticmethod
    def backward(ctx: Any, g: Any) -> tuple[Any, ...]:
        parent = ctx.parent
        parent._received[ctx.k] = True
        return (_place(g, parent._layout, ctx.k), None, None, None)


def _layout_of(outputs: tuple[Any, ...]) -> list[tuple[int, int, tuple[int, ...], Any]]:
    layout, start = [], 0
    for t in outputs:
        n = t.numel()
        layout.append((start, n, tuple(t.shape), t.dtype))
        start += n
    return layout


def _place(g: Any, layout: Any, k: int) -> Any:
    """The flat gradient of the concatenation that is g at output k and zero elsewhere."""
    start, n, _, _ = layout[k]
    total = layout[-1][0] + layout[-1][1]
    if isinstance(g, C.TensorBase):  # create_graph: stay differentiable
        import chainrule as cr

        flat = g.reshape(-1).to(cr.float64)
        parts = [cr.zeros(start, dtype=cr.float64), flat, cr.zeros(total - start - n, dtype=cr.float64)]
        return cr.cat(parts)
    flat = g.reshape([-1]).to(C.DType.float64)
    return C.cat([C.full([start], 0, C.DType.float64), flat,
                  C.full([total - start - n], 0, C.DType.float64)], 0)


def _unflatten(grad: Any, layout: Any, received: list[bool]) -> list[Any]:
    out = []
    for k, (start, n, shape, dtype) in enumerate(layout):
        if not received[k]:
            out.append(None)
            continue
        part = grad[start:start + n].reshape(shape)
        out.append(part.to(dtype))
    return out


def _zeros_like_output(spec: Any) -> Any:
    import chainrule as cr

    if spec is None:
        return None
    return cr.zeros(spec[2], dtype=spec[3])


class _Call:
    """One call of a user's Function: its arguments, for CustomNode.forward."""

    __slots__ = ("function", "args", "kwargs", "outputs")

    def __init__(self, function: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.function, self.args, self.kwargs = function, args, kwargs
        self.outputs: Any = None

    def run(self, ctx: Any) -> Any:
        recording = ctx is not NO_RECORD
        if not recording:
            ctx = _Ctx()
        ctx.needs_input_grad = tuple(isinstance(a, C.TensorBase) and a.requires_grad and recording
                                     for a in self.args)
        with no_grad():
            if self.function.setup_context is not Function.setup_context:  # PyTorch 2's style
                outputs = self.function.forward(*self.args, **self.kwargs)
                self.function.setup_context(ctx, self.args, outputs)
            else:
                outputs = self.function.forward(ctx, *self.args, **self.kwargs)
        self.outputs = outputs
        several = isinstance(outputs, (tuple, list))
        items = tuple(outputs) if several else (outputs,)
        for i, t in enumerate(items):
            if not isinstance(t, C.TensorBase):
                raise TypeError(f"{self.function.__name__}.forward: output {i} is a "
                                f"{type(t).__name__}; a Function's outputs must be Tensors")
        if not recording:
            return items[0]._data
        ctx._layout = _layout_of(items) if several else None
        ctx._received = [False] * len(items)
        saved = []
        for t in getattr(ctx, "_to_save", ()):
            if t is None:
                saved.append((None, None, 0, 0))
            elif any(t is a for a in self.args):
                saved.append((_INPUT, t, t._data.version, 0))
            elif any(t is o for o in items):
                k = next(i for i, o in enumerate(items) if t is o)
                saved.append((_OUTPUT, t._data, t._data.version, k))
            else:
                saved.append((_OTHER, t._data, t._data.version, 0))
        ctx._saved = tuple(saved)
        if "_to_save" in ctx.__dict__:
            del ctx._to_save
        if not several:
            return items[0]._data
        return C.cat([t._data.reshape([-1]).to(C.DType.float64) for t in items], 0)


class FunctionMeta(type):
    """Makes each Function subclass its own node type (so its nodes are named "ExpBackward")."""

    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> None:
        super().__init__(name, bases, namespace)
        cls._node_type = type(name, (CustomNode,), {"function": cls, "__module__": cls.__module__})


class Function(metaclass=FunctionMeta):
    """Base of a user-defined differentiable op (PyTorch's torch.autograd.Function): write
    static `forward(ctx, *args)` and `backward(ctx, *grads)` (or `forward(*args)` and
    `setup_context(ctx, inputs, output)`), call it with `.apply(*args)`.

    >>> import chainrule as cr
    >>> class Cube(cr.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, grad):
    ...         (x,) = ctx.saved_tensors
    ...         return grad * 3 * x ** 2
    >>> x = cr.tensor(2.0, requires_grad=True)
    >>> Cube.apply(x).backward()
    >>> x.grad
    tensor(12.0000)
    """

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a Function subclass must define a static forward(ctx, *args)")

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        raise NotImplementedError("a Function subclass must define a static backward(ctx, *grads) "
                                  "to be differentiated")

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        """PyTorch 2's style: define it (and forward(*args) without ctx) to fill ctx from the
        inputs and the output."""

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        call = _Call(cls, args, kwargs)
        out = C.apply(cls._node_type, call, *args)
        node = out.grad_fn
        user_outputs = call.outputs
        several = isinstance(user_outputs, (tuple, list))
        if node is None:  # nothing recorded: the user's own outputs
            return user_outputs
        marked = getattr(node, "_non_differentiable", ())
        dirty = getattr(node, "_dirty", ())
        if not several:
            if any(user_outputs is m for m in marked):
                return user_outputs
            return _dirty_output(cls, user_outputs, out, dirty)
        results = []
        for k, t in enumerate(user_outputs):
            if any(t is m for m in marked) or not t.dtype.is_floating_point:
                results.append(t)
                continue
            results.append(_dirty_output(cls, t, C.apply(_Select, out, node, k, t._data), dirty))
        return type(user_outputs)(results) if isinstance(user_outputs, tuple) else results


def _dirty_output(function: type, returned: Any, out: Any, dirty: tuple[Any, ...]) -> Any:
    """The output the caller gets: `out`, or, when forward changed an input in place
    (ctx.mark_dirty) and returned it, that input itself, whose history becomes out's."""
    if not any(returned is d for d in dirty):
        return out
    from chainrule.ops import inplace

    name = f"{function.__name__}.apply (ctx.mark_dirty)"
    inplace.check(returned, name)  # a leaf that requires grad, or a view, refuses as PyTorch's in-place ops
    if inplace.view_base(returned) is not None:
        raise RuntimeError(f"{name}: an input changed in place is a view of another tensor (shape "
                           f"{tuple(returned.shape)}); pass the base tensor, or clone() the view first")
    inplace._set_node(returned, out.grad_fn)
    returned._requires_grad = True
    inplace._refresh_views(returned)
    return returned
