"""The optimizers' one door to _core: their update steps, each fused into one C++ pass over a
parameter (PyTorch's update arithmetic, in PyTorch's order)."""
from __future__ import annotations

from typing import Any

from chainrule import _core
from chainrule.tensor import Tensor

C = _core


def sgd_step_(params: list[Tensor], buffers: Any, lr: float, momentum: float, dampening: float,
              weight_decay: float, nesterov: bool) -> None:
    """One SGD step of every parameter with a gradient, in one call; `buffers` (with momentum)
    is a list beside params whose None entries get a fresh momentum buffer."""
    C.sgd_step_(params, buffers, lr, momentum, dampening, weight_decay, nesterov)


def adam_step_(p: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step: Tensor, lr: float, beta1: float,
               beta2: float, eps: float, weight_decay: float, decoupled: bool) -> None:
    """One Adam (or, decoupled, AdamW) step of p from p.grad, updating the moments and adding one
    to the step count (a one-element float tensor) in place."""
    param, grad = p._data, p.grad._data  # type: ignore[union-attr]
    # A non-contiguous parameter is updated through a contiguous copy.
    target = param if param.is_contiguous() else param.clone()
    C.adam_step_(target, grad.contiguous(), exp_avg._data, exp_avg_sq._data, step._data, lr, beta1, beta2,
                 eps, weight_decay, decoupled)
    if target is not param:
        C.copy_(param, target)
