"""The porting surface beyond the tensor ops (issue 17): devices that tell the truth (only the
CPU), Variable and .data, format(), the activations and losses added to the op table, the
module containers, gradient clipping, RMSprop, Adagrad, the learning-rate schedulers and
random_split: each against PyTorch (when installed) and NumPy or a hand-computed value."""
from __future__ import annotations

import math
import pickle
import warnings

import chainrule as cr
import chainrule.nn.functional as F
import numpy as np
import pytest


def _np(t):
    return t.detach().numpy()


# ---------------------------------------------------------------- devices
def test_device_spellings_match_pytorch(torch):
    for args in (("cpu",), ("cpu:0",), ("cpu", 0), ("cpu:3",)):
        ours, theirs = cr.device(*args), torch.device(*args)
        assert (repr(ours), str(ours), ours.type, ours.index) == (
            repr(theirs), str(theirs), theirs.type, theirs.index)
    assert cr.device("cpu") == cr.device("cpu") and cr.device("cpu") != cr.device("cpu:0")
    assert cr.device(cr.device("cpu:0")) == cr.device("cpu", 0)
    assert len({cr.device("cpu"), cr.device("cpu"), cr.device("cpu:0")}) == 2
    assert pickle.loads(pickle.dumps(cr.device("cpu:0"))) == cr.device("cpu:0")
    # a deliberate extension: a string compares by spelling (PyTorch says False)
    assert cr.device("cpu") == "cpu" and torch.device("cpu") != "cpu"
    with pytest.raises(AttributeError):
        cr.device("cpu").type = "cuda"


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "mps", "xpu:1", 0])
def test_other_devices_raise_saying_cpu_only(spec):
    with pytest.raises(RuntimeError, match="CPU only") as info:
        cr.device(spec)
    assert isinstance(info.value, ValueError)  # API.md's error for an unavailable device
    for make in (lambda: cr.zeros(2, device=spec), lambda: cr.ones(2).to(spec),
                 lambda: cr.nn.Linear(2, 2).to(spec), lambda: cr.set_default_device(spec)):
        with pytest.raises(RuntimeError, match="CPU only"):
            make()


def test_unknown_device_strings_raise_as_pytorch(torch):
    for spec in ("gpu", "cpu:x", "cpu:-1"):
        with pytest.raises(RuntimeError):
            torch.device(spec)
        with pytest.raises(RuntimeError):
            cr.device(spec)
    with pytest.raises(RuntimeError):
        cr.device("cpu", -1)
    for bad in ((1.5,), ("cpu", "0"), ("cpu", 0.0)):
        with pytest.raises(TypeError):
            torch.device(*bad)
        with pytest.raises(TypeError):
            cr.device(*bad)


def test_tensors_and_modules_live_on_the_cpu():
    cpu = cr.device("cpu")
    t = cr.zeros(2, device=cpu)
    assert t.device == cpu and isinstance(t.device, cr.device) and t.device.type == "cpu"
    assert not t.is_cuda
    assert t.to(cpu) is t and t.to(cr.device("cpu:0"), cr.float64).dtype == cr.float64
    assert t.to(device=cpu) is t
    model = cr.nn.Linear(2, 2)
    assert model.to(cpu) is model and model.to(cpu, cr.float64).weight.dtype == cr.float64
    for made in (cr.tensor([1.0], device="cpu:0"), cr.arange(3, device=cpu), cr.eye(2, device=cpu),
                 cr.randn(2, device="cpu"), cr.full((2,), 1.0, device=cpu)):
        assert made.device == cpu
    with pytest.raises(RuntimeError, match="CPU only"):
        t.cuda()
    with pytest.raises(RuntimeError, match="CPU only"):
        model.cuda()


def test_cuda_accelerator_and_default_device_tell_the_truth():
    assert cr.cuda.is_available() is False and cr.cuda.device_count() == 0
    assert cr.accelerator.is_available() is False and cr.accelerator.current_accelerator() is None
    assert cr.accelerator.device_count() == 0
    cr.cuda.manual_seed_all(0)  # nothing to seed: no error, as in PyTorch
    assert cr.get_default_device() == cr.device("cpu")
    for spec in ("cpu", cr.device("cpu"), None):
        cr.set_default_device(spec)
        assert cr.get_default_device() == cr.device("cpu")
    device = cr.device("cuda" if cr.cuda.is_available() else "cpu")  # the idiom scripts use
    assert cr.ones(1).to(device).device == device


def test_backends_are_unavailable_and_their_flags_settable():
    import chainrule.backends.cudnn as cudnn  # noqa: PLR0402  (as scripts import it)

    assert cudnn is cr.backends.cudnn
    assert not cudnn.is_available() and cudnn.version() is None
    assert not cr.backends.mps.is_available() and not cr.backends.mps.is_built()
    assert (cudnn.enabled, cudnn.benchmark, cudnn.deterministic) == (True, False, False)  # PyTorch's
    cudnn.deterministic, cudnn.benchmark = True, False  # what reproducibility recipes write
    assert cr.backends.cudnn.deterministic is True
    cudnn.deterministic = False


