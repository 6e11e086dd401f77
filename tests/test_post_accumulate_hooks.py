"""Tensor.register_post_accumulate_grad_hook: called on a leaf once backward has accumulated its
gradient into .grad, while backward goes on (what DistributedDataParallel builds on)."""
from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr


def _two_layers(lib, seed=0):
    rng = np.random.default_rng(seed)
    w1 = lib.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    w2 = lib.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    x = lib.tensor(rng.standard_normal((5, 3)))
    return w1, w2, x


def _loss(w1, w2, x):
    return ((x @ w1.T).tanh() @ w2.T).sum()


def _grad_w1(w1, w2, x):
    """d loss / d w1 by hand, in NumPy: loss = sum(tanh(x w1^T) w2^T)."""
    h = np.tanh(x @ w1.T)
    upstream = np.ones((x.shape[0], w2.shape[0])) @ w2 * (1 - h * h)
    return upstream.T @ x


def test_hook_sees_the_accumulated_grad():
    w1, w2, x = _two_layers(cr)
    w1.grad = cr.ones(4, 3, dtype=w1.dtype)  # accumulated from an earlier backward
    seen = []
    w1.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    _loss(w1, w2, x).backward()
    _loss(w1, w2, x).backward()
    g = _grad_w1(w1.detach().numpy(), w2.detach().numpy(), x.numpy())
    assert len(seen) == 2
    np.testing.assert_allclose(seen[0], 1 + g, rtol=1e-10)
    np.testing.assert_allclose(seen[1], 1 + 2 * g, rtol=1e-10)


def test_hook_sees_the_accumulated_grad_as_torch_does(torch):
    seen = {}
    for name, lib in (("cr", cr), ("torch", torch)):
        w1, w2, x = _two_layers(lib)
        w1.grad = lib.ones(4, 3, dtype=w1.dtype)  # accumulated from an earlier backward
        got = []
        w1.register_post_accumulate_grad_hook(lambda t, got=got: got.append(t.grad.numpy().copy()))
        _loss(w1, w2, x).backward()
        _loss(w1, w2, x).backward()
        seen[name] = got
    assert len(seen["cr"]) == len(seen["torch"]) == 2
    for a, b in zip(seen["cr"], seen["torch"]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_hook_runs_before_backward_reaches_earlier_layers():
    w1, w2, x = _two_layers(cr)
    at_hook = []
    w2.register_post_accumulate_grad_hook(lambda t: at_hook.append((t.grad is None, w1.grad)))
    _loss(w1, w2, x).backward()
    # w2's gradient was complete (and in .grad) while w1's had not been computed yet.
    assert at_hook == [(False, None)]
    assert w1.grad is not None


def test_hook_after_the_leafs_own_hooks_and_only_for_backward():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    events = []
    w.register_hook(lambda g: g * 10)
    w.register_post_accumulate_grad_hook(lambda t: events.append(t.grad.tolist()))
    (w * 3).sum().backward()
    assert events == [[30.0, 30.0]]
    cr.autograd.grad((w * 3).sum(), w)  # accumulates nothing, so no post-accumulate hook
    assert events == [[30.0, 30.0]]


def test_root_leaf_and_removal():
    w = cr.tensor(2.0, requires_grad=True)
    calls = []
    handle = w.register_post_accumulate_grad_hook(lambda t: calls.append(t.grad.item()))
    w.backward()  # the leaf is the root itself
    assert calls == [1.0]
    handle.remove()
    w.backward()
    assert calls == [1.0] and w.grad.item() == 2.0


def test_rejects_non_leaves_and_tensors_without_grad():
    w = cr.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (w * 2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="does not require grad"):
        cr.ones(2).register_post_accumulate_grad_hook(lambda t: None)
