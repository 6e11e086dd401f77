"""Normalisation and embedding: each op's forward (`_core` kernel calls) beside its backward (the
local chain rule). `nn.functional` checks the arguments in PyTorch's spelling
(nn/normalization.py, nn/sparse.py) and calls these entries.

With xhat = (x - mean) * invstd and y = xhat * weight + bias, the gradients are
    d bias = sum(g),  d weight = sum(g * xhat),
    d x = weight * invstd * (g - mean(g) - xhat * mean(g * xhat))
when the mean and invstd are the batch's own (training; sums and means over what was
normalised together), and d x = weight * invstd * g when they are fixed (eval).
"""
from __future__ import annotations

from typing import Any

from chainrule import _core
from chainrule.ops.kernels import K
from chainrule.autograd.function import OpNode
from chainrule.ops.table import Case, op

C = _core
Array = _core.Tensor


def _functional() -> Any:
    from chainrule.nn import functional  # the cases call the public spelling, long after import

    return functional


def _batch_norm_eval_case(x: Any, w: Any, b: Any) -> Any:
    import chainrule as cr

    mean, var = cr.tensor([0.3, -0.2, 0.1], dtype=x.dtype), cr.tensor([0.5, 1.5, 2.0], dtype=x.dtype)
    return _functional().batch_norm(x, mean, var, w, b, training=False)


@op("batch_norm", saves="the input, the statistics and the weight", names=("F.batch_norm", "nn.BatchNorm2d"),
    cases=[Case("batch_norm_training", lambda x, w, b: _functional().batch_norm(x, None, None, w, b, training=True),
                [(4, 3, 2, 2), (3,), (3,)]),
           Case("batch_norm_training_2d_no_affine", lambda x: _functional().batch_norm(x, None, None, training=True),
                [(5, 3)]),
           Case("batch_norm_eval", _batch_norm_eval_case, [(2, 3, 2), (3,), (3,)])])
class BatchNorm(OpNode):
    """Normalises (N, C, *) per channel with the given statistics (the batch's own when training,
    so that its gradient flows through them too)."""

    @staticmethod
    def forward(ctx: Any, input: Array, weight: Array | None, bias: Array | None, mean: Array, invstd: Array,
                training: bool) -> Array:
        ctx.training = training
        ctx.save_for_backward(*[a for a in (input, mean, invstd, weight) if a is not None])
        return C.batch_norm(input, mean, invstd, weight, bias)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        input, mean, invstd, *weight = ctx.saved_tensors
        gx, g_weight, g_bias = K.batch_norm_backward(g, input, mean, invstd, weight[0] if weight else None,
                                                     ctx.training)
        return gx, g_weight, g_bias, None, None, None


def batch_norm_statistics(input: Any) -> tuple[Any, Any]:
    """The per-channel mean and (biased) variance of the Tensor `input` (N, C, *), as Tensors that
    take no gradient (the BatchNorm node differentiates through them itself)."""
    mean, var = K.batch_norm_statistics(input._data)
    return C.wrap(mean), C.wrap(var)


@op("layer_norm", saves="the input, the statistics and the weight", names=("F.layer_norm", "nn.LayerNorm"),
    cases=[Case("layer_norm", lambda x, w, b: _functional().layer_norm(x, (2, 3), w, b), [(3, 2, 3), (2, 3), (2, 3)]),
           Case("layer_norm_no_affine", lambda x: _functional().layer_norm(x, 4), [(3, 4)])])
class LayerNorm(OpNode):
    """Normalises each row of the last `normalized_numel` elements by its own mean and variance."""

    @staticmethod
    def forward(ctx: Any, input: Array, weight: Array | None, bias: Array | None, normalized_numel: int,
                eps: float) -> Array:
        flat_weight = weight.reshape([-1]) if weight is not None else None
        flat_bias = bias.reshape([-1]) if bias is not None else None
        out, mean, invstd = C.layer_norm(input, normalized_numel, flat_weight, flat_bias, eps)
        ctx.weight_shape = weight.shape if weight is not None else None
        ctx.save_for_backward(*[a for a in (input, mean, invstd, weight) if a is not None])
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        input, mean, invstd, *weight = ctx.saved_tensors
        flat_weight = weight[0].reshape([-1]) if weight else None  # the weight saved, as an input
        gx, g_weight, g_bias = K.layer_norm_backward(g, input, mean, invstd, flat_weight)
        shape = list(ctx.weight_shape) if ctx.weight_shape is not None else [-1]
        return gx, g_weight.reshape(shape), g_bias.reshape(shape), None, None


def _embedding_case(weight: Any) -> Any:
    import chainrule as cr

    return _functional().embedding(cr.tensor([[5, 0], [5, 1]]), weight)


@op("embedding", saves="the indices", names=("F.embedding", "nn.Embedding"),
    cases=[Case("embedding", _embedding_case, [(6, 3)])])
class Embedding(OpNode):
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
        gw = K.full(list(ctx.weight_shape), 0, g.dtype)
        if ctx.padding_idx is not None:  # the padding row's gradients dropped before adding
            g = K.where(K.ne(flat, ctx.padding_idx).reshape([-1, 1]), g.reshape([-1, ctx.weight_shape[1]]),
                        K.full([], 0, g.dtype))
        added = K.index_add_(gw, 0, flat, g.reshape([-1, ctx.weight_shape[1]]))
        gw = gw if added is None else added
        return gw, None, None