def test_cpu_only_answers_match_a_cpu_build_of_pytorch(torch):
    if torch.cuda.is_available():
        pytest.skip("this PyTorch has CUDA: its answers differ from a CPU-only build's")
    assert cr.cuda.is_available() == torch.cuda.is_available()
    assert cr.cuda.device_count() == torch.cuda.device_count()
    assert cr.accelerator.current_accelerator() == torch.accelerator.current_accelerator()
    assert str(cr.get_default_device()) == str(torch.get_default_device())
    assert cr.backends.cudnn.is_available() == torch.backends.cudnn.is_available()
    assert cr.backends.mps.is_available() == torch.backends.mps.is_available()


# ---------------------------------------------------------------- Variable, .data, format
def test_variable_is_a_tensor_as_in_pytorch(torch):
    from chainrule.autograd import Variable

    base = cr.ones(3)
    v = Variable(base, requires_grad=True)
    tv = torch.autograd.Variable(torch.ones(3), requires_grad=True)
    assert isinstance(v, cr.Tensor) and isinstance(v, Variable) and not isinstance(3.0, Variable)
    assert (v.requires_grad, v.is_leaf) == (tv.requires_grad, tv.is_leaf) == (True, True)
    assert not base.requires_grad
    v.data.add_(1.0)  # shares the data, as PyTorch's does
    assert base.tolist() == [2.0, 2.0, 2.0]
    (v * v).sum().backward()
    assert v.grad.tolist() == [4.0, 4.0, 4.0]
    # of a non-leaf: a new leaf, outside the graph
    y = v * 2
    w = Variable(y)
    assert w.is_leaf and not w.requires_grad and w.tolist() == y.tolist()
    with pytest.raises(TypeError):
        Variable([1.0, 2.0])


def test_data_reads_and_replaces_without_autograd(torch):
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    d = w.data
    assert not d.requires_grad and d.is_leaf and np.shares_memory(d.numpy(), w.detach().numpy())
    w.data.mul_(3)  # allowed outside no_grad: .data is not tracked
    assert w.tolist() == [3.0, 6.0] and w.requires_grad
    w.data = cr.zeros(3, dtype=cr.float64)
    tw = torch.tensor([1.0, 2.0], requires_grad=True)
    tw.data = torch.zeros(3, dtype=torch.float64)
    assert (w.shape, w.dtype, w.requires_grad, w.is_leaf) == ((3,), cr.float64, True, True)
    assert (tuple(tw.shape), tw.requires_grad) == (w.shape, w.requires_grad)
    with pytest.raises(TypeError):
        w.data = cr.zeros(3, dtype=cr.int64)  # a tensor that requires grad stays float
    with pytest.raises(TypeError):
        w.data = [1.0]
    # the classic hand-written SGD step of old PyTorch scripts
    p = cr.nn.Parameter(cr.tensor([1.0, -1.0]))
    (p * p).sum().backward()
    p.data -= 0.1 * p.grad.data
    assert np.allclose(p.tolist(), [0.8, -0.8])


def test_format_matches_pytorch(torch):
    for value in (3.14159, -2.5e-7, 12345.678):
        ours, theirs = cr.tensor(value), torch.tensor(value)
        for spec in (".2f", ".3e", "", "10.4f", "g"):
            assert format(ours, spec) == format(theirs, spec)
        assert f"{ours:.4f}" == f"{theirs:.4f}"
    assert format(cr.tensor(7), "d") == format(torch.tensor(7), "d") == "7"
    assert format(cr.tensor(7), "05d") == "00007"
    assert format(cr.tensor([1.0, 2.0]), "") == str(cr.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="0-d"):
        format(cr.tensor([1.0, 2.0]), ".2f")
    with pytest.raises(TypeError):
        format(torch.tensor([1.0, 2.0]), ".2f")
    loss = (cr.tensor([0.5, 0.25], requires_grad=True) ** 2).sum()
    assert f"loss {loss:.4f}" == "loss 0.3125"


# ---------------------------------------------------------------- activations
def _erf(x):
    return np.vectorize(math.erf)(x)


