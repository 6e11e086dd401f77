"""Gradient clipping: by the norm of all gradients together, or by value, in place."""
from __future__ import annotations

import math
from collections.abc import Iterable

from chainrule.autograd.grad_mode import no_grad
from chainrule.creation import tensor
from chainrule.tensor import Tensor, stack


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _vector_norm(t: Tensor, norm_type: float) -> Tensor:
    """The p-norm of all of t's entries: max |t| for inf, min |t| for -inf, the count of
    non-zeros for 0, else (sum |t|^p)^(1/p)."""
    if norm_type == math.inf:
        return t.abs().amax() if t.numel() else tensor(0.0, dtype=t.dtype)
    if norm_type == -math.inf:
        return t.abs().amin()
    if norm_type == 0:
        return (t != 0).sum().to(t.dtype)
    if norm_type == 2:
        return t.square().sum().sqrt()  # the common case, without a pow
    if norm_type == 1:
        return t.abs().sum()
    return (t.abs() ** norm_type).sum() ** (1.0 / norm_type)


@no_grad()
def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Scales the gradients in place so that their norm, taken over all of them as one vector,
    is at most `max_norm`; returns that total norm (before clipping), a 0-d tensor. As in
    PyTorch, the scale is max_norm / (total + 1e-6), clamped to 1. `foreach` is accepted and
    has no effect (there is one implementation).

    >>> import chainrule as cr
    >>> w = cr.nn.Parameter(cr.zeros(2)); w.grad = cr.tensor([3.0, 4.0])
    >>> cr.nn.utils.clip_grad_norm_([w], max_norm=1.0).item(), [round(g, 4) for g in w.grad.tolist()]
    (5.0, [0.6, 0.8])
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return tensor(0.0)
    total = _vector_norm(stack([_vector_norm(g, norm_type) for g in grads]), norm_type)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients "
                           f"is non-finite ({total.item()}), so it cannot be clipped; pass "
                           "error_if_nonfinite=False to clip anyway")
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.to(g.dtype))
    return total


@no_grad()
def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float,
                     foreach: bool | None = None) -> None:
    """Clamps every gradient entry to [-clip_value, clip_value], in place.

    >>> import chainrule as cr
    >>> w = cr.nn.Parameter(cr.zeros(2)); w.grad = cr.tensor([3.0, -0.5])
    >>> cr.nn.utils.clip_grad_value_([w], 1.0); w.grad.tolist()
    [1.0, -0.5]
    """
    clip_value = float(clip_value)
    for g in _grads(parameters):
        g.copy_(g.clamp(-clip_value, clip_value))


__all__ = ["clip_grad_norm_", "clip_grad_value_"]
