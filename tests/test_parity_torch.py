"""Parity with PyTorch itself: models, losses, optimizers (with state_dict resume), nn.init,
numerically hard softmax inputs, max/min with dims, integer-tensor indexing, hooks and in-place
rules. Each test builds the same computation in both libraries from identical numbers."""
from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F

torch = pytest.importorskip("torch")
tnn = torch.nn
tF = torch.nn.functional


def _np(t):
    """numpy copy of a torch or chainrule tensor."""
    if isinstance(t, cr.Tensor):
        return t.detach().numpy().copy()
    return t.detach().cpu().numpy().copy()


def _copy_weights(th_model, cr_model):
    """torch -> chainrule through load_state_dict of numpy-converted tensors (strict)."""
    state = {k: cr.tensor(v.detach().numpy()) for k, v in th_model.state_dict().items()}
    cr_model.load_state_dict(state)
    for k, v in cr_model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), th_model.state_dict()[k].numpy())


# ------------------------------------------------------------------ model parity
def _mlp_digits(lib):
    return lib.Sequential(lib.Linear(64, 128), lib.ReLU(), lib.Linear(128, 10))


def _mlp_xor_sigmoid(lib):
    return lib.Sequential(lib.Linear(2, 8), lib.Sigmoid(), lib.Linear(8, 1), lib.Sigmoid())


def _mlp_xor_logits(lib):
    return lib.Sequential(lib.Linear(2, 8), lib.Sigmoid(), lib.Linear(8, 1))


def _mlp_tanh_softmax(lib):
    return lib.Sequential(lib.Linear(5, 16), lib.Tanh(), lib.Dropout(0.5), lib.Identity(),
                          lib.Linear(16, 4), lib.Softmax(dim=1))


RNG = np.random.default_rng(2024)
DATA = {
    "digits": RNG.normal(size=(32, 64)).astype(np.float32),
    "xor": RNG.uniform(-1, 1, size=(16, 2)).astype(np.float32),
    "tanh": RNG.normal(size=(12, 5)).astype(np.float32),
}
TARGETS = {
    "classes10": RNG.integers(0, 10, size=32).astype(np.int64),
    "regress10": RNG.normal(size=(32, 10)).astype(np.float32),
    "binary": (RNG.uniform(size=(16, 1)) > 0.5).astype(np.float32),
    "soft_binary": RNG.uniform(size=(16, 1)).astype(np.float32),
    "probs4": RNG.dirichlet(np.ones(4), size=12).astype(np.float32),
}

MODEL_CASES = [
    # id, model factory, input, target, cr loss class, torch loss class
    ("digits_xent", _mlp_digits, "digits", "classes10", nn.CrossEntropyLoss, tnn.CrossEntropyLoss),
    ("digits_mse", _mlp_digits, "digits", "regress10", nn.MSELoss, tnn.MSELoss),
    ("xor_bce", _mlp_xor_sigmoid, "xor", "binary", nn.BCELoss, tnn.BCELoss),
    ("xor_bce_soft", _mlp_xor_sigmoid, "xor", "soft_binary", nn.BCELoss, tnn.BCELoss),
    ("xor_bce_logits", _mlp_xor_logits, "xor", "binary", nn.BCEWithLogitsLoss,
     tnn.BCEWithLogitsLoss),
    ("tanh_softmax_mse", _mlp_tanh_softmax, "tanh", "probs4", nn.MSELoss, tnn.MSELoss),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name,factory,xkey,ykey,cr_loss,th_loss", MODEL_CASES,
                         ids=[c[0] for c in MODEL_CASES])
def test_model_outputs_and_every_gradient_match_torch(name, factory, xkey, ykey, cr_loss,
                                                      th_loss, reduction):
    torch.manual_seed(0)
    th_model = factory(tnn)
    cr_model = factory(nn)
    _copy_weights(th_model, cr_model)
    th_model.eval()
    cr_model.eval()  # dropout off in both
    assert not cr_model.training
    x, y = DATA[xkey], TARGETS[ykey]

    out_th = th_model(torch.tensor(x))
    out_cr = cr_model(cr.tensor(x))
    assert out_cr.shape == tuple(out_th.shape)
    np.testing.assert_allclose(_np(out_cr), _np(out_th), rtol=1e-5, atol=1e-6)

    loss_th = th_loss(reduction=reduction)(out_th, torch.tensor(y))
    loss_cr = cr_loss(reduction=reduction)(out_cr, cr.tensor(y))
    assert loss_cr.shape == tuple(loss_th.shape)
    np.testing.assert_allclose(_np(loss_cr), _np(loss_th), rtol=1e-5, atol=1e-6)

    if reduction == "none":
        w = np.random.default_rng(1).uniform(0.5, 1.5, size=tuple(loss_th.shape))
        w = w.astype(np.float32)
        loss_th.backward(torch.tensor(w))
        loss_cr.backward(cr.tensor(w))
    else:
        loss_th.backward()
        loss_cr.backward()

    th_params = dict(th_model.named_parameters())
    cr_params = dict(cr_model.named_parameters())
    assert list(cr_params) == list(th_params)
    for pname, p_th in th_params.items():
        g_cr = cr_params[pname].grad
        assert g_cr is not None, pname
        assert g_cr.shape == tuple(p_th.grad.shape), pname
        np.testing.assert_allclose(_np(g_cr), _np(p_th.grad), rtol=1e-4, atol=1e-6,
                                   err_msg=f"{name}/{reduction}: grad of {pname}")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("loss", ["mse", "bce", "bce_logits", "cross_entropy"])