ACTIVATIONS = [
    ("gelu", {}, lambda x: 0.5 * x * np.vectorize(math.erfc)(-x / math.sqrt(2))),
    ("gelu", {"approximate": "tanh"},
     lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    ("leaky_relu", {}, lambda x: np.where(x > 0, x, 0.01 * x)),
    ("leaky_relu", {"negative_slope": 0.2}, lambda x: np.where(x > 0, x, 0.2 * x)),
    ("elu", {}, lambda x: np.where(x > 0, x, np.expm1(x))),
    ("elu", {"alpha": 0.5}, lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    ("softplus", {"beta": 2.0, "threshold": 5.0},
     lambda x: np.where(2 * x > 5, x, np.logaddexp(0, 2 * x) / 2)),
]


@pytest.mark.parametrize("name,kwargs,reference", ACTIVATIONS)
def test_activation_forward_against_numpy(name, kwargs, reference):
    x = np.concatenate([np.linspace(-30, 30, 241), [-1e-6, 1e-7, 0.0]])
    expected = reference(x)
    # absolute tolerances as well: 0.5 x (1 + erf(x / sqrt 2)), PyTorch's formula too, loses
    # the relative accuracy of gelu's tiny values far left of 0 (1 + erf cancels)
    for dtype, rtol, atol in ((cr.float64, 1e-13, 1e-15), (cr.float32, 2e-6, 1e-7)):
        got = getattr(F, name)(cr.tensor(x, dtype=dtype), **kwargs).numpy()
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name,kwargs,reference", ACTIVATIONS)
def test_activation_forward_and_backward_against_pytorch(torch, name, kwargs, reference):
    x = np.random.default_rng(1).standard_normal((4, 7)) * 3
    x[0, :3] = [0.0, 1e-6, -1e-6]
    for np_dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-6)):
        ours = cr.tensor(x.astype(np_dtype), requires_grad=True)
        theirs = torch.tensor(x.astype(np_dtype), requires_grad=True)
        out, ref = getattr(F, name)(ours, **kwargs), getattr(torch.nn.functional, name)(theirs, **kwargs)
        upstream = np.random.default_rng(2).standard_normal(x.shape).astype(np_dtype)
        out.backward(cr.tensor(upstream))
        ref.backward(torch.tensor(upstream))
        np.testing.assert_allclose(_np(out), ref.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=tol, atol=tol)


