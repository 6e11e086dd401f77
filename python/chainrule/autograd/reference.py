"""The reference engine: the whole chain rule over the recorded graph, in plain Python.

Every op recorded a node: its backward (the op table's formula: upstream gradient times local
derivative), what its forward saved, and one edge per input saying where that input's gradient
goes (the node that made the input, or the input itself when it is a leaf) and which shape and
dtype it must have there. Backpropagation is then three steps, as in PyTorch:

1. Walk the graph from the roots (with a stack, not recursion: a chain of 10,000 ops must work)
   and count, for every node, the edges that lead into it.
2. Run the nodes in topological order: a node is ready once every edge into it has delivered
   its gradient (its count reached 0). Running it applies the chain rule once: its backward
   turns the gradient of its output into one gradient per input. Each is summed down to the
   input's shape (`sum_to`: the inverse of broadcasting) and cast to its dtype, in this one
   place, so no op handles broadcasting itself; then it is added to what that input has so far.
3. Leaves collect their total gradient (over every path) into `.grad`.

The C++ engine (csrc/python/engine.cpp) is this walk step for step, with the same kernels in the
same order, so the two give the same gradients bit for bit; `CHAINRULE_ENGINE=python` makes
`backward()` and `autograd.grad` run this one.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from chainrule import _core
from chainrule.autograd import create_graph
from chainrule.autograd.function import native_backward

C = _core


def run_backward(roots: Sequence[Any], root_grads: Sequence[Any], retain_graph: bool,
                 inputs: Sequence[Any] | None = None, create_graph: bool = False) -> tuple[Any, ...] | None:
    """Backpropagates from `roots` (Tensors) with upstream gradients `root_grads` (arrays, or
    None for d root / d root = 1). With `inputs`, returns their gradients instead of adding them
    to `.grad` (autograd.grad). create_graph=True: the same walk on Tensors, recorded (create_graph.py)."""
    if create_graph:
        from chainrule.autograd.grad_mode import enable_grad
        from chainrule.ops.kernels import recording

        with enable_grad(), recording():
            return _walk(roots, root_grads, retain_graph, inputs, True)
    return _walk(roots, root_grads, retain_graph, inputs, False)


def _identity(x: Any) -> Any:
    return x


def _walk(roots: Sequence[Any], root_grads: Sequence[Any], retain_graph: bool,
          inputs: Sequence[Any] | None, graph: bool) -> tuple[Any, ...] | None:
    wrap = _identity if graph else C.wrap
    # The root's gradient starts at its node (or at the root itself, a leaf).
    starts = []
    for root, grad in zip(roots, root_grads):
        if grad is None:
            if root.numel() != 1:
                raise RuntimeError(
                    "backward: grad can be created implicitly only for outputs with one element; "
                    f"this output has shape {root.shape}, so pass gradient= of that shape")
            grad = C.full(list(root.shape), 1, root.dtype)
        if graph and not isinstance(grad, C.TensorBase):
            grad = C.wrap(grad)
        starts.append((root.grad_fn or root, grad))

    # 1. Count the edges into every node reachable from the roots.
    dependencies: dict[Any, int] = {}
    stack = []
    for target, _ in starts:
        if target not in dependencies and is_node(target):
            dependencies[target] = 0
            stack.append(target)
    while stack:
        node = stack.pop()
        for edge in node.edges:
            if edge is None or not is_node(edge[0]):
                continue
            if edge[0] not in dependencies:
                dependencies[edge[0]] = 0
                stack.append(edge[0])
            dependencies[edge[0]] += 1

    wanted = {}  # autograd.grad: where each asked-for input's gradient is found
    results: list[Any] = []
    if inputs is not None:
        results = [None] * len(inputs)
        for i, t in enumerate(inputs):
            wanted.setdefault(t.grad_fn or t, []).append(i)

    # 2. Run each node once all its incoming gradients are summed.
    grads: dict[Any, Any] = {}       # node -> the gradient of its output, so far
    leaf_grads: dict[Any, Any] = {}  # leaf -> its total gradient, in the order first reached
    ready = []
    for target, grad in starts:
        add_to(leaf_grads if not is_node(target) else grads, target, grad, graph)
        if is_node(target) and dependencies[target] == 0 and target not in ready:
            ready.append(target)
    while ready:
        node = ready.pop()
        if node in grads:
            grad = run_hooks(node.hooks, grads.pop(node), graph)
            if node.retained is not None and node.retained() is not None:
                accumulate(node.retained(), grad, graph)  # retain_grad() on a non-leaf
            for i in wanted.get(node, ()):
                results[i] = wrap(grad)
            input_grads = create_graph.backward(node, grad) if graph else local_backward(node, grad)
        else:  # nothing reached this node: its inputs get nothing either
            input_grads = (None,) * len(node.edges)
        if not retain_graph:
            release(node)
        for edge, input_grad in zip(node.edges, tuple(input_grads) + (None,) * len(node.edges)):
            if edge is None:
                continue
            target, shape, dtype = edge
            if input_grad is not None:
                if graph:
                    input_grad = create_graph.input_grad(input_grad, shape, dtype)
                else:
                    if isinstance(input_grad, C.TensorBase):  # a custom autograd.Function's Tensors
                        input_grad = input_grad._data
                    if input_grad.shape != shape:
                        input_grad = C.sum_to(input_grad, list(shape))  # undo broadcasting
                    if input_grad.dtype != dtype:
                        input_grad = input_grad.to(dtype)
                add_to(grads if is_node(target) else leaf_grads, target, input_grad, graph)
            if is_node(target):
                dependencies[target] -= 1
                if dependencies[target] == 0:
                    ready.append(target)

    # 3. Leaves: the total gradient, through their hooks, into .grad (or into the results).
    for leaf, grad in leaf_grads.items():
        grad = run_hooks(leaf._hooks, grad, graph)
        if inputs is None:
            accumulate(leaf, grad, graph)
            for hook in list(leaf._post_hooks or ()):  # register_post_accumulate_grad_hook
                hook(leaf)
        for i in wanted.get(leaf, ()):
            results[i] = wrap(grad)
    return tuple(results) if inputs is not None else None


def local_backward(node: Any, grad: Any) -> Any:
    """The chain rule at one node: the op's backward formula from the op table (a Python op's
    node is its own OpNode subclass; a native op's node names its table entry)."""
    if node.native_op is not None:
        return native_backward(node, grad)
    return type(node).backward(node, grad)


