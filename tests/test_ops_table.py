"""The op table (chainrule/ops): every op has a gradcheck case, every native C++ unit has its
entry, the names made from the table exist with their declarations up to date, and the native
backward of every op gives the same bits as its Python formula (run by the reference engine)."""
from __future__ import annotations

import inspect
import sys
import zlib

import chainrule as cr
import chainrule.nn.functional as F
import numpy as np
import pytest
from chainrule import _core, ops
from chainrule.autograd import engine
from chainrule.autograd.function import OpNode
from chainrule.ops import stubs
from test_gradients import CASES, TABLE_CASES, _leaf, _sample_inputs


def test_every_op_in_the_table_has_a_gradcheck_case():
    missing = [name for name, entry in ops.TABLE.items() if not entry.cases]
    assert not missing, f"ops without a gradcheck case: {missing}"
    for name in ("linear", "cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits"):
        assert ops.TABLE[name].cases, name


def test_every_case_is_run_by_the_gradient_tests():
    names = {c.name for c in TABLE_CASES}
    for entry in ops.TABLE.values():
        for case in entry.cases:
            assert "table:" + case.name in names


def test_every_native_unit_has_one_table_entry():
    natives = {entry.native: name for name, entry in ops.TABLE.items() if entry.native}
    assert set(_core.NATIVE_OPS) == set(natives), (
        f"C++ units without an entry: {set(_core.NATIVE_OPS) - set(natives)}; "
        f"entries naming no unit: {set(natives) - set(_core.NATIVE_OPS)}")
    for name in natives.values():
        assert ops.TABLE[name].forward is getattr(_core, "grad_" + name)


def test_every_op_defined_in_python_is_in_the_table():
    """An OpNode subclass anywhere in the package (ops, nn, optim, ...) that is not registered
    would have no case: every op lives in the table. (The nodes of users' autograd.Function
    subclasses, autograd/custom_function.py, are the user's ops, not the library's.)"""
    registered = {entry.forward for entry in ops.TABLE.values() if not entry.native}
    modules = [m for name, m in sys.modules.items() if name.startswith("chainrule.") and m is not None]
    assert ops.recurrent in modules and cr.nn.conv in modules
    for module in modules:
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, OpNode) and value is not OpNode \
                    and value.__module__ == module.__name__ \
                    and module.__name__ != "chainrule.autograd.custom_function":
                assert value in registered, f"{module.__name__}.{value.__name__} is not in the op table"


def test_names_made_from_the_table_exist():
    for entry in ops.TABLE.values():
        if entry.method:
            assert callable(getattr(cr.Tensor, entry.method)), entry.method
        if entry.function:
            assert getattr(cr, entry.function) is getattr(cr.functions, entry.function)
            assert entry.function in cr.__all__
        if entry.functional:
            assert callable(getattr(F, entry.functional)), entry.functional


def test_declarations_for_type_checkers_are_up_to_date():
    """After adding an op with method/function/functional names: python -m chainrule.ops.stubs"""
    assert stubs.out_of_date() == []


def test_softplus_matches_pytorch_and_numpy():
    x = np.linspace(-40.0, 40.0, 161)
    for beta, threshold in ((1.0, 20.0), (0.5, 3.0), (3.0, 10.0)):
        expected = np.where(beta * x > threshold, x, np.logaddexp(0.0, beta * x) / beta)
        for dtype, tol in ((cr.float64, 1e-14), (cr.float32, 1e-6)):
            got = cr.softplus(cr.tensor(x, dtype=dtype), beta=beta, threshold=threshold).numpy()
            np.testing.assert_allclose(got, expected, rtol=tol, atol=1e-30)
    torch = pytest.importorskip("torch")
    t = torch.tensor(x, requires_grad=True)
    c = cr.tensor(x, dtype=cr.float64, requires_grad=True)
    for out_t, out_c in ((torch.nn.functional.softplus(t, beta=2.0, threshold=5.0), F.softplus(c, 2.0, 5.0)),
                         (torch.nn.functional.softplus(t), c.softplus()),
                         (torch.nn.functional.softplus(t, 0.5), cr.softplus(c, beta=0.5))):
        np.testing.assert_allclose(out_c.detach().numpy(), out_t.detach().numpy(), rtol=1e-14, atol=1e-300)
        out_t.sum().backward()
        out_c.sum().backward()
        np.testing.assert_allclose(c.grad.numpy(), t.grad.numpy(), rtol=1e-14, atol=1e-300)
        t.grad, c.grad = None, None


# ------------------------------------------------------------------ two engines, one meaning
def _grads(case, dtype, engine_name: str) -> list[np.ndarray]:
    """The gradients of every input of `case` (a random upstream gradient), by one engine."""
    arrays = _sample_inputs(case, seed=zlib.crc32(case.name.encode()))
    leaves = [_leaf(a, i in case.transposed) for i, a in enumerate(arrays)]
    if dtype == cr.float32:
        leaves = [cr.tensor(a, dtype=cr.float32, requires_grad=True) for a in arrays]
    previous = engine.set_engine(engine_name)
    try:
        out = case.fn(*leaves)
        upstream = np.random.default_rng(5).uniform(0.5, 1.5, size=out.shape)
        out.backward(cr.tensor(upstream, dtype=out.dtype))
    finally:
        engine.set_engine(previous)
    return [leaf.grad.numpy().copy() for leaf in leaves]


@pytest.mark.parametrize("dtype", [cr.float64, cr.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", [c for c in CASES if not c.bug], ids=lambda c: c.name)
def test_native_and_reference_backward_agree_bit_for_bit(case, dtype):
    """Over the op table's cases and the gradient tests' variants: the C++ engine (with the native
    units' backward) and the reference engine (with the table's Python formulas) give the
    same bits."""
    native = _grads(case, dtype, "cpp")
    reference = _grads(case, dtype, "python")
    for i, (a, b) in enumerate(zip(native, reference)):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes(), (
            f"{case.name}: input {i}: the native and the reference backward differ by up to "
            f"{np.max(np.abs(a - b))}")
