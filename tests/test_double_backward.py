"""Double backward (create_graph=True), cr.autograd.Function, and in-place ops on non-leaf
tensors: against finite differences (gradgradcheck, over every case of the op table), NumPy's
closed forms, and PyTorch when it is installed."""
from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import _core
from chainrule.autograd import engine
from chainrule.ops import TABLE
from chainrule.ops import kernels
from optional import requires_torch, torch
from test_gradients import _from_table, _sample_inputs

REPO = Path(__file__).resolve().parent.parent

# Ops whose double backward raises RuntimeError("double backward through ... is not supported"):
# their backward calls a fused kernel with no differentiable counterpart, or reads an array their
# forward computed. Every other op of the table must pass gradgradcheck; a new op is covered (or
# must be listed here) automatically.
NO_DOUBLE_BACKWARD = {
    "lstm_sequence",
    "gru_sequence", "rnn_sequence", "lstm_cell_update", "gru_cell_update",
}

TABLE_CASES = [(entry.name, case) for entry in TABLE.values() for case in entry.cases]


def _leaves(case):
    arrays = _sample_inputs(case, seed=zlib.crc32(case.name.encode()))
    return [cr.tensor(a, dtype=cr.float64, requires_grad=True) for a in arrays]


@pytest.mark.parametrize("name,case", TABLE_CASES, ids=[c.name for _, c in TABLE_CASES])
def test_gradgradcheck_every_op_table_case(name, case):
    leaves = _leaves(_from_table(case))
    rtol, atol = case.tolerance if case.tolerance is not None else (1e-3, 1e-4)
    if name in NO_DOUBLE_BACKWARD:
        with pytest.raises(RuntimeError, match="double backward through"):
            cr.autograd.gradgradcheck(case.fn, leaves, rtol=rtol, atol=atol)
        return
    assert cr.autograd.gradgradcheck(case.fn, leaves, rtol=rtol, atol=atol)


def test_the_unsupported_list_names_ops_of_the_table():
    assert NO_DOUBLE_BACKWARD <= set(TABLE)


