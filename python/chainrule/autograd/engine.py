"""Which engine runs backward, and the argument checks both share.

Two engines, one meaning (DESIGN.md, rule 10): the C++ engine (csrc/python/engine.cpp, the
default) and the plain-Python reference engine (reference.py, the teaching text and the test
oracle), chosen with CHAINRULE_ENGINE=python (or "cpp") in the environment; the same gradients
come out of both, bit for bit. The walk itself is described in reference.py.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from chainrule import _core
from chainrule.autograd import reference

C = _core
ENGINES = {"cpp": C.run_backward, "python": reference.run_backward}


def _engine_from_environment() -> str:
    name = os.environ.get("CHAINRULE_ENGINE", "cpp").lower()
    if name not in ENGINES:
        raise ValueError(f"CHAINRULE_ENGINE={name!r}: expected one of {sorted(ENGINES)}")
    return name


name = _engine_from_environment()
run = ENGINES[name]
"""run(roots, grads, retain_graph, inputs=None): the chosen engine (Tensor.backward calls it)."""


def set_engine(engine: str) -> str:
    """Chooses the engine for later backward calls; returns the previous one's name."""
    global name, run
    if engine not in ENGINES:
        raise ValueError(f"set_engine: expected one of {sorted(ENGINES)}, got {engine!r}")
    previous, name, run = name, engine, ENGINES[engine]
    return previous


def _root_grad(output: Any, gradient: Any) -> _core.Tensor | None:
    """The upstream gradient of an output as an array; None asks the engine for ones (it checks
    that the output has one element)."""
    if gradient is None:
        return None
    if not isinstance(gradient, C.TensorBase):
        raise TypeError(f"backward: gradient must be a Tensor, got {type(gradient).__name__}")
    if gradient.shape != output.shape:
        raise ValueError(f"backward: gradient has shape {gradient.shape} but the output has shape "
                         f"{output.shape}")
    return gradient._data.to(output.dtype)


def run_backward(outputs: Sequence[Any], gradients: Sequence[Any], retain_graph: bool,
                 inputs: Sequence[Any] | None = None, create_graph: bool = False) -> tuple[Any, ...] | None:
    """Backpropagates from outputs. With `inputs`, returns their gradients instead of
    accumulating into `.grad` (autograd.grad). create_graph=True runs the reference walk on
    Tensors, recording the backward pass (reference.py), whichever engine is chosen."""
    roots = []
    root_grads = []
    for output, gradient in zip(outputs, gradients):
        if not isinstance(output, C.TensorBase):
            raise TypeError(f"backward: expected Tensor outputs, got {type(output).__name__}")
        if not output._requires_grad:
            raise RuntimeError(
                f"backward: the output of shape {output.shape} does not require grad and has no "
                "grad_fn (no input of the computation requires grad, or it ran under no_grad)")
        roots.append(output)
        root_grad = _root_grad(output, gradient)
        if create_graph and root_grad is not None:  # a gradient that requires grad stays in the graph
            root_grad = gradient if gradient.dtype == output.dtype else gradient.to(output.dtype)
        root_grads.append(root_grad)
    if inputs is not None:
        for i, t in enumerate(inputs):
            if not isinstance(t, C.TensorBase):
                raise TypeError(f"grad: expected Tensor inputs, got {type(t).__name__}")
            if not t._requires_grad:
                raise RuntimeError(f"grad: input {i} of shape {t.shape} does not require grad")
    engine_run = (lambda r, g, keep, ins=None: reference.run_backward(r, g, keep, ins, create_graph=True)) \
        if create_graph else run
    if inputs is not None:
        return engine_run(tuple(roots), tuple(root_grads), retain_graph, tuple(inputs))
    engine_run(tuple(roots), tuple(root_grads), retain_graph)
    return None
