"""Stochastic gradient descent, with PyTorch's momentum, dampening, weight decay and nesterov."""
from __future__ import annotations

from typing import Any, Iterable

from chainrule import _core
from chainrule.optim.optimizer import Optimizer
from chainrule.tensor import _wrap

C = _core


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
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            dampening, weight_decay = group["dampening"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                param = p._data
                grad = p.grad._data
                if weight_decay != 0:
                    grad = C.add(grad, C.mul(param, weight_decay))
                if momentum != 0:
                    state = self.state.setdefault(p, {})
                    buffer = state.get("momentum_buffer")
                    if buffer is None:
                        buffer = grad.clone()
                        state["momentum_buffer"] = _wrap(buffer)
                    else:
                        buffer = buffer._data
                        C.mul_(buffer, momentum)
                        C.add_(buffer, C.mul(grad, 1 - dampening))
                    grad = C.add(grad, C.mul(buffer, momentum)) if group["nesterov"] else buffer
                C.sub_(param, C.mul(grad, lr))
