"""The autograd engine: the chain rule, accumulation, graph lifetime, grad mode, hooks, errors."""
from __future__ import annotations

import gc
import re
import sys
import weakref

import numpy as np
import pytest

import chainrule as cr


def f64(data, requires_grad=True):
    return cr.tensor(data, dtype=cr.float64, requires_grad=requires_grad)


# ------------------------------------------------------------------ the lecture's examples
def test_lecture_chain_rule_example():
    w = cr.tensor(-2.0, requires_grad=True)
    x = cr.tensor(5.0, requires_grad=True)
    b = cr.tensor(3.0, requires_grad=True)
    f = w * x + b
    assert f.item() == -7.0
    f.backward()
    assert w.grad.item() == 5.0   # df/dw = x
    assert x.grad.item() == -2.0  # df/dx = w
    assert b.grad.item() == 1.0   # df/db = 1


def test_lecture_chain_rule_through_intermediate():
    w = cr.tensor(-2.0, requires_grad=True)
    x = cr.tensor(5.0, requires_grad=True)
    b = cr.tensor(3.0, requires_grad=True)
    g = w * x
    g.retain_grad()
    f = g + b
    f.backward()
    assert g.grad.item() == 1.0   # df/dg
    # chain rule: df/dw = df/dg * dg/dw = 1 * x
    assert w.grad.item() == 5.0
    assert x.grad.item() == -2.0
    assert b.grad.item() == 1.0


def test_sigmoid_derivative_is_g_times_one_minus_g():
    z_values = np.linspace(-8.0, 8.0, 161)
    z = f64(z_values)
    g = z.sigmoid()
    g.sum().backward()
    expected_g = 1.0 / (1.0 + np.exp(-z_values))
    np.testing.assert_allclose(g.numpy(), expected_g, rtol=1e-12)
    np.testing.assert_allclose(z.grad.numpy(), expected_g * (1.0 - expected_g), rtol=1e-10,
                               atol=1e-15)


def test_sigmoid_derivative_float32():
    z_values = np.linspace(-6.0, 6.0, 25, dtype=np.float32)
    z = cr.tensor(z_values, requires_grad=True)
    z.sigmoid().sum().backward()
    g = 1.0 / (1.0 + np.exp(-z_values.astype(np.float64)))
    assert z.grad.dtype == cr.float32
    np.testing.assert_allclose(z.grad.numpy(), g * (1 - g), rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------ multiple paths
def test_x_plus_x_gives_two():
    x = cr.tensor(3.0, requires_grad=True)
    y = x + x
    y.backward()
    assert x.grad.item() == 2.0


def test_x_plus_x_vector():
    x = f64([1.0, -2.0, 3.0])
    (x + x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_x_times_x_gives_two_x():
    values = [1.5, -2.0, 0.25, 3.0]
    x = f64(values)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array(values))


def test_diamond_graph():
    # a -> b, a -> c, (b, c) -> d
    a = f64(1.5)
    b = a * 3.0       # db/da = 3
    c = a.exp()       # dc/da = e^a
    d = b * c         # dd/da = 3 e^a + 3a e^a
    d.backward()
    expected = 3 * np.exp(1.5) + 3 * 1.5 * np.exp(1.5)
    np.testing.assert_allclose(a.grad.item(), expected, rtol=1e-12)


def test_diamond_graph_with_retained_middle_nodes():
    a = f64([0.5, -1.0])
    b = a.sin()
    c = a * a
    b.retain_grad()
    c.retain_grad()
    d = (b * c).sum()
    d.backward()
    a_np = np.array([0.5, -1.0])
    np.testing.assert_allclose(b.grad.numpy(), a_np * a_np)
    np.testing.assert_allclose(c.grad.numpy(), np.sin(a_np))
    np.testing.assert_allclose(a.grad.numpy(), np.cos(a_np) * a_np**2 + np.sin(a_np) * 2 * a_np)


def test_nested_diamonds():
    x = f64(0.7)
    y = x
    for _ in range(20):
        y = y * 0.5 + y * 0.5 + 0.0   # each level: two paths, total factor 1
    y = y * 2.0
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 2.0, rtol=1e-12)