def test_functional_losses_match_torch_in_float64(loss, reduction):
    rng = np.random.default_rng(11)
    if loss == "cross_entropy":
        inp = rng.normal(size=(7, 5)) * 3
        tgt = rng.integers(0, 5, size=7).astype(np.int64)
    else:
        inp = rng.uniform(0.02, 0.98, size=(7, 3)) if loss == "bce" else rng.normal(size=(7, 3)) * 3
        tgt = rng.uniform(size=(7, 3))
    cr_fn = {"mse": F.mse_loss, "bce": F.binary_cross_entropy,
             "bce_logits": F.binary_cross_entropy_with_logits, "cross_entropy": F.cross_entropy}[loss]
    th_fn = {"mse": tF.mse_loss, "bce": tF.binary_cross_entropy,
             "bce_logits": tF.binary_cross_entropy_with_logits,
             "cross_entropy": tF.cross_entropy}[loss]
    x_cr = cr.tensor(inp, dtype=cr.float64, requires_grad=True)
    x_th = torch.tensor(inp, dtype=torch.float64, requires_grad=True)
    t_cr = cr.tensor(tgt) if tgt.dtype == np.int64 else cr.tensor(tgt, dtype=cr.float64)
    out_cr = cr_fn(x_cr, t_cr, reduction=reduction)
    out_th = th_fn(x_th, torch.tensor(tgt), reduction=reduction)
    assert out_cr.dtype == cr.float64
    np.testing.assert_allclose(_np(out_cr), _np(out_th), rtol=1e-12, atol=1e-14)
    (out_cr * out_cr).sum().backward()
    (out_th * out_th).sum().backward()
    np.testing.assert_allclose(_np(x_cr.grad), _np(x_th.grad), rtol=1e-10, atol=1e-14)


def test_dropout_model_in_train_mode_differs_from_eval():
    cr.manual_seed(0)
    model = _mlp_tanh_softmax(nn)
    x = cr.tensor(DATA["tanh"])
    model.eval()
    a = model(x).numpy().copy()
    np.testing.assert_array_equal(model(x).numpy(), a)
    model.train()
    assert not np.allclose(model(x).numpy(), a)


def _ones(lib, n):
    return torch.ones(n) if lib is tnn else cr.ones(n)


def _nested(lib):
    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.encoder = lib.Sequential(lib.Linear(3, 6), lib.Tanh(),
                                          lib.Sequential(lib.Linear(6, 5), lib.ReLU()))
            self.scale = lib.Parameter(_ones(lib, 5))
            self.head = lib.Linear(5, 2)
            self.act = lib.Sigmoid()

        def forward(self, x):
            return self.act(self.head(self.encoder(x) * self.scale))

    return Net()


def test_nested_custom_module_names_children_and_gradients_match_torch():
    torch.manual_seed(1)
    th_model, cr_model = _nested(tnn), _nested(nn)
    with torch.no_grad():
        th_model.scale.uniform_(0.5, 1.5)
    assert [n for n, _ in cr_model.named_parameters()] == [n for n, _ in
                                                           th_model.named_parameters()]
    assert list(cr_model.state_dict()) == list(th_model.state_dict())
    assert [type(c).__name__ for c in cr_model.children()] == [
        type(c).__name__ for c in th_model.children()]
    _copy_weights(th_model, cr_model)
    x = np.random.default_rng(6).normal(size=(7, 3)).astype(np.float32)
    y = np.random.default_rng(7).uniform(size=(7, 2)).astype(np.float32)
    loss_th = tF.binary_cross_entropy(th_model(torch.tensor(x)), torch.tensor(y))
    loss_cr = F.binary_cross_entropy(cr_model(cr.tensor(x)), cr.tensor(y))
    np.testing.assert_allclose(loss_cr.item(), loss_th.item(), rtol=1e-5)
    loss_th.backward()
    loss_cr.backward()
    cr_params = dict(cr_model.named_parameters())
    for pname, p_th in th_model.named_parameters():
        np.testing.assert_allclose(_np(cr_params[pname].grad), _np(p_th.grad), rtol=1e-4,
                                   atol=1e-6, err_msg=pname)


@pytest.mark.parametrize("cls", ["SGD", "Adam", "AdamW"])
def test_optimizer_param_groups_match_torch(cls):
    th_net, cr_net, x, y = _opt_pair(seed=6)
    extra = dict(momentum=0.9, nesterov=True) if cls == "SGD" else dict(weight_decay=0.1)

    def groups(net):
        return [{"params": list(net[0].parameters()), "lr": 0.02},
                {"params": list(net[2].parameters()), "lr": 0.005, **extra}]

    cr_opt = getattr(cr.optim, cls)(groups(cr_net), lr=0.01)
    th_opt = getattr(torch.optim, cls)(groups(th_net), lr=0.01)
    for _ in range(15):
        cr_opt.zero_grad()
        th_opt.zero_grad()
        F.mse_loss(cr_net(cr.tensor(x)), cr.tensor(y)).backward()
        tF.mse_loss(th_net(torch.tensor(x)), torch.tensor(y)).backward()
        cr_opt.step()
        th_opt.step()
    th_params = dict(th_net.named_parameters())
    for pname, p in cr_net.named_parameters():
        np.testing.assert_allclose(p.numpy(), _np(th_params[pname]), rtol=1e-5, atol=1e-6,
                                   err_msg=pname)


@pytest.mark.parametrize("loss", ["mse_loss", "binary_cross_entropy",
                                  "binary_cross_entropy_with_logits"])
def test_loss_gradient_flows_to_target_like_torch(loss):
    rng = np.random.default_rng(13)
    x = rng.uniform(0.1, 0.9, size=(3, 2)).astype(np.float32)
    y = rng.uniform(0.1, 0.9, size=(3, 2)).astype(np.float32)
    xc, yc = cr.tensor(x, requires_grad=True), cr.tensor(y, requires_grad=True)
    xt, yt = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    getattr(F, loss)(xc, yc, reduction="sum").backward()
    getattr(tF, loss)(xt, yt, reduction="sum").backward()
    assert yc.grad is not None
    np.testing.assert_allclose(_np(yc.grad), _np(yt.grad), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(xc.grad), _np(xt.grad), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)),
                                        ("Adam", dict(lr=0.1)), ("AdamW", dict(lr=0.1))])