def test_activation_modules_match_pytorch(torch):
    x = np.linspace(-4, 4, 17).astype(np.float32)
    pairs = [(cr.nn.GELU(), torch.nn.GELU()), (cr.nn.GELU("tanh"), torch.nn.GELU("tanh")),
             (cr.nn.LeakyReLU(0.1), torch.nn.LeakyReLU(0.1)), (cr.nn.ELU(alpha=2.0), torch.nn.ELU(alpha=2.0)),
             (cr.nn.Softplus(beta=0.5, threshold=3.0), torch.nn.Softplus(beta=0.5, threshold=3.0)),
             (cr.nn.LeakyReLU(inplace=True), torch.nn.LeakyReLU())]
    for ours, theirs in pairs:  # float32: PyTorch's vectorized erf differs by ~5e-7 absolute
        np.testing.assert_allclose(ours(cr.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(), rtol=1e-6, atol=1e-6)
    assert repr(cr.nn.GELU("tanh")) == "GELU(approximate='tanh')"
    with pytest.raises(ValueError, match="approximate"):
        cr.nn.GELU("fast")
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(cr.ones(2), approximate="fast")


def test_erf_matches_math_and_pytorch(torch):
    x = np.linspace(-5, 5, 101)
    np.testing.assert_allclose(cr.erf(cr.tensor(x)).numpy(), _erf(x), rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(cr.tensor(x, dtype=cr.float32).erf().numpy(),
                               torch.tensor(x, dtype=torch.float32).erf().numpy(), rtol=1e-6, atol=1e-7)
    assert cr.erf(cr.tensor([0, 1])).dtype == cr.float32  # a float function of int64


# ---------------------------------------------------------------- losses
def _loss_pair(torch, name, x, y, **kwargs):
    ours = cr.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    ours_y = cr.tensor(y) if y.dtype == np.int64 else cr.tensor(y, requires_grad=True)
    theirs_y = torch.tensor(y) if y.dtype == np.int64 else torch.tensor(y, requires_grad=True)
    t_kwargs = {k: (torch.tensor(v.numpy()) if isinstance(v, cr.Tensor) else v) for k, v in kwargs.items()}
    out = getattr(F, name)(ours, ours_y, **kwargs)
    ref = getattr(torch.nn.functional, name)(theirs, theirs_y, **t_kwargs)
    upstream = np.random.default_rng(3).standard_normal(tuple(ref.shape))
    out.backward(cr.tensor(upstream, dtype=out.dtype))
    ref.backward(torch.tensor(upstream, dtype=ref.dtype))
    pairs = [(_np(out), ref.detach().numpy()), (ours.grad.numpy(), theirs.grad.numpy())]
    if y.dtype != np.int64:
        pairs.append((ours_y.grad.numpy(), theirs_y.grad.numpy()))
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    return _np(out)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses_against_pytorch_and_numpy(torch, reduction):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((5, 6)) * 2, rng.standard_normal((5, 6))
    d = x - y
    reduce = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction]
    cases = [("l1_loss", {}, np.abs(d)),
             ("smooth_l1_loss", {}, np.where(np.abs(d) < 1, 0.5 * d ** 2, np.abs(d) - 0.5)),
             ("smooth_l1_loss", {"beta": 0.3}, np.where(np.abs(d) < 0.3, 0.5 * d ** 2 / 0.3, np.abs(d) - 0.15)),
             ("smooth_l1_loss", {"beta": 0.0}, np.abs(d)),
             ("huber_loss", {}, np.where(np.abs(d) < 1, 0.5 * d ** 2, np.abs(d) - 0.5)),
             ("huber_loss", {"delta": 2.5}, np.where(np.abs(d) < 2.5, 0.5 * d ** 2, 2.5 * (np.abs(d) - 1.25)))]
    for name, kwargs, elementwise in cases:
        got = _loss_pair(torch, name, x, y, reduction=reduction, **kwargs)
        np.testing.assert_allclose(got, reduce(elementwise), rtol=1e-12)


def test_weighted_regression_losses_against_pytorch(torch):
    rng = np.random.default_rng(5)
    x, y, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.uniform(0.1, 2, (3, 4))
    for reduction in ("mean", "sum", "none"):
        for name in ("l1_loss", "huber_loss"):
            _loss_pair(torch, name, x, y, reduction=reduction, weight=cr.tensor(w))
    with pytest.raises(ValueError, match="weight"):
        F.l1_loss(cr.ones(3), cr.ones(3), weight=cr.ones(2))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_against_pytorch_and_numpy(torch, reduction):
    rng = np.random.default_rng(6)
    logp = np.log(rng.dirichlet(np.ones(5), size=6))
    target = np.array([0, 4, 2, 2, 1, 3])
    got = _loss_pair(torch, "nll_loss", logp, target, reduction=reduction)
    picked = -logp[np.arange(6), target]
    np.testing.assert_allclose(got, {"mean": picked.mean(), "sum": picked.sum(), "none": picked}[reduction])
    weight = cr.tensor(rng.uniform(0.5, 2.0, 5))
    _loss_pair(torch, "nll_loss", logp, target, reduction=reduction, weight=weight)
    _loss_pair(torch, "nll_loss", logp, target, reduction=reduction, weight=weight, ignore_index=2)
    _loss_pair(torch, "nll_loss", logp, np.array([-100, 1, 2, -100, 0, 0]), reduction=reduction)
    # (N, C, d1, d2) with (N, d1, d2), and an unbatched (C,) with a 0-d target
    spatial = np.log(rng.dirichlet(np.ones(3), size=(2, 4, 5))).transpose(0, 3, 1, 2).copy()
    _loss_pair(torch, "nll_loss", spatial, rng.integers(0, 3, (2, 4, 5)), reduction=reduction,
               weight=cr.tensor([1.0, 0.5, 2.0], dtype=cr.float64), ignore_index=1)
    _loss_pair(torch, "nll_loss", logp[0], np.array(3), reduction=reduction)


def test_nll_loss_composes_to_cross_entropy(torch):
    x = cr.tensor(np.random.default_rng(7).standard_normal((4, 3)))
    target = cr.tensor([2, 0, 1, 1])
    np.testing.assert_allclose(cr.nn.NLLLoss()(cr.nn.LogSoftmax(dim=1)(x), target).item(),
                               F.cross_entropy(x, target).item(), rtol=1e-12)


def test_nll_loss_errors():
    logp = cr.zeros(3, 4)
    with pytest.raises(IndexError, match="target 4 is out of bounds"):
        F.nll_loss(logp, cr.tensor([0, 4, 1]))
    with pytest.raises(IndexError, match="target -1"):
        F.nll_loss(logp, cr.tensor([0, -1, 1]))
    with pytest.raises(TypeError, match="int64"):
        F.nll_loss(logp, cr.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(TypeError, match="float input"):
        F.nll_loss(cr.zeros(3, 4, dtype=cr.int64), cr.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        F.nll_loss(logp, cr.tensor([0, 1]))
    with pytest.raises(ValueError, match="weight"):
        F.nll_loss(logp, cr.tensor([0, 1, 2]), weight=cr.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        F.nll_loss(logp, cr.tensor([0, 1, 2]), reduction="avg")


def test_regression_loss_errors():
    for fn in (F.l1_loss, F.smooth_l1_loss, F.huber_loss):
        with pytest.raises(ValueError, match="differ"):
            fn(cr.ones(3), cr.ones(2, 3))
        with pytest.raises(TypeError, match="float"):
            fn(cr.ones(3, dtype=cr.int64), cr.ones(3))
    with pytest.raises(ValueError, match="delta"):
        F.huber_loss(cr.ones(2), cr.ones(2), delta=0.0)
    with pytest.raises(ValueError, match="beta"):
        F.smooth_l1_loss(cr.ones(2), cr.ones(2), beta=-1.0)


def test_loss_modules_match_pytorch(torch):
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((4, 3)).astype(np.float32)
    target = np.array([0, 2, 1, 2])
    pairs = [(cr.nn.L1Loss(), torch.nn.L1Loss(), y), (cr.nn.L1Loss(reduction="sum"), torch.nn.L1Loss(reduction="sum"), y),
             (cr.nn.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5), y),
             (cr.nn.HuberLoss(delta=0.7), torch.nn.HuberLoss(delta=0.7), y),
             (cr.nn.NLLLoss(ignore_index=1), torch.nn.NLLLoss(ignore_index=1), target),
             (cr.nn.NLLLoss(weight=cr.tensor([1.0, 2.0, 3.0])), torch.nn.NLLLoss(weight=torch.tensor([1.0, 2.0, 3.0])),
              target)]
    for ours, theirs, t in pairs:
        np.testing.assert_allclose(ours(cr.tensor(x), cr.tensor(t)).numpy(),
                                   theirs(torch.tensor(x), torch.tensor(t)).numpy(), rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cr.nn.L1Loss(reduce=False).reduction == torch.nn.L1Loss(reduce=False).reduction == "none"
        assert cr.nn.NLLLoss(size_average=False).reduction == torch.nn.NLLLoss(size_average=False).reduction
    with pytest.warns(UserWarning, match="deprecated"):
        F.l1_loss(cr.ones(2), cr.zeros(2), size_average=False)


# ---------------------------------------------------------------- containers and apply
def _two_models(torch):
    def build(nn):
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = nn.ModuleList([nn.Linear(3, 4), nn.Linear(4, 4)])
                self.heads = nn.ModuleDict({"score": nn.Linear(4, 1), "label": nn.Linear(4, 2)})

            def forward(self, x):
                for block in self.blocks:
                    x = block(x).tanh()
                return self.heads["score"](x), self.heads["label"](x)
        return Net()

    ours, theirs = build(cr.nn), build(torch.nn)
    ours.load_state_dict({k: cr.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    return ours, theirs


def test_module_list_and_dict_register_as_pytorch(torch):
    ours, theirs = _two_models(torch)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    x = np.random.default_rng(9).standard_normal((2, 3)).astype(np.float32)
    for a, b in zip(ours(cr.tensor(x)), theirs(torch.tensor(x))):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-7)
    sum(o.sum() for o in ours(cr.tensor(x))).backward()
    assert all(p.grad is not None for p in ours.parameters())


def test_module_list_operations_follow_pytorch(torch):
    for nn in (cr.nn, torch.nn):
        layers = nn.ModuleList([nn.Linear(1, 1), nn.ReLU()])
        layers.append(nn.Tanh())
        layers.extend([nn.Sigmoid()])
        layers += [nn.Identity()]
        layers.insert(1, nn.Linear(1, 2))
        del layers[0]
        popped = layers.pop(1)
        layers[0] = nn.Linear(2, 2)
        summary = ([type(m).__name__ for m in layers], type(popped).__name__, len(layers),
                   [type(m).__name__ for m in layers[1:3]], type(layers[-1]).__name__,
                   list(layers.state_dict()), [type(m).__name__ for m in layers + [nn.ReLU()]])
        if nn is cr.nn:
            ours = summary
    assert ours == summary
    with pytest.raises(IndexError):
        cr.nn.ModuleList()[0]
    with pytest.raises(TypeError, match="Module"):
        cr.nn.ModuleList([3])
    with pytest.raises(NotImplementedError):
        cr.nn.ModuleList()(cr.ones(1))


def test_module_dict_operations_follow_pytorch(torch):
    for nn in (cr.nn, torch.nn):
        heads = nn.ModuleDict([("a", nn.Linear(1, 1)), ("b", nn.ReLU())])
        heads["c"] = nn.Tanh()
        heads.update({"d": nn.Identity()})
        del heads["a"]
        popped = heads.pop("b")
        summary = (list(heads), list(heads.keys()), [type(m).__name__ for m in heads.values()],
                   [(k, type(m).__name__) for k, m in heads.items()], "c" in heads, "a" in heads,
                   len(heads), type(popped).__name__)
        heads.clear()
        summary += (len(heads),)
        if nn is cr.nn:
            ours = summary
    assert ours == summary
    with pytest.raises(KeyError):
        cr.nn.ModuleDict()["missing"]
    with pytest.raises(TypeError):
        cr.nn.ModuleDict({"a": 1})


def test_apply_visits_children_before_parents_as_pytorch(torch):
    ours, theirs = _two_models(torch)
    seen_ours, seen_theirs = [], []
    assert ours.apply(lambda m: seen_ours.append(type(m).__name__)) is ours
    theirs.apply(lambda m: seen_theirs.append(type(m).__name__))
    assert seen_ours == seen_theirs

    def init(m):
        if isinstance(m, cr.nn.Linear):
            cr.nn.init.constant_(m.weight, 0.5)
            cr.nn.init.zeros_(m.bias)
    ours.apply(init)
    assert all(set(np.unique(p.detach().numpy())) <= {0.0, 0.5} for p in ours.parameters())


# ---------------------------------------------------------------- gradient clipping
def _grads_pair(torch, seed=10):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 2, 2)]
    grads = [rng.standard_normal(s).astype(np.float32) * 3 for s in shapes]
    ours = [cr.nn.Parameter(cr.zeros(*s)) for s in shapes]
    theirs = [torch.nn.Parameter(torch.zeros(*s)) for s in shapes]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = cr.tensor(g), torch.tensor(g)
    return ours, theirs, grads


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, 0.5])
@pytest.mark.parametrize("max_norm", [0.5, 1e4])
def test_clip_grad_norm_matches_pytorch_and_numpy(torch, norm_type, max_norm):
    ours, theirs, grads = _grads_pair(torch)
    total = cr.nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    flat = np.concatenate([g.ravel() for g in grads]).astype(np.float64)
    by_numpy = np.abs(flat).max() if norm_type == math.inf else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    assert total.shape == () and total.dtype == cr.float32
    np.testing.assert_allclose(total.item(), expected_total.item(), rtol=1e-6)
    np.testing.assert_allclose(total.item(), by_numpy, rtol=1e-5)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-6, atol=1e-7)
    clipped = np.concatenate([p.grad.numpy().ravel() for p in ours]).astype(np.float64)
    after = np.abs(clipped).max() if norm_type == math.inf else (np.abs(clipped) ** norm_type).sum() ** (1 / norm_type)
    assert after <= max_norm * (1 + 1e-5) or max_norm > by_numpy


