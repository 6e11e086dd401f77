"""Regressions found by review: each test is a bug that once existed (against PyTorch's
behaviour or API.md), kept so it stays fixed."""
import copy
import gc
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr

F = cr.nn.functional
PACKAGE_PARENT = str(Path(cr.__file__).resolve().parents[1])


def _env() -> dict:
    """This process's environment (sanitizer preloads included), importing the same chainrule."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, env.get("PYTHONPATH", "")) if p)
    return env


def _run_python(code: str, timeout: int = 60, **env: str) -> str:
    """Runs code in a fresh interpreter (a crash must not take pytest down); its stdout, once it
    exited cleanly."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(_env(), **env), timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.parametrize("pos_weight", [None, [2.0]])
def test_bce_with_logits_gradient_at_zero_logits_matches_torch(pos_weight, torch):
    # piecewise forms (relu, abs) give a subgradient at x = 0; the true one is sigmoid(0) - y
    values, targets = [0.0, 0.0, 0.0, 3.0, -50.0], [1.0, 0.0, 0.5, 1.0, 0.0]
    x = cr.tensor(values, requires_grad=True)
    y = cr.tensor(targets, requires_grad=True)
    tx = torch.tensor(values, requires_grad=True)
    ty = torch.tensor(targets, requires_grad=True)
    kw = {} if pos_weight is None else {"pos_weight": cr.tensor(pos_weight)}
    tkw = {} if pos_weight is None else {"pos_weight": torch.tensor(pos_weight)}
    F.binary_cross_entropy_with_logits(x, y, reduction="sum", **kw).backward()
    torch.nn.functional.binary_cross_entropy_with_logits(tx, ty, reduction="sum", **tkw).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_bce_gradient_is_finite_at_saturated_probabilities(torch):
    values = [20.0, -120.0, 0.3]
    x = cr.tensor(values, requires_grad=True)
    tx = torch.tensor(values, requires_grad=True)
    F.binary_cross_entropy(x.sigmoid(), cr.tensor([1.0, 0.0, 1.0])).backward()
    torch.nn.functional.binary_cross_entropy(tx.sigmoid(), torch.tensor([1.0, 0.0, 1.0])).backward()
    assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_read_only_numpy_memory_is_refused_not_written(tmp_path):
    path = tmp_path / "a.bin"
    np.zeros(4, np.float32).tofile(path)
    code = (f"import numpy as np, chainrule as cr\n"
            f"a = np.memmap({str(path)!r}, dtype=np.float32, mode='r')\n"
            f"try:\n    cr.from_numpy(a).add_(1)\nexcept ValueError as e:\n    print('refused', e)\n")
    stdout = _run_python(code)
    assert "refused" in stdout and "read-only" in stdout


def test_allocation_failure_inside_threaded_kernels_is_memory_error():
    # RLIMIT_AS leaves room for the result but not for the column reduction's accumulators
    code = ("import resource, chainrule as cr\n"
            "cr.set_num_threads(2)\n"
            "t = cr.ones(2, 50_000_000)\n"
            "size = int(open('/proc/self/statm').read().split()[0]) * 4096\n"
            "resource.setrlimit(resource.RLIMIT_AS, (size + 350 * 2**20, resource.RLIM_INFINITY))\n"
            "try:\n    t.sum(0)\n    print('ran')\nexcept MemoryError:\n    print('MemoryError')\n")
    stdout = _run_python(code, timeout=120)
    assert stdout.strip() in ("MemoryError", "ran")


def test_concurrent_backward_into_one_leaf_loses_nothing():
    w = cr.zeros(200_000, requires_grad=True)

    def work():
        for _ in range(50):
            (w * 1.0).sum().backward()
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert w.grad[0].item() == 200.0 and w.grad[-1].item() == 200.0


def test_in_place_ops_between_two_wrappers_of_one_array():
    a = np.arange(6.0)
    t1, t2 = cr.from_numpy(a), cr.from_numpy(a)
    t1[1:] = t2[:-1]
    np.testing.assert_array_equal(a, [0, 0, 1, 2, 3, 4])
    b = np.arange(6.0)
    cr.from_numpy(b).add_(cr.from_numpy(b[::-1]))
    np.testing.assert_array_equal(b, [5, 5, 5, 5, 5, 5])


def test_integer_arange_is_exact_beyond_float_precision():
    assert cr.arange(2**53, 2**53 + 4).tolist() == [2**53 + i for i in range(4)]
    assert cr.arange(10**18, 10**18 + 3).tolist() == [10**18, 10**18 + 1, 10**18 + 2]
    assert cr.arange(5, 0, -2).tolist() == [5, 3, 1]


