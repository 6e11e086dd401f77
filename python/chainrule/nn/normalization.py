"""BatchNorm1d, BatchNorm2d and LayerNorm, with PyTorch's arguments, parameters and buffers
(running_mean, running_var, num_batches_tracked in the state_dict), and F.batch_norm and
F.layer_norm, which check the arguments, keep the running statistics and call the op table's
entries (chainrule/ops/normalization.py)."""
from __future__ import annotations

import math
from typing import Any, Sequence

from chainrule import ops
from chainrule.autograd.grad_mode import no_grad
from chainrule.creation import ones, tensor, zeros
from chainrule.nn import init
from chainrule.nn.module import Module
from chainrule.nn.parameter import Parameter
from chainrule.ops.normalization import batch_norm_statistics
from chainrule.tensor import Tensor

_batch_norm = ops.forward("batch_norm")
_layer_norm = ops.forward("layer_norm")


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
        mean, var = batch_norm_statistics(input)
        if running_mean is not None and running_var is not None:
            factor = 0.0 if momentum is None else momentum
            unbiased = var * (per_channel / (per_channel - 1))
            with no_grad():
                for running, batch in ((running_mean, mean), (running_var, unbiased)):
                    running.mul_(1.0 - factor)
                    running.add_(batch * factor)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are needed when not training")
        # a copy: the node saves it, and the next training step moves the buffer in place
        mean, var = running_mean.detach().clone(), running_var.detach()
    invstd = 1.0 / (var + eps).sqrt()
    return _batch_norm(input, weight, bias, mean, invstd, bool(training))


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
    return _layer_norm(input, weight, bias, math.prod(shape), float(eps))


# ---------------------------------------------------------------- the layers
class _BatchNorm(Module):
    _expected_dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(ones(num_features, dtype=dtype))
            self.bias = Parameter(zeros(num_features, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", tensor(0))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        if not isinstance(input, Tensor):
            raise TypeError(f"{type(self).__name__}: expected a Tensor input, got {type(input).__name__}")
        if input.ndim not in self._expected_dims:
            dims = " or ".join(f"{d}-D" for d in self._expected_dims)
            raise ValueError(f"{type(self).__name__}: expected a {dims} input, got shape {input.shape}")
        if input.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} channels in dim 1, got "
                             f"input of shape {input.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            with no_grad():  # a buffer: never part of a graph
                self.num_batches_tracked.add_(1)
            if self.momentum is None:  # a cumulative moving average
                factor = 1.0 / self.num_batches_tracked.item()
        # eval with running statistics normalises by them; otherwise by the batch's own
        batch_stats = self.training or self.running_mean is None
        keep_running = not self.training or self.track_running_stats
        return batch_norm(input, self.running_mean if keep_running else None,
                          self.running_var if keep_running else None, self.weight, self.bias,
                          batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) per channel.

    >>> import chainrule as cr
    >>> sorted(cr.nn.BatchNorm1d(4).state_dict())
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) per channel.

    >>> import chainrule as cr
    >>> cr.nn.BatchNorm2d(3)(cr.randn(4, 3, 5, 5)).shape
    (4, 3, 5, 5)
    """

    _expected_dims = (4,)


class LayerNorm(Module):
    """Normalisation of each sample over its last dims (normalized_shape), with an elementwise
    weight (ones) and bias (zeros).

    >>> import chainrule as cr
    >>> cr.nn.LayerNorm(8)(cr.randn(2, 5, 8)).shape
    (2, 5, 8)
    """

    def __init__(self, normalized_shape: Sequence[int] | int, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ones(*shape, dtype=dtype))
            self.register_parameter("bias", Parameter(zeros(*shape, dtype=dtype)) if bias else None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