def test_clip_grad_norm_edges(torch):
    p = cr.nn.Parameter(cr.zeros(2))
    assert cr.nn.utils.clip_grad_norm_([p], 1.0).item() == 0.0  # no gradients at all
    assert cr.nn.utils.clip_grad_norm_([], 1.0).item() == torch.nn.utils.clip_grad_norm_([], 1.0).item()
    p.grad = cr.tensor([3.0, 4.0])
    assert cr.nn.utils.clip_grad_norm_(p, 10.0, foreach=True).item() == 5.0  # one tensor, foreach ignored
    p.grad = cr.tensor([math.nan, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        cr.nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    assert math.isnan(cr.nn.utils.clip_grad_norm_([p], 1.0).item())


def test_clip_grad_value_matches_pytorch(torch):
    ours, theirs, _ = _grads_pair(torch)
    assert cr.nn.utils.clip_grad_value_(ours, 0.75) is None
    torch.nn.utils.clip_grad_value_(theirs, 0.75)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())


def test_parameters_to_vector_and_back(torch):
    ours, theirs = _two_models(torch)
    vector = cr.nn.utils.parameters_to_vector(ours.parameters())
    np.testing.assert_array_equal(vector.detach().numpy(),
                                  torch.nn.utils.parameters_to_vector(theirs.parameters()).detach().numpy())
    vector.sum().backward()  # in the graph, as PyTorch's
    assert all(np.all(p.grad.numpy() == 1) for p in ours.parameters())
    new = cr.arange(vector.numel(), dtype=cr.float32)
    cr.nn.utils.vector_to_parameters(new, ours.parameters())
    torch.nn.utils.vector_to_parameters(torch.arange(vector.numel(), dtype=torch.float32), theirs.parameters())
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy(), err_msg=name)
    with pytest.raises(ValueError, match="elements"):
        cr.nn.utils.vector_to_parameters(cr.zeros(3), ours.parameters())


