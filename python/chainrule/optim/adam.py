"""Adam and AdamW, with PyTorch's update arithmetic (bias correction, decoupled decay)."""
from __future__ import annotations

from typing import Any, Iterable

from chainrule._dtype import float32
from chainrule.compiler import note_optimizer
from chainrule.creation import full, zeros, zeros_like
from chainrule.optim import fused
from chainrule.optim.optimizer import Optimizer
from chainrule.tensor import Tensor


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
        note_optimizer(self)  # cr.compile: while recording, the settings and state become guards
        for group in self.param_groups:
            lr, (beta1, beta2) = group["lr"], group["betas"]
            eps, weight_decay = group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.setdefault(p, {})
                if not state:
                    # The count is a tensor, as in PyTorch: the fused step adds one to it, so a
                    # compiled step (cr.compile) that replays it counts on by itself.
                    state["step"] = zeros((), dtype=float32)
                    state["exp_avg"] = zeros_like(p)
                    state["exp_avg_sq"] = zeros_like(p)
                elif not isinstance(state["step"], Tensor):  # an int count (a state dict of before)
                    state["step"] = full((), float(state["step"]), dtype=float32)
                fused.adam_step_(p, state["exp_avg"], state["exp_avg_sq"], state["step"], lr, beta1, beta2,
                                 eps, weight_decay, self.decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay: p <- p (1 - lr wd) before the Adam step."""

    decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