def is_node(target: Any) -> bool:
    return isinstance(target, C.Node)


def add_to(totals: dict[Any, Any], key: Any, grad: Any, graph: bool = False) -> None:
    if key not in totals:
        totals[key] = grad
    else:
        totals[key] = totals[key] + grad if graph else C.add(totals[key], grad)


_accumulating = threading.Lock()  # backward passes in several threads may reach one leaf


def accumulate(tensor: Any, grad: Any, graph: bool = False) -> None:
    """.grad += grad (a fresh array: .grad never shares memory with another gradient)."""
    with _accumulating:
        if graph:  # create_graph: the recorded gradient Tensor itself
            tensor._grad = grad if tensor._grad is None else tensor._grad + grad
            return
        tensor._grad = C.wrap(grad.clone() if tensor._grad is None else C.add(tensor._grad._data, grad))


def run_hooks(hooks: Any, grad: Any, graph: bool = False) -> Any:
    for hook in list(hooks or ()):  # a copy: a hook may remove itself
        replaced = hook(grad if graph else C.wrap(grad))
        if replaced is not None:
            if not isinstance(replaced, C.TensorBase):
                raise TypeError("hook: expected the hook to return a Tensor or None, got "
                                f"{type(replaced).__name__}")
            grad = replaced if graph else replaced._data
    return grad


def release(node: Any) -> None:
    """Frees what the node saved (a second backward through it raises RuntimeError)."""
    if node.native_op is not None:
        node.release_native_saved()
    elif node.__dict__:
        node.release()