# ---------------------------------------------------------------- optimizers
def _train_both(torch, make, steps=25, closure=False):
    rng = np.random.default_rng(11)
    w0, b0 = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    x = rng.standard_normal((6, 4)).astype(np.float32)
    y = rng.standard_normal((6, 3)).astype(np.float32) * 3
    runs = []
    for lib in (cr, torch):
        params = [lib.nn.Parameter(lib.tensor(w0)), lib.nn.Parameter(lib.tensor(b0))]
        opt = make(lib, params)
        data, target = lib.tensor(x), lib.tensor(y)

        def loss_fn(opt=opt, params=params, data=data, target=target):
            # a regression whose gradients stay clear of 0: sign flips of a gradient at the
            # round-off level would make RMSprop's unit-size steps amplify that round-off
            opt.zero_grad()
            loss = ((data @ params[0] + params[1] - target) ** 2).mean()
            loss.backward()
            return loss
        losses = []
        for _ in range(steps):
            if closure:
                losses.append(opt.step(loss_fn).item())
            else:
                losses.append(loss_fn().item())
                opt.step()
        runs.append(([p.detach().numpy() for p in params], losses, opt))
    return runs


OPTIMIZERS = [
    ("RMSprop", {"lr": 0.01}), ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.005, "centered": True, "alpha": 0.9}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.1, "eps": 1e-3}),
    ("RMSprop", {"lr": 0.01, "maximize": True}),
    ("Adagrad", {"lr": 0.1}), ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.2, "initial_accumulator_value": 0.3, "eps": 1e-4}),
    ("Adagrad", {"lr": 0.1, "maximize": True}),
]


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS)
def test_optimizer_steps_match_pytorch(torch, name, kwargs):
    (ours, our_losses, _), (theirs, their_losses, _) = _train_both(
        torch, lambda lib, params: getattr(lib.optim, name)(params, **kwargs))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(our_losses, their_losses, rtol=2e-5)
    start = np.random.default_rng(11).standard_normal((4, 3)).astype(np.float32)
    assert not np.allclose(ours[0], start, atol=1e-3)  # the run moved


