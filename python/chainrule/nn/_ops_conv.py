"""Convolution and pooling: each op's forward (one `_core` kernel call) beside its backward (the
local chain rule, also a kernel call), one small class each, and the `nn.functional` form that
checks the arguments in PyTorch's spelling and applies it.

conv2d's backward is the same convolution run backwards: the input's gradient correlates the
output's gradient with the weight (scattered back patch by patch), the weight's correlates the
output's gradient with the input, and the bias's sums the output's gradient over (N, H, W).
"""
from __future__ import annotations

from typing import Any

from chainrule import _core
from chainrule.autograd.function import Function
from chainrule.tensor import Tensor, _wrap, apply

C = _core
Array = _core.Tensor
Pair = tuple[int, int]


def _needs_grad(ctx: Any, i: int) -> bool:
    """Whether input i of the node takes a gradient (skips work the engine would discard)."""
    return ctx.edges[i] is not None


class Conv2d(Function):
    @staticmethod
    def forward(ctx: Any, input: Array, weight: Array, bias: Array | None, stride: Pair, padding: Pair,
                dilation: Pair, groups: int) -> Array:
        ctx.settings = (stride, padding, dilation, groups)
        ctx.save_for_backward(input, weight)
        return C.conv2d(input, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        input, weight = ctx.saved_tensors
        gx = C.conv2d_backward_input(g, weight, input.shape, *ctx.settings) if _needs_grad(ctx, 0) else None
        gw = C.conv2d_backward_weight(g, input, weight.shape, *ctx.settings) if _needs_grad(ctx, 1) else None
        gb = C.conv2d_backward_bias(g) if _needs_grad(ctx, 2) else None
        return gx, gw, gb, None, None, None, None


class MaxPool2d(Function):
    """The maxima come in already computed (with their positions, which the caller may return
    too); backward sends each output's gradient to the input element that won its window."""

    @staticmethod
    def forward(ctx: Any, input: Array, values: Array, indices: Array) -> Array:
        ctx.input_shape = input.shape
        ctx.save_for_backward(indices)
        return values

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (indices,) = ctx.saved_tensors
        return C.max_pool2d_backward(g, indices, list(ctx.input_shape)), None, None


class AvgPool2d(Function):
    """Each output is its window's sum over a divisor; backward spreads grad / divisor back over
    the window."""

    @staticmethod
    def forward(ctx: Any, input: Array, kernel: Pair, stride: Pair, padding: Pair, ceil_mode: bool,
                count_include_pad: bool, divisor_override: int) -> Array:
        ctx.input_shape = input.shape
        settings = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
        ctx.settings = settings  # (ctx keeps nothing when no graph is recorded: read the local)
        return C.avg_pool2d(input, *settings)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return (C.avg_pool2d_backward(g, list(ctx.input_shape), *ctx.settings),) + (None,) * 6


# ---------------------------------------------------------------- nn.functional forms
def _pair(value: Any, name: str, op: str) -> Pair:
    """An int or a pair of ints (PyTorch's _pair), as a tuple of two ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return (value[0], value[1])
    if isinstance(value, (tuple, list)) and len(value) == 1 and isinstance(value[0], int):
        return (value[0], value[0])
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")


def _image_input(input: Any, op: str) -> tuple[Tensor, bool]:
    """The input as (N, C, H, W), and whether it came unbatched as (C, H, W)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor input, got {type(input).__name__}")
    if input.ndim == 3:
        return input.unsqueeze(0), True
    if input.ndim != 4:
        raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {input.shape}")
    return input, False


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D cross-correlation of input (N, C, H, W) or (C, H, W) with weight (O, C / groups, kH, kW),
    as torch.nn.functional.conv2d; padding may also be 'valid' or 'same' (stride 1).

    >>> import chainrule as cr
    >>> cr.nn.functional.conv2d(cr.ones(1, 1, 4, 4), cr.ones(1, 1, 3, 3)).tolist()
    [[[[9.0, 9.0], [9.0, 9.0]]]]
    """
    batched, unbatched = _image_input(input, "conv2d")
    if not isinstance(weight, Tensor) or (bias is not None and not isinstance(bias, Tensor)):
        raise TypeError("conv2d: expected Tensors for weight and bias")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: expected a 4-D weight (O, C / groups, kH, kW), got shape {weight.shape}")
    if isinstance(groups, bool) or not isinstance(groups, int):
        raise TypeError(f"conv2d: groups must be an int, got {groups!r}")
    stride_hw, dilation_hw = _pair(stride, "stride", "conv2d"), _pair(dilation, "dilation", "conv2d")
    padding_hw = _conv_padding(padding, weight.shape[2:], stride_hw, dilation_hw)
    out = apply(Conv2d, batched, weight, bias, stride_hw, padding_hw, dilation_hw, groups)
    return out.squeeze(0) if unbatched else out


def _conv_padding(padding: Any, kernel: tuple[int, ...], stride: Pair, dilation: Pair) -> Pair:
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError(f"conv2d: padding='same' needs stride 1, got stride {stride}")
        totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
        if any(t % 2 for t in totals):
            raise ValueError(f"conv2d: padding='same' with kernel {tuple(kernel)} and dilation {dilation} needs "
                             "uneven padding, which chainrule does not support; pad explicitly")
        return (totals[0] // 2, totals[1] // 2)
    if isinstance(padding, str):
        raise ValueError(f"conv2d: padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    return _pair(padding, "padding", "conv2d")


def _pool_arguments(kernel_size: Any, stride: Any, padding: Any, op: str) -> tuple[Pair, Pair, Pair]:
    kernel = _pair(kernel_size, "kernel_size", op)
    stride_hw = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else _pair(stride, "stride", op)
    return kernel, stride_hw, _pair(padding, "padding", op)


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """The largest element of each window, as torch.nn.functional.max_pool2d (stride defaults to
    kernel_size); with return_indices, also each maximum's flat position h * W + w in its plane.

    >>> import chainrule as cr
    >>> cr.nn.functional.max_pool2d(cr.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"max_pool2d: expected a Tensor input, got {type(input).__name__}")
    kernel, stride_hw, padding_hw = _pool_arguments(kernel_size, stride, padding, "max_pool2d")
    dilation_hw = _pair(dilation, "dilation", "max_pool2d")
    values, indices = C.max_pool2d(input._data, kernel, stride_hw, padding_hw, dilation_hw, bool(ceil_mode))
    out = apply(MaxPool2d, input, values, indices)
    return (out, _wrap(indices)) if return_indices else out


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """The mean of each window, as torch.nn.functional.avg_pool2d: the divisor counts the zero
    padding when count_include_pad, and is divisor_override when given.

    >>> import chainrule as cr
    >>> cr.nn.functional.avg_pool2d(cr.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
    [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"avg_pool2d: expected a Tensor input, got {type(input).__name__}")
    kernel, stride_hw, padding_hw = _pool_arguments(kernel_size, stride, padding, "avg_pool2d")
    if divisor_override is not None and (not isinstance(divisor_override, int) or divisor_override <= 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int, got {divisor_override!r}")
    return apply(AvgPool2d, input, kernel, stride_hw, padding_hw, bool(ceil_mode), bool(count_include_pad),
                 divisor_override or 0)
