"""RMSprop and Adagrad: per-coordinate step sizes from the running size of the gradients, with
PyTorch's update arithmetic and operation order, in Tensor ops (one parameter at a time)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable

from chainrule.autograd.grad_mode import enable_grad, no_grad
from chainrule.creation import full_like, zeros_like
from chainrule.optim.optimizer import Optimizer
from chainrule.tensor import Tensor


def _check(name: str, **values: float) -> None:
    for key, value in values.items():
        if not value >= 0.0:
            raise ValueError(f"{name}: invalid {key} {value} (must be >= 0)")


def _closure_loss(closure: Callable[[], Any] | None) -> Any:
    if closure is None:
        return None
    with enable_grad():
        return closure()


def _gradient(p: Tensor, group: dict[str, Any]) -> Tensor:
    """The gradient the update uses: negated to maximize, plus weight_decay * p (L2 penalty)."""
    g = p.grad
    assert g is not None
    if group["maximize"]:
        g = -g
    if group["weight_decay"] != 0:
        g = g + p * group["weight_decay"]
    return g


class RMSprop(Optimizer):
    """v <- alpha v + (1 - alpha) g^2; p <- p - lr g / (sqrt(v) + eps). `centered` divides by
    the running variance instead (v minus the squared running mean of g); `momentum` keeps a
    buffer b <- momentum b + g / (sqrt(v) + eps) and steps p <- p - lr b.

    >>> import chainrule as cr
    >>> w = cr.nn.Parameter(cr.tensor([1.0]))
    >>> opt = cr.optim.RMSprop([w], lr=0.01)
    >>> (w * 3).sum().backward(); opt.step()
    >>> round(w.item(), 4)
    0.9
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 capturable: bool = False, foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False) -> None:
        _check("RMSprop", lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    @no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = _closure_loss(closure)
        for group in self.param_groups:
            lr, alpha, eps, momentum = group["lr"], group["alpha"], group["eps"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = _gradient(p, group)
                state = self.state.setdefault(p, {})
                if not state:
                    state["step"] = 0
                    state["square_avg"] = zeros_like(p)
                    if momentum > 0:
                        state["momentum_buffer"] = zeros_like(p)
                    if group["centered"]:
                        state["grad_avg"] = zeros_like(p)
                state["step"] += 1
                # In-place on fresh temporaries where PyTorch's order allows: the same
                # roundings, fewer buffers allocated per step.
                square_avg = state["square_avg"]
                square_avg.mul_(alpha).add_((g * (1 - alpha)).mul_(g))
                if group["centered"]:
                    grad_avg = state["grad_avg"]
                    grad_avg.add_((g - grad_avg).mul_(1 - alpha))  # lerp toward g
                    avg = (square_avg - grad_avg * grad_avg).sqrt().add_(eps)
                else:
                    avg = square_avg.sqrt().add_(eps)
                if momentum > 0:
                    buffer = state["momentum_buffer"]
                    buffer.mul_(momentum).add_(g / avg)
                    p.add_(buffer * -lr)
                else:
                    p.add_((g * -lr).div_(avg))
        return loss


class Adagrad(Optimizer):
    """s <- s + g^2 (from initial_accumulator_value); p <- p - clr g / (sqrt(s) + eps), with
    clr = lr / (1 + (t - 1) lr_decay) at step t.

    >>> import chainrule as cr
    >>> w = cr.nn.Parameter(cr.tensor([1.0]))
    >>> opt = cr.optim.Adagrad([w], lr=0.1)
    >>> (w * 3).sum().backward(); opt.step()
    >>> round(w.item(), 4)
    0.9
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0, eps: float = 1e-10,
                 foreach: bool | None = None, *, maximize: bool = False, differentiable: bool = False,
                 fused: bool | None = None) -> None:
        _check("Adagrad", lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
               initial_accumulator_value=initial_accumulator_value, eps=eps)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))
        # PyTorch makes the state at construction, not at the first step
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p] = {"step": 0, "sum": full_like(p, group["initial_accumulator_value"])}

    @no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = _closure_loss(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = _gradient(p, group)
                state = self.state[p]
                state["step"] += 1
                clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
                state["sum"].add_(g * g)
                p.add_((g * -clr).div_(state["sum"].sqrt().add_(group["eps"])))
        return loss