def test_optimizers_take_a_closure_as_pytorch(torch):
    for name in ("RMSprop", "Adagrad"):
        (ours, our_losses, _), (theirs, their_losses, _) = _train_both(
            torch, lambda lib, params, name=name: getattr(lib.optim, name)(params, lr=0.05), steps=5,
            closure=True)
        np.testing.assert_allclose(our_losses, their_losses, rtol=1e-5)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_rmsprop_first_step_by_hand():
    # one step from v = 0: v = (1 - alpha) g^2, p -= lr g / (sqrt(v) + eps)
    p = cr.nn.Parameter(cr.tensor([1.0, -2.0], dtype=cr.float64))
    opt = cr.optim.RMSprop([p], lr=0.1, alpha=0.9)
    (p * cr.tensor([3.0, 0.5], dtype=cr.float64)).sum().backward()
    opt.step()
    g = np.array([3.0, 0.5])
    expected = np.array([1.0, -2.0]) - 0.1 * g / (np.sqrt(0.1 * g * g) + 1e-8)
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-14)


def test_optimizer_state_dict_resumes_identically():
    for name, kwargs in (("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True}), ("Adagrad", {"lr": 0.1})):
        def make(params, name=name, kwargs=kwargs):
            return getattr(cr.optim, name)(params, **kwargs)
        p = cr.nn.Parameter(cr.tensor([1.0, 2.0]))
        opt = make([p])
        for _ in range(3):
            opt.zero_grad(); (p ** 3).sum().backward(); opt.step()
        saved_p, saved = p.detach().clone(), opt.state_dict()
        q = cr.nn.Parameter(saved_p.clone())
        resumed = make([q])
        resumed.load_state_dict(saved)
        for param, o in ((p, opt), (q, resumed)):
            for _ in range(3):
                o.zero_grad(); (param ** 3).sum().backward(); o.step()
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    with pytest.raises(ValueError, match="alpha"):
        cr.optim.RMSprop([cr.nn.Parameter(cr.zeros(1))], alpha=-0.5)
    with pytest.raises(ValueError, match="lr_decay"):
        cr.optim.Adagrad([cr.nn.Parameter(cr.zeros(1))], lr_decay=-1.0)


# ---------------------------------------------------------------- schedulers
def _rates(lib, make, steps=30, optimizer="SGD", metrics=None):
    params = [lib.nn.Parameter(lib.zeros(1)) for _ in range(2)]
    extra = {"momentum": 0.9} if optimizer == "SGD" else {}
    opt = getattr(lib.optim, optimizer)([{"params": [params[0]], "lr": 0.1},
                                         {"params": [params[1]], "lr": 0.05}], lr=0.1, **extra)
    scheduler = make(lib.optim.lr_scheduler, opt)
    seen = [tuple(scheduler.get_last_lr())]
    for i in range(steps):
        opt.step()
        scheduler.step() if metrics is None else scheduler.step(metrics[i])
        momenta = tuple(g["momentum"] if "momentum" in g else g["betas"][0] for g in opt.param_groups)
        seen.append((tuple(scheduler.get_last_lr()), tuple(g["lr"] for g in opt.param_groups), momenta))
    return seen


SCHEDULERS = {
    "StepLR": lambda L, o: L.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda L, o: L.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    "ExponentialLR": lambda L, o: L.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda L, o: L.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    "LambdaLR": lambda L, o: L.LambdaLR(o, [lambda e: 0.95 ** e, lambda e: 1 / (e + 1)]),
    "LinearLR": lambda L, o: L.LinearLR(o, start_factor=0.25, total_iters=10),
    "OneCycleLR": lambda L, o: L.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=30),
    "OneCycleLR-3-linear": lambda L, o: L.OneCycleLR(o, max_lr=1.0, epochs=3, steps_per_epoch=10,
                                                      three_phase=True, anneal_strategy="linear"),
    "ConstantLR": lambda L, o: L.ConstantLR(o, factor=0.25, total_iters=7),
    "SequentialLR-warmup-cosine": lambda L, o: L.SequentialLR(
        o, [L.LinearLR(o, start_factor=0.1, total_iters=5), L.CosineAnnealingLR(o, T_max=20, eta_min=1e-4)],
        milestones=[5]),
    "SequentialLR-three": lambda L, o: L.SequentialLR(
        o, [L.ConstantLR(o, 0.2, 4), L.StepLR(o, 3, 0.5), L.MultiStepLR(o, [2, 5], 0.1)], milestones=[6, 15]),
}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scheduler_rates_equal_pytorch_bit_for_bit(torch, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's step-order warnings
        assert _rates(cr, SCHEDULERS[name]) == _rates(torch, SCHEDULERS[name])


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR",
                                  "ConstantLR"])
def test_scheduler_step_to_an_epoch_uses_pytorchs_closed_form(torch, name):
    def run(lib):
        opt = lib.optim.SGD([lib.nn.Parameter(lib.zeros(1))], lr=0.1)
        scheduler = SCHEDULERS[name](lib.optim.lr_scheduler, opt)
        seen = []
        for epoch in (3, 7, 1, 10, 5):
            scheduler.step(epoch)  # PyTorch's deprecated form (it warns)
            seen.append(scheduler.get_last_lr()[0])
        return seen
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run(cr) == run(torch)