def test_optimizer_with_parameter_that_gets_its_first_grad_late_matches_torch(cls, kwargs):
    a0 = np.array([1.0, -2.0], dtype=np.float32)
    b0 = np.array([0.5], dtype=np.float32)
    ac, bc = cr.tensor(a0, requires_grad=True), cr.tensor(b0, requires_grad=True)
    at, bt = torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    oc = getattr(cr.optim, cls)([ac, bc], **kwargs)
    ot = getattr(torch.optim, cls)([at, bt], **kwargs)
    for i in range(10):
        oc.zero_grad()
        ot.zero_grad()
        if i < 5:    # b gets no grad: skipped, its state (step count, moments) not started
            (ac * ac).sum().backward()
            (at * at).sum().backward()
        else:
            ((ac * ac).sum() + (bc * ac).sum() * bc.sum()).backward()
            ((at * at).sum() + (bt * at).sum() * bt.sum()).backward()
        oc.step()
        ot.step()
        if i == 4:
            np.testing.assert_array_equal(bc.numpy(), b0)
    np.testing.assert_allclose(ac.numpy(), _np(at), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bc.numpy(), _np(bt), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ optimizers: state_dict resume
OPT_CONFIGS = [
    ("sgd", "SGD", dict(lr=0.1)),
    ("sgd_momentum_dampening_wd", "SGD", dict(lr=0.05, momentum=0.9, dampening=0.1,
                                               weight_decay=0.01)),
    ("sgd_nesterov", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("adam", "Adam", dict(lr=0.01)),
    ("adam_wd_betas", "Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("adamw", "AdamW", dict(lr=0.01)),
    ("adamw_wd", "AdamW", dict(lr=0.01, weight_decay=0.2)),
]


def _opt_pair(seed=3):
    torch.manual_seed(seed)
    th_net = tnn.Sequential(tnn.Linear(4, 6), tnn.Tanh(), tnn.Linear(6, 2))
    cr_net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
    _copy_weights(th_net, cr_net)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    y = rng.normal(size=(10, 2)).astype(np.float32)
    return th_net, cr_net, x, y


def _cr_steps(net, opt, x, y, n):
    for _ in range(n):
        opt.zero_grad()
        F.mse_loss(net(cr.tensor(x)), cr.tensor(y)).backward()
        opt.step()


@pytest.mark.parametrize("name,cls,kwargs", OPT_CONFIGS, ids=[c[0] for c in OPT_CONFIGS])
def test_optimizer_state_dict_resume_mid_training_matches_uninterrupted_and_torch(name, cls,
                                                                                 kwargs):
    th_net, cr_a, x, y = _opt_pair()
    cr_b = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
    cr_b.load_state_dict(cr_a.state_dict())

    # uninterrupted run: 20 steps
    opt_a = getattr(cr.optim, cls)(cr_a.parameters(), **kwargs)
    _cr_steps(cr_a, opt_a, x, y, 20)

    # interrupted run: 10 steps, state_dict, fresh optimizer (other hyper-parameters), 10 more
    opt_b = getattr(cr.optim, cls)(cr_b.parameters(), **kwargs)
    _cr_steps(cr_b, opt_b, x, y, 10)
    saved = opt_b.state_dict()
    assert set(saved) == {"state", "param_groups"}
    assert saved["param_groups"][0]["lr"] == kwargs["lr"]
    if cls != "SGD" or kwargs.get("momentum"):
        assert len(saved["state"]) == 4   # per-parameter buffers for all 4 parameters
    del opt_b
    fresh = getattr(cr.optim, cls)(cr_b.parameters(), **dict(kwargs, lr=123.0))
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == kwargs["lr"]   # hyper-parameters restored too
    _cr_steps(cr_b, fresh, x, y, 10)

    # torch, uninterrupted
    th_opt = getattr(torch.optim, cls)(th_net.parameters(), **kwargs)
    for _ in range(20):
        th_opt.zero_grad()
        tF.mse_loss(th_net(torch.tensor(x)), torch.tensor(y)).backward()
        th_opt.step()

    th_params = dict(th_net.named_parameters())
    b_params = dict(cr_b.named_parameters())
    for pname, p_a in cr_a.named_parameters():
        np.testing.assert_array_equal(p_a.numpy(), b_params[pname].numpy(),
                                      err_msg=f"{name}: resumed {pname} differs")
        np.testing.assert_allclose(p_a.numpy(), _np(th_params[pname]), rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name}: {pname} differs from torch")


@pytest.mark.parametrize("name,cls,kwargs", [c for c in OPT_CONFIGS if c[1] != "SGD"] +
                         [OPT_CONFIGS[1]], ids=lambda v: v if isinstance(v, str) else "")
def test_optimizer_state_dict_is_a_snapshot(name, cls, kwargs):
    _, net, x, y = _opt_pair()
    opt = getattr(cr.optim, cls)(net.parameters(), **kwargs)
    _cr_steps(net, opt, x, y, 3)
    saved = opt.state_dict()
    before = {i: {k: (_np(v) if isinstance(v, cr.Tensor) else v) for k, v in s.items()}
              for i, s in saved["state"].items()}
    _cr_steps(net, opt, x, y, 3)   # the live optimizer moves on; the saved dict must not
    for i, s in saved["state"].items():
        for k, v in s.items():
            if isinstance(v, cr.Tensor):
                np.testing.assert_array_equal(_np(v), before[i][k])
            else:
                assert v == before[i][k]


# ------------------------------------------------------------------ nn.init statistics
SHAPES = {"square": (1000, 1000), "wide": (500, 2000), "conv": (200, 100, 50)}

INIT_CASES = [
    # id, function name, kwargs, shape key
    ("uniform_default", "uniform_", {}, "square"),
    ("uniform_ab", "uniform_", dict(a=-3.0, b=0.5), "square"),
    ("normal_default", "normal_", {}, "square"),
    ("normal_mean_std", "normal_", dict(mean=2.0, std=0.3), "square"),
    ("xavier_uniform", "xavier_uniform_", {}, "wide"),
    ("xavier_uniform_gain", "xavier_uniform_", dict(gain=2.5), "wide"),
    ("xavier_uniform_conv", "xavier_uniform_", {}, "conv"),
    ("xavier_normal", "xavier_normal_", {}, "wide"),
    ("xavier_normal_gain", "xavier_normal_", dict(gain=0.5), "square"),
    ("xavier_normal_conv", "xavier_normal_", dict(gain=math.sqrt(2.0)), "conv"),
    ("kaiming_uniform", "kaiming_uniform_", {}, "wide"),
    ("kaiming_uniform_a_sqrt5", "kaiming_uniform_", dict(a=math.sqrt(5)), "wide"),
    ("kaiming_uniform_fan_out", "kaiming_uniform_", dict(mode="fan_out"), "wide"),
    ("kaiming_uniform_relu", "kaiming_uniform_", dict(nonlinearity="relu"), "wide"),
    ("kaiming_uniform_tanh_fan_out", "kaiming_uniform_", dict(mode="fan_out",
                                                              nonlinearity="tanh"), "conv"),
    ("kaiming_uniform_leaky_a", "kaiming_uniform_", dict(a=0.2, nonlinearity="leaky_relu"),
     "conv"),
    ("kaiming_uniform_linear", "kaiming_uniform_", dict(nonlinearity="linear"), "square"),
    ("kaiming_normal", "kaiming_normal_", {}, "wide"),
    ("kaiming_normal_fan_out_relu", "kaiming_normal_", dict(mode="fan_out",
                                                            nonlinearity="relu"), "wide"),
    ("kaiming_normal_sigmoid", "kaiming_normal_", dict(nonlinearity="sigmoid"), "conv"),
    ("kaiming_normal_selu", "kaiming_normal_", dict(nonlinearity="selu", mode="fan_out"), "conv"),
    ("kaiming_normal_a", "kaiming_normal_", dict(a=1.0), "square"),
]


@pytest.mark.parametrize("name,fn,kwargs,shape_key", INIT_CASES, ids=[c[0] for c in INIT_CASES])
def test_init_statistics_match_torch(name, fn, kwargs, shape_key):
    shape = SHAPES[shape_key]
    torch.manual_seed(0)
    th = getattr(torch.nn.init, fn)(torch.empty(*shape), **kwargs).numpy()
    t = cr.zeros(*shape)
    returned = getattr(nn.init, fn)(t, **kwargs)
    assert returned is t
    assert t.shape == shape and t.dtype == cr.float32
    got = t.numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got.std(), th.std(), rtol=0.02, err_msg=name)
    spread = max(th.std(), 1e-3)
    assert abs(got.mean() - th.mean()) < 0.01 * spread + 0.005 * abs(th.mean()), name
    if "uniform" in fn:
        low, high = th.min(), th.max()
        width = high - low
        # same interval: nothing outside torch's bound, and the bound is reached
        assert got.min() >= low - 1e-3 * width and got.max() <= high + 1e-3 * width, name
        assert got.min() < low + 1e-3 * width and got.max() > high - 1e-3 * width, name
    else:
        # Gaussian tails: 4-sigma fraction like torch's (6.3e-5 of 1e6 = about 63)
        z = np.abs(got - got.mean()) / got.std()
        assert 20 < (z > 4).sum() < 150, name
        assert abs((z < 1).mean() - 0.6827) < 0.005, name


def test_init_is_in_place_and_not_recorded():
    w = nn.Parameter(cr.zeros(30, 20))
    out = nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    assert out is w and w.is_leaf and w.grad_fn is None and w.requires_grad
    assert np.abs(w.numpy()).max() > 0


@pytest.mark.parametrize("fn,kwargs,value", [("zeros_", {}, 0.0), ("ones_", {}, 1.0),
                                             ("constant_", dict(val=-0.75), -0.75)])
def test_constant_initialisers_match_torch(fn, kwargs, value):
    th = getattr(torch.nn.init, fn)(torch.empty(40, 30), **kwargs).numpy()
    t = cr.randn(40, 30)
    getattr(nn.init, fn)(t, **kwargs)
    np.testing.assert_array_equal(t.numpy(), th)
    assert (t.numpy() == value).all()


@pytest.mark.parametrize("nonlinearity,param", [("linear", None), ("sigmoid", None),
                                                ("tanh", None), ("relu", None),
                                                ("leaky_relu", None), ("leaky_relu", 0.2),
                                                ("selu", None), ("conv2d", None)])
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert nn.init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-12)


@pytest.mark.parametrize("fn", ["xavier_uniform_", "kaiming_normal_"])
def test_fan_based_init_rejects_1d_tensor_like_torch(fn):
    with pytest.raises(ValueError):
        getattr(torch.nn.init, fn)(torch.empty(10))
    with pytest.raises(ValueError):
        getattr(nn.init, fn)(cr.zeros(10))


def test_linear_default_init_matches_torch_bounds_and_std():
    torch.manual_seed(0)
    th = torch.nn.Linear(1000, 800)
    cr.manual_seed(0)
    lin = nn.Linear(1000, 800)
    for attr in ("weight", "bias"):
        ref = getattr(th, attr).detach().numpy()
        got = getattr(lin, attr).numpy()
        assert got.shape == ref.shape
        bound = 1 / math.sqrt(1000)
        assert np.abs(got).max() <= bound
        assert np.abs(ref).max() <= bound
        assert got.max() > 0.95 * bound and got.min() < -0.95 * bound, attr
        rtol = 0.02 if attr == "weight" else 0.1   # the bias has only 800 samples
        np.testing.assert_allclose(got.std(), ref.std(), rtol=rtol, err_msg=attr)
        np.testing.assert_allclose(got.std(), bound / math.sqrt(3), rtol=rtol, err_msg=attr)


def test_linear_init_uses_in_features_not_out_features():
    lin = nn.Linear(16, 4000)   # bound 1/4, not 1/sqrt(4000)
    w = lin.weight.numpy()
    assert w.max() > 0.24 and w.min() < -0.24 and np.abs(w).max() <= 0.25


# ------------------------------------------------------------------ softmax family at 1e4
BIG = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4], [-1e4, -1e4 + 1.0, -1e4], [1e4, 1e4 - 3, 0.0]],
               dtype=np.float32)
