"""The pointwise updates of the LSTM and GRU cells, each one op: its forward (a few `_core` calls on
slices of the gate pre-activations) beside its backward (the chain rule through the gates), so a
time step records one node for the whole update instead of one per sigmoid, tanh, product and sum.
The matrix products around them (x W_ih^T, h W_hh^T) stay ordinary linear ops.
"""
from __future__ import annotations

from typing import Any

from chainrule import _core
from chainrule.autograd.function import Function
from chainrule.tensor import Tensor, apply

C = _core
Array = _core.Tensor


def _chunks(a: Array, count: int) -> list[Array]:
    """count equal column blocks of a (N, count * H), as views."""
    size = a.shape[-1] // count
    return [a.slice(a.ndim - 1, k * size, (k + 1) * size, 1) for k in range(count)]


class LSTMCellUpdate(Function):
    """gates (N, 4H) = x W_ih^T + b_ih + h W_hh^T + b_hh in the order i, f, g, o, and c (N, H):
        i, f, o = sigmoid(.), g = tanh(.), c' = f c + i g, h' = o tanh(c');
    the output is [h', c'] side by side (N, 2H)."""

    @staticmethod
    def forward(ctx: Any, gates: Array, c: Array) -> Array:
        pre_i, pre_f, pre_g, pre_o = _chunks(gates, 4)
        i, f, g, o = C.sigmoid(pre_i), C.sigmoid(pre_f), C.tanh(pre_g), C.sigmoid(pre_o)
        c_new = C.add(C.mul(f, c), C.mul(i, g))
        tanh_c = C.tanh(c_new)
        ctx.save_for_backward(i, f, g, o, c, tanh_c)
        return C.cat([C.mul(o, tanh_c), c_new], c.ndim - 1)

    @staticmethod
    def backward(ctx: Any, grad: Array) -> tuple[Any, ...]:
        i, f, g, o, c, tanh_c = ctx.saved_tensors
        grad_h, grad_c = _chunks(grad, 2)
        # c' reaches the loss directly and through h' = o tanh(c')
        grad_c_total = C.add(grad_c, C.tanh_backward(C.mul(grad_h, o), tanh_c))
        grad_gates = C.cat([
            C.sigmoid_backward(C.mul(grad_c_total, g), i),
            C.sigmoid_backward(C.mul(grad_c_total, c), f),
            C.tanh_backward(C.mul(grad_c_total, i), g),
            C.sigmoid_backward(C.mul(grad_h, tanh_c), o),
        ], grad.ndim - 1)
        return grad_gates, C.mul(grad_c_total, f)


class GRUCellUpdate(Function):
    """x_part = x W_ih^T + b_ih and h_part = h W_hh^T + b_hh (N, 3H) in the order r, z, n, and h:
        r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z), n = tanh(x_n + r h_n), h' = n + z (h - n)."""

    @staticmethod
    def forward(ctx: Any, x_part: Array, h_part: Array, h: Array) -> Array:
        x_r, x_z, x_n = _chunks(x_part, 3)
        h_r, h_z, h_n = _chunks(h_part, 3)
        r, z = C.sigmoid(C.add(x_r, h_r)), C.sigmoid(C.add(x_z, h_z))
        n = C.tanh(C.add(x_n, C.mul(r, h_n)))
        ctx.save_for_backward(r, z, n, h, h_n)
        return C.add(n, C.mul(z, C.sub(h, n)))

    @staticmethod
    def backward(ctx: Any, grad: Array) -> tuple[Any, ...]:
        r, z, n, h, h_n = ctx.saved_tensors
        grad_n = C.tanh_backward(C.mul(grad, C.sub(1.0, z)), n)  # through n's tanh
        grad_r = C.sigmoid_backward(C.mul(grad_n, h_n), r)
        grad_z = C.sigmoid_backward(C.mul(grad, C.sub(h, n)), z)
        last = grad.ndim - 1
        grad_x = C.cat([grad_r, grad_z, grad_n], last)
        grad_h_part = C.cat([grad_r, grad_z, C.mul(grad_n, r)], last)
        return grad_x, grad_h_part, C.mul(grad, z)


def lstm_cell_update(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """(h', c') of an LSTM step from its gate pre-activations (N, 4H) and cell state (N, H)."""
    both = apply(LSTMCellUpdate, gates, c)
    size = c.shape[-1]
    return both[..., :size], both[..., size:]


def gru_cell_update(x_part: Tensor, h_part: Tensor, h: Tensor) -> Tensor:
    """h' of a GRU step from its input and hidden projections (N, 3H) and hidden state (N, H)."""
    return apply(GRUCellUpdate, x_part, h_part, h)
