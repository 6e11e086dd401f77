"""Stateless forms of the layers and losses (imported as F), with PyTorch's argument names."""
from __future__ import annotations

from typing import Any

from chainrule import _core, ops
from chainrule.tensor import Tensor, _tensor_operand, _wrap, apply


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias, in one kernel call and one graph node.

    >>> import chainrule as cr
    >>> cr.nn.functional.linear(cr.ones(2, 3), cr.ones(4, 3), cr.zeros(4)).tolist()[0]
    [3.0, 3.0, 3.0, 3.0]
    """
    input, weight = _tensor_operand(input, "linear"), _tensor_operand(weight, "linear")
    if bias is not None:
        bias = _tensor_operand(bias, "linear")
    return apply(ops.Linear, input, weight, bias)


def relu(input: Tensor) -> Tensor:
    return input.relu()


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def softmax(input: Tensor, dim: int) -> Tensor:
    return input.softmax(dim)


def log_softmax(input: Tensor, dim: int) -> Tensor:
    return input.log_softmax(dim)


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zeroes elements with probability p and scales the rest by 1 / (1 - p) (training only)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = _wrap(_core.ge(_core.rand(list(input.shape), input.dtype), p))
    return input * keep * (1.0 / (1.0 - p))


def _check_loss(name: str, input: Tensor, target: Tensor) -> None:
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{name}: expected tensors, got {type(input).__name__} and "
                        f"{type(target).__name__}")
    if not input.dtype.is_floating_point:
        raise TypeError(f"{name}: expected a float input, got dtype {input.dtype.name}")
    if input.shape != target.shape:
        raise ValueError(f"{name}: input shape {input.shape} and target shape {target.shape} "
                         "differ (losses do not broadcast)")


def _reduce(loss: Tensor, reduction: str, name: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """(input - target)^2, reduced."""
    _check_loss("mse_loss", input, target)
    if not target.dtype.is_floating_point:
        raise TypeError(f"mse_loss: expected a float target, got dtype {target.dtype.name}")
    return _reduce((input - target).square(), reduction, "mse_loss")


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """-(y log h + (1 - y) log(1 - h)), the lecture's cost; logs are clamped at -100 as in
    PyTorch, so h = 0 or 1 gives a finite loss."""
    _check_loss("binary_cross_entropy", input, target)
    if not target.dtype.is_floating_point:
        raise TypeError(f"binary_cross_entropy: expected a float target (probabilities), got "
                        f"dtype {target.dtype.name}")
    log_h = input.log().clamp(min=-100.0)
    log_not_h = (1.0 - input).log().clamp(min=-100.0)
    loss = -(target * log_h + (1.0 - target) * log_not_h)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid and binary cross-entropy in one stable form:
    max(x, 0) - x * y + log(1 + exp(-|x|))."""
    _check_loss("binary_cross_entropy_with_logits", input, target)
    if not target.dtype.is_floating_point:
        raise TypeError(f"binary_cross_entropy_with_logits: expected a float target, got dtype "
                        f"{target.dtype.name}")
    log_term = ((-input.abs()).exp() + 1.0).log()
    if pos_weight is not None:
        # (1 + (pw - 1) y) * (log(1 + e^-|x|) + max(-x, 0)) + (1 - y) x
        log_weight = (pos_weight - 1.0) * target + 1.0
        loss = (1.0 - target) * input + log_weight * (log_term + (-input).relu())
    else:
        loss = input.relu() - input * target + log_term
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def cross_entropy(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits (N, C) against int64 class indices (N,)."""
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError("cross_entropy: expected tensors")
    if not input.dtype.is_floating_point:
        raise TypeError(f"cross_entropy: expected float logits, got dtype {input.dtype.name}")
    if target.dtype.name != "int64":
        raise TypeError(f"cross_entropy: expected int64 class indices, got dtype {target.dtype.name}")
    if input.ndim != 2 or target.ndim != 1 or target.shape[0] != input.shape[0]:
        raise ValueError(f"cross_entropy: expected logits (N, C) and targets (N,), got shapes "
                         f"{input.shape} and {target.shape}")
    # One fused node: per-sample loss (class range checked in C++, IndexError), then reduced.
    return _reduce(apply(ops.CrossEntropy, input, target), reduction, "cross_entropy")