BIG_TARGET = np.array([2, 1, 1, 0], dtype=np.int64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op", ["softmax", "log_softmax", "cross_entropy", "module_softmax",
                                "functional_softmax", "functional_log_softmax", "cr_softmax"])
def test_softmax_family_at_1e4_finite_and_equal_to_torch(op, dtype):
    x_np = BIG.astype(dtype)
    x_cr = cr.tensor(x_np, requires_grad=True)
    x_th = torch.tensor(x_np, requires_grad=True)
    fns = {
        "softmax": (lambda t: t.softmax(1), lambda t: t.softmax(1)),
        "log_softmax": (lambda t: t.log_softmax(-1), lambda t: t.log_softmax(-1)),
        "cross_entropy": (lambda t: F.cross_entropy(t, cr.tensor(BIG_TARGET), reduction="none"),
                          lambda t: tF.cross_entropy(t, torch.tensor(BIG_TARGET),
                                                     reduction="none")),
        "module_softmax": (lambda t: nn.Softmax(dim=1)(t), lambda t: tnn.Softmax(dim=1)(t)),
        "functional_softmax": (lambda t: F.softmax(t, dim=1), lambda t: tF.softmax(t, dim=1)),
        "functional_log_softmax": (lambda t: F.log_softmax(t, dim=1),
                                   lambda t: tF.log_softmax(t, dim=1)),
        "cr_softmax": (lambda t: cr.softmax(t, 0), lambda t: torch.softmax(t, 0)),
    }
    f_cr, f_th = fns[op]
    out_cr, out_th = f_cr(x_cr), f_th(x_th)
    assert np.isfinite(_np(out_cr)).all()
    np.testing.assert_allclose(_np(out_cr), _np(out_th), rtol=1e-6, atol=1e-6)
    w = np.linspace(0.5, 1.5, out_th.numel()).reshape(tuple(out_th.shape)).astype(dtype)
    out_cr.backward(cr.tensor(w))
    out_th.backward(torch.tensor(w))
    assert np.isfinite(_np(x_cr.grad)).all()
    np.testing.assert_allclose(_np(x_cr.grad), _np(x_th.grad), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_loss_module_at_1e4_matches_torch(reduction):
    x_cr = cr.tensor(BIG, requires_grad=True)
    x_th = torch.tensor(BIG, requires_grad=True)
    loss_cr = nn.CrossEntropyLoss(reduction=reduction)(x_cr, cr.tensor(BIG_TARGET))
    loss_th = tnn.CrossEntropyLoss(reduction=reduction)(x_th, torch.tensor(BIG_TARGET))
    assert math.isfinite(loss_cr.item())
    np.testing.assert_allclose(loss_cr.item(), loss_th.item(), rtol=1e-6)
    loss_cr.backward()
    loss_th.backward()
    np.testing.assert_allclose(_np(x_cr.grad), _np(x_th.grad), rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------ max/min with dims
X3 = np.random.default_rng(5).permutation(2 * 3 * 4).reshape(2, 3, 4).astype(np.float32)  # no ties


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2])
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_with_dim_values_indices_and_grad_match_torch(op, dim, keepdim):
    x_cr = cr.tensor(X3, requires_grad=True)
    x_th = torch.tensor(X3, requires_grad=True)
    r_cr = getattr(x_cr, op)(dim, keepdim=keepdim)
    r_th = getattr(x_th, op)(dim, keepdim=keepdim)
    values, indices = r_cr           # unpacks like a tuple
    np.testing.assert_array_equal(_np(r_cr.values), _np(values))
    np.testing.assert_array_equal(_np(r_cr.indices), _np(indices))
    assert values.shape == tuple(r_th.values.shape)
    assert indices.dtype == cr.int64 and not indices.requires_grad
    np.testing.assert_array_equal(_np(values), _np(r_th.values))
    np.testing.assert_array_equal(_np(indices), _np(r_th.indices))
    # package-level form with keyword dim
    r2 = getattr(cr, op)(x_cr, dim=dim, keepdim=keepdim)
    np.testing.assert_array_equal(_np(r2.indices), _np(r_th.indices))
    w = np.arange(1, r_th.values.numel() + 1, dtype=np.float32).reshape(tuple(r_th.values.shape))
    values.backward(cr.tensor(w))
    r_th.values.backward(torch.tensor(w))
    np.testing.assert_array_equal(_np(x_cr.grad), _np(x_th.grad))


