"""The recurrences of RNN, LSTM and GRU layers, each one op over a whole sequence: the forward
steps through time on raw arrays (no graph node per step), the backward runs back-propagation
through time, step by step in reverse, then forms the weights' gradients in one matrix product
over all steps. Gates are in PyTorch's order (LSTM: i, f, g, o; GRU: r, z, n), and `reverse`
walks the sequence backwards (a bidirectional layer's second direction; outputs stay in time
order).

The LSTM is one op per layer and direction, input projection included, whose time loop runs in
C++ (csrc/kernels/recurrent.cpp). The GRU and the plain RNN take the input projection
x W_ih^T + b_ih of every step, made beforehand by one linear op,

    projected (L, N, G * H), h0 (N, H), w_hh (G * H, H), b_hh (G * H,) or None;

their time loops run in C++ too. The pointwise update of one step, forward and backward, is
written out below on arrays (`lstm_step`, `gru_step` and their backward): the single-step ops
(`lstm_cell_update`, `gru_cell_update`) run it, and the C++ loops do the same arithmetic.
"""
from __future__ import annotations

from typing import Any

from chainrule import _core
from chainrule.ops.kernels import K
from chainrule.autograd.function import OpNode
from chainrule.ops.table import Case, op

C = _core
Array = _core.Tensor


# ---------------------------------------------------------------- the gradient checks' cases
# Small sizes (L = 3 steps, N = 2, I = 3, H = 2), both directions: the finite differences run the whole
# sequence once per input element.
def _lstm_case(reverse: bool) -> Any:
    return lambda x, h0, c0, w_ih, w_hh, b_ih, b_hh: C.apply(LSTMSequence, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse)


def _lstm_one_bias_case(x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, b_hh: Any) -> Any:
    return C.apply(LSTMSequence, x, h0, c0, w_ih, w_hh, None, b_hh, True)


def _lstm_no_bias_case(x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any) -> Any:
    return C.apply(LSTMSequence, x.transpose(0, 1), h0, c0, w_ih, w_hh, None, None, False)  # a strided input too


def _gru_case(reverse: bool) -> Any:
    return lambda x, h0, w, b: C.apply(GRUSequence, x, h0, w, b, reverse)


def _rnn_case(reverse: bool, relu: bool) -> Any:
    return lambda x, h0, w, b: C.apply(RNNSequence, x, h0, w, b, reverse, relu)


_LSTM_SHAPES = [(3, 2, 3), (2, 2), (2, 2), (8, 3), (8, 2), (8,), (8,)]
_GRU_SHAPES = [(3, 2, 6), (2, 2), (6, 2), (6,)]
_RNN_SHAPES = [(3, 2, 2), (2, 2), (2, 2), (2,)]


def _chunks(a: Array, count: int) -> list[Array]:
    """count equal blocks of a's last dim, as views."""
    size = a.shape[-1] // count
    return [K.slice(a, a.ndim - 1, k * size, (k + 1) * size, 1) for k in range(count)]


# ---------------------------------------------------------------- one step, forward and backward
def lstm_step(gates: Array, c: Array) -> tuple[Array, Array, tuple[Array, ...]]:
    """i, f, o = sigmoid, g = tanh of the gate blocks; c' = f c + i g, h' = o tanh(c').
    Returns h', c' and what the backward needs."""
    # sigmoid and tanh are vectorised over contiguous runs only (a strided slice costs 15x more):
    # one sigmoid over all four blocks, the g block copied out for its tanh
    i, f, _, o = _chunks(K.sigmoid(gates), 4)
    g = K.tanh(_chunks(gates, 4)[2].contiguous())
    c_new = K.add(K.mul(f, c), K.mul(i, g))
    tanh_c = K.tanh(c_new)
    return K.mul(o, tanh_c), c_new, (i, f, g, o, c, tanh_c)


def lstm_step_backward(grad_h: Array, grad_c: Array, saved: tuple[Array, ...]) -> tuple[Array, Array]:
    """The gradients of the gate pre-activations (N, 4H) and of c, from those of h' and c'."""
    i, f, g, o, c, tanh_c = saved
    grad_c = K.add(grad_c, K.tanh_backward(K.mul(grad_h, o), tanh_c))  # c' feeds h' = o tanh(c') too
    grad_gates = K.cat([
        K.sigmoid_backward(K.mul(grad_c, g), i),
        K.sigmoid_backward(K.mul(grad_c, c), f),
        K.tanh_backward(K.mul(grad_c, i), g),
        K.sigmoid_backward(K.mul(grad_h, tanh_c), o),
    ], grad_h.ndim - 1)
    return grad_gates, K.mul(grad_c, f)


def gru_step(x_part: Array, h_part: Array, h: Array) -> tuple[Array, tuple[Array, ...]]:
    """r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z); n = tanh(x_n + r h_n); h' = n + z (h - n)."""
    x_r, x_z, x_n = _chunks(x_part, 3)
    h_r, h_z, h_n = _chunks(h_part, 3)
    r, z = K.sigmoid(K.add(x_r, h_r)), K.sigmoid(K.add(x_z, h_z))
    n = K.tanh(K.add(x_n, K.mul(r, h_n)))
    return K.add(n, K.mul(z, K.sub(h, n))), (r, z, n, h, h_n)


