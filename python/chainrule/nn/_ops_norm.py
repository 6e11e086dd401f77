"""Normalisation and embedding: each op's forward (`_core` kernel calls) beside its backward (the
local chain rule), one small class each, and the `nn.functional` form in PyTorch's spelling.

With xhat = (x - mean) * invstd and y = xhat * weight + bias, the gradients are
    d bias = sum(g),  d weight = sum(g * xhat),
    d x = weight * invstd * (g - mean(g) - xhat * mean(g * xhat))
when the mean and invstd are the batch's own (training; sums and means over what was
normalised together), and d x = weight * invstd * g when they are fixed (eval).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from chainrule import _core
from chainrule.autograd.function import Function
from chainrule.autograd.grad_mode import no_grad
from chainrule.tensor import Tensor, _wrap, apply

C = _core
Array = _core.Tensor


def _needs_grad(ctx: Any, i: int) -> bool:
    return ctx.edges[i] is not None


class BatchNorm(Function):
    """Normalises (N, C, *) per channel with the given statistics (the batch's own when training)."""

    @staticmethod
    def forward(ctx: Any, input: Array, weight: Array | None, bias: Array | None, mean: Array, invstd: Array,
                training: bool) -> Array:
        ctx.training = training
        ctx.save_for_backward(*[a for a in (input, mean, invstd, weight) if a is not None])
        return C.batch_norm(input, mean, invstd, weight, bias)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        input, mean, invstd, *weight = ctx.saved_tensors
        gx, g_weight, g_bias = C.batch_norm_backward(g, input, mean, invstd, weight[0] if weight else None,
                                                     ctx.training)
        return gx, g_weight, g_bias, None, None, None


class LayerNorm(Function):
    """Normalises each row of the last `normalized_numel` elements by its own mean and variance."""

    @staticmethod
    def forward(ctx: Any, input: Array, weight: Array | None, bias: Array | None, normalized_numel: int,
                eps: float) -> Array:
        flat_weight = weight.reshape([-1]) if weight is not None else None
        flat_bias = bias.reshape([-1]) if bias is not None else None
        out, mean, invstd = C.layer_norm(input, normalized_numel, flat_weight, flat_bias, eps)
        ctx.weight_shape = weight.shape if weight is not None else None
        ctx.save_for_backward(*[a for a in (input, mean, invstd, flat_weight) if a is not None])
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        input, mean, invstd, *weight = ctx.saved_tensors
        gx, g_weight, g_bias = C.layer_norm_backward(g, input, mean, invstd, weight[0] if weight else None)
        shape = list(ctx.weight_shape) if ctx.weight_shape is not None else [-1]
        return gx, g_weight.reshape(shape), g_bias.reshape(shape), None, None


class Embedding(Function):
    """Rows of the weight picked by int64 indices; backward adds each output row's gradient to the
    row it came from (a repeated index adds up), except the padding row, which gets none."""

    @staticmethod
    def forward(ctx: Any, weight: Array, indices: Array, padding_idx: int | None) -> Array:
        ctx.weight_shape, ctx.padding_idx = weight.shape, padding_idx
        flat = indices.reshape([-1])
        ctx.save_for_backward(flat)
        rows = C.index_select(weight, 0, flat)
        return rows.reshape(list(indices.shape) + [weight.shape[1]])

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (flat,) = ctx.saved_tensors
        gw = C.full(list(ctx.weight_shape), 0, g.dtype)
        C.index_add_(gw, 0, flat, g.reshape([-1, ctx.weight_shape[1]]))
        if ctx.padding_idx is not None:
            C.fill_(gw.slice(0, ctx.padding_idx, ctx.padding_idx + 1, 1), 0)
        return gw, None, None


# ---------------------------------------------------------------- nn.functional forms
def _check_tensor(value: Any, name: str, op: str) -> None:
    if value is not None and not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(value).__name__}")


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float | None = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation of (N, C, *) over every dim but C, as torch.nn.functional.batch_norm.
    Training uses the batch's statistics and, when running buffers are given, moves them
    towards it in place (running = (1 - momentum) running + momentum batch, the variance
    unbiased); otherwise the running statistics normalise.

    >>> import chainrule as cr
    >>> x = cr.tensor([[1.0], [3.0]])
    >>> cr.nn.functional.batch_norm(x, None, None, training=True, eps=0.0).tolist()
    [[-1.0], [1.0]]
    """
    _check_tensor(input, "input", "batch_norm")
    for name, value in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                        ("bias", bias)):
        _check_tensor(value, name, "batch_norm")
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input (N, C, ...), got shape {input.shape}")
    if training:
        per_channel = input.numel() // max(input.shape[1], 1)
        if per_channel <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input of "
                             f"shape {input.shape}")
        mean, var = C.batch_norm_statistics(input._data)
        if running_mean is not None and running_var is not None:
            factor = 0.0 if momentum is None else momentum
            unbiased = C.mul(var, per_channel / (per_channel - 1))
            with no_grad():
                for running, batch in ((running_mean, mean), (running_var, unbiased)):
                    C.mul_(running._data, 1.0 - factor)
                    C.add_(running._data, C.mul(batch, factor))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are needed when not training")
        mean, var = running_mean._data.clone(), running_var._data
    invstd = C.div(1.0, C.sqrt(C.add(var, eps)))
    return apply(BatchNorm, input, weight, bias, mean, invstd, bool(training))


def layer_norm(input: Tensor, normalized_shape: Sequence[int] | int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalises over the last dims, which must equal normalized_shape, as
    torch.nn.functional.layer_norm.

    >>> import chainrule as cr
    >>> cr.nn.functional.layer_norm(cr.tensor([[1.0, 3.0]]), (2,), eps=0.0).tolist()
    [[-1.0, 1.0]]
    """
    _check_tensor(input, "input", "layer_norm")
    _check_tensor(weight, "weight", "layer_norm")
    _check_tensor(bias, "bias", "layer_norm")
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if not shape or input.shape[input.ndim - len(shape):] != shape or len(shape) > input.ndim:
        raise ValueError(f"layer_norm: normalized_shape {shape} does not match the last dims of the input's "
                         f"shape {input.shape}")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and value.shape != shape:
            raise ValueError(f"layer_norm: {name} of shape {value.shape} does not match normalized_shape {shape}")
    return apply(LayerNorm, input, weight, bias, math.prod(shape), float(eps))


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of weight (num_embeddings, embedding_dim) at the int64 indices in input, as
    torch.nn.functional.embedding; the row at padding_idx takes no gradient.

    >>> import chainrule as cr
    >>> cr.nn.functional.embedding(cr.tensor([2, 0]), cr.arange(6.0).reshape(3, 2)).tolist()
    [[4.0, 5.0], [0.0, 1.0]]
    """
    _check_tensor(input, "input", "embedding")
    _check_tensor(weight, "weight", "embedding")
    if input.dtype.name != "int64":
        raise TypeError(f"embedding: expected int64 indices, got dtype {input.dtype.name}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: expected a 2-D weight (num_embeddings, embedding_dim), got shape {weight.shape}")
    if padding_idx is not None:
        if not -weight.shape[0] <= padding_idx < weight.shape[0]:
            raise IndexError(f"embedding: padding_idx {padding_idx} is out of range for {weight.shape[0]} embeddings")
        padding_idx %= weight.shape[0]
    return apply(Embedding, weight, input, padding_idx)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zeroes whole channels of (N, C, H, W) or (C, H, W) with probability p and scales the rest by
    1 / (1 - p) (training only), as torch.nn.functional.dropout2d."""
    _check_tensor(input, "input", "dropout2d")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout2d: p must be in [0, 1], got {p}")
    if input.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {input.shape}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    mask_shape = list(input.shape[:-2]) + [1, 1]
    keep = _wrap(C.ge(C.rand(mask_shape, input.dtype), p))
    return input * keep * (1.0 / (1.0 - p))