@pytest.mark.parametrize("op", ["max", "min", "amax", "amin"])
def test_full_reduction_max_min_and_ties_grad_match_torch(op):
    data = np.array([[3.0, -1.0, 3.0], [0.5, 3.0, -1.0]], dtype=np.float32)
    x_cr = cr.tensor(data, requires_grad=True)
    x_th = torch.tensor(data, requires_grad=True)
    y_cr, y_th = getattr(x_cr, op)(), getattr(x_th, op)()
    assert y_cr.shape == () == tuple(y_th.shape)
    assert y_cr.item() == y_th.item()
    y_cr.backward()
    y_th.backward()
    # torch spreads the gradient evenly over tied extrema for full max/min and amax/amin
    np.testing.assert_allclose(_np(x_cr.grad), _np(x_th.grad), rtol=1e-6)


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_argmin_match_torch(op, dim, keepdim):
    x = np.random.default_rng(9).normal(size=(5, 7)).astype(np.float32)
    got = getattr(cr.tensor(x), op)(dim=dim, keepdim=keepdim)
    ref = getattr(torch.tensor(x), op)(dim=dim, keepdim=keepdim)
    assert got.dtype == cr.int64
    assert got.shape == tuple(ref.shape)
    np.testing.assert_array_equal(_np(got), _np(ref))
    np.testing.assert_array_equal(_np(getattr(cr, op)(cr.tensor(x), dim, keepdim)),
                                  _np(getattr(torch, op)(torch.tensor(x), dim, keepdim)))


