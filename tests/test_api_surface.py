"""Every name /work/shared/API.md lists exists with the right kind (callable, class, dtype,
attribute), PyTorch's argument names and defaults where API.md adopts them, and `import
chainrule` stays light (no torch, under a second)."""
from __future__ import annotations

import inspect
import io
import math
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F



# ------------------------------------------------------------------ package
def test_version_is_a_dotted_string():
    assert isinstance(cr.__version__, str)
    parts = cr.__version__.split(".")
    assert len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit()


def test_show_config_prints_version_compiler_threads_and_simd():
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        result = cr.show_config()
    assert result is None
    text = buffer.getvalue()
    assert cr.__version__ in text
    lower = text.lower()
    assert "compiler" in lower
    assert "thread" in lower
    assert "simd" in lower or "avx" in lower or "generic" in lower
    assert str(cr.get_num_threads()) in text
    assert "L2" in text  # the cache sizes the GEMM blocks for


def test_set_and_get_num_threads():
    before = cr.get_num_threads()
    assert isinstance(before, int) and before >= 1
    try:
        cr.set_num_threads(1)
        assert cr.get_num_threads() == 1
        cr.set_num_threads(2)
        assert cr.get_num_threads() == 2
        a = cr.randn(300, 200)
        np.testing.assert_allclose((a @ a.T).numpy(), a.numpy() @ a.numpy().T, rtol=1e-4,
                                   atol=1e-3)
    finally:
        cr.set_num_threads(before)
    assert cr.get_num_threads() == before


# ------------------------------------------------------------------ dtypes
@pytest.mark.parametrize("name,alias,np_dtype", [("float32", "float", np.float32),
                                                  ("float64", "double", np.float64),
                                                  ("int64", "long", np.int64),
                                                  ("bool", None, np.bool_)])
def test_dtypes_and_aliases(name, alias, np_dtype):
    dt = getattr(cr, name)
    t = cr.zeros(2, dtype=dt)
    assert t.dtype == dt
    assert t.numpy().dtype == np.dtype(np_dtype)
    if alias is not None:
        assert getattr(cr, alias) == dt
        assert cr.zeros(2, dtype=getattr(cr, alias)).dtype == dt


def test_dtypes_are_distinct_and_float32_is_default():
    dts = [cr.float32, cr.float64, cr.int64, cr.bool]
    assert len({repr(d) for d in dts}) == 4
    assert all(a == b for a, b in zip(dts, dts))
    assert all(dts[i] != dts[j] for i in range(4) for j in range(4) if i != j)
    assert cr.zeros(1).dtype == cr.float32
    assert cr.tensor(1.5).dtype == cr.float32
    assert cr.tensor(1).dtype == cr.int64
    assert cr.tensor(True).dtype == cr.bool


@pytest.mark.parametrize("method,dtype", [("float", "float32"), ("double", "float64"),
                                          ("long", "int64"), ("bool", "bool")])
def test_cast_methods(method, dtype):
    t = cr.tensor([0.0, 1.5, -2.0])
    out = getattr(t, method)()
    assert out.dtype == getattr(cr, dtype)
    assert t.to(getattr(cr, dtype)).dtype == getattr(cr, dtype)


# ------------------------------------------------------------------ creation
CREATION = {
    "tensor": lambda **kw: cr.tensor([[1.0, 2.0]], **kw),
    "zeros": lambda **kw: cr.zeros(2, 3, **kw),
    "ones": lambda **kw: cr.ones((2, 3), **kw),
    "empty": lambda **kw: cr.empty(2, 3, **kw),
    "full": lambda **kw: cr.full((2, 3), 0.5, **kw),
    "eye": lambda **kw: cr.eye(3, **kw),
    "arange": lambda **kw: cr.arange(0, 6, 2, **kw),
    "linspace": lambda **kw: cr.linspace(0.0, 1.0, 5, **kw),
    "rand": lambda **kw: cr.rand(2, 3, **kw),
    "randn": lambda **kw: cr.randn(2, 3, **kw),
    "randint": lambda **kw: cr.randint(0, 5, (2, 3), **kw),
    "zeros_like": lambda **kw: cr.zeros_like(cr.ones(2, 3), **kw),
    "ones_like": lambda **kw: cr.ones_like(cr.ones(2, 3), **kw),
}
CREATION_IDS = [pytest.param(n) for n in CREATION]


