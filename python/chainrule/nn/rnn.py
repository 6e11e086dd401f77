"""RNN, LSTM and GRU, with PyTorch's arguments, parameter names (weight_ih_l0, bias_hh_l1_reverse,
...), gate order and initialisation, so a PyTorch state_dict loads and gives the same outputs.

Each layer and direction is one op of the op table (chainrule/ops/recurrent.py) over all steps,
forward and backward through time: the LSTM's includes the input projection; the GRU and RNN
project the whole input sequence first (one GEMM for every step: x @ W_ih^T + b_ih). A layer
records one or two graph nodes however long the sequence.
"""
from __future__ import annotations

import math
from typing import Any

from chainrule import ops
from chainrule.creation import empty, zeros
from chainrule.nn import functional as F
from chainrule.nn import init
from chainrule.nn.module import Module
from chainrule.nn.parameter import Parameter
from chainrule.tensor import Tensor, cat, stack

_lstm_sequence = ops.forward("lstm_sequence")
_gru_sequence = ops.forward("gru_sequence")
_rnn_sequence = ops.forward("rnn_sequence")
_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


class RNNBase(Module):
    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(hidden_size, int) or hidden_size <= 0 or not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"{name}: hidden_size ({hidden_size}) and num_layers ({num_layers}) must be positive ints")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1], got {dropout}")
        if proj_size != 0:
            raise ValueError(f"{name}: proj_size is not supported (got {proj_size})")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), bidirectional
        directions = 2 if bidirectional else 1
        gate_size = _GATES[mode] * hidden_size
        # All the parameters' elements, asked for once before any layer is made: sizes no machine
        # holds (a hostile num_layers of 2**40, say) fail fast with MemoryError or ValueError here
        # instead of looping through layers until the process is killed for its memory.
        # Per direction: weight_ih (the first layer reads the input, the others the layer below),
        # weight_hh and the two biases of every layer, as the loop below makes them.
        inputs_read = input_size + (num_layers - 1) * hidden_size * directions
        per_direction = gate_size * (inputs_read + num_layers * (hidden_size + 2 * bool(bias)))
        empty(directions * per_direction, dtype=dtype)  # freed at once
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                setattr(self, "weight_ih" + suffix, Parameter(empty(gate_size, layer_input, dtype=dtype)))
                setattr(self, "weight_hh" + suffix, Parameter(empty(gate_size, hidden_size, dtype=dtype)))
                if bias:
                    setattr(self, "bias_ih" + suffix, Parameter(empty(gate_size, dtype=dtype)))
                    setattr(self, "bias_hh" + suffix, Parameter(empty(gate_size, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)  # PyTorch: every weight and bias uniform in +-1/sqrt(H)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _weights(self, layer: int, direction: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        get = self._parameters.get
        return get("weight_ih" + suffix), get("weight_hh" + suffix), get("bias_ih" + suffix), get("bias_hh" + suffix)

    def _check_input(self, input: Any, hx: Any) -> tuple[Tensor, bool]:
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected a Tensor input, got {type(input).__name__}")
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size or input.numel() == 0:
            raise ValueError(f"{name}: expected an input (L, N, {self.input_size}) (batch_first: (N, L, "
                             f"{self.input_size})) or unbatched (L, {self.input_size}), got shape {input.shape}")
        return input, input.ndim == 2

    def _initial_state(self, given: Any, batch: int, unbatched: bool, like: Tensor, what: str) -> Tensor:
        directions = 2 if self.bidirectional else 1
        expected = (self.num_layers * directions, batch, self.hidden_size)
        if given is None:
            return zeros(*expected, dtype=like.dtype)
        if not isinstance(given, Tensor):
            raise TypeError(f"{type(self).__name__}: {what} must be a Tensor, got {type(given).__name__}")
        state = given.unsqueeze(1) if unbatched and given.ndim == 2 else given
        if state.shape != expected:
            raise ValueError(f"{type(self).__name__}: expected {what} of shape "
                             f"{expected[:1] + expected[2:] if unbatched else expected}, got {given.shape}")
        return state

    def _run(self, input: Tensor, states: list[Tensor]) -> tuple[Tensor, list[list[Tensor]]]:
        """The whole stack over a time-major input (L, N, I); states holds (D * layers, N, H) tensors
        (h, and c for the LSTM). Returns the last layer's outputs and each state's final values."""
        directions = 2 if self.bidirectional else 1
        finals: list[list[Tensor]] = [[] for _ in states]
        layer_input = input
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                w_ih, w_hh, b_ih, b_hh = self._weights(layer, direction)
                state = [s[index] for s in states]
                if self.mode == "LSTM":  # one op, the input projection included
                    both = _lstm_sequence(layer_input, state[0], state[1], w_ih, w_hh, b_ih, b_hh, bool(direction))
                    hs = both[:-1]
                    finals[1].append(both[-1])
                else:
                    hs = self._projected_recurrence(layer_input, state[0], w_ih, w_hh, b_ih, b_hh, bool(direction))
                finals[0].append(hs[0] if direction else hs[-1])  # the last step taken
                outputs.append(hs)
            layer_input = outputs[0] if directions == 1 else cat(outputs, 2)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
        return layer_input, finals

    def _projected_recurrence(self, input: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
                              b_hh: Tensor | None, reverse: bool) -> Tensor:
        """A GRU or RNN layer: every step's input projection in one 2-D GEMM, (L, N, gates * H), then
        the recurrence over it."""
        steps, batch = input.shape[0], input.shape[1]
        projected = F.linear(input.reshape(steps * batch, -1), w_ih, b_ih).reshape(steps, batch, -1)
        if self.mode == "GRU":
            return _gru_sequence(projected, h0, w_hh, b_hh, reverse)
        return _rnn_sequence(projected, h0, w_hh, b_hh, reverse, self.mode == "RNN_RELU")

    def _forward(self, input: Any, hx: Any, states_given: list[Any]) -> tuple[Tensor, list[Tensor]]:
        input, unbatched = self._check_input(input, hx)
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        names = ["h_0", "c_0"]
        states = [self._initial_state(s, x.shape[1], unbatched, x, names[k]) for k, s in enumerate(states_given)]
        output, finals = self._run(x, states)
        finals_stacked = [stack(f, 0) for f in finals]
        if unbatched:
            return output.squeeze(1), [f.squeeze(1) for f in finals_stacked]
        return (output.transpose(0, 1) if self.batch_first else output), finals_stacked

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.batch_first:
            text += ", batch_first=True"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu). forward(input,
    h_0=None) returns (output, h_n).

    >>> import chainrule as cr
    >>> out, h = cr.nn.RNN(4, 8, num_layers=2)(cr.randn(5, 3, 4))
    >>> out.shape, h.shape
    ((5, 3, 8), (2, 3, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: Any = None, dtype: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self_mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(self_mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        output, (h_n,) = self._forward(input, hx, [hx])
        return output, h_n


class LSTM(RNNBase):
    """Long short-term memory, gates in PyTorch's order (input, forget, cell, output). forward(input,
    (h_0, c_0)=None) returns (output, (h_n, c_n)).

    >>> import chainrule as cr
    >>> out, (h, c) = cr.nn.LSTM(4, 8, batch_first=True)(cr.randn(3, 5, 4))
    >>> out.shape, c.shape
    ((3, 5, 8), (1, 3, 8))
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("LSTM", *args, **kwargs)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError("LSTM: hx must be a tuple (h_0, c_0)")
        output, (h_n, c_n) = self._forward(input, hx, [None, None] if hx is None else list(hx))
        return output, (h_n, c_n)


class GRU(RNNBase):
    """Gated recurrent unit, gates in PyTorch's order (reset, update, new):
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h. forward(input,
    h_0=None) returns (output, h_n).

    >>> import chainrule as cr
    >>> out, h = cr.nn.GRU(4, 8, bidirectional=True)(cr.randn(5, 3, 4))
    >>> out.shape, h.shape
    ((5, 3, 16), (2, 3, 8))
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__("GRU", *args, **kwargs)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        output, (h_n,) = self._forward(input, hx, [hx])
        return output, h_n