def test_clamp_maximum_minimum_where_match_torch():
    rng = np.random.default_rng(4)
    a_np = rng.normal(size=(4, 5)).astype(np.float32)
    b_np = rng.normal(size=(5,)).astype(np.float32)
    c_np = rng.uniform(size=(4, 5)) > 0.5
    a_cr, b_cr = cr.tensor(a_np, requires_grad=True), cr.tensor(b_np, requires_grad=True)
    a_th, b_th = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)

    def f(lib, a, b, c):
        return (a.clamp(min=-0.5, max=0.7) * 2 + lib.maximum(a, b) * 3
                + lib.minimum(a, b).clamp(max=0.1) * 5 + lib.where(c, a * a, b) * 7)

    out_cr = f(cr, a_cr, b_cr, cr.tensor(c_np))
    out_th = f(torch, a_th, b_th, torch.tensor(c_np))
    np.testing.assert_allclose(_np(out_cr), _np(out_th), rtol=1e-6, atol=1e-6)
    out_cr.sum().backward()
    out_th.sum().backward()
    np.testing.assert_allclose(_np(a_cr.grad), _np(a_th.grad), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(b_cr.grad), _np(b_th.grad), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ integer-tensor indexing
INDEX_CASES = [
    ("distinct", [3, 0, 2]),
    ("repeated", [1, 1, 4, 1, 0, 4]),
    ("negative", [-1, 0, -1, -5]),
    ("single", [2]),
    ("all_reversed", [4, 3, 2, 1, 0]),
    ("empty", []),
]


@pytest.mark.parametrize("shape", [(5,), (5, 3), (5, 2, 3)], ids=str)
@pytest.mark.parametrize("name,idx", INDEX_CASES, ids=[c[0] for c in INDEX_CASES])
def test_int64_tensor_indexing_and_gradient_match_torch(name, idx, shape):
    x_np = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    x_cr = cr.tensor(x_np, requires_grad=True)
    x_th = torch.tensor(x_np, requires_grad=True)
    i_np = np.array(idx, dtype=np.int64)
    y_cr = x_cr[cr.tensor(i_np)]
    y_th = x_th[torch.tensor(i_np)]
    assert y_cr.shape == tuple(y_th.shape)
    np.testing.assert_array_equal(_np(y_cr), _np(y_th))
    if y_th.numel() == 0:
        (y_cr.sum() + x_cr.sum() * 0).backward()
        (y_th.sum() + x_th.sum() * 0).backward()
    else:
        assert y_cr.requires_grad and y_cr.grad_fn is not None
        w = np.arange(1, y_th.numel() + 1, dtype=np.float32).reshape(tuple(y_th.shape))
        y_cr.backward(cr.tensor(w))
        y_th.backward(torch.tensor(w))
    np.testing.assert_array_equal(_np(x_cr.grad), _np(x_th.grad))


def test_int64_indexing_of_non_contiguous_tensor_matches_torch():
    x_np = np.random.default_rng(8).normal(size=(3, 5)).astype(np.float32)
    idx = np.array([4, 0, 4, 2], dtype=np.int64)
    x_cr = cr.tensor(x_np, requires_grad=True)
    x_th = torch.tensor(x_np, requires_grad=True)
    y_cr = x_cr.T[cr.tensor(idx)]
    y_th = x_th.T[torch.tensor(idx)]
    np.testing.assert_array_equal(_np(y_cr), _np(y_th))
    w = np.arange(12, dtype=np.float32).reshape(4, 3)
    y_cr.backward(cr.tensor(w))
    y_th.backward(torch.tensor(w))
    np.testing.assert_array_equal(_np(x_cr.grad), _np(x_th.grad))


@pytest.mark.parametrize("idx", [[4], [-5], [0, 7]])
def test_int64_index_out_of_range_raises_index_error_like_torch(idx):
    with pytest.raises(IndexError):
        torch.zeros(4, 2)[torch.tensor(idx)]
    with pytest.raises(IndexError):
        cr.zeros(4, 2)[cr.tensor(idx)]


def test_int64_index_result_is_a_copy_like_torch():
    x = cr.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    y = x[cr.tensor([2, 0])]
    y.numpy()[0, 0] = 100.0
    assert x.numpy()[2, 0] == 5.0


def test_int64_index_then_chain_matches_torch():
    x_np = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    idx = np.array([5, 2, 2, 0], dtype=np.int64)
    x_cr = cr.tensor(x_np, requires_grad=True)
    x_th = torch.tensor(x_np, requires_grad=True)
    # gather rows, then basic indexing, then a softmax -- a batch-sampling pattern
    out_th = (x_th[torch.tensor(idx)][:, 1:].softmax(1) * x_th[1:5, 1:]).sum()
    out_cr = (x_cr[cr.tensor(idx)][:, 1:].softmax(1) * x_cr[1:5, 1:]).sum()
    np.testing.assert_allclose(out_cr.item(), out_th.item(), rtol=1e-5, atol=1e-6)
    out_cr.backward()
    out_th.backward()
    np.testing.assert_allclose(_np(x_cr.grad), _np(x_th.grad), rtol=1e-5, atol=1e-6)


def test_bool_mask_indexing_matches_torch():
    x_np = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    m = np.array([True, False, True, True, False])
    x_cr = cr.tensor(x_np, requires_grad=True)
    x_th = torch.tensor(x_np, requires_grad=True)
    y_cr, y_th = x_cr[cr.tensor(m)], x_th[torch.tensor(m)]
    np.testing.assert_array_equal(_np(y_cr), _np(y_th))
    (y_cr * y_cr).sum().backward()
    (y_th * y_th).sum().backward()
    np.testing.assert_allclose(_np(x_cr.grad), _np(x_th.grad), rtol=1e-6)


def test_2d_int64_index_tensor_on_first_dim_matches_torch():
    x_np = np.arange(12, dtype=np.float32).reshape(4, 3)
    idx = np.array([[0, 3], [3, 1]], dtype=np.int64)
    x_cr = cr.tensor(x_np, requires_grad=True)
    x_th = torch.tensor(x_np, requires_grad=True)
    y_cr, y_th = x_cr[cr.tensor(idx)], x_th[torch.tensor(idx)]
    assert y_cr.shape == tuple(y_th.shape) == (2, 2, 3)
    np.testing.assert_array_equal(_np(y_cr), _np(y_th))
    y_cr.sum().backward()
    y_th.sum().backward()
    np.testing.assert_array_equal(_np(x_cr.grad), _np(x_th.grad))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_stack_values_and_grads_match_torch(dim):
    rng = np.random.default_rng(dim + 10)
    arrays = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(3)]
    cr_in = [cr.tensor(a, requires_grad=True) for a in arrays]
    th_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    for fn in ("cat", "stack"):
        out_cr = getattr(cr, fn)(cr_in, dim=dim)
        out_th = getattr(torch, fn)(th_in, dim=dim)
        assert out_cr.shape == tuple(out_th.shape)
        np.testing.assert_array_equal(_np(out_cr), _np(out_th))
        w = rng.normal(size=tuple(out_th.shape)).astype(np.float32)
        out_cr.backward(cr.tensor(w))
        out_th.backward(torch.tensor(w))
    for c, t in zip(cr_in, th_in):
        np.testing.assert_allclose(_np(c.grad), _np(t.grad), rtol=1e-6)


