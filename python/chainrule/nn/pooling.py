"""MaxPool2d and AvgPool2d, with PyTorch's arguments (stride defaults to kernel_size), and their
nn.functional forms, which check those arguments and call the op table's entries
(chainrule/ops/convolution.py)."""
from __future__ import annotations

from typing import Any

from chainrule import ops
from chainrule.nn.conv import Pair, _pair
from chainrule.nn.module import Module
from chainrule.ops.convolution import max_pool2d as _max_pool2d
from chainrule.tensor import Tensor

_avg_pool2d = ops.forward("avg_pool2d")


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
    out, indices = _max_pool2d(input, kernel, stride_hw, padding_hw, dilation_hw, bool(ceil_mode))
    return (out, indices) if return_indices else out


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
    return _avg_pool2d(input, kernel, stride_hw, padding_hw, bool(ceil_mode), bool(count_include_pad),
                 divisor_override or 0)



class MaxPool2d(Module):
    """The largest element of each kernel_size window of (N, C, H, W) or (C, H, W).

    >>> import chainrule as cr
    >>> cr.nn.MaxPool2d(2)(cr.ones(1, 3, 8, 8)).shape
    (1, 3, 4, 4)
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, input: Tensor) -> Any:
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                          self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """The mean of each kernel_size window of (N, C, H, W) or (C, H, W).

    >>> import chainrule as cr
    >>> cr.nn.AvgPool2d(2)(cr.ones(1, 3, 8, 8)).shape
    (1, 3, 4, 4)
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
