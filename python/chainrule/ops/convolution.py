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


# ---------------------------------------------------------------- the backward kernels as ops
# conv2d's and the pools' backward kernels are linear maps; each is an op of its own here, whose
# backward is its adjoint (the forward kernel again, or the other backward kernel), so that a
# backward recorded with create_graph=True (K finds these entries by the kernels' names) is
# differentiable again, to any order.
_CONV_CASE = ((1, 1), (0, 0), (1, 1), 1)
_CONV_STRIDED = ((2, 1), (1, 1), (1, 2), 1)


def _conv_input_case(settings: Any, input_shape: list[int]) -> Any:
    return lambda g, w: C.apply(Conv2dBackwardInput, g, w, input_shape, *settings)


def _conv_weight_case(settings: Any, weight_shape: list[int]) -> Any:
    return lambda g, x: C.apply(Conv2dBackwardWeight, g, x, weight_shape, *settings)


@op("conv2d_backward_input", saves="the output's gradient and the weight",
    names=("conv2d's backward (input)",),
    cases=[Case("conv2d_backward_input", _conv_input_case(_CONV_CASE, [1, 2, 5, 4]), [(1, 3, 3, 3), (3, 2, 3, 2)]),
           Case("conv2d_backward_input_strided", _conv_input_case(_CONV_STRIDED, [1, 2, 5, 6]),
                [(1, 2, 3, 6), (2, 2, 2, 2)])])
class Conv2dBackwardInput(OpNode):
    """dx = g correlated back with W: linear in g and in W. Its backward: d/dg is conv2d of the
    upstream gradient with W, d/dW is conv2d_backward_weight of g with the upstream gradient."""

    @staticmethod
    def forward(ctx: Any, g: Array, weight: Array, input_shape: list[int], stride: Pair, padding: Pair,
                dilation: Pair, groups: int) -> Array:
        ctx.settings = (stride, padding, dilation, groups)
        ctx.save_for_backward(g, weight)
        return C.conv2d_backward_input(g, weight, input_shape, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, gg: Array) -> tuple[Any, ...]:
        g, weight = ctx.saved_tensors
        d_g = K.conv2d(gg, weight, None, *ctx.settings) if _needs_grad(ctx, 0) else None
        d_w = K.conv2d_backward_weight(g, gg, weight.shape, *ctx.settings) if _needs_grad(ctx, 1) else None
        return d_g, d_w, None, None, None, None, None


@op("conv2d_backward_weight", saves="the output's gradient and the input",
    names=("conv2d's backward (weight)",),
    cases=[Case("conv2d_backward_weight", _conv_weight_case(_CONV_CASE, [3, 2, 3, 2]), [(1, 3, 3, 3), (1, 2, 5, 4)]),
           Case("conv2d_backward_weight_strided", _conv_weight_case(_CONV_STRIDED, [2, 2, 2, 2]),
                [(1, 2, 3, 6), (1, 2, 5, 6)])])
class Conv2dBackwardWeight(OpNode):
    """dW = g correlated with x: linear in g and in x. Its backward: d/dg is conv2d of x with
    the upstream gradient, d/dx is conv2d_backward_input of g with the upstream gradient."""

    @staticmethod
    def forward(ctx: Any, g: Array, input: Array, weight_shape: list[int], stride: Pair, padding: Pair,
                dilation: Pair, groups: int) -> Array:
        ctx.settings = (stride, padding, dilation, groups)
        ctx.save_for_backward(g, input)
        return C.conv2d_backward_weight(g, input, weight_shape, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, gw: Array) -> tuple[Any, ...]:
        g, input = ctx.saved_tensors
        d_g = K.conv2d(input, gw, None, *ctx.settings) if _needs_grad(ctx, 0) else None
        d_x = K.conv2d_backward_input(g, gw, input.shape, *ctx.settings) if _needs_grad(ctx, 1) else None
        return d_g, d_x, None, None, None, None, None


@op("avg_pool2d_backward", saves="nothing but the settings", names=("avg_pool2d's backward",),
    cases=[Case("avg_pool2d_backward",
                lambda g: C.apply(AvgPool2dBackward, g, [2, 1, 5, 4], (3, 3), (2, 2), (1, 1), True, False, 0),
                [(2, 1, 3, 3)])])
class AvgPool2dBackward(OpNode):
    """g / divisor spread over each window: linear in g; its backward is avg_pool2d itself (the
    adjoint of spreading is averaging with the same divisors)."""

    @staticmethod
    def forward(ctx: Any, g: Array, input_shape: list[int], kernel: Pair, stride: Pair, padding: Pair,
                ceil_mode: bool, count_include_pad: bool, divisor_override: int) -> Array:
        settings = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
        ctx.settings = settings
        return C.avg_pool2d_backward(g, input_shape, *settings)

    @staticmethod
    def backward(ctx: Any, gg: Array) -> tuple[Any, ...]:
        return (K.avg_pool2d(gg, *ctx.settings),) + (None,) * 7


def _max_pool_backward_case(g: Any) -> Any:
    import numpy as np

    plane = C.from_numpy(np.arange(20, dtype=np.float64)[::-1].copy().reshape(1, 1, 5, 4) % 7)
    _, indices = K.max_pool2d(plane, (3, 3), (2, 2), (1, 1), (1, 1), True)
    return C.apply(MaxPool2dBackward, g, indices, [1, 1, 5, 4])


@op("max_pool2d_backward", saves="the indices", names=("max_pool2d's backward",),
    cases=[Case("max_pool2d_backward", _max_pool_backward_case, [(1, 1, 3, 3)])])
class MaxPool2dBackward(OpNode):
    """Each window's gradient added at its maximum's position: linear in g; its backward gathers
    the upstream gradient at those positions (an index_select of the flattened planes)."""

    @staticmethod
    def forward(ctx: Any, g: Array, indices: Array, input_shape: list[int]) -> Array:
        ctx.input_shape = input_shape
        ctx.save_for_backward(indices)
        return C.max_pool2d_backward(g, indices, input_shape)

    @staticmethod
    def backward(ctx: Any, gg: Array) -> tuple[Any, ...]:
        (indices,) = ctx.saved_tensors
        n, c, h, w = ctx.input_shape
        offsets = K.mul(K.arange_int64(0, n * c, 1), h * w).reshape([n, c] + [1] * (indices.ndim - 2))
        flat = K.add(indices, offsets).reshape([-1])
        return K.index_select(gg.reshape([-1]), 0, flat).reshape(list(indices.shape)), None, None