# ------------------------------------------------------------------ hooks and retain_grad
def _hook_graph(lib, x, w, log):
    h = x @ w
    h.retain_grad()
    h.register_hook(lambda g: log.append(("h", _np(g))) or g * 2)
    a = h.tanh()
    a.register_hook(lambda g: log.append(("a", _np(g))))     # observe only (returns None)
    y = (a * a).sum() + h.sum()
    return h, a, y


def test_register_hook_and_retain_grad_match_torch():
    rng = np.random.default_rng(3)
    x_np = rng.normal(size=(3, 4)).astype(np.float32)
    w_np = rng.normal(size=(4, 2)).astype(np.float32)
    logs = {"cr": [], "th": []}
    x_cr, w_cr = cr.tensor(x_np, requires_grad=True), cr.tensor(w_np, requires_grad=True)
    x_th, w_th = torch.tensor(x_np, requires_grad=True), torch.tensor(w_np, requires_grad=True)
    leaf_seen = {"cr": [], "th": []}
    w_cr.register_hook(lambda g: leaf_seen["cr"].append(_np(g)) or g + 1)
    w_th.register_hook(lambda g: leaf_seen["th"].append(_np(g)) or g + 1)
    h_cr, a_cr, y_cr = _hook_graph(cr, x_cr, w_cr, logs["cr"])
    h_th, a_th, y_th = _hook_graph(torch, x_th, w_th, logs["th"])
    y_cr.backward()
    y_th.backward()
    assert [n for n, _ in logs["cr"]] == [n for n, _ in logs["th"]] == ["a", "h"]
    for (_, g_cr), (_, g_th) in zip(logs["cr"], logs["th"]):
        np.testing.assert_allclose(g_cr, g_th, rtol=1e-5, atol=1e-6)
    # retain_grad keeps h's grad; compare with what torch keeps
    assert h_cr.grad is not None
    np.testing.assert_allclose(_np(h_cr.grad), _np(h_th.grad), rtol=1e-5, atol=1e-6)
    assert a_cr.grad is None and not a_th.retains_grad and not a_cr.retains_grad
    assert h_cr.retains_grad and h_th.retains_grad
    assert len(leaf_seen["cr"]) == len(leaf_seen["th"]) == 1
    np.testing.assert_allclose(leaf_seen["cr"][0], leaf_seen["th"][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(w_cr.grad), _np(w_th.grad), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(x_cr.grad), _np(x_th.grad), rtol=1e-5, atol=1e-6)


def test_hook_removal_matches_torch():
    x_cr = cr.tensor([1.0, -2.0], requires_grad=True)
    x_th = torch.tensor([1.0, -2.0], requires_grad=True)
    remove_cr = x_cr.register_hook(lambda g: g * 10)
    handle_th = x_th.register_hook(lambda g: g * 10)
    remove = remove_cr.remove if hasattr(remove_cr, "remove") else remove_cr
    remove()
    handle_th.remove()
    (x_cr * 3).sum().backward()
    (x_th * 3).sum().backward()
    np.testing.assert_array_equal(_np(x_cr.grad), _np(x_th.grad))


def test_autograd_grad_matches_torch_and_leaves_grad_alone():
    rng = np.random.default_rng(12)
    a_np, b_np = rng.normal(size=(3, 2)), rng.normal(size=(2,))
    a_cr = cr.tensor(a_np, dtype=cr.float64, requires_grad=True)
    b_cr = cr.tensor(b_np, dtype=cr.float64, requires_grad=True)
    a_th = torch.tensor(a_np, requires_grad=True)
    b_th = torch.tensor(b_np, requires_grad=True)
    out_cr = (a_cr * b_cr).sigmoid() @ b_cr
    out_th = (a_th * b_th).sigmoid() @ b_th
    go = np.array([1.0, -2.0, 0.5])
    g_cr = cr.autograd.grad(out_cr, (a_cr, b_cr), grad_outputs=cr.tensor(go, dtype=cr.float64))
    g_th = torch.autograd.grad(out_th, (a_th, b_th), grad_outputs=torch.tensor(go))
    assert isinstance(g_cr, tuple) and len(g_cr) == 2
    for c, t in zip(g_cr, g_th):
        np.testing.assert_allclose(_np(c), _np(t), rtol=1e-12)
    assert a_cr.grad is None and b_cr.grad is None
    assert cr.autograd.gradcheck(lambda a, b: (a * b).sigmoid() @ b, (a_cr, b_cr)) is True
    assert torch.autograd.gradcheck(lambda a, b: (a * b).sigmoid() @ b, (a_th, b_th))


def test_gradcheck_raises_gradcheck_error_on_a_wrong_gradient_like_torch():
    x_cr = cr.tensor([0.3, -0.7], dtype=cr.float64, requires_grad=True)

    def wrong(t):   # hook doubles the grad: backward disagrees with finite differences
        y = t * 1.0
        if y.requires_grad:     # gradcheck may evaluate fn under no_grad for finite differences
            y.register_hook(lambda g: g * 2)
        return y.exp()

    with pytest.raises(cr.autograd.GradcheckError):
        cr.autograd.gradcheck(wrong, (x_cr,))
    x_th = torch.tensor([0.3, -0.7], dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError):
        torch.autograd.gradcheck(wrong, (x_th,))


# ------------------------------------------------------------------ in-place ops
INPLACE = [
    ("add_", lambda t, o: t.add_(o)),
    ("sub_", lambda t, o: t.sub_(o)),
    ("mul_", lambda t, o: t.mul_(o)),
    ("div_", lambda t, o: t.div_(o)),
    ("zero_", lambda t, o: t.zero_()),
    ("fill_", lambda t, o: t.fill_(2.5)),
    ("copy_", lambda t, o: t.copy_(o)),
    ("iadd_scalar", lambda t, o: t.__iadd__(0.5)),
    ("imul_tensor", lambda t, o: t.__imul__(o)),
]


@pytest.mark.parametrize("name,op", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_under_no_grad_matches_torch_and_keeps_leaf(name, op):
    base = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.5]], dtype=np.float32)
    other = np.array([2.0, -0.5, 4.0], dtype=np.float32)   # broadcast over rows
    if name == "copy_":
        other = np.broadcast_to(other, base.shape).copy()
    p_cr = nn.Parameter(cr.tensor(base))
    p_th = torch.nn.Parameter(torch.tensor(base))
    with cr.no_grad():
        r_cr = op(p_cr, cr.tensor(other))
    with torch.no_grad():
        op(p_th, torch.tensor(other))
    assert r_cr is p_cr
    np.testing.assert_array_equal(_np(p_cr), _np(p_th))
    assert p_cr.requires_grad and p_cr.is_leaf and p_cr.grad_fn is None
    # still trains afterwards
    (p_cr * 2).sum().backward()
    np.testing.assert_array_equal(_np(p_cr.grad), np.full(base.shape, 2.0, dtype=np.float32))


