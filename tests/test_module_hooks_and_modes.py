"""Module.to/double/float, forward hooks and pre-hooks, and cr.inference_mode, against PyTorch."""
from __future__ import annotations

import chainrule as cr
import numpy as np
import pytest
from chainrule import nn


def twin_models(torch):
    """The same 3 -> 4 -> 2 network in both libraries, with the same weights."""
    ours = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        for name, p in ours.named_parameters():
            theirs.get_parameter(name).copy_(torch.from_numpy(p.detach().numpy().copy()))
    return ours, theirs


def run_hooks(lib, model, x, calls):
    """Registers the same hooks on `model` (ours or PyTorch's), runs it, removes some, runs
    again; returns the outputs and the call log."""
    first, last = model[0], model[2]

    def scale_input(module, args):           # a non-tuple result replaces the input
        calls.append("pre scale")
        return args[0] * 2

    def observe(module, args):               # None keeps the input
        calls.append(f"pre observe {tuple(args[0].shape)}")

    def shift_output(module, args, output):  # a result replaces the output
        calls.append("hook shift")
        return output + 1

    def see_output(module, args, output):
        calls.append(f"hook see {tuple(output.shape)}")

    def kwargs_pre(module, args, kwargs):    # with_kwargs: (args, kwargs) or None
        calls.append(f"pre kwargs {sorted(kwargs)}")
        return (args[0] - 1,), kwargs

    def kwargs_hook(module, args, kwargs, output):
        calls.append("hook kwargs")
        return output * 3

    handles = [first.register_forward_pre_hook(scale_input),
               first.register_forward_pre_hook(observe, prepend=True),
               first.register_forward_hook(shift_output),
               first.register_forward_hook(see_output),
               last.register_forward_pre_hook(kwargs_pre, with_kwargs=True),
               last.register_forward_hook(kwargs_hook, with_kwargs=True, prepend=True)]
    out1 = model(x).detach().numpy().copy()
    handles[0].remove()
    handles[0].remove()                      # removing twice is harmless
    handles[2].remove()
    with handles[5]:                         # a handle removes its hook at the end of a block
        out2 = model(x).detach().numpy().copy()
    out3 = model(x).detach().numpy().copy()
    return out1, out2, out3


EXPECTED_CALLS = [
    # first run: every hook; pre-hooks in registration order, `prepend` puts one first
    "pre observe (5, 3)", "pre scale", "hook shift", "hook see (5, 4)", "pre kwargs []",
    "hook kwargs",
    # second run: scale_input and shift_output removed
    "pre observe (5, 3)", "hook see (5, 4)", "pre kwargs []", "hook kwargs",
    # third run: the with-block removed kwargs_hook
    "pre observe (5, 3)", "hook see (5, 4)", "pre kwargs []"]


def test_forward_hooks_against_numpy():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    data = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    calls: list[str] = []
    out1, out2, out3 = run_hooks(cr, model, cr.tensor(data), calls)
    assert calls == EXPECTED_CALLS
    w0, b0, w2, b2 = (p.detach().numpy().astype(np.float64) for p in model.parameters())
    x = data.astype(np.float64)
    hooked = 3 * ((np.tanh(2 * x @ w0.T + b0 + 1) - 1) @ w2.T + b2)
    fewer = 3 * ((np.tanh(x @ w0.T + b0) - 1) @ w2.T + b2)
    np.testing.assert_allclose(out1, hooked, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out2, fewer, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out3, fewer / 3, rtol=1e-5, atol=1e-5)


def test_forward_hooks_as_pytorch(torch):
    ours, theirs = twin_models(torch)
    data = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    our_calls: list[str] = []
    their_calls: list[str] = []
    our_out = run_hooks(cr, ours, cr.tensor(data), our_calls)
    their_out = run_hooks(torch, theirs, torch.from_numpy(data), their_calls)
    assert our_calls == their_calls == EXPECTED_CALLS
    for a, b in zip(our_out, their_out):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(our_out[0], our_out[2])  # the hooks did change the result