def gru_step_backward(grad: Array, saved: tuple[Array, ...]) -> tuple[Array, Array, Array]:
    """The gradients of x_part, h_part (N, 3H) and of h (the direct path h' = ... + z h only)."""
    r, z, n, h, h_n = saved
    grad_n = K.tanh_backward(K.mul(grad, K.sub(1.0, z)), n)
    grad_r = K.sigmoid_backward(K.mul(grad_n, h_n), r)
    grad_z = K.sigmoid_backward(K.mul(grad, K.sub(h, n)), z)
    last = grad.ndim - 1
    return (K.cat([grad_r, grad_z, grad_n], last), K.cat([grad_r, grad_z, K.mul(grad_n, r)], last),
            K.mul(grad, z))


# ---------------------------------------------------------------- whole sequences
@op("lstm_sequence", saves="each step's [x_t, h_{t-1}], gate activations and cell states",
    names=("nn.LSTM",), cases=[Case("lstm_sequence", _lstm_case(False), _LSTM_SHAPES),
                               Case("lstm_sequence_reverse", _lstm_case(True), _LSTM_SHAPES),
                               Case("lstm_sequence_no_bias_strided_input", _lstm_no_bias_case,
                                    [(2, 3, 3), (2, 2), (2, 2), (8, 3), (8, 2)]),
                               Case("lstm_sequence_one_bias_reverse", _lstm_one_bias_case, _LSTM_SHAPES[:6])])
class LSTMSequence(OpNode):
    """One LSTM layer and direction: input (L, N, I), h0 and c0 (N, H), W_ih (4H, I), W_hh (4H, H),
    b_ih and b_hh (4H,) or None. Output (L + 1, N, H): the hidden states of every step in time
    order, then the last cell state.

    Per step, with gates = x_t W_ih^T + h_{t-1} W_hh^T + b_ih + b_hh split into i, f, g, o (one
    GEMM: [x_t, h_{t-1}, 1] @ [W_ih, W_hh, b_ih + b_hh]^T):
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g), h_t = sigmoid(o) tanh(c_t). Backward, step by
    step in reverse: the gates' gradients from those reaching h_t and c_t (sigmoid' = s (1 - s),
    tanh' = 1 - t^2); [dx_t, dh_{t-1}] = d_gates @ [W_ih, W_hh]; dc_{t-1} = dc_t sigmoid(f); then
    [dW_ih, dW_hh] = sum over steps of d_gates^T [x_t, h_{t-1}] and db_ih = db_hh = the sum of
    d_gates. The time loop, forward and backward, runs in C++ (csrc/kernels/recurrent.cpp)."""

    @staticmethod
    def forward(ctx: Any, input: Array, h0: Array, c0: Array, w_ih: Array, w_hh: Array, b_ih: Array | None,
                b_hh: Array | None, reverse: bool) -> Array:
        output, inputs, gates, cells, tanh_cells = C.lstm_sequence(input, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse)
        ctx.reverse, ctx.biases = reverse, (b_ih is not None, b_hh is not None)
        ctx.save_for_backward(inputs, gates, cells, tanh_cells, c0, w_ih, w_hh)
        return output

    @staticmethod
    def backward(ctx: Any, grad: Array) -> tuple[Any, ...]:
        grad_x, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_bias = K.lstm_sequence_backward(
            grad, *ctx.saved_tensors, ctx.reverse)
        has_b_ih, has_b_hh = ctx.biases
        return (grad_x, grad_h0, grad_c0, grad_w_ih, grad_w_hh, grad_bias if has_b_ih else None,
                grad_bias if has_b_hh else None, None)


@op("gru_sequence", saves="its output (each step's h_{t-1}), each step's h_{t-1} W_hh^T + b_hh and gates",
    names=("nn.GRU",), cases=[Case("gru_sequence", _gru_case(False), _GRU_SHAPES),
                              Case("gru_sequence_reverse", _gru_case(True), _GRU_SHAPES)])
class GRUSequence(OpNode):
    """One GRU layer and direction from its input projection: projected (L, N, 3H), h0 (N, H),
    W_hh (3H, H), b_hh (3H,) or None. Output (L, N, H): the hidden states of every step in time
    order.

    Per step, with [h_r, h_z, h_n] = h_{t-1} W_hh^T + b_hh (one GEMM) and [x_r, x_z, x_n] the
    step's projection: r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z), n = tanh(x_n + r h_n),
    h_t = n + z (h_{t-1} - n) (gru_step above, on arrays). Backward, step by step in reverse from
    dh_t: dn = dh_t (1 - z) (1 - n^2), dr = dn h_n r (1 - r), dz = dh_t (h_{t-1} - n) z (1 - z);
    the projection's gradient is [dr, dz, dn], that of h_{t-1} W_hh^T + b_hh is [dr, dz, r dn],
    and dh_{t-1} = z dh_t + [dr, dz, r dn] @ W_hh (gru_step_backward above); then dW_hh = the sum
    over steps of [dr, dz, r dn]^T h_{t-1} (one product over all steps) and db_hh its column
    sums. The time loop, forward and backward, runs in C++ (csrc/kernels/recurrent.cpp)."""

    @staticmethod
    def forward(ctx: Any, projected: Array, h0: Array, w_hh: Array, b_hh: Array | None, reverse: bool) -> Array:
        output, hidden_parts, gates = C.gru_sequence(projected, h0, w_hh, b_hh, reverse)
        ctx.reverse, ctx.has_bias = reverse, b_hh is not None
        ctx.save_for_backward(output, h0, hidden_parts, gates, w_hh)
        return output

    @staticmethod
    def backward(ctx: Any, grad: Array) -> tuple[Any, ...]:
        grad_projected, grad_h0, grad_w_hh, grad_b_hh = K.gru_sequence_backward(
            grad, *ctx.saved_tensors, ctx.has_bias, ctx.reverse)
        return grad_projected, grad_h0, grad_w_hh, grad_b_hh, None


