"""Adam and AdamW, with PyTorch's update arithmetic (bias correction, decoupled decay)."""
from __future__ import annotations

from typing import Any, Iterable

from chainrule import _core
from chainrule.optim.optimizer import Optimizer
from chainrule.tensor import _wrap

C = _core


class Adam(Optimizer):
    """Adaptive moments: m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""

    decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"{type(self).__name__}: invalid betas {betas}")
        if eps < 0:
            raise ValueError(f"{type(self).__name__}: invalid eps {eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def step(self) -> None:
        for group in self.param_groups:
            lr, (beta1, beta2) = group["lr"], group["betas"]
            eps, weight_decay = group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                param, grad = p._data, p.grad._data
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = _wrap(C.full(list(param.shape), 0, param.dtype))
                    state["exp_avg_sq"] = _wrap(C.full(list(param.shape), 0, param.dtype))
                state["step"] += 1
                step = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"]._data, state["exp_avg_sq"]._data
                # The whole update in one pass over the parameter, in PyTorch's order (a
                # non-contiguous parameter is updated through a contiguous copy).
                target = param if param.is_contiguous() else param.clone()
                C.adam_step_(target, grad.contiguous(), exp_avg, exp_avg_sq, lr, beta1, beta2, eps,
                             weight_decay, step, self.decoupled)
                if target is not param:
                    C.copy_(param, target)


class AdamW(Adam):
    """Adam with decoupled weight decay: p <- p (1 - lr wd) before the Adam step."""

    decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
