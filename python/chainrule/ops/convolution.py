"""Convolution and pooling: each op's forward (one `_core` kernel call) beside its backward (the
local chain rule, also kernel calls). `nn.functional` checks the arguments in PyTorch's spelling
(nn/conv.py, nn/pooling.py) and calls these entries with sizes already as pairs.

conv2d's backward is the same convolution run backwards: the input's gradient correlates the
output's gradient with the weight (scattered back patch by patch), the weight's correlates the
output's gradient with the input, and the bias's sums the output's gradient over (N, H, W).
"""
from __future__ import annotations

from typing import Any

from chainrule import _core
from chainrule.ops.kernels import K
from chainrule.autograd.function import OpNode
from chainrule.ops.table import Case, op

C = _core
Array = _core.Tensor
Pair = tuple[int, int]


def _functional() -> Any:
    from chainrule.nn import functional  # the cases call the public spelling, long after import

    return functional


def _needs_grad(ctx: Any, i: int) -> bool:
    """Whether input i of the node takes a gradient (skips work the engine would discard)."""
    return ctx.edges[i] is not None


@op("conv2d", saves="the input and the weight", names=("F.conv2d", "nn.Conv2d"),
    cases=[Case("conv2d", lambda x, w, b: _functional().conv2d(x, w, b), [(2, 2, 5, 4), (3, 2, 3, 2), (3,)]),
           Case("conv2d_stride_padding_dilation",
                lambda x, w: _functional().conv2d(x, w, None, (2, 1), 1, (1, 2)), [(1, 2, 5, 6), (2, 2, 2, 2)]),
           Case("conv2d_groups", lambda x, w, b: _functional().conv2d(x, w, b, groups=2, padding="same"),
                [(1, 4, 4, 4), (4, 2, 3, 3), (4,)])])
class Conv2d(OpNode):
    """y[n, o] = sum over c, i, j of x[n, c, h + i, w + j] weight[o, c, i, j] + bias[o] (with
    stride, padding, dilation and groups): dx = g correlated back with the weight, dW = g
    correlated with x, db = g summed over (N, H, W)."""

    @staticmethod
    def forward(ctx: Any, input: Array, weight: Array, bias: Array | None, stride: Pair, padding: Pair,
                dilation: Pair, groups: int) -> Array:
        ctx.settings = (stride, padding, dilation, groups)
        ctx.save_for_backward(input, weight)
        return C.conv2d(input, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        input, weight = ctx.saved_tensors
        gx = K.conv2d_backward_input(g, weight, input.shape, *ctx.settings) if _needs_grad(ctx, 0) else None
        gw = K.conv2d_backward_weight(g, input, weight.shape, *ctx.settings) if _needs_grad(ctx, 1) else None
        gb = K.conv2d_backward_bias(g) if _needs_grad(ctx, 2) else None
        return gx, gw, gb, None, None, None, None


@op("max_pool2d", saves="the position of each window's maximum", names=("F.max_pool2d", "nn.MaxPool2d"),
    cases=[Case("max_pool2d", lambda x: _functional().max_pool2d(x, 2), [(1, 2, 4, 4)], ok="distinct"),
           Case("max_pool2d_overlapping_padded",
                lambda x: _functional().max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True), [(1, 1, 5, 4)],
                ok="distinct")])
class MaxPool2d(OpNode):
    """The maxima come in already computed, with their positions (`max_pool2d` below, which can
    return the positions too); backward sends each output's gradient to the input element that
    won its window."""

    @staticmethod
    def forward(ctx: Any, input: Array, values: Array, indices: Array) -> Array:
        ctx.input_shape = input.shape
        ctx.save_for_backward(indices)
        return values

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (indices,) = ctx.saved_tensors
        return K.max_pool2d_backward(g, indices, list(ctx.input_shape)), None, None


def max_pool2d(input: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool) -> Any:
    """(values, indices) of the max pooling of the Tensor `input` (N, C, H, W): the values are
    differentiable (one MaxPool2d node), the indices (each maximum's flat position h * W + w in
    its plane) an int64 Tensor."""
    values, indices = K.max_pool2d(input._data, kernel, stride, padding, dilation, ceil_mode)
    return C.apply(MaxPool2d, input, values, indices), C.wrap(indices)


@op("avg_pool2d", saves="nothing but the input's shape and the settings", names=("F.avg_pool2d", "nn.AvgPool2d"),
    cases=[Case("avg_pool2d", lambda x: _functional().avg_pool2d(x, 2), [(1, 2, 4, 4)]),
           Case("avg_pool2d_padded_exclusive",
                lambda x: _functional().avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                [(2, 1, 5, 4)])])
class AvgPool2d(OpNode):
    """Each output is its window's sum over a divisor; backward spreads g / divisor back over
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
        return (K.avg_pool2d_backward(g, list(ctx.input_shape), *ctx.settings),) + (None,) * 6