def test_hooks_see_gradients_flow_and_reject_bad_results():
    layer = nn.Linear(2, 1)
    layer.register_forward_hook(lambda m, args, out: out * 2)
    x = cr.ones(1, 2)
    layer(x).sum().backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), [[2.0, 2.0]])
    bad = nn.Identity()
    bad.register_forward_pre_hook(lambda m, args, kwargs: "nonsense", with_kwargs=True)
    with pytest.raises(RuntimeError, match="new_args, new_kwargs"):
        bad(x)
    with pytest.raises(TypeError, match="callable"):
        nn.Identity().register_forward_hook(42)


def test_module_to_double_against_numpy():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    w0, b0, w2, b2 = (p.detach().numpy() for p in model.parameters())
    assert w0.dtype == np.float64
    x = np.random.default_rng(1).normal(size=(4, 3))
    expected = np.tanh(x @ w0.T + b0) @ w2.T + b2
    np.testing.assert_allclose(model(cr.tensor(x)).detach().numpy(), expected, rtol=1e-12)


def test_module_to_double_float_as_pytorch(torch):
    ours, theirs = twin_models(torch)
    optimizer = cr.optim.SGD(ours.parameters(), lr=0.1)
    weight = ours[0].weight
    assert ours.double() is ours and theirs.double() is theirs
    assert ours[0].weight is weight  # the same Parameter objects: the optimizer still has them
    assert {p.dtype for p in ours.parameters()} == {cr.float64}
    x = np.random.default_rng(1).normal(size=(4, 3))
    y_ours = ours(cr.tensor(x))
    y_theirs = theirs(torch.from_numpy(x))
    assert y_ours.dtype == cr.float64
    np.testing.assert_allclose(y_ours.detach().numpy(), y_theirs.detach().numpy(), rtol=1e-12)
    y_ours.sum().backward()
    assert weight.grad.dtype == cr.float64
    optimizer.step()
    assert weight.dtype == cr.float64
    assert ours.float() is ours and weight.dtype == cr.float32 and weight.grad.dtype == cr.float32
    assert ours.to("cpu") is ours and ours.to(device="cpu", dtype=cr.float64) is ours
    assert weight.dtype == cr.float64
    assert ours.to(cr.zeros(1)) is ours and weight.dtype == cr.float32  # a tensor's dtype
    with pytest.raises(TypeError, match="floating point"):
        ours.to(cr.int64)
    with pytest.raises(TypeError, match="floating point"):
        theirs.to(torch.int64)
    with pytest.raises(ValueError, match="cpu"):
        ours.to("cuda")


def test_module_to_keeps_integer_buffers():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(cr.ones(2))
            self.register_buffer("steps", cr.zeros(1, dtype=cr.int64))
            self.register_buffer("mean", cr.zeros(2))

    model = Counter().double()
    assert model.scale.dtype == cr.float64 and model.mean.dtype == cr.float64
    assert model.steps.dtype == cr.int64
    assert model.state_dict()["mean"].dtype == cr.float64


def test_inference_mode():
    check_inference_mode(cr)


def test_inference_mode_as_pytorch(torch):
    check_inference_mode(torch)  # the same checks pass on PyTorch


def check_inference_mode(lib) -> None:
    """The same checks on chainrule and on PyTorch."""
    w = lib.ones(2, requires_grad=True)
    with lib.inference_mode():
        assert lib.is_inference_mode_enabled() and not lib.is_grad_enabled()
        assert not (w * 2).requires_grad
    assert not lib.is_inference_mode_enabled() and lib.is_grad_enabled()
    with lib.inference_mode(False):
        assert (w * 2).requires_grad and not lib.is_inference_mode_enabled()

    @lib.inference_mode()
    def called():
        return (w * 2).requires_grad, lib.is_inference_mode_enabled()

    @lib.inference_mode
    def bare():
        return (w * 2).requires_grad

    assert called() == (False, True) and bare() is False
    assert (w * 2).requires_grad
    with lib.no_grad(), lib.inference_mode():
        pass
    assert lib.is_grad_enabled()