@pytest.mark.parametrize("name,op", INPLACE, ids=[c[0] for c in INPLACE])
def test_inplace_on_leaf_requiring_grad_outside_no_grad_raises_like_torch(name, op):
    base = np.ones((2, 3), dtype=np.float32)
    other = np.full((2, 3), 2.0, dtype=np.float32)
    p_cr = cr.tensor(base, requires_grad=True)
    p_th = torch.tensor(base, requires_grad=True)
    with pytest.raises(RuntimeError):
        op(p_th, torch.tensor(other))
    with pytest.raises(RuntimeError):
        op(p_cr, cr.tensor(other))
    np.testing.assert_array_equal(p_cr.numpy(), base)   # unchanged


@pytest.mark.parametrize("case", ["saved_input", "saved_output", "through_view", "through_detach"])
def test_modified_saved_tensor_raises_on_backward_like_torch(case):
    def build(lib, no_grad, x):
        if case == "saved_input":       # mul saves both inputs
            y = x * x
            with no_grad():
                x.add_(1.0)
        elif case == "saved_output":    # exp/sigmoid save their output
            y = x.sigmoid()
            with no_grad():
                y.mul_(2.0)
            y = y * 1.0
        elif case == "through_view":
            y = x.exp()
            with no_grad():
                y[0].fill_(0.0)
            y = y.sum()
        else:
            y = x.tanh()
            y.detach().zero_()
            y = y.sum()
        return y.sum()

    x_th = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    x_cr = cr.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y_th = build(torch, torch.no_grad, x_th)
    y_cr = build(cr, cr.no_grad, x_cr)
    with pytest.raises(RuntimeError, match="version"):
        y_th.backward()
    with pytest.raises(RuntimeError) as info:
        y_cr.backward()
    message = str(info.value).lower()
    assert "version" in message
    assert "0" in message and "1" in message


def test_inplace_on_tensor_not_saved_is_fine_like_torch():
    for lib, no_grad in ((cr, cr.no_grad), (torch, torch.no_grad)):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x + 1.0       # add saves nothing
        with no_grad():
            x.mul_(3.0)
        y.sum().backward()
        np.testing.assert_array_equal(_np(x.grad), [1.0, 1.0])


def test_manual_sgd_update_under_no_grad_matches_torch_optimizer():
    th_net, cr_net, x, y = _opt_pair(seed=4)
    for _ in range(3):
        cr_net.zero_grad()
        F.mse_loss(cr_net(cr.tensor(x)), cr.tensor(y)).backward()
        with cr.no_grad():
            for p in cr_net.parameters():
                p -= 0.1 * p.grad
    opt = torch.optim.SGD(th_net.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        tF.mse_loss(th_net(torch.tensor(x)), torch.tensor(y)).backward()
        opt.step()
    th_params = dict(th_net.named_parameters())
    for pname, p in cr_net.named_parameters():
        assert p.is_leaf and p.requires_grad
        np.testing.assert_allclose(p.numpy(), _np(th_params[pname]), rtol=1e-5, atol=1e-6)