def test_module_reassignment_keeps_buffers_and_guards_parameters():
    class Running(cr.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = cr.nn.Parameter(cr.ones(2))
            self.register_buffer("running", cr.zeros(2))

        def forward(self, x):
            self.running = self.running * 0.9 + 1
            return x * self.w
    m = Running()
    m(cr.ones(2))
    assert list(m.state_dict()) == ["w", "running"]
    np.testing.assert_allclose(m.state_dict()["running"].numpy(), [1.0, 1.0])
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = cr.ones(2)
    assert [n for n, _ in m.named_parameters()] == ["w"]


def test_max_along_dim_of_a_0d_tensor_backward():
    x = cr.tensor(3.0, requires_grad=True)
    values, indices = x.max(0)
    values.backward()
    assert x.grad.item() == 1.0 and indices.item() == 0


def test_slicing_at_int64_extremes_as_numpy():
    t = cr.arange(10)
    assert t[::2**63 - 1].tolist() == [0]
    assert t[:2**63].tolist() == list(range(10))
    assert t[-2**70:3].tolist() == [0, 1, 2]
    with pytest.raises(IndexError):
        t[2**63]


def test_setitem_with_an_ndarray_and_0d_bool_mask():
    t = cr.zeros(2, 3)
    t[0] = np.array([1.0, 2.0, 3.0])
    assert t.tolist() == [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]
    m = cr.arange(12).reshape(3, 4)
    assert m[cr.tensor(True)].shape == (1, 3, 4) and m[cr.tensor(False)].shape == (0, 3, 4)


def test_set_grad_enabled_as_a_call_a_block_and_a_decorator():
    try:
        cr.set_grad_enabled(False)
        assert not cr.is_grad_enabled()
    finally:
        cr.set_grad_enabled(True)
    assert cr.is_grad_enabled()
    with cr.set_grad_enabled(False):
        assert not cr.is_grad_enabled()
    assert cr.is_grad_enabled()

    @cr.set_grad_enabled(False)
    def inside():
        return cr.is_grad_enabled()
    assert cr.is_grad_enabled() and inside() is False and cr.is_grad_enabled()


def test_all_any_of_empty_and_zero_size_init_and_collate_fn():
    assert cr.zeros(0).all().item() is True and cr.zeros(0).any().item() is False
    assert cr.nn.Linear(0, 3).weight.shape == (3, 0)
    loader = cr.utils.data.DataLoader(cr.utils.data.TensorDataset(cr.arange(4)), batch_size=2,
                                      collate_fn=len)
    assert list(loader) == [2, 2]


def test_linear_promotes_and_names_itself_in_errors():
    assert F.linear(cr.ones(2, 3), cr.ones(4, 3), cr.ones(4, dtype=cr.float64)).dtype == cr.float64
    with pytest.raises(ValueError, match=r"linear: input of shape \(2, 3\) and weight of shape \(4, 2\)"):
        F.linear(cr.ones(2, 3), cr.ones(4, 2))


@pytest.mark.parametrize("kwargs", [{}, {"weight": True}, {"label_smoothing": 0.1},
                                    {"reduction": "sum", "weight": True}, {"ignore_index": 1}])
def test_cross_entropy_arguments_match_torch(kwargs, torch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = np.array([0, 3, 1, kwargs.get("ignore_index", -100), 2])  # one target ignored
    w = np.array([1.0, 2.0, 0.5, 3.0], np.float32)
    ckw = {k: (cr.tensor(w) if k == "weight" else v) for k, v in kwargs.items()}
    tkw = {k: (torch.tensor(w) if k == "weight" else v) for k, v in kwargs.items()}
    cx, tx = cr.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours = F.cross_entropy(cx, cr.tensor(y), **ckw)
    theirs = torch.nn.functional.cross_entropy(tx, torch.tensor(y), **tkw)
    ours.backward()
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    np.testing.assert_allclose(cx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_tensors_and_modules_pickle_and_deepcopy():
    model = cr.nn.Sequential(cr.nn.Linear(2, 2))
    clone = copy.deepcopy(model)
    assert type(clone[0].weight) is cr.nn.Parameter and clone[0].weight.requires_grad
    np.testing.assert_array_equal(clone[0].weight.numpy(), model[0].weight.numpy())
    with cr.no_grad():
        clone[0].weight.fill_(0.0)
    assert model[0].weight.numpy().any()  # a deep copy, not a view
    t = pickle.loads(pickle.dumps(cr.arange(3).float().requires_grad_()))
    assert t.tolist() == [0.0, 1.0, 2.0] and t.requires_grad
    gc.collect()


@pytest.mark.parametrize("n", [100_000, 1_000_001])
def test_bool_amax_amin_split_over_threads(n, restore_threads):
    # the per-thread partials of a bool reduction once lived in a std::vector<bool> (packed bits)
    cr.set_num_threads(2)
    a = np.zeros(n, bool)
    a[-1] = True
    assert cr.tensor(a).amax().item() is True and cr.tensor(a).amin().item() is False
    assert cr.tensor(~a).amin().item() is False and cr.tensor(~a).amax().item() is True


@pytest.fixture
def restore_threads():
    before = cr.get_num_threads()
    yield
    cr.set_num_threads(before)


def test_sums_are_accurate_whatever_the_vectorization():
    # a constant makes every rounding error go the same way: sequential float sums drift
    a = np.full(10_000_000, 0.1, np.float32)
    want = a.astype(np.float64).sum()
    assert abs(cr.tensor(a).sum().item() - want) <= 1e-7 * want
    cols = cr.tensor(a.reshape(-1, 10)).sum(0).numpy().astype(np.float64)
    np.testing.assert_allclose(cols, a.reshape(-1, 10).astype(np.float64).sum(0), rtol=5e-7)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_on_a_non_contiguous_parameter_matches_torch(name, torch):
    w0 = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    p = cr.nn.Parameter(cr.tensor(w0.T.copy()).T)  # a transposed view: not contiguous
    tp = torch.nn.Parameter(torch.tensor(w0))
    assert not p.is_contiguous()
    ours, theirs = getattr(cr.optim, name)([p], lr=0.1), getattr(torch.optim, name)([tp], lr=0.1)
    for _ in range(5):
        ours.zero_grad()
        theirs.zero_grad()
        (p * p * p).sum().backward()
        (tp * tp * tp).sum().backward()
        ours.step()
        theirs.step()
    np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_grad_from_a_hook_owns_its_memory():
    # a hook's result wrapping foreign memory (NumPy, DLPack) must be copied into .grad
    a = np.full(3, 7, np.float32)
    x = cr.ones(3, requires_grad=True)
    x.register_hook(lambda g: cr.from_numpy(a))
    (x * 2).sum().backward()
    a[:] = -1
    assert x.grad.tolist() == [7.0, 7.0, 7.0]
    torch = pytest.importorskip("torch")  # DLPack memory from another library
    b = torch.full((3,), 7.0)
    y = cr.ones(3, requires_grad=True)
    y.register_hook(lambda g: cr.from_dlpack(b))
    (y * 2).sum().backward()
    b[:] = -1
    assert y.grad.tolist() == [7.0, 7.0, 7.0]


def test_tensor_subclass_without_data_raises_type_error():
    code = ("import chainrule as cr\n"
            "F = cr.nn.functional\n"
            "class MyT(cr.Tensor):\n    def __init__(self):\n        pass\n"
            "t = MyT()\n"
            "for f in (lambda: t.sum(), lambda: t @ t, lambda: F.linear(t, t),\n"
            "          lambda: t + t, lambda: t.exp()):\n"
            "    try:\n        f()\n        print('no error')\n"
            "    except TypeError:\n        print('TypeError')\n")
    stdout = _run_python(code)
    assert stdout.split() == ["TypeError"] * 5


def test_autograd_fields_are_type_checked():
    x = cr.ones(3, requires_grad=True)
    y = x * 2
    with pytest.raises(TypeError):
        y.grad_fn = x
    with pytest.raises(TypeError):
        y.grad_fn.retained = 5
    with pytest.raises(TypeError):
        x._grad = 5
    with pytest.raises(TypeError):
        x._hooks = 5
    y.grad_fn.retained = None
    y.grad_fn = None
    x._grad = None
    x._hooks = None
    assert y.grad_fn is None and x.grad is None


def test_keepdim_with_an_ambiguous_truth_value_is_value_error():
    with pytest.raises(ValueError, match="ambiguous"):
        cr.ones(2, 3).sum(0, keepdim=np.array([1, 2]))


def test_autograd_grad_with_a_repeated_input():
    x = cr.ones(3, requires_grad=True)
    g1, g2 = cr.autograd.grad((x * 3).sum(), (x, x))
    assert g1 is not None and g2 is not None
    assert g1.tolist() == g2.tolist() == [3.0, 3.0, 3.0]


def test_linear_with_zero_in_or_out_features_backward():
    x = cr.ones(3, 0, requires_grad=True)
    w = cr.ones(4, 0, requires_grad=True)
    b = cr.arange(4).float().requires_grad_()
    out = F.linear(x, w, b)
    assert out.tolist() == [[0.0, 1.0, 2.0, 3.0]] * 3
    out.sum().backward()
    assert x.grad.shape == (3, 0) and w.grad.shape == (4, 0)
    assert b.grad.tolist() == [3.0] * 4
    x = cr.ones(3, 2, requires_grad=True)
    w = cr.ones(0, 2, requires_grad=True)
    out = F.linear(x, w)
    assert out.shape == (3, 0)
    out.sum().backward()
    assert x.grad.tolist() == [[0.0, 0.0]] * 3 and w.grad.shape == (0, 2)


def test_run_backward_rejects_non_tensor_roots():
    code = ("import chainrule as cr\n"
            "try:\n    cr._core.run_backward((5,), (cr.ones(1)._data,), False)\n"
            "    print('no error')\n"
            "except TypeError:\n    print('TypeError')\n")
    stdout = _run_python(code)
    assert stdout.strip() == "TypeError"


@pytest.mark.parametrize("op", [lambda x: x * 2.0, lambda x: x / 2.0], ids=["mul", "div"])
def test_scaling_by_a_number_backpropagates_twice_without_retain_graph(op):
    # as in PyTorch: multiplying by a number saves no tensor, so nothing is freed
    x = cr.ones(3, requires_grad=True)
    once = op(cr.ones(3)).tolist()
    y = op(x).sum()
    y.backward()
    y.backward()
    assert x.grad.tolist() == [2 * v for v in once]


def test_reinitializing_a_tensor_while_kernels_run_does_not_crash():
    code = ("import threading, time, numpy as np, chainrule as cr\n"
            "n = 4_000_000\n"
            "t = cr.Tensor(np.ones(n), dtype=cr.float64, requires_grad=True)\n"
            "stop = time.monotonic() + 1.0\n"
            "def reinit():\n"
            "    i = 0\n"
            "    while time.monotonic() < stop:\n"
            "        t.__init__(np.ones(n + i % 2), dtype=cr.float64, requires_grad=True)\n"
            "        i += 1\n"
            "th = threading.Thread(target=reinit)\n"
            "th.start()\n"
            "while time.monotonic() < stop:\n"
            "    t.log()\n"
            "    (t * t).sum()\n"
            "th.join()\n"
            "print('ok')\n")
    stdout = _run_python(code, timeout=120)
    assert stdout.strip() == "ok"


def test_data_is_cached_and_metadata_needs_no_data_object():
    x = cr.ones(2, 3, requires_grad=True)
    for t in (x * 2, x.exp(), x @ x.T, x.sum(1), x + 1):
        shape = tuple(t.shape)
        assert t.dtype == cr.float32 and t.ndim == len(shape)
        assert t.numel() == int(np.prod(shape))
        assert t._data is t._data
    assert (x @ x.T).shape == (2, 2) and (x.sum(1)).shape == (2,)


def test_garbage_collection_during_an_op_cannot_free_its_operands():
    """Recording a node allocates a Python object, which may run the garbage collector; a
    finalizer that rebinds an operand's array then must not leave the op reading freed memory.
    The op sees the old array or the new one, never garbage, and its gradient agrees."""
    x = cr.ones(4, requires_grad=True)
    w = cr.full((4,), 3.0)

    class Cycle:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            w._data = cr.zeros(4)._data

    threshold = gc.get_threshold()
    gc.disable()
    Cycle()
    gc.set_threshold(1)
    gc.enable()
    try:
        y = x * w
        y.sum().backward()
    finally:
        gc.set_threshold(*threshold)
    assert y.tolist() in ([3.0] * 4, [0.0] * 4)
    assert x.grad.tolist() == y.tolist()


def test_float_sums_give_the_same_bits_under_every_isa():
    """Sums keep 16 float lanes whatever the vector width, and the columns past the last full
    vector are added in the vectors' order: every ISA gives the same bits."""
    code = ("import numpy as np, chainrule as cr\n"
            "x = (np.random.default_rng(0).standard_normal((37, 29)) * np.logspace(0, 6, 29)).astype(np.float32)\n"
            "t = cr.tensor(x)\n"
            "print(t.sum(0).numpy().tobytes().hex(), t.sum(1).numpy().tobytes().hex(), t.sum().item())\n")
    outputs = set()
    for isa in ("generic", "avx2", "avx512"):
        if not cr._core.cpu_supports(isa):
            continue
        outputs.add(_run_python(code, timeout=120, CHAINRULE_ISA=isa))
    assert len(outputs) == 1
