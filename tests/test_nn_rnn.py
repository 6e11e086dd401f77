"""RNN, LSTM and GRU: outputs, final states and every gradient against PyTorch over layer counts,
directions, batch_first and unbatched inputs, with PyTorch's weights loaded by name; a NumPy
oracle for one LSTM and GRU step; float64 gradchecks of the fused cell updates and whole layers;
initialisation, parameter names and errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule.ops.recurrent import gru_cell_update, lstm_cell_update


def _torch():
    return pytest.importorskip("torch")


def _load_from_torch(module, reference):
    module.load_state_dict({k: cr.tensor(v.detach().numpy()) for k, v in reference.state_dict().items()})


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


CONFIGS = [
    dict(),
    dict(num_layers=2),
    dict(bidirectional=True),
    dict(num_layers=2, bidirectional=True, batch_first=True),
    dict(batch_first=True, bias=False),
    dict(num_layers=3),
]


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN", "RNN_relu"])
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("with_state", [False, True])
def test_recurrent_layers_match_torch(kind, config, with_state):
    torch = _torch()
    name, extra = (kind, {}) if kind != "RNN_relu" else ("RNN", {"nonlinearity": "relu"})
    reference = getattr(torch.nn, name)(3, 5, **config, **extra)
    module = getattr(cr.nn, name)(3, 5, **config, **extra)
    assert list(module.state_dict()) == list(reference.state_dict())
    _load_from_torch(module, reference)
    rng = np.random.default_rng(0)
    layers = config.get("num_layers", 1) * (2 if config.get("bidirectional") else 1)
    shape = (2, 4, 3) if config.get("batch_first") else (4, 2, 3)
    x = rng.standard_normal(shape).astype(np.float32)
    states = [rng.standard_normal((layers, 2, 5)).astype(np.float32) for _ in range(2 if name == "LSTM" else 1)]
    xt, xc = torch.tensor(x, requires_grad=True), cr.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states]
    sc = [cr.tensor(s, requires_grad=True) for s in states]
    if with_state:
        out_t = reference(xt, tuple(st) if name == "LSTM" else st[0])
        out_c = module(xc, tuple(sc) if name == "LSTM" else sc[0])
    else:
        out_t, out_c = reference(xt), module(xc)
    finals_t = list(out_t[1]) if name == "LSTM" else [out_t[1]]
    finals_c = list(out_c[1]) if name == "LSTM" else [out_c[1]]
    g = rng.standard_normal(tuple(out_t[0].shape)).astype(np.float32)
    loss_t = (out_t[0] * torch.tensor(g)).sum() + sum((f * (k + 2)).sum() for k, f in enumerate(finals_t))
    loss_c = (out_c[0] * cr.tensor(g)).sum() + sum((f * (k + 2)).sum() for k, f in enumerate(finals_c))
    loss_t.backward()
    loss_c.backward()
    tol = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out_c[0].detach().numpy(), out_t[0].detach().numpy(), **tol)
    for f_c, f_t in zip(finals_c, finals_t):
        np.testing.assert_allclose(f_c.detach().numpy(), f_t.detach().numpy(), **tol)
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), **tol)
    if with_state:
        for s_c, s_t in zip(sc, st):
            np.testing.assert_allclose(s_c.grad.numpy(), s_t.grad.numpy(), **tol)
    for (pname, p), (_, p_t) in zip(module.named_parameters(), reference.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), p_t.grad.numpy(), err_msg=pname, **tol)


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_unbatched_input_matches_torch(name):
    torch = _torch()
    reference, module = getattr(torch.nn, name)(3, 4, num_layers=2), getattr(cr.nn, name)(3, 4, num_layers=2)
    _load_from_torch(module, reference)
    x = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    out_t, out_c = reference(torch.tensor(x)), module(cr.tensor(x))
    assert out_c[0].shape == (5, 4)
    np.testing.assert_allclose(out_c[0].detach().numpy(), out_t[0].detach().numpy(), rtol=1e-5, atol=1e-6)
    h_t = out_t[1][0] if name == "LSTM" else out_t[1]
    h_c = out_c[1][0] if name == "LSTM" else out_c[1]
    assert h_c.shape == (2, 4)
    np.testing.assert_allclose(h_c.detach().numpy(), h_t.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_lstm_and_gru_steps_match_numpy():
    rng = np.random.default_rng(2)
    gates, c = rng.standard_normal((3, 8)), rng.standard_normal((3, 2))
    h_new, c_new = lstm_cell_update(cr.tensor(gates), cr.tensor(c))
    i, f, g, o = _sigmoid(gates[:, 0:2]), _sigmoid(gates[:, 2:4]), np.tanh(gates[:, 4:6]), _sigmoid(gates[:, 6:8])
    np.testing.assert_allclose(c_new.numpy(), f * c + i * g, rtol=1e-12)
    np.testing.assert_allclose(h_new.numpy(), o * np.tanh(f * c + i * g), rtol=1e-12)
    x_part, h_part, h = rng.standard_normal((3, 6)), rng.standard_normal((3, 6)), rng.standard_normal((3, 2))
    r = _sigmoid(x_part[:, 0:2] + h_part[:, 0:2])
    z = _sigmoid(x_part[:, 2:4] + h_part[:, 2:4])
    n = np.tanh(x_part[:, 4:6] + r * h_part[:, 4:6])
    np.testing.assert_allclose(gru_cell_update(cr.tensor(x_part), cr.tensor(h_part), cr.tensor(h)).numpy(),
                               (1 - z) * n + z * h, rtol=1e-12)


def test_cell_updates_gradcheck():
    rng = np.random.default_rng(3)
    gates = cr.tensor(rng.standard_normal((2, 12)), requires_grad=True)
    c = cr.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    assert cr.autograd.gradcheck(lambda g, c: lstm_cell_update(g, c)[0], (gates, c))
    assert cr.autograd.gradcheck(lambda g, c: lstm_cell_update(g, c)[1], (gates, c))
    assert cr.autograd.gradcheck(lambda g, c: cr.cat(list(lstm_cell_update(g, c)), 1), (gates, c))
    x_part, h_part = (cr.tensor(rng.standard_normal((2, 9)), requires_grad=True) for _ in range(2))
    h = cr.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    assert cr.autograd.gradcheck(gru_cell_update, (x_part, h_part, h))


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_whole_layer_gradcheck(name):
    module = getattr(cr.nn, name)(2, 3, num_layers=2, bidirectional=True, dtype=cr.float64)
    x = cr.tensor(np.random.default_rng(4).standard_normal((3, 2, 2)), requires_grad=True)
    weight = module.weight_hh_l1_reverse
    assert cr.autograd.gradcheck(lambda x, w: module(x)[0], (x, weight))


def test_initialisation_and_parameter_names():
    cr.manual_seed(0)
    module = cr.nn.LSTM(10, 20, num_layers=2, bidirectional=True)
    names = [n for n, _ in module.named_parameters()]
    assert names[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert "weight_ih_l1_reverse" in names and len(names) == 16
    assert module.weight_ih_l1.shape == (80, 40) and module.weight_hh_l0.shape == (80, 20)
    bound = 1 / math.sqrt(20)
    for p in module.parameters():
        values = p.detach().numpy()
        assert values.min() >= -bound and values.max() <= bound
    assert cr.nn.GRU(4, 6).weight_ih_l0.shape == (18, 4)
    assert "bias_ih_l0" not in dict(cr.nn.RNN(4, 6, bias=False).named_parameters())


def test_char_level_lstm_learns_a_sequence():
    # next-character prediction on a repeating pattern: the loss falls well below chance (log 4)
    cr.manual_seed(0)
    text = np.array([0, 1, 2, 3, 2, 1] * 6)
    embed, lstm, head = cr.nn.Embedding(4, 8), cr.nn.LSTM(8, 16, batch_first=True), cr.nn.Linear(16, 4)
    params = list(embed.parameters()) + list(lstm.parameters()) + list(head.parameters())
    optimizer = cr.optim.Adam(params, lr=0.05)
    x, y = cr.tensor(text[None, :-1]), cr.tensor(text[1:])
    for _ in range(40):
        optimizer.zero_grad()
        out, _ = lstm(embed(x))
        loss = cr.nn.functional.cross_entropy(head(out[0]), y)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.2


def test_dropout_between_layers_only_in_training():
    cr.manual_seed(0)
    module = cr.nn.GRU(3, 4, num_layers=2, dropout=0.5)
    x = cr.randn(5, 2, 3)
    module.eval()
    np.testing.assert_array_equal(module(x)[0].detach().numpy(), module(x)[0].detach().numpy())
    module.train()
    assert not np.array_equal(module(x)[0].detach().numpy(), module(x)[0].detach().numpy())


def test_recurrent_errors_name_shapes():
    lstm = cr.nn.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"\(5, 2, 7\)"):
        lstm(cr.ones(5, 2, 7))
    with pytest.raises(ValueError, match=r"\(1, 2, 4\).*\(2, 2, 4\)"):
        lstm(cr.ones(5, 2, 3), (cr.ones(2, 2, 4), cr.ones(2, 2, 4)))
    with pytest.raises(TypeError, match="tuple"):
        lstm(cr.ones(5, 2, 3), cr.ones(1, 2, 4))
    with pytest.raises(TypeError):
        lstm(np.ones((5, 2, 3)))
    with pytest.raises(ValueError, match="nonlinearity"):
        cr.nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size"):
        cr.nn.GRU(3, 0)
    with pytest.raises(ValueError, match="proj_size"):
        cr.nn.LSTM(3, 4, proj_size=2)


def _compare_layer_with_torch(module, reference, dtype, rng, layers, hidden, h0_scale=1.0):
    """An RNN, LSTM or GRU (module, loaded from reference) over 100 steps of 3 samples from given
    initial states: the outputs, the last states and every gradient (input, initial states,
    parameters) match PyTorch's."""
    torch = _torch()
    lstm = isinstance(reference, torch.nn.LSTM)
    x = rng.standard_normal((100, 3, 5)).astype(dtype)
    states = [(h0_scale * rng.standard_normal((layers, 3, hidden))).astype(dtype) for _ in range(1 + lstm)]
    g = rng.standard_normal((100, 3, 2 * hidden)).astype(dtype)
    xt, xc = torch.tensor(x, requires_grad=True), cr.tensor(x, requires_grad=True)
    st = [torch.tensor(a, requires_grad=True) for a in states]
    sc = [cr.tensor(a, requires_grad=True) for a in states]
    out_t, last_t = reference(xt, tuple(st) if lstm else st[0])
    out_c, last_c = module(xc, tuple(sc) if lstm else sc[0])
    last_t, last_c = (last_t if lstm else (last_t,)), (last_c if lstm else (last_c,))
    ((out_t * torch.tensor(g)).sum() + sum(a.sum() for a in last_t)).backward()
    ((out_c * cr.tensor(g)).sum() + sum(a.sum() for a in last_c)).backward()
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == "float32" else {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(out_c.detach().numpy(), out_t.detach().numpy(), **tol)
    for a_c, a_t in zip(last_c, last_t):
        np.testing.assert_allclose(a_c.detach().numpy(), a_t.detach().numpy(), **tol)
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), **tol)
    for a_c, a_t in zip(sc, st):
        np.testing.assert_allclose(a_c.grad.numpy(), a_t.grad.numpy(), **tol)
    for (name, p), (_, p_t) in zip(module.named_parameters(), reference.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), p_t.grad.numpy(), err_msg=name, **tol)