@pytest.mark.parametrize("name", list(CREATION))
def test_creation_functions_exist_and_return_tensors(name):
    assert callable(getattr(cr, name))
    t = CREATION[name]()
    assert isinstance(t, cr.Tensor)
    assert isinstance(t.shape, tuple) and all(type(s) is int for s in t.shape)


def test_creation_dtypes_and_shapes():
    assert cr.zeros(2, 3).shape == cr.zeros((2, 3)).shape == (2, 3)
    assert cr.full((2,), 1.5).dtype == cr.float32
    assert cr.full((2,), 3).dtype == cr.int64
    assert cr.full((2,), True).dtype == cr.bool
    assert cr.arange(5).dtype == cr.int64 and cr.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert cr.arange(0, 1, 0.5).dtype == cr.float32
    assert cr.rand(3).dtype == cr.float32 and cr.randn(3).dtype == cr.float32
    assert cr.randint(0, 4, (5,)).dtype == cr.int64
    assert cr.eye(3).numpy().tolist() == np.eye(3).tolist()
    assert cr.zeros(2, dtype=cr.float64, requires_grad=True).requires_grad
    assert cr.linspace(0, 1, 3).tolist() == [0.0, 0.5, 1.0]
    a = np.arange(3.0)
    shared = cr.from_numpy(a)
    a[0] = 9.0
    assert shared.numpy()[0] == 9.0 and shared.dtype == cr.float64
    assert callable(cr.manual_seed)


@pytest.mark.parametrize("name", CREATION_IDS)
def test_device_keyword_cpu_accepted_and_other_device_rejected(name):
    t = CREATION[name](device="cpu")
    assert t.device == "cpu"
    with pytest.raises(ValueError):
        CREATION[name](device="cuda")


def test_tensor_device_porting_helpers():
    t = cr.ones(2)
    assert t.device == "cpu"
    assert isinstance(t.to("cpu"), cr.Tensor) and t.to("cpu").device == "cpu"
    assert isinstance(t.cpu(), cr.Tensor)
    np.testing.assert_array_equal(t.cpu().numpy(), t.numpy())
    with pytest.raises(ValueError):
        t.to("cuda")


# ------------------------------------------------------------------ Tensor
TENSOR_METHODS = """numel item tolist numpy __array__ __len__ __repr__ __float__
    __add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ __pow__ __rpow__
    __neg__ __matmul__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__
    __iadd__ __isub__ __imul__ __itruediv__
    exp log sqrt abs sigmoid tanh relu clamp softmax log_softmax sin cos pow square
    sum mean amax amin max min argmax argmin
    reshape view transpose permute unsqueeze squeeze flatten expand contiguous is_contiguous
    __getitem__ add_ sub_ mul_ div_ zero_ fill_ copy_
    backward detach requires_grad_ register_hook retain_grad
    float double long bool to cpu
    mm bmm view_as reshape_as expand_as new_zeros new_ones new_full new_empty new_tensor
    masked_fill masked_fill_ chunk split unbind narrow diagonal flip std var norm""".split()


@pytest.mark.parametrize("name", TENSOR_METHODS)
def test_tensor_method_exists(name):
    assert callable(getattr(cr.Tensor, name))
    assert callable(getattr(cr.ones(2, 2), name))


def test_tensor_class_and_attributes():
    assert isinstance(cr.Tensor, type)
    t = cr.tensor([[0.5, 1.0]], requires_grad=True)
    assert isinstance(t, cr.Tensor)
    assert t.shape == (1, 2) and type(t.shape) is tuple      # no Size class
    assert t.dtype == cr.float32
    assert t.ndim == 2
    assert t.requires_grad is True
    assert t.grad is None
    assert t.is_leaf is True
    assert t.grad_fn is None
    assert len(t) == 1 and t.numel() == 2
    assert t.device == "cpu"
    y = (t * 2).sum()
    assert y.grad_fn is not None and y.is_leaf is False
    assert repr(t) == "tensor([[0.5000, 1.0000]], requires_grad=True)"
    assert t.T.shape == (2, 1)


