"""Backward with create_graph=True: the reference walk (reference.py) on Tensors, recorded.

The walk is the same; what differs is at each node. Its backward formula (the op table's) runs
on Tensors with grad mode on, and `K`'s kernels are the differentiable ops of the table
(chainrule/ops/kernels.py), so the formula's every step is recorded. What the node kept from its
forward is raw arrays; `backward` turns each back into the Tensor it was:

- an input of the op: the input's leaf Tensor itself, or its array with the node that made it
  (the node's edge says which);
- the op's output: its array with this very node (differentiating sigmoid's g * y * (1 - y)
  goes through y = sigmoid(x) again);
- anything else the forward computed from its inputs: refused with RuntimeError ("double
  backward through X is not supported"), since a constant would give a wrong second derivative
  (a mask or an integer array is fine: it carries no gradient).

A Python op's node knows which arrays were its inputs and output from the ids table.py records
when it runs (`_io`); a native op's saved arrays have fixed roles (NATIVE_ROLES). A user's
autograd.Function runs its own backward on Tensors (custom_function.py).
"""
from __future__ import annotations

from typing import Any

from chainrule import _core
from chainrule.autograd.function import NATIVE_BACKWARD, NativeSaved

C = _core


def is_node(target: Any) -> bool:
    return isinstance(target, C.Node)


def input_grad(grad: Any, shape: Any, dtype: Any) -> Any:
    """An input's gradient as a Tensor of its shape and dtype, recorded."""
    from chainrule.ops.kernels import K

    if not isinstance(grad, C.TensorBase):
        grad = C.wrap(grad)
    if tuple(grad.shape) != tuple(shape):
        grad = K.sum_to(grad, list(shape))
    if grad.dtype != dtype:
        grad = grad.to(dtype)
    return grad


# Which saved arrays of a native node are its inputs ("in0", "in1") or its output ("out").
NATIVE_ROLES: dict[str, tuple[str | None, ...]] = {
    "Mul": ("in0", "in1"), "Div": ("in1", "out"), "Exp": ("out",), "Log": ("in0",),
    "Sigmoid": ("out",), "Tanh": ("out",), "Relu": ("in0",), "MatMul": ("in0", "in1"),
    "Linear": ("in0", "in1"), "CrossEntropy": ("in0", None),
}


def backward(node: Any, grad: Any) -> Any:
    """The chain rule at one node on Tensors, recorded: the same formula as local_backward,
    with what the node saved turned back into the Tensors they were (graph_tensor)."""
    custom = getattr(node, "backward_tensors", None)
    if custom is not None:  # a user's autograd.Function: its backward on Tensors
        return custom(grad)
    try:
        if node.native_op is not None:
            saved = NativeSaved(node)
            roles = NATIVE_ROLES.get(node.native_op, ())
            saved.arrays = tuple(_by_role(node, a, roles[i] if i < len(roles) else None)
                                 for i, a in enumerate(saved.arrays))
            return NATIVE_BACKWARD[node.native_op](saved, grad)
        return type(node).backward(GraphCtx(node), grad)
    except AttributeError as error:  # a formula calling an array method Tensors lack (a.slice)
        raise RuntimeError(
            f"double backward through {node.name()} is not supported: its backward formula does "
            f"what a Tensor cannot ({error}); write it with K's kernels (K.slice, K.select, ...)"
        ) from error


def _by_role(node: Any, array: Any, role: str | None) -> Any:
    if role == "out":
        return _node_output(array, node)
    if role is not None and role.startswith("in"):
        return _input(node, int(role[2:]), array)
    return C.wrap(array)


def _node_output(array: Any, node: Any) -> Any:
    from chainrule.tensor import _wrap

    return _wrap(array, node)


def _input(node: Any, i: int, array: Any) -> Any:
    """Input i of the node as a Tensor in the graph: the leaf itself, or its array with the node
    that made it; a constant when it takes no gradient."""
    edges = node.edges
    edge = edges[i] if i < len(edges) else None
    if edge is None:
        return C.wrap(array)
    target = edge[0]
    if is_node(target):
        return _node_output(array, target)
    return target


def graph_tensor(node: Any, value: Any) -> Any:
    """What a Python op's ctx holds, as its backward reads it under create_graph: an array that
    was one of the forward's inputs or its output becomes that Tensor (table.py records their
    ids on the node, `_io`); any other array a constant; tuples and lists element by element."""
    if isinstance(value, C.Tensor):
        io = node.__dict__.get("_io")
        if io is not None:
            ids, out = io[:-1], io[-1]
            if id(value) == out:
                return _node_output(value, node)
            for i, input_id in enumerate(ids):
                if input_id == id(value):
                    return _input(node, i, value)
        if value.dtype.is_floating_point and any(e is not None for e in node.edges):
            # computed from the inputs in the forward: a constant here would give a wrong
            # second derivative, so any use of it in a recorded kernel refuses (Derived)
            return Derived(node.name(), value)
        return C.wrap(value)
    if isinstance(value, tuple):
        return tuple(graph_tensor(node, v) for v in value)
    if isinstance(value, list):
        return [graph_tensor(node, v) for v in value]
    return value


class Derived:
    """An array a forward computed from its inputs, as a recorded backward sees it: using it in
    a kernel raises RuntimeError (a constant would give a wrong second derivative). A kernel
    that recomputes it from the inputs (K.layer_norm_backward's statistics) reads `.array`."""

    __slots__ = ("node_name", "array")

    def __init__(self, node_name: str, array: Any) -> None:
        self.node_name, self.array = node_name, array

    def refuse(self) -> None:
        raise RuntimeError(
            f"double backward through {self.node_name} is not supported: its backward reads an "
            f"array of shape {tuple(self.array.shape)} computed in its forward (neither an input "
            "nor the output); backward with create_graph=True cannot differentiate it")

    def __getattr__(self, name: str) -> Any:
        self.refuse()


class GraphCtx:
    """A Python op's node seen by its backward under create_graph: attributes and saved_tensors
    as Tensors in the graph (graph_tensor)."""

    __slots__ = ("_node",)

    def __init__(self, node: Any) -> None:
        object.__setattr__(self, "_node", node)

    def __getattr__(self, name: str) -> Any:
        return graph_tensor(self._node, getattr(self._node, name))

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._node, name, value)