# Hidden sizes across the vector and GEMM tile widths (LSTM 4H = 32: whole tiles, 148: a partial
# one; GRU 3H = 24: under one tile, 111: a partial one; RNN H = 37), 3 samples (fewer than a GEMM
# tile's rows) over 100 steps, both directions, given initial states.
LONG_SEQUENCE_LAYERS = [("LSTM", 8, {}), ("LSTM", 37, {}), ("GRU", 8, {}), ("GRU", 37, {}),
                        ("RNN", 37, {"nonlinearity": "tanh", "num_layers": 2}),
                        ("RNN", 37, {"nonlinearity": "relu", "num_layers": 2})]


@pytest.mark.parametrize("kind,hidden,options", LONG_SEQUENCE_LAYERS,
                         ids=[f"{k}-{h}-{o.get('nonlinearity', '')}" for k, h, o in LONG_SEQUENCE_LAYERS])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_long_sequences_and_wide_states_match_torch(kind, hidden, options, dtype):
    torch = _torch()
    reference = getattr(torch.nn, kind)(5, hidden, bidirectional=True, **options).to(getattr(torch, dtype))
    module = getattr(cr.nn, kind)(5, hidden, bidirectional=True, **options)
    if dtype == "float64":
        module.double()
    _load_from_torch(module, reference)
    layers = 2 * options.get("num_layers", 1)
    _compare_layer_with_torch(module, reference, dtype, rng=np.random.default_rng(3), layers=layers, hidden=hidden,
                              h0_scale=0.5 if kind == "RNN" else 1.0)