# ------------------------------------------------------------------ deep graphs
def test_ten_thousand_op_chain_mul():
    limit = sys.getrecursionlimit()
    x = f64(1.0)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001 ** 10_000, rtol=1e-9)
    assert sys.getrecursionlimit() == limit


def test_ten_thousand_op_chain_add():
    x = f64(2.0)
    y = x
    for _ in range(10_000):
        y = y + x
    assert y.item() == 2.0 * 10_001
    y.backward()
    assert x.grad.item() == 10_001.0


def test_deep_chain_is_freed_without_recursion_error():
    x = f64(1.0)
    y = x
    for _ in range(20_000):
        y = y + 1.0
    ref = weakref.ref(y.grad_fn)
    del y  # dropping a very deep graph must not overflow the C stack or raise
    gc.collect()
    assert ref() is None


# ------------------------------------------------------------------ accumulation and seeds
def test_gradients_accumulate_over_backward_calls():
    x = f64([1.0, 2.0])
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5.0, 7.0])


def test_backward_with_gradient_for_non_scalar_output():
    x = f64([[1.0, 2.0], [3.0, 4.0]])
    y = x * x
    upstream = f64([[1.0, 0.5], [-1.0, 2.0]], requires_grad=False)
    y.backward(gradient=upstream)
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.detach().numpy() * upstream.numpy())


def test_backward_with_gradient_positional():
    x = f64([1.0, 2.0, 3.0])
    (x * 2.0).backward(f64([1.0, 1.0, 0.0], requires_grad=False))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 0.0])


def test_non_scalar_backward_without_gradient_raises():
    x = f64([1.0, 2.0])
    y = x * 2.0
    with pytest.raises(RuntimeError):
        y.backward()
    assert x.grad is None


def test_one_element_non_scalar_backward_without_gradient():
    x = f64([[3.0]])
    (x * x).backward()
    assert x.grad.shape == (1, 1)
    assert x.grad.item() == 6.0


def test_gradient_of_wrong_shape_raises_value_error():
    x = f64([1.0, 2.0, 3.0])
    y = x * 2.0
    with pytest.raises(ValueError):
        y.backward(gradient=f64([1.0, 1.0], requires_grad=False))
    with pytest.raises(ValueError):
        y.backward(gradient=f64([[1.0, 1.0, 1.0]], requires_grad=False))


def test_backward_on_tensor_without_grad_raises():
    x = f64([1.0], requires_grad=False)
    with pytest.raises(RuntimeError):
        (x * 2).sum().backward()


# ------------------------------------------------------------------ freeing and retain_graph
def test_second_backward_through_freed_graph_raises():
    x = f64([1.0, 2.0])
    y = (x.exp() * x).sum()   # exp and mul save tensors
    y.backward()
    with pytest.raises(RuntimeError):
        y.backward()


def test_retain_graph_allows_second_backward_and_accumulates():
    x = f64([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    expected = np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0]))
    np.testing.assert_allclose(first, expected)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * expected)
    with pytest.raises(RuntimeError):
        y.backward()   # the second call did not retain


def test_graph_that_saved_nothing_may_run_again():
    x = f64([1.0, 2.0])
    y = (x + x).sum()
    y.backward()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 4.0])


# ------------------------------------------------------------------ leaves and grad_fn
def test_grad_only_on_leaves():
    x = f64([1.0, 2.0])
    h = x * 2.0
    y = (h * h).sum()
    y.backward()
    assert x.grad is not None
    assert h.grad is None
    assert y.grad is None


def test_retain_grad_keeps_non_leaf_grad():
    x = f64([1.0, 2.0])
    h = x * 2.0
    h.retain_grad()
    assert h.retains_grad
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), [4.0, 8.0])
    np.testing.assert_allclose(x.grad.numpy(), [8.0, 16.0])


def test_is_leaf_and_grad_fn():
    x = f64([1.0])
    c = f64([1.0], requires_grad=False)
    assert x.is_leaf and x.grad_fn is None
    assert c.is_leaf and c.grad_fn is None
    y = x * 2
    assert not y.is_leaf
    assert y.grad_fn is not None
    z = c * 2
    assert z.is_leaf and z.grad_fn is None and not z.requires_grad