@op("rnn_sequence", saves="its output (every step's hidden state)", names=("nn.RNN",),
    cases=[Case("rnn_sequence_tanh", _rnn_case(False, False), _RNN_SHAPES),
           Case("rnn_sequence_relu_reverse", _rnn_case(True, True), _RNN_SHAPES)])
class RNNSequence(OpNode):
    """Output (L, N, H): h_t = tanh (or relu) of projected_t + h_{t-1} W_hh^T + b_hh, every step in
    time order. Backward, step by step in reverse: the pre-activation's gradient
    d = (dh_t + the carried dh) * (1 - h_t^2) (tanh) or * (h_t > 0 or NaN) (relu), read from the output;
    the carried dh_{t-1} = d @ W_hh; then dW_hh = the sum over steps of d^T h_{t-1} (one product
    over all steps) and db_hh the column sums of d, which is also the projection's gradient. The
    time loop, forward and backward, runs in C++ (csrc/kernels/recurrent.cpp)."""

    @staticmethod
    def forward(ctx: Any, projected: Array, h0: Array, w_hh: Array, b_hh: Array | None, reverse: bool,
                relu: bool) -> Array:
        output = C.rnn_sequence(projected, h0, w_hh, b_hh, relu, reverse)
        ctx.reverse, ctx.has_bias, ctx.relu = reverse, b_hh is not None, relu
        ctx.save_for_backward(output, h0, w_hh)
        return output

    @staticmethod
    def backward(ctx: Any, grad: Array) -> tuple[Any, ...]:
        grad_projected, grad_h0, grad_w_hh, grad_b_hh = K.rnn_sequence_backward(
            grad, *ctx.saved_tensors, ctx.has_bias, ctx.relu, ctx.reverse)
        return grad_projected, grad_h0, grad_w_hh, grad_b_hh, None, None


# ---------------------------------------------------------------- single steps
@op("lstm_cell_update", saves="the gate activations, c and tanh(c')",
    cases=[Case("lstm_cell_update", lambda gates, c: C.apply(LSTMCellUpdate, gates, c), [(2, 8), (2, 2)])])
class LSTMCellUpdate(OpNode):
    """One LSTM step's pointwise update from its gate pre-activations (N, 4H) and c (N, H); the
    output is [h', c'] side by side (N, 2H)."""

    @staticmethod
    def forward(ctx: Any, gates: Array, c: Array) -> Array:
        h_new, c_new, saved = lstm_step(gates, c)
        ctx.save_for_backward(*saved)
        return C.cat([h_new, c_new], c.ndim - 1)

    @staticmethod
    def backward(ctx: Any, grad: Array) -> tuple[Any, ...]:
        grad_h, grad_c = _chunks(grad, 2)
        return lstm_step_backward(grad_h, grad_c, ctx.saved_tensors)


@op("gru_cell_update", saves="the gate activations, h and its projection's n block",
    cases=[Case("gru_cell_update", lambda x, hp, h: C.apply(GRUCellUpdate, x, hp, h), [(2, 6), (2, 6), (2, 2)])])
class GRUCellUpdate(OpNode):
    """One GRU step's update from its input and hidden projections (N, 3H) and h (N, H)."""

    @staticmethod
    def forward(ctx: Any, x_part: Array, h_part: Array, h: Array) -> Array:
        h_new, saved = gru_step(x_part, h_part, h)
        ctx.save_for_backward(*saved)
        return h_new

    @staticmethod
    def backward(ctx: Any, grad: Array) -> tuple[Any, ...]:
        return gru_step_backward(grad, ctx.saved_tensors)


def lstm_cell_update(gates: Any, c: Any) -> tuple[Any, Any]:
    """(h', c') of an LSTM step (Tensors) from its gate pre-activations (N, 4H) and cell state (N, H)."""
    both = C.apply(LSTMCellUpdate, gates, c)
    size = c.shape[-1]
    return both[..., :size], both[..., size:]


def gru_cell_update(x_part: Any, h_part: Any, h: Any) -> Any:
    """h' of a GRU step (Tensors) from its input and hidden projections (N, 3H) and hidden state (N, H)."""
    return C.apply(GRUCellUpdate, x_part, h_part, h)