def test_lstm_graphs_alive_at_once_keep_their_own_results():
    # two graphs of the same module alive at once, with a third one run and freed between them:
    # each backward must see its own saved activations (any reuse of a freed call's buffers,
    # by the op or an allocator, must leave a live graph's alone)
    torch = _torch()
    reference = torch.nn.LSTM(8, 64)
    module = cr.nn.LSTM(8, 64)
    _load_from_torch(module, reference)
    rng = np.random.default_rng(4)
    x1, x2 = (rng.standard_normal((64, 32, 8)).astype(np.float32) for _ in range(2))
    held_c, held_t = cr.tensor(x1, requires_grad=True), torch.tensor(x1, requires_grad=True)
    out1_c, out1_t = module(held_c)[0], reference(held_t)[0]
    module(cr.tensor(x2, requires_grad=True))[0].sum().backward()  # its buffers are free after this
    xc, xt = cr.tensor(x2, requires_grad=True), torch.tensor(x2, requires_grad=True)
    out_c, out_t = module(xc)[0], reference(xt)[0]
    for got, want, grad_c, grad_t in ((out_c, out_t, xc, xt), (out1_c, out1_t, held_c, held_t)):
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-5)
        got.sum().backward()
        want.sum().backward()
        np.testing.assert_allclose(grad_c.grad.numpy(), grad_t.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_torch_lstm_weights_through_safetensors_give_the_same_outputs(tmp_path):
    torch = _torch()
    safetensors_torch = pytest.importorskip("safetensors.torch")
    reference = torch.nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True)
    safetensors_torch.save_file(reference.state_dict(), str(tmp_path / "lstm.safetensors"))
    module = cr.nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True)
    module.load_state_dict(cr.load(tmp_path / "lstm.safetensors"))
    x = np.random.default_rng(5).standard_normal((3, 7, 4)).astype(np.float32)
    out_t, (h_t, c_t) = reference(torch.tensor(x))
    out_c, (h_c, c_c) = module(cr.tensor(x))
    for got, want in ((out_c, out_t), (h_c, h_t), (c_c, c_t)):
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", ["RNN", "LSTM", "GRU"])
def test_sizes_no_machine_holds_fail_before_any_layer_is_made(layer):
    # a loop over 2**40 layers would run until the process is killed for its memory
    make = getattr(cr.nn, layer)
    with pytest.raises(MemoryError, match="out of memory"):
        make(2, 2, 2**40)
    with pytest.raises(ValueError, match="does not fit in int64"):
        make(2, 2, 2**70)


