"""The backward pass: PyTorch's engine in miniature.

1. Walk the graph from the outputs (iteratively: a chain of 10,000 ops must not recurse) and
   count, for every node, how many edges lead into it.
2. Run nodes in topological order (a node runs once all its incoming gradients are summed),
   each applying the chain rule: its backward turns the gradient of its output into
   gradients of its inputs. Each input gradient is summed down to the input's shape and cast
   to its dtype here, in one place (`sum_to`), so no op handles broadcasting.
3. Leaves collect their total gradient into `.grad` (summed over every path, and over calls).
"""
from __future__ import annotations

import threading
from typing import Any, Sequence

from chainrule import _core
from chainrule.autograd.function import Function
from chainrule.tensor import Tensor, _wrap

C = _core


def _root_grad(output: Tensor, gradient: Any) -> _core.Tensor:
    if gradient is None:
        if output.numel() != 1:
            raise RuntimeError(
                f"backward: grad can be created implicitly only for outputs with one element; "
                f"this output has shape {output.shape}, so pass gradient= of that shape")
        return C.full(list(output.shape), 1, output.dtype)
    if not isinstance(gradient, Tensor):
        raise TypeError(f"backward: gradient must be a Tensor, got {type(gradient).__name__}")
    if gradient.shape != output.shape:
        raise ValueError(f"backward: gradient has shape {gradient.shape} but the output has shape "
                         f"{output.shape}")
    return gradient._data.to(output.dtype)


def _run_hooks(hooks: list[Any] | None, grad: _core.Tensor) -> _core.Tensor:
    for hook in hooks or ():
        replaced = hook(_wrap(grad))
        if replaced is not None:
            grad = replaced._data
    return grad


def run_backward(outputs: Sequence[Tensor], gradients: Sequence[Any], retain_graph: bool,
                 inputs: Sequence[Tensor] | None = None) -> tuple[Any, ...] | None:
    """Backpropagates from outputs. With `inputs`, returns their gradients instead of
    accumulating into `.grad` (autograd.grad)."""
    roots: list[tuple[Any, _core.Tensor]] = []
    for output, gradient in zip(outputs, gradients):
        if not isinstance(output, Tensor):
            raise TypeError(f"backward: expected Tensor outputs, got {type(output).__name__}")
        if not output._requires_grad:
            raise RuntimeError(
                f"backward: the output of shape {output.shape} does not require grad and has no "
                "grad_fn (no input of the computation requires grad, or it ran under no_grad)")
        roots.append((output.grad_fn or output, _root_grad(output, gradient)))

    # 1. dependencies: the number of edges into each node reachable from the roots.
    dependencies: dict[Function, int] = {}
    stack = [target for target, _ in roots if isinstance(target, Function)]
    seen = set(stack)
    while stack:
        node = stack.pop()
        for edge in node.edges:
            if edge is None or not isinstance(edge[0], Function):
                continue
            target = edge[0]
            dependencies[target] = dependencies.get(target, 0) + 1
            if target not in seen:
                seen.add(target)
                stack.append(target)

    captured: dict[Any, int] = {}
    if inputs is not None:
        for i, t in enumerate(inputs):
            if not t._requires_grad:
                raise RuntimeError(f"grad: input {i} of shape {t.shape} does not require grad")
            captured[t.grad_fn or t] = i
    results: list[Any] = [None] * (len(inputs) if inputs is not None else 0)

    # 2. run nodes once their gradient is complete.
    grads: dict[Any, _core.Tensor] = {}
    leaf_grads: dict[Tensor, _core.Tensor] = {}
    ready: list[Function] = []
    for target, grad in roots:
        if isinstance(target, Function):
            grads[target] = C.add(grads[target], grad) if target in grads else grad
            if dependencies.get(target, 0) == 0 and target not in ready:
                ready.append(target)
        else:
            leaf_grads[target] = C.add(leaf_grads[target], grad) if target in leaf_grads else grad

    add = C.add
    while ready:
        node = ready.pop()
        grad = grads.pop(node, None)
        edges = node.edges
        if grad is None:  # nothing reached this node: its inputs get nothing either
            input_grads: Any = (None,) * len(edges)
        else:
            if node.hooks is not None:
                grad = _run_hooks(node.hooks, grad)
            if node.retained is not None:
                _retain(node.retained(), grad)
            if captured and node in captured:
                results[captured[node]] = _wrap(grad)
            input_grads = node.backward(node, grad)
        if not retain_graph:
            node.release()
        for edge, input_grad in zip(edges, input_grads):
            if edge is None:
                continue
            target, shape, dtype = edge
            is_node = isinstance(target, Function)
            if input_grad is not None:
                if input_grad.shape != shape:
                    input_grad = C.sum_to(input_grad, list(shape))
                if input_grad.dtype != dtype:
                    input_grad = input_grad.to(dtype)
                pending = grads if is_node else leaf_grads
                previous = pending.get(target)
                pending[target] = input_grad if previous is None else add(previous, input_grad)
            if is_node:
                count = dependencies[target] - 1
                dependencies[target] = count
                if count == 0:
                    ready.append(target)

    # 3. leaves: total gradient, through their hooks, into .grad (or into the results).
    for leaf, grad in leaf_grads.items():
        grad = _run_hooks(leaf._hooks, grad)
        if leaf in captured:
            results[captured[leaf]] = _wrap(grad)
        elif inputs is None:
            _accumulate(leaf, grad)
    return tuple(results) if inputs is not None else None


# Backward passes in several threads may reach one leaf: its read-add-write of .grad must not
# interleave (C.add releases the GIL on large arrays).
_accumulate_lock = threading.Lock()


def _accumulate(leaf: Tensor, grad: _core.Tensor) -> None:
    with _accumulate_lock:
        if leaf._grad is None:
            # The stored grad must own its memory: the array may be a view shared with other
            # gradients of this pass (x + y hands the same array to both), or a stride-0 expand.
            leaf._grad = _wrap(grad.clone())
        else:
            leaf._grad = _wrap(C.add(leaf._grad._data, grad))


def _retain(tensor: Tensor | None, grad: _core.Tensor) -> None:
    if tensor is not None:
        _accumulate(tensor, grad)