def test_requires_grad_propagation():
    a = f64([1.0, 2.0])
    b = f64([3.0, 4.0], requires_grad=False)
    assert (a + b).requires_grad
    assert (b + a).requires_grad
    assert (b * 2).requires_grad is False
    assert (a * b).sum().requires_grad
    assert a.exp().requires_grad
    assert a[0].requires_grad
    assert a.reshape(2, 1).requires_grad
    # comparisons are never differentiable
    assert (a > b).requires_grad is False
    assert (a == a).grad_fn is None
    # integer results carry no gradient
    assert a.argmax().requires_grad is False
    assert a.max(0).indices.requires_grad is False


def test_requires_grad_on_int_or_bool_raises_type_error():
    with pytest.raises(TypeError):
        cr.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError):
        cr.tensor([True, False]).requires_grad_()


def test_requires_grad_setter_on_leaf():
    x = f64([1.0], requires_grad=False)
    x.requires_grad = True
    assert x.requires_grad
    (x * 3).sum().backward()
    assert x.grad.item() == 3.0


# ------------------------------------------------------------------ grad mode
def test_no_grad_context_manager():
    x = f64([1.0, 2.0])
    assert cr.is_grad_enabled()
    with cr.no_grad():
        assert not cr.is_grad_enabled()
        y = x * 2
    assert cr.is_grad_enabled()
    assert not y.requires_grad
    assert y.grad_fn is None
    np.testing.assert_array_equal(y.numpy(), [2.0, 4.0])


def test_no_grad_decorator():
    x = f64([1.0, 2.0])

    @cr.no_grad()
    def double(t):
        assert not cr.is_grad_enabled()
        return t * 2

    y = double(x)
    assert cr.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_no_grad_restores_state_after_exception():
    with pytest.raises(ZeroDivisionError):
        with cr.no_grad():
            1 / 0
    assert cr.is_grad_enabled()


def test_nested_no_grad_and_enable_grad():
    x = f64([1.0])
    with cr.no_grad():
        with cr.no_grad():
            assert not cr.is_grad_enabled()
        assert not cr.is_grad_enabled()
        with cr.enable_grad():
            assert cr.is_grad_enabled()
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert cr.is_grad_enabled()


# ------------------------------------------------------------------ detach and requires_grad_
def test_detach_shares_storage_and_has_no_grad():
    x = f64([1.0, 2.0, 3.0])
    d = x.detach()
    assert not d.requires_grad
    assert d.grad_fn is None and d.is_leaf
    assert d.grad is None
    d.numpy()[1] = 20.0   # same storage
    assert x.detach().numpy()[1] == 20.0
    np.testing.assert_array_equal(x.numpy(), [1.0, 20.0, 3.0])


def test_detach_cuts_the_graph():
    x = f64([1.0, 2.0])
    y = x * x
    z = (y.detach() * x).sum()   # only the explicit x path takes gradient
    z.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 4.0])


def test_requires_grad_underscore():
    x = f64([1.0, 2.0], requires_grad=False)
    returned = x.requires_grad_()
    assert returned is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad
    y = f64([1.0]) * 2
    with pytest.raises(RuntimeError):
        y.requires_grad_(False)   # a non-leaf


# ------------------------------------------------------------------ in place
def test_in_place_on_tensor_requiring_grad_raises_outside_no_grad():
    x = f64([1.0, 2.0])
    for op in (lambda: x.add_(1.0), lambda: x.sub_(1.0), lambda: x.mul_(2.0),
               lambda: x.div_(2.0), lambda: x.zero_(), lambda: x.fill_(3.0),
               lambda: x.copy_(f64([5.0, 6.0], requires_grad=False))):
        with pytest.raises(RuntimeError):
            op()
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])


def test_in_place_operators_raise_outside_no_grad():
    x = f64([1.0, 2.0])
    with pytest.raises(RuntimeError):
        x += 1.0
    with pytest.raises(RuntimeError):
        x *= 2.0
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])


def test_in_place_allowed_under_no_grad():
    x = f64([1.0, 2.0])
    with cr.no_grad():
        x.add_(1.0)
        x.mul_(2.0)
        x -= 1.0
    np.testing.assert_array_equal(x.numpy(), [3.0, 5.0])
    assert x.requires_grad and x.is_leaf