def test_lstm_op_checks_shapes_and_dtypes_and_takes_an_empty_sequence():
    from chainrule import _core

    rng = np.random.default_rng(6)
    x, h0, c0 = (cr.tensor(rng.standard_normal(s)) for s in ((3, 2, 5), (2, 4), (2, 4)))
    w_ih, w_hh, b = (cr.tensor(rng.standard_normal(s)) for s in ((16, 5), (16, 4), (16,)))
    lstm = cr.ops.forward("lstm_sequence")
    with pytest.raises(ValueError, match=r"W_ih \(16, 4\)"):
        lstm(x, h0, c0, w_hh, w_hh, b, b, False)
    with pytest.raises(TypeError, match="float32"):
        lstm(x, h0, c0, w_ih.float(), w_hh, b, b, False)
    # the backward's module function checks what it is given as saved tensors too
    output, inputs, gates, cells, tanh_cells = _core.lstm_sequence(x._data, h0._data, c0._data, w_ih._data,
                                                                   w_hh._data, b._data, None, False)
    assert inputs.shape == (3, 2, 5 + 4 + 1)  # [x_t, h_{t-1}, 1]: the bias's column of ones
    with pytest.raises(ValueError, match="do not fit one LSTM layer"):
        _core.lstm_sequence_backward(output, inputs, gates, cells, tanh_cells, c0._data, w_hh._data, w_hh._data,
                                     False)
    with pytest.raises(ValueError, match="do not fit one LSTM layer"):
        _core.lstm_sequence_backward(output, inputs, cells, cells, tanh_cells, c0._data, w_ih._data, w_hh._data,
                                     False)
    # no steps: the output is the initial cell state alone
    empty = lstm(cr.zeros(0, 2, 5, dtype=cr.float64), h0, c0, w_ih, w_hh, None, None, True)
    np.testing.assert_array_equal(empty.numpy(), c0.numpy()[None])


