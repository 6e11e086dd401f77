"""Cumulative sums and products along a dim. The sum's gradient is the reverse cumulative sum
of g; the product's, for an input x without zeros, the reverse cumulative sum of g * out,
divided by x. With zeros it is written so that no term divides by zero: an element before the
first zero of its line takes the terms before that zero, the first zero takes the terms up to
the next one (where the product of the other elements is not zero), later elements take none."""
from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import _core
from chainrule.ops.kernels import K
from chainrule.autograd.function import OpNode
from chainrule.ops.table import Case, op

C = _core
Array = _core.Tensor


@op("cumsum", saves="the dim and the direction", names=("Tensor.cumsum", "cr.cumsum"),
    cases=[Case("cumsum", lambda a: a.cumsum(1) * a, [(3, 4)]),
           Case("cumsum_dim0_transposed", lambda a: a.cumsum(0), [(4, 3)], transposed=(0,)),
           Case("cumsum_negative_dim", lambda a: a.cumsum(-1), [(2, 3, 4)])])
class Cumsum(OpNode):
    """out_j = a_0 + ... + a_j along dim (from the end when reverse): g's reverse sums."""

    @staticmethod
    def forward(ctx: Any, a: Array, dim: int, reverse: bool) -> Array:
        ctx.dim, ctx.reverse = dim, reverse
        return C.cumsum(a, dim, reverse)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        return K.cumsum(g, ctx.dim, not ctx.reverse), None, None


@op("cumprod", saves="the input", names=("Tensor.cumprod", "cr.cumprod"),
    cases=[Case("cumprod", lambda a: a.cumprod(1), [(3, 4)], domain="nonzero"),
           Case("cumprod_dim0_transposed", lambda a: a.cumprod(0) * a, [(4, 3)], domain="nonzero",
                transposed=(0,)),
           Case("cumprod_with_zeros", lambda a: (a * _zeros_mask()).cumprod(-1), [(2, 5)])])
class Cumprod(OpNode):
    """out_j = a_0 * ... * a_j along dim; zeros in a are handled exactly (see the module)."""

    @staticmethod
    def forward(ctx: Any, a: Array, dim: int) -> Array:
        ctx.dim = dim
        ctx.save_for_backward(a)
        return C.cumprod(a, dim)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        dim = ctx.dim
        if isinstance(g, C.TensorBase):  # recorded (create_graph): exact in every element
            return _cumprod_backward_recorded(a, g, dim), None
        is_zero = K.eq(a, 0)
        safe = K.add(a, is_zero)                    # a with its zeros replaced by ones
        zeros_so_far = K.cumsum(is_zero, dim, False)
        terms = K.mul(g, K.cumprod(safe, dim))      # g_k times the product of the nonzeros up to k
        nothing = K.full([], 0, g.dtype)
        before_first_zero = K.cumsum(K.where(K.eq(zeros_so_far, 0), terms, nothing), dim, True)
        up_to_second_zero = K.cumsum(K.where(K.eq(zeros_so_far, 1), terms, nothing), dim, True)
        return K.div(K.where(is_zero, up_to_second_zero, before_first_zero), safe), None


def _zeros_mask() -> Any:
    import chainrule as cr

    return cr.tensor([[1.0, 0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0, 1.0]], dtype=cr.float64)


def _cumprod_backward_recorded(a: Any, g: Any, dim: int) -> Any:
    """grad_k = sum_{j >= k} g_j prod_{i <= j, i != k} a_i with no division, on Tensors (O(n^2)
    per line, as PyTorch's differentiable path): its derivatives are right where a has zeros."""
    import chainrule as cr

    nd = max(a.ndim, 1)
    a_t = (a if a.ndim else a.reshape(1)).transpose(dim, nd - 1)
    g_t = (g if g.ndim else g.reshape(1)).transpose(dim, nd - 1)
    n = a_t.shape[-1]
    eye = cr.tensor(np.eye(n, dtype=bool))
    m = cr.where(eye, cr.ones((), dtype=a.dtype), a_t.unsqueeze(-2))        # [..., k, i]
    later = cr.tensor(np.triu(np.ones((n, n), dtype=bool)))                   # j >= k
    terms = m.cumprod(-1) * g_t.unsqueeze(-2)                                 # [..., k, j]
    out = cr.where(later, terms, cr.zeros((), dtype=a.dtype)).sum(-1)
    out = out.transpose(dim, nd - 1)
    return out.reshape(a.shape) if a.ndim == 0 else out
