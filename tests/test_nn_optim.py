"""cr.nn (Module, layers, losses) and cr.optim, against NumPy formulas and PyTorch."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


# ------------------------------------------------------------------ Module registration
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(cr.ones(3))
        self.inner = nn.Linear(3, 2)
        self.plain = cr.zeros(3)          # a plain tensor attribute is not a parameter
        self.activation = nn.Tanh()

    def forward(self, x):
        return self.activation(self.inner(x * self.scale))


def test_parameters_and_named_parameters():
    block = Block()
    names = [name for name, _ in block.named_parameters()]
    assert names == ["scale", "inner.weight", "inner.bias"]
    params = list(block.parameters())
    assert len(params) == 3
    assert params[0] is block.scale
    assert params[1] is block.inner.weight
    assert params[2] is block.inner.bias
    assert all(isinstance(p, nn.Parameter) and p.requires_grad and p.is_leaf for p in params)


def test_sequential_dotted_names_and_children():
    net = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1))
    names = [name for name, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    children = list(net.children())
    assert len(children) == 3
    assert children[0] is net[0] and children[1] is net[1] and children[2] is net[2]
    nested = nn.Sequential(net, nn.Linear(1, 1))
    assert sorted(n for n, _ in nested.named_parameters()) == [
        "0.0.bias", "0.0.weight", "0.2.bias", "0.2.weight", "1.bias", "1.weight"]


def test_nested_parameter_order_is_depth_first_as_in_torch():
    net = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1))
    nested = nn.Sequential(net, nn.Linear(1, 1))
    expected = ["0.0.weight", "0.0.bias", "0.2.weight", "0.2.bias", "1.weight", "1.bias"]
    assert [n for n, _ in nested.named_parameters()] == expected
    assert list(nested.state_dict()) == expected
    assert [id(p) for p in nested.parameters()] == [id(p) for _, p in nested.named_parameters()]


def test_children_of_custom_module():
    block = Block()
    children = list(block.children())
    assert children == [block.inner, block.activation]


def test_shared_parameter_listed_once():
    lin = nn.Linear(2, 2)
    net = nn.Sequential(lin, lin)
    assert len(list(net.parameters())) == 2


def test_parameter_is_a_leaf_sharing_storage():
    t = cr.tensor([1.0, 2.0])
    p = nn.Parameter(t)
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    assert isinstance(p, cr.Tensor)
    t.numpy()[0] = 5.0
    assert p.numpy()[0] == 5.0


def test_zero_grad_sets_none():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    net(cr.ones(4, 2)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_train_eval_flags_recursive():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5), nn.ReLU()))
    assert net.training and all(m.training for m in net.modules())
    returned = net.eval()
    assert returned is net
    assert not net.training
    assert not net[1].training and not net[1][0].training
    net.train()
    assert net.training and net[1][0].training
    net.train(False)
    assert not net[0].training


def test_forward_via_call():
    block = Block()
    x = cr.tensor([[1.0, -2.0, 0.5]])
    expected = np.tanh(x.numpy() @ block.inner.weight.numpy().T + block.inner.bias.numpy())
    np.testing.assert_allclose(block(x).numpy(), expected, rtol=1e-6)


# ------------------------------------------------------------------ state_dict
def test_state_dict_names_and_values():
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    state = net.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for name, p in net.named_parameters():
        assert isinstance(state[name], cr.Tensor)
        assert state[name].shape == p.shape
        np.testing.assert_array_equal(state[name].numpy(), p.numpy())


def test_load_state_dict_round_trip():
    cr.manual_seed(1)
    a = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    b = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    x = cr.randn(5, 2)
    assert not np.allclose(a(x).detach().numpy(), b(x).detach().numpy())
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())
    # a copy, not an alias: changing a afterwards leaves b alone
    with cr.no_grad():
        a[0].weight.add_(1.0)
    assert not np.array_equal(a[0].weight.numpy(), b[0].weight.numpy())


def _snapshot(module):
    return {k: v.numpy().copy() for k, v in module.state_dict().items()}


def _assert_unchanged(module, snapshot):
    for k, v in module.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), snapshot[k])


def test_load_state_dict_missing_key_raises_runtime_error():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    before = _snapshot(net)
    state = {k: v.numpy() + 1.0 for k, v in net.state_dict().items()}
    state = {k: cr.tensor(v) for k, v in state.items()}
    del state["1.bias"]
    with pytest.raises(RuntimeError, match="1.bias"):
        net.load_state_dict(state)
    _assert_unchanged(net, before)


def test_load_state_dict_unexpected_key_raises_runtime_error():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    before = _snapshot(net)
    state = {k: cr.tensor(v.numpy() + 1.0) for k, v in net.state_dict().items()}
    state["2.weight"] = cr.ones(1, 1)
    with pytest.raises(RuntimeError, match="2.weight"):
        net.load_state_dict(state)
    _assert_unchanged(net, before)


def test_load_state_dict_non_strict_loads_the_rest():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = {"0.weight": cr.full((3, 2), 0.5), "extra": cr.ones(1)}
    result = net.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(net[0].weight.numpy(), np.full((3, 2), 0.5, dtype=np.float32))
    assert sorted(result.missing_keys) == ["0.bias", "1.bias", "1.weight"]
    assert result.unexpected_keys == ["extra"]


def test_load_state_dict_shape_mismatch_raises_value_error_and_leaves_module_unchanged():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    before = _snapshot(net)
    state = {k: cr.tensor(v.numpy() + 1.0) for k, v in net.state_dict().items()}
    state["1.weight"] = cr.ones(3, 1)   # (1, 3) expected; earlier keys are valid
    with pytest.raises(ValueError):
        net.load_state_dict(state)
    _assert_unchanged(net, before)


# ------------------------------------------------------------------ Linear and Sequential
def test_linear_shapes_and_formula():
    lin = nn.Linear(3, 5)
    assert lin.weight.shape == (5, 3)
    assert lin.bias.shape == (5,)
    x = cr.randn(4, 3)
    y = lin(x)
    assert y.shape == (4, 5)
    expected = x.numpy() @ lin.weight.numpy().T + lin.bias.numpy()
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(F.linear(x, lin.weight, lin.bias).numpy(), expected,
                               rtol=1e-5, atol=1e-6)


def test_linear_gradients():
    lin = nn.Linear(3, 2)
    x_np = np.array([[1.0, 2.0, -1.0], [0.5, -0.5, 3.0]], dtype=np.float32)
    lin(cr.tensor(x_np)).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), np.tile(x_np.sum(0), (2, 1)), rtol=1e-6)
    np.testing.assert_allclose(lin.bias.grad.numpy(), [2.0, 2.0])


def test_linear_init_bounds():
    cr.manual_seed(0)
    lin = nn.Linear(50, 40)
    bound = 1 / math.sqrt(50)
    w, b = lin.weight.numpy(), lin.bias.numpy()
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    # uniform over the whole interval, not a narrower one
    assert w.max() > 0.9 * bound and w.min() < -0.9 * bound
    assert abs(w.mean()) < 0.1 * bound
    np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=0.1)


def test_linear_without_bias():
    lin = nn.Linear(3, 2, bias=False)
    assert lin.bias is None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    x = cr.randn(4, 3)
    np.testing.assert_allclose(lin(x).numpy(), x.numpy() @ lin.weight.numpy().T, rtol=1e-5,
                               atol=1e-6)


def test_manual_seed_makes_linear_reproducible():
    cr.manual_seed(123)
    a = nn.Linear(4, 3)
    cr.manual_seed(123)
    b = nn.Linear(4, 3)
    cr.manual_seed(124)
    c = nn.Linear(4, 3)
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    np.testing.assert_array_equal(a.bias.numpy(), b.bias.numpy())
    assert not np.array_equal(a.weight.numpy(), c.weight.numpy())


def test_sequential_indexing_and_len():
    l1, act, l2 = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    net = nn.Sequential(l1, act, l2)
    assert len(net) == 3
    assert net[0] is l1 and net[1] is act and net[2] is l2 and net[-1] is l2
    x = cr.randn(5, 2)
    np.testing.assert_allclose(net(x).numpy(), l2(act(l1(x))).numpy())


# ------------------------------------------------------------------ activations and dropout
X_ACT = np.array([[-2.0, -0.5, 0.0, 0.7], [1.5, 3.0, -1.0, 0.2]], dtype=np.float32)


@pytest.mark.parametrize("module,reference", [
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.Tanh(), np.tanh),
    (nn.Identity(), lambda x: x),
    (nn.Softmax(dim=1), lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)),
    (nn.Softmax(dim=0), lambda x: np.exp(x) / np.exp(x).sum(0, keepdims=True)),
], ids=["sigmoid", "relu", "tanh", "identity", "softmax1", "softmax0"])
def test_activation_modules(module, reference):
    out = module(cr.tensor(X_ACT))
    np.testing.assert_allclose(out.numpy(), reference(X_ACT.astype(np.float64)), rtol=1e-6,
                               atol=1e-7)


def test_softmax_stable_for_large_inputs():
    x = cr.tensor([[1000.0, 1001.0, 1002.0]])
    out = nn.Softmax(dim=1)(x).numpy()
    e = np.exp(np.array([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(out[0], e / e.sum(), rtol=1e-6)


def test_dropout_train_vs_eval():
    cr.manual_seed(0)
    p = 0.3
    drop = nn.Dropout(p)
    x = cr.ones(200, 100)
    out = drop(x).numpy()
    zero = out == 0
    # kept elements are scaled by 1 / (1 - p)
    np.testing.assert_allclose(out[~zero], 1.0 / (1.0 - p), rtol=1e-6)
    assert abs(zero.mean() - p) < 0.02
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).numpy(), x.numpy())   # p = 0: identity
    drop_all = nn.Dropout(1.0)
    np.testing.assert_array_equal(drop_all(x).numpy(), np.zeros((200, 100), dtype=np.float32))


def test_dropout_gradient_follows_mask():
    cr.manual_seed(3)
    x = cr.ones(50, 20, requires_grad=True)
    out = nn.Dropout(0.5)(x)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), out.detach().numpy())


def test_functional_dropout_defaults():
    cr.manual_seed(0)
    x = cr.ones(1000)
    out = F.dropout(x).numpy()        # p=0.5, training=True
    assert set(np.unique(out).tolist()) <= {0.0, 2.0}
    np.testing.assert_array_equal(F.dropout(x, 0.5, training=False).numpy(), x.numpy())


# ------------------------------------------------------------------ losses vs NumPy
RNG = np.random.default_rng(42)
PRED = RNG.uniform(-2, 2, size=(6, 3)).astype(np.float32)
TARGET = RNG.uniform(-2, 2, size=(6, 3)).astype(np.float32)
PROB = RNG.uniform(0.05, 0.95, size=(6, 3)).astype(np.float32)
LABEL = (RNG.uniform(size=(6, 3)) > 0.5).astype(np.float32)
LOGITS = RNG.uniform(-3, 3, size=(6, 4)).astype(np.float32)
CLASSES = np.array([0, 3, 1, 1, 2, 0], dtype=np.int64)


def _reduce(loss, reduction):
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def _np_mse(x, y):
    return (x - y) ** 2


def _np_bce(h, y):
    return -(y * np.log(h) + (1 - y) * np.log(1 - h))


def _np_bce_logits(x, y):
    h = 1 / (1 + np.exp(-x))
    return _np_bce(h, y)


def _np_xent(logits, classes):
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return -log_p[np.arange(len(classes)), classes]


LOSS_CASES = [
    ("mse", nn.MSELoss, F.mse_loss, PRED, TARGET, _np_mse),
    ("bce", nn.BCELoss, F.binary_cross_entropy, PROB, LABEL, _np_bce),
    ("bce_logits", nn.BCEWithLogitsLoss, F.binary_cross_entropy_with_logits, PRED, LABEL,
     _np_bce_logits),
    ("cross_entropy", nn.CrossEntropyLoss, F.cross_entropy, LOGITS, CLASSES, _np_xent),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,module_cls,functional,inp,tgt,reference", LOSS_CASES,
                         ids=[c[0] for c in LOSS_CASES])
def test_loss_against_numpy(name, module_cls, functional, inp, tgt, reference, reduction):
    expected = _reduce(reference(inp.astype(np.float64), tgt), reduction)
    got_module = module_cls(reduction=reduction)(cr.tensor(inp), cr.tensor(tgt))
    got_functional = functional(cr.tensor(inp), cr.tensor(tgt), reduction=reduction)
    for got in (got_module, got_functional):
        assert got.shape == np.shape(expected)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_losses_default_to_mean():
    got = nn.MSELoss()(cr.tensor(PRED), cr.tensor(TARGET))
    np.testing.assert_allclose(got.item(), _np_mse(PRED, TARGET).mean(), rtol=1e-5)


def test_bce_is_finite_at_zero_and_one():
    h = cr.tensor([0.0, 1.0, 0.0, 1.0])
    y = cr.tensor([0.0, 1.0, 1.0, 0.0])
    loss = F.binary_cross_entropy(h, y, reduction="none").numpy()
    np.testing.assert_allclose(loss, [0.0, 0.0, 100.0, 100.0])


def test_bce_with_logits_stable_for_large_logits():
    x = cr.tensor([100.0, -100.0, 50.0])
    y = cr.tensor([1.0, 0.0, 0.0])
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="none").numpy()
    np.testing.assert_allclose(loss, [0.0, 0.0, 50.0], atol=1e-6)


@pytest.mark.parametrize("loss_fn", [F.mse_loss, F.binary_cross_entropy,
                                     F.binary_cross_entropy_with_logits])
def test_loss_shape_mismatch_raises_value_error(loss_fn):
    with pytest.raises(ValueError):
        loss_fn(cr.full((4, 1), 0.5), cr.full((4,), 0.5))
    with pytest.raises(ValueError):
        loss_fn(cr.full((3,), 0.5), cr.full((4,), 0.5))


def test_loss_module_shape_mismatch_raises_value_error():
    with pytest.raises(ValueError):
        nn.MSELoss()(cr.zeros(2, 3), cr.zeros(3, 2))
    with pytest.raises(ValueError):
        nn.CrossEntropyLoss()(cr.zeros(4, 3), cr.tensor([0, 1, 2]))


def test_bce_with_int64_targets_raises_type_error():
    with pytest.raises(TypeError):
        F.binary_cross_entropy(cr.full((3,), 0.5), cr.tensor([0, 1, 1]))
    with pytest.raises(TypeError):
        nn.BCELoss()(cr.full((3,), 0.5), cr.tensor([0, 1, 1]))


def test_cross_entropy_with_float_targets_raises_type_error():
    with pytest.raises(TypeError):
        F.cross_entropy(cr.zeros(3, 4), cr.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError):
        nn.CrossEntropyLoss()(cr.zeros(3, 4), cr.tensor([0.0, 1.0, 2.0]))


def test_losses_reject_integer_inputs():
    with pytest.raises(TypeError):
        F.mse_loss(cr.tensor([1, 2]), cr.tensor([1.0, 2.0]))
    with pytest.raises(TypeError):
        F.cross_entropy(cr.tensor([[1, 2]]), cr.tensor([0]))


def test_loss_invalid_reduction_raises_value_error():
    with pytest.raises(ValueError):
        nn.MSELoss(reduction="avg")


def test_cross_entropy_gradient_is_softmax_minus_one_hot():
    logits = cr.tensor(LOGITS.astype(np.float64), dtype=cr.float64, requires_grad=True)
    F.cross_entropy(logits, cr.tensor(CLASSES)).backward()
    e = np.exp(LOGITS.astype(np.float64) - LOGITS.max(1, keepdims=True))
    softmax = e / e.sum(1, keepdims=True)
    one_hot = np.eye(4)[CLASSES]
    np.testing.assert_allclose(logits.grad.numpy(), (softmax - one_hot) / len(CLASSES), rtol=1e-10)


# ------------------------------------------------------------------ losses vs torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["mse", "bce", "bce_logits", "cross_entropy", "bce_edges"])
def test_loss_and_gradient_against_torch(name, reduction):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    if name == "mse":
        inp, tgt, cr_fn, th_fn = PRED, TARGET, F.mse_loss, tF.mse_loss
    elif name == "bce":
        inp, tgt, cr_fn, th_fn = PROB, LABEL, F.binary_cross_entropy, tF.binary_cross_entropy
    elif name == "bce_edges":
        inp = np.array([0.0, 1.0, 0.0, 1.0, 0.5], dtype=np.float32)
        tgt = np.array([0.0, 1.0, 1.0, 0.0, 0.3], dtype=np.float32)
        cr_fn, th_fn = F.binary_cross_entropy, tF.binary_cross_entropy
    elif name == "bce_logits":
        inp, tgt = PRED, LABEL
        cr_fn, th_fn = F.binary_cross_entropy_with_logits, tF.binary_cross_entropy_with_logits
    else:
        inp, tgt, cr_fn, th_fn = LOGITS, CLASSES, F.cross_entropy, tF.cross_entropy
    x_cr = cr.tensor(inp, requires_grad=True)
    x_th = torch.tensor(inp, requires_grad=True)
    out_cr = cr_fn(x_cr, cr.tensor(tgt), reduction=reduction)
    out_th = th_fn(x_th, torch.tensor(tgt), reduction=reduction)
    np.testing.assert_allclose(out_cr.detach().numpy(), out_th.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    weights = np.random.default_rng(0).uniform(0.5, 1.5, size=out_th.shape).astype(np.float32)
    out_cr.backward(cr.tensor(weights))
    out_th.backward(torch.tensor(weights))
    if name == "bce_edges":
        # the clamped log makes the gradient at h = 0 or 1 a convention; compare the inner point
        np.testing.assert_allclose(x_cr.grad.numpy()[4], x_th.grad.numpy()[4], rtol=1e-5)
    else:
        np.testing.assert_allclose(x_cr.grad.numpy(), x_th.grad.numpy(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ SGD by hand
def test_sgd_single_step_by_hand():
    w = nn.Parameter(cr.tensor([1.0, -2.0, 0.5]))
    opt = cr.optim.SGD([w], lr=0.1)
    (w * w).sum().backward()          # grad = 2w
    opt.step()
    np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0, 0.5]) * (1 - 0.2), rtol=1e-6)


def test_sgd_momentum_weight_decay_two_steps_by_hand():
    w0 = np.array([1.0, -2.0], dtype=np.float64)
    w = nn.Parameter(cr.tensor(w0, dtype=cr.float64))
    lr, momentum, dampening, wd = 0.1, 0.9, 0.2, 0.01
    opt = cr.optim.SGD([w], lr=lr, momentum=momentum, dampening=dampening, weight_decay=wd)
    c = np.array([3.0, 0.5])
    expected = w0.copy()
    buffer = None
    for _ in range(2):
        opt.zero_grad()
        (w * w * cr.tensor(c, dtype=cr.float64)).sum().backward()
        opt.step()
        g = 2 * c * expected + wd * expected
        buffer = g.copy() if buffer is None else momentum * buffer + (1 - dampening) * g
        expected = expected - lr * buffer
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-12)


def test_optimizer_zero_grad_sets_none_and_skips_params_without_grad():
    a = nn.Parameter(cr.tensor([1.0]))
    b = nn.Parameter(cr.tensor([2.0]))
    opt = cr.optim.SGD([a, b], lr=0.5)
    (a * 3).sum().backward()
    opt.step()
    assert b.grad is None
    np.testing.assert_allclose(a.numpy(), [-0.5])
    np.testing.assert_allclose(b.numpy(), [2.0])
    opt.zero_grad()
    assert a.grad is None


def test_optimizer_step_is_not_recorded():
    w = nn.Parameter(cr.tensor([1.0, 2.0]))
    opt = cr.optim.Adam([w], lr=0.1)
    (w * w).sum().backward()
    opt.step()
    assert w.is_leaf and w.grad_fn is None and w.requires_grad


# ------------------------------------------------------------------ optimizers vs torch
def _make_pair(torch, seed=0):
    """The same small MLP in chainrule and torch, with identical float32 starting weights."""
    cr.manual_seed(seed)
    cr_net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    th_net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    with torch.no_grad():
        for (name, p_cr), (name_th, p_th) in zip(cr_net.named_parameters(),
                                                 th_net.named_parameters()):
            assert name == name_th
            p_th.copy_(torch.tensor(p_cr.numpy()))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    return cr_net, th_net, x, y


OPTIMIZER_CONFIGS = [
    ("sgd", "SGD", dict(lr=0.1)),
    ("sgd_momentum", "SGD", dict(lr=0.05, momentum=0.9)),
    ("sgd_dampening", "SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("sgd_weight_decay", "SGD", dict(lr=0.05, weight_decay=0.1)),
    ("sgd_momentum_weight_decay", "SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.05)),
    ("sgd_nesterov", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("sgd_nesterov_weight_decay", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True,
                                              weight_decay=0.01)),
    ("adam", "Adam", dict(lr=0.01)),
    ("adam_betas_eps", "Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6)),
    ("adam_weight_decay", "Adam", dict(lr=0.01, weight_decay=0.1)),
    ("adamw", "AdamW", dict(lr=0.01)),
    ("adamw_weight_decay", "AdamW", dict(lr=0.01, weight_decay=0.3, betas=(0.85, 0.995))),
]


@pytest.mark.parametrize("name,cls,kwargs", OPTIMIZER_CONFIGS,
                         ids=[c[0] for c in OPTIMIZER_CONFIGS])
def test_optimizer_matches_torch_over_20_steps(name, cls, kwargs):
    torch = pytest.importorskip("torch")
    cr_net, th_net, x, y = _make_pair(torch)
    cr_opt = getattr(cr.optim, cls)(cr_net.parameters(), **kwargs)
    th_opt = getattr(torch.optim, cls)(th_net.parameters(), **kwargs)
    x_cr, y_cr = cr.tensor(x), cr.tensor(y)
    x_th, y_th = torch.tensor(x), torch.tensor(y)
    for _ in range(20):
        cr_opt.zero_grad()
        th_opt.zero_grad()
        loss_cr = F.mse_loss(cr_net(x_cr), y_cr)
        loss_th = torch.nn.functional.mse_loss(th_net(x_th), y_th)
        loss_cr.backward()
        loss_th.backward()
        cr_opt.step()
        th_opt.step()
    np.testing.assert_allclose(loss_cr.item(), loss_th.item(), rtol=1e-5)
    for (n, p_cr), (_, p_th) in zip(cr_net.named_parameters(), th_net.named_parameters()):
        np.testing.assert_allclose(p_cr.numpy(), p_th.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name}: {n}")


@pytest.mark.parametrize("cls,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)),
                                        ("Adam", dict(lr=0.05))])
def test_optimizer_on_raw_parameters_matches_torch(cls, kwargs):
    torch = pytest.importorskip("torch")
    w0 = np.array([[0.5, -1.0], [2.0, 0.25]], dtype=np.float32)
    b0 = np.array([0.1, -0.3], dtype=np.float32)
    w_cr, b_cr = cr.tensor(w0, requires_grad=True), cr.tensor(b0, requires_grad=True)
    w_th, b_th = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    cr_opt = getattr(cr.optim, cls)([w_cr, b_cr], **kwargs)
    th_opt = getattr(torch.optim, cls)([w_th, b_th], **kwargs)
    for _ in range(20):
        cr_opt.zero_grad()
        th_opt.zero_grad()
        ((w_cr @ b_cr).exp().sum() + (w_cr * w_cr).sum()).backward()
        ((w_th @ b_th).exp().sum() + (w_th * w_th).sum()).backward()
        cr_opt.step()
        th_opt.step()
    np.testing.assert_allclose(w_cr.numpy(), w_th.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b_cr.numpy(), b_th.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_optimizer_state_dict_resume_matches_uninterrupted():
    def run(split):
        cr.manual_seed(5)
        net = nn.Linear(3, 1)
        opt = cr.optim.Adam(net.parameters(), lr=0.05)
        x, y = cr.randn(6, 3), cr.randn(6, 1)
        for step in range(10):
            if split and step == 5:
                saved = opt.state_dict()
                opt = cr.optim.Adam(net.parameters(), lr=0.05)
                opt.load_state_dict(saved)
            opt.zero_grad()
            F.mse_loss(net(x), y).backward()
            opt.step()
        return net.weight.numpy().copy()

    np.testing.assert_array_equal(run(False), run(True))


# ------------------------------------------------------------------ XOR, the lecture's example
def _load_xor():
    spec = importlib.util.spec_from_file_location("xor_example", EXAMPLES / "xor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]], dtype=np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_xor_learns_with_ten_hidden_units(seed):
    xor = _load_xor()
    result = xor.train(hidden=10, lr=1.0, steps=1500, seed=seed, verbose=False)
    assert result["accuracy"] == 1.0
    np.testing.assert_array_equal(result["predicted"].numpy(), XOR_Y)
    assert result["cost"] < 0.05


def test_xor_defaults_reach_full_accuracy():
    xor = _load_xor()
    result = xor.train(verbose=False)
    assert result["accuracy"] == 1.0
    np.testing.assert_array_equal(result["predicted"].numpy(), XOR_Y)
    hypothesis = result["hypothesis"].numpy()
    assert np.all(np.abs(hypothesis - XOR_Y) < 0.5)


@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
def test_adam_large_tensor_on_the_team_matches_one_thread_and_numpy(cls):
    # above the grain the update runs in chunks on the team: the same bits as one thread, and
    # PyTorch's formula (here in NumPy, float64) to rounding
    n, steps, lr, wd = 300_001, 4, 0.01, 0.1
    rng = np.random.default_rng(3)
    start = rng.standard_normal(n)
    grads = [rng.standard_normal(n) for _ in range(steps)]
    results = []
    previous = cr.get_num_threads()
    try:
        for threads in (1, 2):
            cr.set_num_threads(threads)
            p = cr.tensor(start).requires_grad_()
            opt = getattr(cr.optim, cls)([p], lr=lr, weight_decay=wd)
            for g in grads:
                p.grad = cr.tensor(g)
                opt.step()
            results.append(p.detach().numpy())
    finally:
        cr.set_num_threads(previous)
    np.testing.assert_array_equal(results[0], results[1])
    want, m, v = start.copy(), np.zeros(n), np.zeros(n)
    for t, g in enumerate(grads, 1):
        if cls == "AdamW":
            want = want * (1 - lr * wd)
        else:
            g = g + wd * want
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        want = want - lr / (1 - 0.9 ** t) * m / (np.sqrt(v) / np.sqrt(1 - 0.999 ** t) + 1e-8)
    np.testing.assert_allclose(results[0], want, rtol=1e-10, atol=1e-12)