def test_lstm_op_with_empty_tensors_of_any_size_fails_fast_or_returns_empty():
    # sizes a hostile caller can give through empty tensors: no hang, no overflow, no crash
    from chainrule import _core

    def z(*shape):
        return _core.empty(list(shape), _core.DType.float32)

    with pytest.raises(ValueError, match="sizes too large"):
        _core.lstm_sequence(z(1, 0, 3), z(0, 2**61), z(0, 2**61), z(0, 3), z(0, 2**61), None, None, False)
    assert _core.lstm_sequence(z(2**62, 0, 3), z(0, 2), z(0, 2), z(8, 3), z(8, 2), None, None, False)[0].shape == \
        (2**62 + 1, 0, 2)
    with pytest.raises(ValueError, match="sizes too large"):
        _core.lstm_sequence_backward(z(1, 0, 2**61), z(0, 0, 2**62), z(0, 0, 4), z(0, 0, 2**61), z(0, 0, 2**61),
                                     z(0, 2**61), z(0, 3), z(0, 2**61), False)
    grads = _core.lstm_sequence_backward(z(2**62 + 1, 0, 2), z(2**62, 0, 5), z(2**62, 0, 8), z(2**62, 0, 2),
                                         z(2**62, 0, 2), z(0, 2), z(8, 3), z(8, 2), False)
    assert grads[3].shape == (8, 3) and not grads[3].numpy().any()  # no samples: zero weight gradients


