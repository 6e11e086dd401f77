"""Conv2d: a 2-D convolution layer with PyTorch's arguments, parameters and initialisation, and
F.conv2d, which checks those arguments and calls the op table's conv2d (chainrule/ops/convolution.py)."""
from __future__ import annotations

import math
from typing import Any

from chainrule import ops
from chainrule.creation import empty
from chainrule.nn import init
from chainrule.nn.module import Module
from chainrule.nn.parameter import Parameter
from chainrule.tensor import Tensor

Pair = tuple[int, int]
_conv2d = ops.forward("conv2d")


# ---------------------------------------------------------------- nn.functional form
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
    out = _conv2d(batched, weight, bias, stride_hw, padding_hw, dilation_hw, groups)
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



# ---------------------------------------------------------------- the layer
class Conv2d(Module):
    """Cross-correlation of (N, C_in, H, W) with out_channels filters of shape
    (in_channels / groups, kH, kW); weight (out_channels, in_channels / groups, kH, kW) and bias
    (out_channels,) initialised as PyTorch does (uniform in +-1/sqrt(fan_in) for both).

    >>> import chainrule as cr
    >>> cr.nn.Conv2d(3, 8, 3, padding=1)(cr.ones(2, 3, 5, 5)).shape
    (2, 8, 5, 5)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if padding_mode != "zeros":
            raise ValueError(f"Conv2d: only padding_mode='zeros' is supported, got {padding_mode!r}")
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                             f"divisible by groups ({groups})")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = _pair(stride, "stride", "Conv2d")
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding", "Conv2d")
        self.dilation = _pair(dilation, "dilation", "Conv2d")
        self.padding_mode = padding_mode
        self.weight = Parameter(empty(out_channels, in_channels // groups, *self.kernel_size, dtype=dtype))
        self.register_parameter("bias", Parameter(empty(out_channels, dtype=dtype)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # = uniform(+-1/sqrt(fan_in))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text
