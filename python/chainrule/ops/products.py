"""Matrix products: matmul and linear, both native (csrc/python/native_reduce_matmul.cpp)."""
from __future__ import annotations

from typing import Any

from chainrule import _core
from chainrule.ops.kernels import K
from chainrule.ops.table import Case, native

C = _core
Array = _core.Tensor


@native("matmul", "MatMul", saves="both operands", names=("@", "Tensor.matmul", "cr.matmul"),
        cases=[Case("matmul", lambda a, b: a @ b, [(2, 3), (3, 4)]),
               Case("matmul_1d_batched", lambda a, b: a @ b, [(3,), (5, 3, 4)]),
               Case("matmul_bcast_batch", lambda a, b: a @ b, [(5, 1, 2, 3), (4, 3, 2)]),
               Case("matmul_batched_1d", lambda a, b: a @ b, [(2, 2, 3), (3,)])])
def matmul_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """d(a @ b) = g @ b^T, a^T @ g. A 1-D a was a row, a 1-D b a column: treated so, and that
    dim dropped from its gradient again; broadcast batch dims are summed by the engine."""
    a, b = saved.arrays
    a2 = a.unsqueeze(0) if a.ndim == 1 else a
    b2 = b.unsqueeze(1) if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = g2.unsqueeze(-2 if g2.ndim >= 1 else 0)
    if b.ndim == 1:
        g2 = g2.unsqueeze(-1)
    ga = K.matmul(g2, b2.transpose(-1, -2))
    gb = K.matmul(a2.transpose(-1, -2), g2)
    return (ga.squeeze(-2) if a.ndim == 1 else ga), (gb.squeeze(-1) if b.ndim == 1 else gb)


def _linear_case(x: Any, w: Any, b: Any) -> Any:
    from chainrule.nn import functional as F

    return F.linear(x, w, b)


@native("linear", "Linear", saves="the input x and the weight W", names=("F.linear", "nn.Linear"),
        cases=[Case("linear", _linear_case, [(2, 5, 3), (4, 3), (4,)])])
def linear_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """y = x W^T + b: dx = g W, dW = g^T x, db = the column sums of g (rows of every leading
    dim taken together)."""
    x, weight = saved.arrays
    rows = 1
    for size in g.shape[:-1]:
        rows *= size
    rows_g = g.reshape([rows, g.shape[-1]])
    gx = K.matmul(g, weight)
    gw = K.matmul(rows_g.transpose(0, 1), x.reshape([rows, x.shape[-1]]))
    gb = K.sum(rows_g, [0], False) if saved.has_bias else None
    return gx, gw, gb
