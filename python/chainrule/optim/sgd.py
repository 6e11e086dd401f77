"""Stochastic gradient descent, with PyTorch's momentum, dampening, weight decay and nesterov."""
from __future__ import annotations

from typing import Any, Iterable

from chainrule.compiler import note_optimizer
from chainrule.optim import fused
from chainrule.optim.optimizer import Optimizer



class SGD(Optimizer):
    """p <- p - lr * g, where g is the gradient (plus weight decay, through momentum).

    >>> import chainrule as cr
    >>> w = cr.nn.Parameter(cr.tensor([1.0]))
    >>> opt = cr.optim.SGD([w], lr=0.1)
    >>> (w * 3).sum().backward(); opt.step()
    >>> round(w.item(), 4)
    0.7
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if lr < 0:
            raise ValueError(f"SGD: invalid learning rate {lr}")
        if momentum < 0:
            raise ValueError(f"SGD: invalid momentum {momentum}")
        if weight_decay < 0:
            raise ValueError(f"SGD: invalid weight_decay {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs a positive momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self) -> None:
        note_optimizer(self)  # cr.compile: while recording, the settings become guards
        # Every parameter of a group in one C++ call (the arithmetic is in csrc/kernels/fused.cpp).
        for group in self.param_groups:
            params = group["params"]
            buffers = None
            if group["momentum"] != 0:
                buffers = [self.state.get(p, {}).get("momentum_buffer") for p in params]
            fused.sgd_step_(params, buffers, group["lr"], group["momentum"], group["dampening"],
                             group["weight_decay"], group["nesterov"])
            if buffers is not None:
                for p, buffer in zip(params, buffers):
                    if buffer is not None:
                        self.state.setdefault(p, {})["momentum_buffer"] = buffer