def test_in_place_on_plain_tensor_allowed():
    x = f64([1.0, 2.0], requires_grad=False)
    x.add_(1.0)
    x.mul_(2.0)
    np.testing.assert_array_equal(x.numpy(), [4.0, 6.0])


def test_modified_saved_tensor_makes_backward_raise_naming_versions():
    x = f64([1.0, 2.0])
    y = x.exp()          # Exp saves its output
    z = (y * x).sum()    # Mul saves x and y
    with cr.no_grad():
        x.mul_(2.0)
    with pytest.raises(RuntimeError, match=r"(?i)version") as info:
        z.backward()
    message = str(info.value)
    assert "Mul" in message, message                              # names the op
    assert re.search(r"\b0\b", message) and re.search(r"\b1\b", message), message  # 0 -> 1


def test_saved_tensor_modified_through_a_view_or_detach_raises():
    x = f64([1.0, 2.0])
    y = x.exp()
    z = (y * y).sum()
    y.detach()[0:1].add_(1.0)   # same storage, different Tensor objects
    with pytest.raises(RuntimeError, match=r"(?i)version"):
        z.backward()


def test_modified_input_of_op_that_saved_nothing_is_fine():
    x = f64([1.0, 2.0])
    y = (x + 1.0).sum()   # Add saves nothing
    with cr.no_grad():
        x.add_(5.0)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


# ------------------------------------------------------------------ hooks and autograd.grad
def test_register_hook_can_replace_grad():
    x = f64([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    h = x * 3.0
    h.register_hook(lambda g: g * 10.0)
    h.sum().backward()
    np.testing.assert_array_equal(seen[0], [30.0, 30.0])
    np.testing.assert_array_equal(x.grad.numpy(), [30.0, 30.0])


def test_register_hook_on_leaf_replaces_accumulated_grad():
    x = f64([1.0, 2.0])
    x.register_hook(lambda g: g * 0.0 + 7.0)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [7.0, 7.0])


def test_leaf_hook_called_once_with_total_gradient():
    x = f64([1.0, 2.0])
    calls = []
    x.register_hook(lambda g: calls.append(g.numpy().copy()))
    (x * 2.0 + x * 3.0).sum().backward()
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], [5.0, 5.0])


def test_non_leaf_hook_sees_sum_over_paths():
    x = f64([1.0, 2.0])
    h = x * 2.0
    calls = []
    h.register_hook(lambda g: calls.append(g.numpy().copy()))
    (h * h + h).sum().backward()   # d/dh = 2h + 1
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], [5.0, 9.0])
    np.testing.assert_array_equal(x.grad.numpy(), [10.0, 18.0])


def test_backward_on_a_leaf_accumulates_gradient():
    x = f64([1.0, 2.0])
    x.backward(gradient=f64([3.0, 4.0], requires_grad=False))
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])


def test_hook_removal():
    x = f64([1.0])
    remove = x.register_hook(lambda g: g * 100.0)
    remove()
    (x * 2).sum().backward()
    assert x.grad.item() == 2.0


def test_autograd_grad_returns_grads_without_touching_grad():
    x = f64([1.0, 2.0])
    w = f64([3.0, -1.0])
    y = (x * w).sum()
    gx, gw = cr.autograd.grad(y, (x, w))
    np.testing.assert_array_equal(gx.numpy(), [3.0, -1.0])
    np.testing.assert_array_equal(gw.numpy(), [1.0, 2.0])
    assert x.grad is None and w.grad is None


def test_autograd_grad_single_input_and_grad_outputs():
    x = f64([1.0, 2.0, 3.0])
    y = x * x
    (g,) = cr.autograd.grad(y, x, grad_outputs=f64([1.0, 0.0, 2.0], requires_grad=False))
    np.testing.assert_array_equal(g.numpy(), [2.0, 0.0, 12.0])
    assert x.grad is None


def test_autograd_grad_wrt_intermediate():
    x = f64(2.0)
    h = x * x
    y = h * 3.0
    (gh,) = cr.autograd.grad(y, h)
    assert gh.item() == 3.0
    assert x.grad is None