def test_gru_op_checks_shapes_and_dtypes_and_takes_an_empty_sequence():
    from chainrule import _core

    rng = np.random.default_rng(7)
    projected, h0 = cr.tensor(rng.standard_normal((3, 2, 12))), cr.tensor(rng.standard_normal((2, 4)))
    w_hh, b = cr.tensor(rng.standard_normal((12, 4))), cr.tensor(rng.standard_normal(12))
    gru = cr.ops.forward("gru_sequence")
    with pytest.raises(ValueError, match=r"W_hh \(4, 12\)"):
        gru(projected, h0, w_hh.t(), b, False)
    with pytest.raises(ValueError, match=r"b_hh \(11,\)"):
        gru(projected, h0, w_hh, b[:11], False)
    with pytest.raises(ValueError, match=r"got shapes \(2, 12\)"):
        gru(projected[0], h0, w_hh, b, False)
    with pytest.raises(TypeError, match="float32"):
        gru(projected, h0, w_hh.float(), b, False)
    output, hidden_parts, gates = _core.gru_sequence(projected._data, h0._data, w_hh._data, b._data, False)
    assert output.shape == (3, 2, 4) and hidden_parts.shape == gates.shape == (3, 2, 12)
    with pytest.raises(ValueError, match="do not fit one GRU layer"):
        _core.gru_sequence_backward(hidden_parts, output, h0._data, hidden_parts, gates, w_hh._data, True, False)
    with pytest.raises(ValueError, match="do not fit one GRU layer"):
        _core.gru_sequence_backward(output, output, h0._data, hidden_parts, gates, w_hh.float()._data, True, False)
    # no steps: an empty output, and a gradient of h0 that is zero
    h = h0.detach().requires_grad_()
    empty = gru(cr.zeros(0, 2, 12, dtype=cr.float64), h, w_hh, None, True)
    assert empty.shape == (0, 2, 4)
    empty.sum().backward()
    np.testing.assert_array_equal(h.grad.numpy(), np.zeros((2, 4)))


def test_gru_op_with_empty_tensors_of_any_size_fails_fast_or_returns_empty():
    from chainrule import _core

    def z(*shape):
        return _core.empty(list(shape), _core.DType.float32)

    with pytest.raises(ValueError, match="sizes too large"):
        _core.gru_sequence(z(1, 0, 6), z(0, 2**61), z(0, 2**61), None, False)
    assert _core.gru_sequence(z(2**62, 0, 6), z(0, 2), z(6, 2), None, False)[0].shape == (2**62, 0, 2)
    with pytest.raises(ValueError, match="sizes too large"):
        _core.gru_sequence_backward(z(1, 0, 2**62), z(1, 0, 2**62), z(0, 2**62), z(1, 0, 6), z(1, 0, 6), z(6, 2),
                                    False, False)
    grads = _core.gru_sequence_backward(z(2**62, 0, 2), z(2**62, 0, 2), z(0, 2), z(2**62, 0, 6), z(2**62, 0, 6),
                                        z(6, 2), True, False)
    assert grads[2].shape == (6, 2) and not grads[2].numpy().any()  # no samples: zero weight gradients
    assert grads[3].shape == (6,) and not grads[3].numpy().any()


def test_rnn_op_checks_shapes_and_dtypes():
    from chainrule import _core

    rng = np.random.default_rng(8)
    projected, h0 = cr.tensor(rng.standard_normal((3, 2, 4))), cr.tensor(rng.standard_normal((2, 4)))
    w_hh, b = cr.tensor(rng.standard_normal((4, 4))), cr.tensor(rng.standard_normal(4))
    rnn = cr.ops.forward("rnn_sequence")
    with pytest.raises(ValueError, match=r"W_hh \(4, 3\)"):
        rnn(projected, h0, w_hh[:, :3], b, False, False)
    with pytest.raises(TypeError, match="float32"):
        rnn(projected, h0.float(), w_hh, b, False, True)
    output = _core.rnn_sequence(projected._data, h0._data, w_hh._data, b._data, False, False)
    with pytest.raises(ValueError, match="do not fit one RNN layer"):
        _core.rnn_sequence_backward(output, output, h0._data, projected._data, True, False, False)
    with pytest.raises(ValueError, match="sizes too large"):
        _core.rnn_sequence(_core.empty([1, 0, 6], _core.DType.float32), _core.empty([0, 2**62], _core.DType.float32),
                           _core.empty([0, 2**62], _core.DType.float32), None, False, False)