def test_tensor_conversions():
    t = cr.tensor([[1.5, 2.0]])
    assert t.tolist() == [[1.5, 2.0]]
    assert float(cr.tensor(2.5)) == 2.5 and cr.tensor(3).item() == 3
    assert isinstance(t.numpy(), np.ndarray)
    np.testing.assert_array_equal(np.asarray(t), [[1.5, 2.0]])
    r = cr.tensor([1.0], requires_grad=True)
    assert isinstance(r.numpy(), np.ndarray)


def test_requires_grad_settable_on_leaves_and_grad_assignable():
    t = cr.zeros(3)
    t.requires_grad = True
    assert t.requires_grad
    t.grad = cr.ones(3)
    np.testing.assert_array_equal(t.grad.numpy(), [1.0, 1.0, 1.0])
    t.grad = None
    assert t.grad is None
    with pytest.raises(TypeError):
        cr.zeros(3, dtype=cr.int64).requires_grad_(True)


def test_tensor_methods_take_pytorch_keywords():
    t = cr.tensor([[1.0, -2.0, 3.0], [4.0, 0.5, -6.0]])
    assert t.sum(dim=1, keepdim=True).shape == (2, 1)
    assert t.mean(dim=(0, 1)).shape == ()
    assert t.amax(dim=-1, keepdim=False).tolist() == [3.0, 4.0]
    assert t.argmax(dim=1, keepdim=True).tolist() == [[2], [0]]
    assert t.argmin().item() == 5
    assert t.max(dim=0, keepdim=True).values.shape == (1, 3)
    assert t.clamp(min=0.0).tolist() == [[1.0, 0.0, 3.0], [4.0, 0.5, 0.0]]
    assert t.clamp(max=0.0).tolist() == [[0.0, -2.0, 0.0], [0.0, 0.0, -6.0]]
    assert t.softmax(dim=1).shape == (2, 3) and t.log_softmax(dim=0).shape == (2, 3)
    assert t.reshape(3, 2).shape == (3, 2) and t.reshape((-1,)).shape == (6,)
    assert t.unsqueeze(0).squeeze().shape == (2, 3)
    assert t[None].flatten(start_dim=1).shape == (1, 6)
    assert t[None].flatten(end_dim=1).shape == (2, 3)
    assert t.transpose(0, 1).shape == (3, 2) and t.permute(1, 0).shape == (3, 2)
    assert t[:1].expand(4, 3).shape == (4, 3)
    params = inspect.signature(cr.Tensor.backward).parameters
    assert list(params)[1:3] == ["gradient", "retain_graph"]
    assert params["gradient"].default is None and not params["retain_graph"].default


def test_max_min_with_dim_return_named_tuple():
    t = cr.tensor([[1.0, 5.0], [7.0, 2.0]])
    for op, vals, idx in (("max", [5.0, 7.0], [1, 0]), ("min", [1.0, 2.0], [0, 1])):
        r = getattr(t, op)(1)
        assert isinstance(r, tuple) and len(r) == 2
        assert r.values.tolist() == vals and r.indices.tolist() == idx
        assert r[0].tolist() == vals and r[1].tolist() == idx
        whole = getattr(t, op)()
        assert isinstance(whole, cr.Tensor) and whole.shape == ()


def test_operator_spelling_forms():
    a, b = cr.tensor([1.0, 4.0]), cr.tensor([2.0, 2.0])
    assert (1 - a).tolist() == [0.0, -3.0]
    assert (2 * a).tolist() == [2.0, 8.0]
    assert (a ** 2).tolist() == [1.0, 16.0]
    assert (-a).tolist() == [-1.0, -4.0]
    assert (a @ b).item() == 10.0
    assert (a > b).dtype == cr.bool and (a > b).tolist() == [False, True]
    assert a.pow(2).tolist() == [1.0, 16.0] and a.square().tolist() == [1.0, 16.0]