# ------------------------------------------------------------------ dtypes
def test_float32_leaf_through_float64_op_gets_float32_grad():
    x = cr.tensor([1.0, 2.0], requires_grad=True)          # float32
    w = cr.tensor([0.5, 0.25], dtype=cr.float64, requires_grad=True)
    y = x * w                                              # promoted to float64
    assert y.dtype == cr.float64
    y.sum().backward()
    assert x.grad.dtype == cr.float32
    assert w.grad.dtype == cr.float64
    np.testing.assert_array_equal(x.grad.numpy(), np.array([0.5, 0.25], dtype=np.float32))
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 2.0])


def test_grad_keeps_shape_for_broadcast_leaf():
    a = f64([[1.0], [2.0], [3.0]])   # (3, 1)
    b = f64([1.0, 2.0, 3.0, 4.0])   # (4,)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1)
    assert b.grad.shape == (4,)
    np.testing.assert_array_equal(a.grad.numpy(), [[10.0], [10.0], [10.0]])
    np.testing.assert_array_equal(b.grad.numpy(), [6.0, 6.0, 6.0, 6.0])


def test_grad_owns_its_memory():
    # x + y hands the same upstream array to both inputs; their .grad must not alias
    x = f64([1.0, 2.0])
    y = f64([3.0, 4.0])
    (x + y).sum().backward()
    with cr.no_grad():
        x.grad.mul_(5.0)
    np.testing.assert_array_equal(y.grad.numpy(), [1.0, 1.0])


# ------------------------------------------------------------------ memory
def _build_graph(x):
    h = (x * 2.0).exp()   # intermediate that does not depend on being a leaf
    out = (h * x).sum()
    return h, out


def test_graph_freed_by_refcount_alone():
    gc.collect()
    gc.disable()
    try:
        x = f64(np.ones(1000))
        h, out = _build_graph(x)
        refs = [weakref.ref(out), weakref.ref(out.grad_fn), weakref.ref(h), weakref.ref(h.grad_fn)]
        del h, out
        assert all(r() is None for r in refs), [r() for r in refs]
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_graph_freed_after_backward():
    gc.collect()
    gc.disable()
    try:
        x = f64(np.ones(1000))
        h, out = _build_graph(x)
        h.retain_grad()
        x.register_hook(lambda g: g)
        out.backward()
        refs = [weakref.ref(out), weakref.ref(out.grad_fn), weakref.ref(h), weakref.ref(h.grad_fn)]
        del h, out
        assert all(r() is None for r in refs)
        assert gc.collect() == 0
        assert x.grad is not None
    finally:
        gc.enable()


def test_intermediate_storage_released_when_graph_dropped():
    gc.collect()
    gc.disable()
    try:
        x = f64(np.ones(100_000))
        big = x.exp()                  # Exp saves this output array for backward
        array = big._data              # the raw array: one owner of big's storage
        out = (big * 3.0).sum()
        del big
        # the graph (the output Exp saved) holds the storage while it is alive; times a number,
        # Mul needs only the number
        assert array.storage_refs == 2
        node_ref = weakref.ref(out.grad_fn)
        del out
        assert node_ref() is None
        assert gc.collect() == 0
        assert array.storage_refs == 1   # only our array is left
    finally:
        gc.enable()


def test_saved_arrays_released_by_backward_without_retain_graph():
    x = f64(np.ones(1000))
    big = x.exp()
    array = big._data
    out = (big * 3.0).sum()
    del big
    held = array.storage_refs
    assert held == 2                      # ours, and the output Exp saved
    out.backward(retain_graph=True)
    assert array.storage_refs == held     # retained: still saved
    out.backward()
    assert array.storage_refs == 1        # freed: the saved arrays are gone, the graph is not
    assert out.grad_fn is not None
    np.testing.assert_allclose(x.grad.numpy(), 2 * 3.0 * np.e)


def test_no_cycles_with_gc_disabled_for_many_graphs():
    gc.collect()
    gc.disable()
    try:
        w = f64(np.linspace(-1, 1, 12).reshape(3, 4))
        for _ in range(20):
            x = cr.tensor(np.ones((5, 3)), dtype=cr.float64)
            y = (x @ w).softmax(1).log().mean()
            y.backward()
        del x, y
        assert gc.collect() == 0
    finally:
        gc.enable()
