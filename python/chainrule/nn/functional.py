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
    return _core.grad_linear(input, weight, bias)


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
    loss = apply(ops.BinaryCrossEntropy, input, target)
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
    if pos_weight is not None:
        pos_weight = _tensor_operand(pos_weight, "binary_cross_entropy_with_logits")
    loss = apply(ops.BinaryCrossEntropyWithLogits, input, target, pos_weight)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of logits (N, C) against int64 class indices (N,), PyTorch's
    arguments: per-class `weight` (the mean then divides by the summed weights of the samples),
    targets equal to `ignore_index` left out, and `label_smoothing` (without weights)."""
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError("cross_entropy: expected tensors")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if weight is not None and label_smoothing > 0:
        raise NotImplementedError("cross_entropy: weight together with label_smoothing is not supported")
    ignored = None
    if isinstance(target, Tensor) and target.dtype.name == "int64" and bool((target == ignore_index).any()):
        ignored = target == ignore_index
        target = _wrap(_core.where(ignored._data, _core.full((), 0, target.dtype), target._data))
    # One fused node: per-sample loss (argument checks and class range in C++), then reduced.
    loss = _core.grad_cross_entropy(input, target)
    if label_smoothing > 0:
        smooth = -input.log_softmax(1).mean(1)
        loss = loss * (1.0 - label_smoothing) + smooth * label_smoothing
    scale = None if weight is None else _tensor_operand(weight, "cross_entropy")[target]
    if ignored is not None:
        keep = (~ignored).to(loss.dtype)
        scale = keep if scale is None else scale * keep
    if scale is not None:
        loss = loss * scale
    if reduction == "mean" and scale is not None:
        return loss.sum() / scale.sum()
    return _reduce(loss, reduction, "cross_entropy")


# Convolution, pooling, normalisation and embedding (each op beside its backward in its own file).
from chainrule.nn._ops_conv import avg_pool2d, conv2d, max_pool2d  # noqa: E402
from chainrule.nn._ops_norm import batch_norm, dropout2d, embedding, layer_norm  # noqa: E402