def test_old_custom_schedulers_subclass_the_old_name():
    class Halving(cr.optim.lr_scheduler._LRScheduler):
        def get_lr(self):
            return [base * 0.5 ** self.last_epoch for base in self.base_lrs]
    opt = cr.optim.SGD([cr.nn.Parameter(cr.zeros(1))], lr=1.0)
    scheduler = Halving(opt)
    opt.step()
    scheduler.step()
    scheduler.step()
    assert scheduler.get_last_lr() == [0.25] and opt.param_groups[0]["initial_lr"] == 1.0
    with pytest.raises(ValueError, match="milestones"):
        cr.optim.lr_scheduler.SequentialLR(opt, [scheduler, cr.optim.lr_scheduler.StepLR(opt, 2)], [])
    other = cr.optim.SGD([cr.nn.Parameter(cr.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="another optimizer"):
        cr.optim.lr_scheduler.SequentialLR(opt, [scheduler, cr.optim.lr_scheduler.StepLR(other, 2)], [3])


def test_one_cycle_cycles_adam_beta1_as_pytorch(torch):
    def make(L, o):
        return L.OneCycleLR(o, max_lr=0.3, total_steps=20, pct_start=0.4)
    assert _rates(cr, make, steps=20, optimizer="Adam") == _rates(torch, make, steps=20, optimizer="Adam")
    with pytest.raises(ValueError, match="total_steps"):
        sched = make(cr.optim.lr_scheduler, cr.optim.SGD([cr.nn.Parameter(cr.zeros(1))], lr=0.1, momentum=0.9))
        for _ in range(21):
            sched.step()


def test_step_lr_by_hand():
    opt = cr.optim.SGD([cr.nn.Parameter(cr.zeros(1))], lr=1.0)
    sched = cr.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    rates = []
    for _ in range(6):
        opt.step()
        sched.step()
        rates.append(opt.param_groups[0]["lr"])
    np.testing.assert_allclose(rates, [1.0, 0.1, 0.1, 0.01, 0.01, 0.001])


@pytest.mark.parametrize("kwargs", [{"patience": 2}, {"patience": 1, "cooldown": 2, "mode": "max",
                                                      "threshold_mode": "abs", "min_lr": 0.02}])
def test_reduce_on_plateau_matches_pytorch(torch, kwargs):
    metrics = [5, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2] + [2] * 15

    def make(L, o):
        return L.ReduceLROnPlateau(o, **kwargs)
    assert _rates(cr, make, metrics=metrics) == _rates(torch, make, metrics=metrics)


@pytest.mark.parametrize("name", ["CosineAnnealingLR", "SequentialLR-warmup-cosine"])
def test_scheduler_state_dict_resumes_the_schedule(name):
    def fresh():
        opt = cr.optim.SGD([cr.nn.Parameter(cr.zeros(1))], lr=0.1)
        return opt, SCHEDULERS[name](cr.optim.lr_scheduler, opt)
    opt, sched = fresh()
    for _ in range(4):
        opt.step(); sched.step()
    saved_opt, saved = opt.state_dict(), sched.state_dict()
    assert "optimizer" not in saved and saved["last_epoch"] == 4
    opt2, sched2 = fresh()
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    for _ in range(8):
        opt.step(); sched.step(); opt2.step(); sched2.step()
        assert sched.get_last_lr() == sched2.get_last_lr()


def test_scheduler_argument_errors():
    with pytest.raises(KeyError, match="initial_lr"):
        cr.optim.lr_scheduler.StepLR(cr.optim.SGD([cr.nn.Parameter(cr.zeros(1))], lr=0.1), 2, last_epoch=3)
    with pytest.raises(TypeError, match="Optimizer"):
        cr.optim.lr_scheduler.StepLR("not an optimizer", 2)


# ---------------------------------------------------------------- random_split
def test_random_split_lengths_match_pytorch(torch):
    for n, lengths in ((10, [0.8, 0.2]), (7, [0.5, 0.3, 0.2]), (11, [1 / 3] * 3), (10, [3, 7]), (5, [5, 0])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty split warns, in both
            ours = cr.utils.data.random_split(range(n), lengths)
            theirs = torch.utils.data.random_split(range(n), lengths)
        assert [len(s) for s in ours] == [len(s) for s in theirs]
        assert sorted(i for s in ours for i in s) == list(range(n))  # disjoint, covering


def test_random_split_follows_the_generator():
    data = cr.utils.data.TensorDataset(cr.arange(20), cr.arange(20) * 10)

    def split(seed):
        parts = cr.utils.data.random_split(data, [15, 5], generator=cr.Generator().manual_seed(seed))
        return [[int(parts[k][i][0]) for i in range(len(parts[k]))] for k in range(2)]
    assert split(3) == split(3) and split(3) != split(4)
    train, _ = cr.utils.data.random_split(data, [15, 5])
    x, y = train[0]
    assert y.item() == 10 * x.item() and isinstance(train, cr.utils.data.Subset)
    batch = next(iter(cr.utils.data.DataLoader(train, batch_size=4)))
    assert batch[0].shape == (4,) and np.array_equal(batch[1].numpy(), batch[0].numpy() * 10)
    with pytest.raises(ValueError, match="sum to"):
        cr.utils.data.random_split(data, [10, 5])
    with pytest.raises(ValueError, match="between 0 and 1"):
        cr.utils.data.random_split(data, [1.5, -0.5])