# ------------------------------------------------------------------ package-level functions
PACKAGE_FUNCTIONS = """exp log sqrt abs sigmoid tanh relu clamp softmax log_softmax
    maximum minimum where sum mean amax amin max min argmax argmin matmul sin cos
    add sub mul div pow neg eq ne lt le gt ge cat stack manual_seed no_grad is_grad_enabled
    save load linspace mm bmm masked_fill chunk split unbind narrow diagonal std var std_mean
    var_mean norm einsum flip""".split()


@pytest.mark.parametrize("name", PACKAGE_FUNCTIONS)
def test_package_function_exists(name):
    assert callable(getattr(cr, name))


BINARY_NAMES = [("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                ("div", np.divide), ("pow", np.power), ("eq", np.equal), ("ne", np.not_equal),
                ("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                ("ge", np.greater_equal), ("maximum", np.maximum), ("minimum", np.minimum)]


@pytest.mark.parametrize("name,npf", BINARY_NAMES, ids=[n for n, _ in BINARY_NAMES])
def test_package_binary_functions_compute_their_op(name, npf):
    a = np.array([[0.5, 2.0, 3.0]], dtype=np.float32)
    b = np.array([[1.0], [2.0]], dtype=np.float32)
    got = getattr(cr, name)(cr.tensor(a), cr.tensor(b))
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got.numpy(), npf(a, b), rtol=1e-6)


UNARY_NAMES = [("exp", np.exp), ("log", np.log), ("sqrt", np.sqrt), ("abs", np.abs),
               ("sigmoid", lambda x: 1 / (1 + np.exp(-x))), ("tanh", np.tanh),
               ("relu", lambda x: np.maximum(x, 0)), ("neg", np.negative), ("sin", np.sin),
               ("cos", np.cos)]


@pytest.mark.parametrize("name,npf", UNARY_NAMES, ids=[n for n, _ in UNARY_NAMES])
def test_package_unary_functions_match_methods(name, npf):
    x = np.array([0.25, 1.5, 3.0], dtype=np.float32)
    got = getattr(cr, name)(cr.tensor(x))
    np.testing.assert_allclose(got.numpy(), npf(x), rtol=1e-6)
    if name != "neg":
        np.testing.assert_array_equal(getattr(cr.tensor(x), name)().numpy(), got.numpy())


def test_package_reductions_and_misc_functions():
    x = cr.tensor([[1.0, -2.0, 3.0], [4.0, 0.5, -6.0]])
    assert cr.sum(x, 1).tolist() == [2.0, -1.5]
    assert cr.mean(x, dim=0).tolist() == [2.5, -0.75, -1.5]
    assert cr.amax(x, 1).tolist() == [3.0, 4.0] and cr.amin(x).item() == -6.0
    assert cr.max(x).item() == 4.0 and cr.min(x, 1).indices.tolist() == [1, 2]
    assert cr.argmax(x).item() == 3 and cr.argmin(x, 0).tolist() == [0, 0, 1]
    assert cr.clamp(x, min=0.0, max=2.0).tolist() == [[1.0, 0.0, 2.0], [2.0, 0.5, 0.0]]
    assert cr.where(x > 0, x, cr.zeros_like(x)).tolist() == [[1.0, 0.0, 3.0], [4.0, 0.5, 0.0]]
    assert cr.matmul(x, x.T).shape == (2, 2)
    assert cr.cat([x, x], 1).shape == (2, 6) and cr.stack([x, x]).shape == (2, 2, 3)
    np.testing.assert_allclose(cr.softmax(x, 1).sum(1).numpy(), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(cr.log_softmax(x, 1).exp().sum(1).numpy(), [1.0, 1.0], rtol=1e-6)


# ------------------------------------------------------------------ autograd
def test_autograd_names():
    assert callable(cr.autograd.grad)
    assert callable(cr.autograd.gradcheck)
    assert isinstance(cr.autograd.GradcheckError, type)
    assert issubclass(cr.autograd.GradcheckError, RuntimeError)
    sig = inspect.signature(cr.autograd.grad)
    assert list(sig.parameters)[:4] == ["outputs", "inputs", "grad_outputs", "retain_graph"]
    sig = inspect.signature(cr.autograd.gradcheck)
    assert sig.parameters["eps"].default == 1e-6
    assert sig.parameters["atol"].default == 1e-5
    assert sig.parameters["rtol"].default == 1e-3


def test_no_grad_as_context_and_decorator():
    assert cr.is_grad_enabled() is True
    with cr.no_grad():
        assert cr.is_grad_enabled() is False

    @cr.no_grad()
    def f():
        return cr.is_grad_enabled()

    assert f() is False and cr.is_grad_enabled() is True


# ------------------------------------------------------------------ nn
NN_CLASSES = ["Module", "Parameter", "Linear", "Sequential", "ReLU", "Sigmoid", "Tanh", "Softmax",
              "Identity", "Dropout", "MSELoss", "BCELoss", "BCEWithLogitsLoss",
              "CrossEntropyLoss"]


@pytest.mark.parametrize("name", NN_CLASSES)
def test_nn_class_exists(name):
    cls = getattr(nn, name)
    assert isinstance(cls, type)
    if name not in ("Module", "Parameter"):
        assert issubclass(cls, nn.Module)
    if name == "Parameter":
        assert issubclass(cls, cr.Tensor)


@pytest.mark.parametrize("name", ["forward", "__call__", "parameters", "named_parameters",
                                  "children", "zero_grad", "train", "eval", "state_dict",
                                  "load_state_dict"])
def test_module_methods(name):
    assert callable(getattr(nn.Module, name))


def test_module_training_attribute_and_layer_constructors():
    lin = nn.Linear(3, 2)
    assert lin.training is True and lin.weight.shape == (2, 3) and lin.bias.shape == (2,)
    assert nn.Linear(3, 2, bias=False).bias is None
    seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    assert len(seq) == 2 and isinstance(seq[0], nn.Linear)
    assert nn.Softmax(dim=1)(cr.zeros(2, 4)).tolist() == [[0.25] * 4] * 2
    assert nn.Identity()(cr.ones(2)).tolist() == [1.0, 1.0]
    assert nn.Dropout(p=0.25).eval()(cr.ones(3)).tolist() == [1.0, 1.0, 1.0]
    for loss in ("MSELoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss"):
        for reduction in ("mean", "sum", "none"):
            getattr(nn, loss)(reduction=reduction)
        assert inspect.signature(getattr(nn, loss)).parameters["reduction"].default == "mean"


FUNCTIONAL = ["linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "dropout",
              "mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
              "cross_entropy", "pad"]


@pytest.mark.parametrize("name", FUNCTIONAL)
def test_functional_names_and_pytorch_argument_names(name):
    fn = getattr(F, name)
    assert callable(fn)
    params = inspect.signature(fn).parameters
    assert list(params)[0] == "input"
    if name in ("mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                "cross_entropy"):
        assert "target" in params and params["reduction"].default == "mean"
    if name == "dropout":
        assert params["p"].default == 0.5 and params["training"].default is True
    if name == "linear":
        assert list(params)[:3] == ["input", "weight", "bias"]
    if name in ("softmax", "log_softmax"):
        assert "dim" in params
    if name == "pad":
        assert list(params) == ["input", "pad", "mode", "value"]
        assert params["mode"].default == "constant" and params["value"].default is None


def test_functional_called_with_pytorch_keywords():
    x = cr.tensor([[0.2, -0.4]])
    w = cr.tensor([[1.0, 2.0]])
    assert F.linear(input=x, weight=w, bias=None).shape == (1, 1)
    assert F.softmax(input=x, dim=1).shape == (1, 2)
    assert F.log_softmax(x, dim=-1).shape == (1, 2)
    assert F.dropout(x, p=0.5, training=False).tolist() == x.tolist()
    assert F.mse_loss(input=x, target=x, reduction="sum").item() == 0.0
    assert F.cross_entropy(input=x, target=cr.tensor([1]), reduction="none").shape == (1,)
    assert F.binary_cross_entropy(input=x.sigmoid(), target=cr.ones(1, 2)).shape == ()
    assert F.binary_cross_entropy_with_logits(input=x, target=cr.ones(1, 2),
                                              reduction="none").shape == (1, 2)


INIT = {"uniform_": ["a", "b"], "normal_": ["mean", "std"], "zeros_": [], "ones_": [],
        "constant_": ["val"], "xavier_uniform_": ["gain"], "xavier_normal_": ["gain"],
        "kaiming_uniform_": ["a", "mode", "nonlinearity"],
        "kaiming_normal_": ["a", "mode", "nonlinearity"]}


@pytest.mark.parametrize("name", list(INIT))
def test_init_names_arguments_and_defaults_match_torch(name):
    fn = getattr(nn.init, name)
    assert callable(fn)
    params = inspect.signature(fn).parameters
    assert list(params)[0] == "tensor"
    for arg in INIT[name]:
        assert arg in params, f"{name} lacks {arg}"
    torch = pytest.importorskip("torch")
    th_params = inspect.signature(getattr(torch.nn.init, name)).parameters
    for arg in INIT[name]:
        if th_params[arg].default is not inspect.Parameter.empty:
            assert params[arg].default == th_params[arg].default, f"{name}({arg}=...)"


# ------------------------------------------------------------------ optim
@pytest.mark.parametrize("name,defaults", [
    ("SGD", dict(momentum=0, dampening=0, weight_decay=0, nesterov=False)),
    ("Adam", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)),
    ("AdamW", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)),
])
def test_optimizers_signatures_and_methods(name, defaults):
    cls = getattr(cr.optim, name)
    assert isinstance(cls, type)
    params = inspect.signature(cls).parameters
    assert list(params)[:2] == ["params", "lr"]
    for key, value in defaults.items():
        assert params[key].default == value, f"{name}({key}=...)"
    for method in ("step", "zero_grad", "state_dict", "load_state_dict"):
        assert callable(getattr(cls, method))
    p = nn.Parameter(cr.ones(2))
    opt = cls([p], lr=0.1)
    (p * p).sum().backward()
    opt.step()
    assert not np.array_equal(p.numpy(), [1.0, 1.0])
    opt.zero_grad()
    assert p.grad is None
    assert isinstance(opt.state_dict(), dict)


# ------------------------------------------------------------------ saving and data
def test_save_load_and_data_names(tmp_path):
    assert callable(cr.save) and callable(cr.load)
    path = tmp_path / "x.safetensors"
    cr.save({"a": cr.ones(2)}, str(path))
    assert cr.load(str(path))["a"].tolist() == [1.0, 1.0]
    assert isinstance(cr.utils.data.TensorDataset, type)
    assert isinstance(cr.utils.data.DataLoader, type)
    params = inspect.signature(cr.utils.data.DataLoader).parameters
    assert list(params)[0] == "dataset"
    assert params["batch_size"].default == 1
    assert params["shuffle"].default is False
    assert params["drop_last"].default is False


# ------------------------------------------------------------------ porting: in-place operators
def test_in_place_operators_keep_identity():
    t = cr.tensor([1.0, 2.0])
    original = t
    t += 1
    t -= 0.5
    t *= 2
    t /= 4
    assert t is original
    assert t.tolist() == [0.75, 1.25]


# ------------------------------------------------------------------ import cost
def test_import_is_light_and_fast():
    package_parent = str(Path(cr.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [package_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    code = (
        "import sys, time\n"
        "t0 = time.perf_counter()\n"
        "import chainrule\n"
        "elapsed = time.perf_counter() - t0\n"
        "print(repr(chainrule.__file__))\n"
        "print('torch' in sys.modules, any(m.startswith('torch.') for m in sys.modules))\n"
        "print(elapsed)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    file_line, torch_line, time_line = proc.stdout.strip().splitlines()[-3:]
    assert Path(eval(file_line)).resolve() == Path(cr.__file__).resolve()
    assert torch_line == "False False"
    elapsed = float(time_line)
    assert math.isfinite(elapsed) and elapsed < 1.0, f"import chainrule took {elapsed:.2f} s"