def test_ops_files_are_converted_to_k():
    """Every op-table file calls its backward kernels through K (run the script after adding ops)."""
    result = subprocess.run([sys.executable, str(REPO / "tools" / "convert_backward_to_k.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_conversion_script_is_idempotent_and_leaves_forwards_alone():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import convert_backward_to_k as script
    finally:
        sys.path.pop(0)
    source = '''from chainrule import _core
from chainrule.autograd.function import Function


class Op(Function):
    @staticmethod
    def forward(ctx, a):
        return C.exp(a)

    @staticmethod
    def backward(ctx, g):
        return C.mul(g, C.apply(Op, g)), C.wrap(g)
'''
    once = script.convert_text(source)
    assert script.convert_text(once) == once
    assert "from chainrule.ops.kernels import K" in once and "class Op(OpNode)" in once
    assert "import OpNode" in once
    assert "return C.exp(a)" in once and "K.mul(g, C.apply(Op, g)), C.wrap(g)" in once


def test_k_is_the_core_namespace_outside_create_graph():
    assert kernels.K.mul is _core.mul and kernels.K.sigmoid_backward is _core.sigmoid_backward
    x = cr.tensor([0.5], dtype=cr.float64, requires_grad=True)
    (g,) = cr.autograd.grad(x.sigmoid().sum(), x, create_graph=True)
    assert kernels.K.mul is _core.mul  # restored after the recorded backward
    case = TABLE["gru_cell_update"].cases[0]
    leaves = [cr.randn(*shape, dtype=cr.float64, requires_grad=True) for shape in case.shapes]
    with pytest.raises(RuntimeError, match="double backward through GRUCellUpdateBackward is not supported"):
        cr.autograd.grad((case.fn(*leaves) ** 2).sum(), leaves, create_graph=True)
    assert kernels.K.mul is _core.mul  # restored after an error too


# ------------------------------------------------------------------ closed forms (NumPy)
def test_sigmoid_second_derivative_from_the_lecture():
    z0 = np.array([-2.0, -0.5, 0.0, 1.0, 3.0])
    z = cr.tensor(z0, dtype=cr.float64, requires_grad=True)
    (d1,) = cr.autograd.grad(z.sigmoid().sum(), z, create_graph=True)
    (d2,) = cr.autograd.grad(d1.sum(), z)
    s = 1 / (1 + np.exp(-z0))
    np.testing.assert_allclose(d1.detach().numpy(), s * (1 - s), rtol=1e-12)
    np.testing.assert_allclose(d2.numpy(), s * (1 - s) * (1 - 2 * s), rtol=1e-10, atol=1e-15)


def test_third_derivative_of_a_cube():
    x = cr.tensor(2.0, dtype=cr.float64, requires_grad=True)
    (d1,) = cr.autograd.grad(x ** 3, x, create_graph=True)
    (d2,) = cr.autograd.grad(d1, x, create_graph=True)
    (d3,) = cr.autograd.grad(d2, x)
    assert (d1.item(), d2.item(), d3.item()) == (12.0, 12.0, 6.0)


@pytest.mark.parametrize("engine_name", ["cpp", "python"])
def test_backward_create_graph_leaves_a_differentiable_grad(engine_name):
    previous = engine.set_engine(engine_name)
    try:
        w = cr.tensor([1.0, -2.0, 0.5], dtype=cr.float64, requires_grad=True)
        (w ** 3).sum().backward(create_graph=True)
        assert w.grad.grad_fn is not None
        np.testing.assert_allclose(w.grad.detach().numpy(), 3 * np.array([1.0, 4.0, 0.25]))
        (hv,) = cr.autograd.grad((w.grad * cr.tensor([0.0, 1.0, 0.0], dtype=cr.float64)).sum(), w)
        np.testing.assert_allclose(hv.numpy(), [0.0, -12.0, 0.0])
    finally:
        engine.set_engine(previous)


def test_allow_unused_and_materialize_grads():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    unused = cr.tensor([3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused"):
        cr.autograd.grad((x * 2).sum(), (x, unused))
    gx, gu = cr.autograd.grad((x * 2).sum(), (x, unused), allow_unused=True)
    assert gu is None and gx.tolist() == [2.0, 2.0]
    _, gu = cr.autograd.grad((x * 2).sum(), (x, unused), materialize_grads=True)
    assert gu.tolist() == [0.0]


def test_gradgradcheck_catches_a_wrong_second_derivative():
    class WrongSquare(cr.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2 * x.detach() * 1.0 + g * 0 * x  # first derivative right, second wrong

    x = cr.tensor([0.5, -1.5], dtype=cr.float64, requires_grad=True)
    assert cr.autograd.gradcheck(WrongSquare.apply, (x,))
    with pytest.raises(cr.autograd.GradcheckError):
        cr.autograd.gradgradcheck(WrongSquare.apply, (x,))
    assert cr.autograd.gradgradcheck(WrongSquare.apply, (x,), raise_exception=False) is False


# ------------------------------------------------------------------ against PyTorch
def _mlp(lib, params, x):
    w1, b1, w2, b2 = params
    return (x @ w1 + b1).tanh() @ w2 + b2


def _params(lib, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(4, 5), (5,), (5, 3), (3,)]
    return [lib.tensor(rng.standard_normal(s) * 0.7, dtype=lib.float64, requires_grad=True) for s in shapes]


@requires_torch
def test_hessian_vector_product_matches_pytorch():
    rng = np.random.default_rng(1)
    x, target = rng.standard_normal((6, 4)), np.array([0, 2, 1, 1, 0, 2])
    vs = [rng.standard_normal(s) for s in [(4, 5), (5,), (5, 3), (3,)]]
    results = []
    for lib in (cr, torch):
        params = _params(lib)
        logits = _mlp(lib, params, lib.tensor(x, dtype=lib.float64))
        loss = lib.nn.functional.cross_entropy(logits, lib.tensor(target))
        grads = lib.autograd.grad(loss, params, create_graph=True)
        dot = sum((g * lib.tensor(v, dtype=lib.float64)).sum() for g, v in zip(grads, vs))
        hv = lib.autograd.grad(dot, params)
        results.append([h.detach().numpy() for h in hv])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@requires_torch
def test_gradient_penalty_step_matches_pytorch():
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((5, 4))
    results = []
    for lib in (cr, torch):
        params = _params(lib, seed=3)
        x = lib.tensor(x0, dtype=lib.float64, requires_grad=True)
        critic = _mlp(lib, params, x).sigmoid().sum(1)
        (gx,) = lib.autograd.grad(critic.sum(), x, create_graph=True)
        penalty = (((gx ** 2).sum(1) + 1e-12).sqrt() - 1.0).square().mean()
        loss = critic.mean() + 10.0 * penalty
        loss.backward()
        results.append([p.grad.numpy() for p in params] + [x.grad.numpy(), np.array(loss.item())])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ autograd.Function
def _functions(lib):
    class Exp(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y

    class ScaledPair(lib.autograd.Function):
        """Two outputs, a number argument, a saved input, ctx attributes."""

        @staticmethod
        def forward(ctx, x, k, w):
            ctx.k = k
            ctx.flags = ctx.needs_input_grad
            ctx.save_for_backward(x, w)
            return x * w * k, (x + w).sin()

        @staticmethod
        def backward(ctx, ga, gb):
            x, w = ctx.saved_tensors
            c = (x + w).cos()
            return ga * w * ctx.k + gb * c, None, ga * x * ctx.k + gb * c

    return Exp, ScaledPair


def _run_functions(lib):
    Exp, ScaledPair = _functions(lib)
    x = lib.tensor([0.5, -1.0, 2.0], dtype=lib.float64, requires_grad=True)
    w = lib.tensor([1.5, 0.2, -0.3], dtype=lib.float64, requires_grad=True)
    y = Exp.apply(x)
    a, b = ScaledPair.apply(y, 3.0, w)
    (a.sum() + (b * b).sum()).backward(create_graph=True)
    first = [x.grad.detach().numpy().copy(), w.grad.detach().numpy().copy()]
    (second,) = lib.autograd.grad(x.grad.sum(), w)
    return first + [second.numpy(), a.detach().numpy(), b.detach().numpy()]


def test_function_matches_numpy():
    x0, w0 = np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.2, -0.3])
    gx, gw, _, a, b = _run_functions(cr)
    y = np.exp(x0)
    np.testing.assert_allclose(a, y * w0 * 3.0)
    np.testing.assert_allclose(b, np.sin(y + w0))
    c = 2 * np.sin(y + w0) * np.cos(y + w0)
    np.testing.assert_allclose(gx, (w0 * 3.0 + c) * y, rtol=1e-12)
    np.testing.assert_allclose(gw, y * 3.0 + c, rtol=1e-12)


@requires_torch
def test_function_matches_pytorch_with_double_backward():
    for ours, theirs in zip(_run_functions(cr), _run_functions(torch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("engine_name", ["cpp", "python"])
def test_function_under_both_engines_and_gradcheck(engine_name):
    Exp, ScaledPair = _functions(cr)
    previous = engine.set_engine(engine_name)
    try:
        x = cr.tensor([0.5, -1.0], dtype=cr.float64, requires_grad=True)
        w = cr.tensor([0.3, 0.7], dtype=cr.float64, requires_grad=True)
        assert cr.autograd.gradcheck(lambda x, w: ScaledPair.apply(Exp.apply(x), 2.0, w), (x, w))
        assert cr.autograd.gradgradcheck(lambda x, w: ScaledPair.apply(Exp.apply(x), 2.0, w)[1], (x, w))
        y = Exp.apply(x)
        assert y.grad_fn.name() == "ExpBackward"
        y.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), np.exp([0.5, -1.0]))
    finally:
        engine.set_engine(previous)


def test_function_ctx_api():
    seen = {}

    class Probe(cr.autograd.Function):
        @staticmethod
        def forward(ctx, x, y, scale=1.0):
            seen["needs"] = ctx.needs_input_grad
            ctx.set_materialize_grads(False)
            ctx.scale = scale
            idx = x.argmax() if hasattr(x, "argmax") else cr.tensor(0)
            ctx.mark_non_differentiable(idx)
            return x * scale, idx

        @staticmethod
        def backward(ctx, g, g_idx):
            seen["g_idx"] = g_idx
            return g * ctx.scale, None

    x = cr.tensor([1.0, 3.0], requires_grad=True)
    y = cr.tensor([2.0])
    out, idx = Probe.apply(x, y, scale=2.0)
    assert seen["needs"] == (True, False)
    assert not idx.requires_grad and out.requires_grad
    out.sum().backward()
    assert seen["g_idx"] is None and x.grad.tolist() == [2.0, 2.0]
    with cr.no_grad():
        out, _ = Probe.apply(x, y)
    assert out.grad_fn is None


def test_function_saved_tensor_changed_in_place_raises():
    Exp, _ = _functions(cr)
    x = cr.tensor([0.5, 1.0], requires_grad=True)
    y = Exp.apply(x)
    with cr.no_grad():
        y.mul_(2.0)
    with pytest.raises(RuntimeError, match=r"ExpBackward.*\(2,\).*version 0.*version 1"):
        y.sum().backward()


def test_function_errors():
    class Wrong(cr.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g, g  # one too many

    class Dirty(cr.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.mark_dirty(x)
            return x

    x = cr.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        Wrong.apply(x).sum().backward()
    with pytest.raises(RuntimeError, match=r"Dirty.apply \(ctx.mark_dirty\): a leaf Variable that requires grad"):
        Dirty.apply(x)  # in place on a leaf that requires grad, as PyTorch refuses
    with pytest.raises(TypeError, match="save_for_backward"):
        class Bad(cr.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(3.0)
                return x
        Bad.apply(x)


def test_function_is_the_user_api_and_opnode_the_internal_one():
    from chainrule.autograd.function import OpNode

    assert cr.autograd.Function is not OpNode
    assert not issubclass(cr.autograd.Function, OpNode)
    assert issubclass(type(TABLE["pow"].forward), type) and issubclass(TABLE["pow"].forward, OpNode)


# ------------------------------------------------------------------ in place on non-leaf tensors
def _inplace_chain(lib):
    x = lib.tensor([[1.0, -2.0, 3.0], [0.5, 2.0, -1.0]], dtype=lib.float64, requires_grad=True)
    w = lib.tensor([0.3, -0.7, 2.0], dtype=lib.float64, requires_grad=True)
    y = x * 2
    y += w
    y.mul_(w)
    y.clamp_(-1.0, 2.5)
    y[:1].div_(w + 3)
    y[1, 1:] += w[:2]
    z = y * 1.5
    z[0] = w * 3
    z[1, :1] = 0.0
    z.sub_(1.0)
    buffer = lib.zeros(3, dtype=lib.float64)
    buffer += w  # a plain tensor written with one that requires grad joins the graph
    (z * z).sum().add(buffer.sum()).backward()
    return x.grad.numpy(), w.grad.numpy(), z.detach().numpy(), buffer.detach().numpy()


@requires_torch
def test_inplace_on_nonleaf_matches_pytorch():
    for ours, theirs in zip(_inplace_chain(cr), _inplace_chain(torch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_inplace_on_nonleaf_matches_numpy():
    x0, w0 = np.array([1.0, -2.0, 3.0]), np.array([0.3, -0.7, 2.0])
    x = cr.tensor(x0, dtype=cr.float64, requires_grad=True)
    w = cr.tensor(w0, dtype=cr.float64, requires_grad=True)
    y = x * 2
    y.mul_(w)  # y = 2 x w
    assert y.grad_fn.name() == "MulBackward" and y._data.version == 1
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * w0)
    np.testing.assert_allclose(w.grad.numpy(), 2 * x0)


def _indexing_inplace_chain(lib):
    """scatter_, masked_fill_ and scatter_add_ on a non-leaf tensor, then backward."""
    w = lib.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=lib.float64, requires_grad=True)
    s = lib.tensor([[0.5], [-1.5]], dtype=lib.float64, requires_grad=True)
    index = lib.tensor([[0], [2]])
    y = w * w
    y.scatter_(1, index, s * 2)
    y.masked_fill_(y > 20, 0.0)
    y.scatter_add_(1, index, w[:, 1:2] * 3)
    y.scatter_(1, lib.tensor([[2], [0]]), 7.0)
    (y * y).sum().backward()
    return y.detach().numpy(), w.grad.numpy(), s.grad.numpy()


@requires_torch
def test_indexing_inplace_on_nonleaf_matches_pytorch():
    for ours, theirs in zip(_indexing_inplace_chain(cr), _indexing_inplace_chain(torch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_indexing_inplace_on_leaf_refused():
    leaf = cr.tensor([[1.0, 2.0]], requires_grad=True)
    index = cr.tensor([[1]])
    for call in (lambda: leaf.scatter_(1, index, 0.0), lambda: leaf.scatter_add_(1, index, cr.ones(1, 1)),
                 lambda: leaf.masked_fill_(leaf > 1, 0.0)):
        with pytest.raises(RuntimeError, match=r"leaf.*\(1, 2\)"):
            call()
    assert leaf.tolist() == [[1.0, 2.0]]


def test_inplace_rules_and_errors():
    leaf = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"add_.*leaf.*\(2,\)"):
        leaf += 1
    with pytest.raises(RuntimeError, match="view of a leaf"):
        leaf[:1].mul_(2.0)
    with cr.no_grad():
        leaf.add_(1.0)  # what the optimizers do
    assert leaf.tolist() == [2.0, 3.0]
    y = leaf.exp()
    y.add_(1.0)  # recorded, but ExpBackward saved y
    with pytest.raises(RuntimeError, match=r"ExpBackward.*\(2,\).*version 0 and is now at version 1"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="view"):
        (leaf * 1.0).unsqueeze(0).T.mul_(2.0)
    z = leaf * 2.0
    z.zero_()
    z.sum().backward()
    assert leaf.grad.tolist() == [0.0, 0.0]


def test_function_with_setup_context_pytorch2_style():
    class Mul(cr.autograd.Function):
        @staticmethod
        def forward(x, y):
            return x * y

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, g):
            x, y = ctx.saved_tensors
            return g * y, g * x

    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = cr.tensor([3.0, -1.0], requires_grad=True)
    Mul.apply(x, y).sum().backward()
    assert x.grad.tolist() == [3.0, -1.0] and y.grad.tolist() == [1.0, 2.0]


def test_backward_with_inputs_accumulates_only_there():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    w = cr.tensor([3.0, 4.0], requires_grad=True)
    (x * w).sum().backward(inputs=[x])
    assert x.grad.tolist() == [3.0, 4.0] and w.grad is None
    cr.autograd.backward((x * w).sum(), inputs=(w,))
    assert w.grad.tolist() == [1.0, 2.0] and x.grad.tolist() == [3.0, 4.0]


def test_create_graph_in_one_thread_leaves_another_threads_backward_alone():
    """K's kernels are swapped while a recorded backward runs; an ordinary backward in another
    thread meanwhile still runs on raw arrays and gets the same gradients."""
    import threading

    errors = []

    def ordinary():
        try:
            for _ in range(200):
                a = cr.tensor([0.5, -1.0], dtype=cr.float64, requires_grad=True)
                (a.clamp(-0.7, 0.7) ** 2).sum().backward()
                assert a.grad.tolist() == [1.0, 0.0]  # clamp passes no gradient outside
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    thread = threading.Thread(target=ordinary)
    thread.start()
    for _ in range(100):
        z = cr.tensor([0.3, -0.2], dtype=cr.float64, requires_grad=True)
        (g,) = cr.autograd.grad((z.clamp(-1, 1) ** 3).sum(), z, create_graph=True)
        (h,) = cr.autograd.grad(g.sum(), z)
        np.testing.assert_allclose(h.numpy(), [1.8, -1.2])
    thread.join()
    assert not errors, errors[0]


# ------------------------------------------------------------------ review findings (regressions)
def _x_s(lib):
    x = lib.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=lib.float64, requires_grad=True)
    s = lib.tensor([5.0, 6.0], dtype=lib.float64, requires_grad=True)
    return x, s


def _views_then_inplace(lib, case):
    x, s = _x_s(lib)
    b = x * 1
    if case == "base_changed_after_transpose":
        v = b.t()
        b.mul_(3)
        out = (v * v).sum() + s.sum()
    elif case == "base_changed_after_view_of_view":
        v = b.view(4)
        w = v[1:]
        b.add_(s)
        out = (w * w).sum() + (v * x.reshape(4)).sum()
    elif case == "base_changed_after_diagonal":
        v = b.diagonal()
        b.mul_(s)
        out = (v * v).sum()
    elif case == "base_changed_after_index_of_index":
        w = b[0][1:]
        b.mul_(2)
        out = (w * x[1, 1]).sum() + s.sum()
    elif case == "inplace_on_index_of_index":
        w = b[0]
        v = w[1:]
        v.mul_(s[:1])  # y[0][1:] *= ...: the view of a view rebases b's history
        w.add_(s)
        out = (b * b).sum() + (w * w).sum() * s[1] + (v * x[1, :1]).sum()
    elif case == "inplace_on_index_of_index_of_index":
        w = b[:, 1:]
        v = w[1]
        v[0].sub_(s[0] * s[1])
        b[0].mul_(s[1])
        out = (b ** 3).sum() + (w * s[0]).sum() + (v * v).sum()
    elif case == "inplace_on_chunk":
        b.chunk(2)[1].mul_(s)  # PyTorch refuses this one; the rebased history is exact
        out = (b * b).sum()
    elif case == "copy_into_view_of_buffer":
        buf = lib.zeros(3, 2, dtype=lib.float64)
        buf[1].copy_(s)
        out = (buf * lib.cat([x, x[:1]])).sum()
    return [g.detach().numpy() for g in lib.autograd.grad(out, (x, s))]


VIEW_CASES = ["base_changed_after_transpose", "base_changed_after_view_of_view", "base_changed_after_diagonal",
              "base_changed_after_index_of_index", "copy_into_view_of_buffer", "inplace_on_index_of_index",
              "inplace_on_index_of_index_of_index"]


@requires_torch
@pytest.mark.parametrize("case", VIEW_CASES)
def test_views_follow_inplace_changes_as_pytorch(case):
    for ours, theirs in zip(_views_then_inplace(cr, case), _views_then_inplace(torch, case)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_inplace_on_chunk_rebases_the_base():
    gx, gs = _views_then_inplace(cr, "inplace_on_chunk")  # b = [x0, x1 * s]; d sum(b^2)
    np.testing.assert_allclose(gx, [[2.0, 4.0], [150.0, 288.0]])
    np.testing.assert_allclose(gs, [90.0, 192.0])


@pytest.mark.parametrize("make", [lambda b: b.view(4), lambda b: b.diagonal(), lambda b: b.t(),
                                  lambda b: b.unsqueeze(0)])
def test_inplace_on_reshaping_views_refused_not_wrong(make):
    x, s = _x_s(cr)
    with pytest.raises(RuntimeError, match=r"mul_: in-place operation on a view"):
        make(x * 1).mul_(3.0)
    buf = cr.zeros(2, 2, dtype=cr.float64)
    with pytest.raises(RuntimeError, match=r"add_: in-place operation on a view"):
        buf.view(4).add_(cr.cat([s, s]))
    with pytest.raises(RuntimeError, match=r"mul_: in-place operation on a view"):
        make(x * 1)[0].mul_(s[0])  # indexing a reshaping view: the chain to the base is not one of steps


def test_inplace_on_a_view_of_a_view_of_a_leaf_refused():
    x, s = _x_s(cr)
    with pytest.raises(RuntimeError, match=r"a view of a leaf Variable that requires grad \(shape \(2, 2\)\)"):
        x[0][1:].mul_(s[:1])


@requires_torch
def test_create_graph_through_index_add_backwards_matches_pytorch():
    def run(lib):
        import chainrule.nn.functional as crF
        F = crF if lib is cr else torch.nn.functional
        a = lib.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=lib.float64, requires_grad=True)
        w = lib.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=lib.float64, requires_grad=True)
        idx = lib.tensor([2, 0, 2])
        losses = [(a.index_select(1, idx) ** 2).sum(), (F.embedding(idx, w, padding_idx=0) ** 2).sum(),
                  (F.pad(a.unsqueeze(0), (1, 1), mode="replicate") ** 2).sum(), (a[[1, 1]] * a).sum()]
        out = []
        for loss, p in zip(losses, (a, w, a, a)):
            (g,) = lib.autograd.grad(loss, p, create_graph=True)
            out += [g.detach().numpy(), lib.autograd.grad((g * g).sum(), p)[0].numpy()]
        return out

    for ours, theirs in zip(run(cr), run(torch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_cumprod_second_derivative_with_a_zero():
    x = cr.tensor([2.0, 0.0, 3.0], dtype=cr.float64, requires_grad=True)
    (g,) = cr.autograd.grad(x.cumprod(0).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), [1.0, 2.0 + 6.0, 0.0])  # d/dx_k sum_j prod_{i<=j}
    np.testing.assert_allclose(cr.autograd.grad(g[0], x)[0].numpy(), [0.0, 4.0, 0.0])  # 1 + x1 + x1 x2
    assert cr.autograd.gradgradcheck(lambda t: t.cumprod(0), (x,))


def test_function_with_several_outputs_saving_one_differentiates_twice():
    class ExpAndDouble(cr.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            e = x.exp()
            ctx.save_for_backward(e)
            return e, x * 2

        @staticmethod
        def backward(ctx, ge, gd):
            (e,) = ctx.saved_tensors
            return ge * e + gd * 2

    x = cr.tensor([0.5], dtype=cr.float64, requires_grad=True)
    e, _ = ExpAndDouble.apply(x)
    (g,) = cr.autograd.grad((e * e).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 2 * np.exp(1.0))
    np.testing.assert_allclose(cr.autograd.grad(g.sum(), x)[0].numpy(), 4 * np.exp(1.0))


def test_einsum_refuses_mixed_dtypes():
    with pytest.raises(TypeError, match="einsum.*float64 and float32"):
        cr.einsum("ij,jk->ik", cr.ones(2, 3, dtype=cr.float64), cr.ones(3, 2))


def _second_review_cases(lib, case):
    x = lib.tensor([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]], dtype=lib.float64, requires_grad=True)
    w = lib.tensor([1.0, 2.0, 3.0, 4.0], dtype=lib.float64, requires_grad=True)
    a = x * 1
    if case == "view_of_changed_view":
        v = a[0]
        u = v[1:]
        v.mul_(w)
        out = (u * u).sum()
    elif case == "view_of_changed_view_unsqueezed":
        v = a[0]
        u = v.unsqueeze(0)
        v.add_(w)
        out = (u * u).sum()
    elif case == "retain_grad_after_inplace":
        a.retain_grad()
        a.mul_(3)
        out = (a * a).sum() + (w * 0).sum()
    elif case == "retain_grad_on_view_after_base_changed":
        v = a[1]
        v.retain_grad()
        a.add_(w)
        out = (v * v).sum()
    out.backward()
    retained = a.grad if case == "retain_grad_after_inplace" else (v.grad if "retain" in case else None)
    return [t.detach().numpy() for t in (x.grad, w.grad) if t is not None] + (
        [] if retained is None else [retained.detach().numpy()])


@requires_torch
@pytest.mark.parametrize("case", ["view_of_changed_view", "view_of_changed_view_unsqueezed",
                                  "retain_grad_after_inplace", "retain_grad_on_view_after_base_changed"])
def test_views_of_changed_views_and_retain_grad_match_pytorch(case):
    ours, theirs = _second_review_cases(cr, case), _second_review_cases(torch, case)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_view_made_under_no_grad_refuses_inplace_with_grad_on():
    x = cr.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    w = cr.tensor([5.0, 6.0], requires_grad=True)
    a = x * 1
    with cr.no_grad():
        v, t = a[0], a.t()
    with pytest.raises(RuntimeError, match=r"view of shape \(2,\) was created under no_grad"):
        v.mul_(w)
    with pytest.raises(RuntimeError, match="created under no_grad"):
        t.mul_(2.0)
    with cr.no_grad():
        v.mul_(2.0)  # under no_grad, as the optimizers do: allowed
    assert a.tolist() == [[2.0, 4.0], [3.0, 4.0]]


def test_int_tensor_refuses_an_inplace_result_that_requires_grad():
    b = cr.ones(3, 4, dtype=cr.int64)
    x = cr.ones(3, 4, requires_grad=True)
    with pytest.raises(TypeError, match=r"add_: result dtype float32 requires grad .* int64 \(shape \(3, 4\)\)"):
        b.add_(x * 0.6)
    assert b.tolist() == [[1] * 4] * 3


def _dirty_function_run(lib):
    """A Function that changes its input in place (ctx.mark_dirty) and returns it, on a
    non-leaf; a view of the changed tensor made before follows the change."""
    class ScaleInPlace(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, s):
            ctx.mark_dirty(x)
            ctx.save_for_backward(x, s)  # x as returned: the changed values
            return x.mul_(s)

        @staticmethod
        def backward(ctx, g):
            y, s = ctx.saved_tensors
            return g * s, (g * y / s).sum()

    a = lib.tensor([1.0, -2.0, 3.0], dtype=lib.float64, requires_grad=True)
    s = lib.tensor(1.5, dtype=lib.float64, requires_grad=True)
    b = a.exp() * 2
    view = b[1:]
    c = ScaleInPlace.apply(b, s)
    assert c is b
    ((c * c).sum() + (view ** 3).sum()).backward()
    return a.grad.numpy(), s.grad.numpy(), view.detach().numpy()


@requires_torch
def test_function_with_mark_dirty_matches_pytorch():
    for ours, theirs in zip(_dirty_function_run(cr), _dirty_function_run(torch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
