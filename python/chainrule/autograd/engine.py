"""The backward pass: PyTorch's engine in miniature (the walk itself is C++, in
`csrc/python/autograd.cpp`; the argument checks are here).

1. Walk the graph from the outputs (iteratively: a chain of 10,000 ops must not recurse) and
   count, for every node, how many edges lead into it.
2. Run nodes in topological order (a node runs once all its incoming gradients are summed),
   each applying the chain rule: its backward turns the gradient of its output into
   gradients of its inputs. Each input gradient is summed down to the input's shape and cast
   to its dtype there, in one place (`sum_to`), so no op handles broadcasting.
3. Leaves collect their total gradient into `.grad` (summed over every path, and over calls).
"""
from __future__ import annotations

from typing import Any, Sequence

from chainrule import _core
from chainrule.tensor import Tensor

C = _core


def _root_grad(output: Tensor, gradient: Any) -> _core.Tensor | None:
    """The upstream gradient of an output as an array; None asks the engine for ones (it checks
    that the output has one element)."""
    if gradient is None:
        return None
    if not isinstance(gradient, Tensor):
        raise TypeError(f"backward: gradient must be a Tensor, got {type(gradient).__name__}")
    if gradient.shape != output.shape:
        raise ValueError(f"backward: gradient has shape {gradient.shape} but the output has shape "
                         f"{output.shape}")
    return gradient._data.to(output.dtype)


def run_backward(outputs: Sequence[Tensor], gradients: Sequence[Any], retain_graph: bool,
                 inputs: Sequence[Tensor] | None = None) -> tuple[Any, ...] | None:
    """Backpropagates from outputs. With `inputs`, returns their gradients instead of
    accumulating into `.grad` (autograd.grad). The checks are here; the walk is in C."""
    roots = []
    root_grads = []
    for output, gradient in zip(outputs, gradients):
        if not isinstance(output, Tensor):
            raise TypeError(f"backward: expected Tensor outputs, got {type(output).__name__}")
        if not output._requires_grad:
            raise RuntimeError(
                f"backward: the output of shape {output.shape} does not require grad and has no "
                "grad_fn (no input of the computation requires grad, or it ran under no_grad)")
        roots.append(output)
        root_grads.append(_root_grad(output, gradient))
    if inputs is not None:
        for i, t in enumerate(inputs):
            if not isinstance(t, Tensor):
                raise TypeError(f"grad: expected Tensor inputs, got {type(t).__name__}")
            if not t._requires_grad:
                raise RuntimeError(f"grad: input {i} of shape {t.shape} does not require grad")
        return C.run_backward(tuple(roots), tuple(root_grads), retain_graph, tuple(inputs))
    C.run_backward(tuple(roots), tuple(root_grads), retain_graph)
    return None
