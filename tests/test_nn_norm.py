"""batch_norm, layer_norm, embedding, dropout2d and their layers: forward against NumPy, forward,
backward and running statistics against PyTorch, float64 gradchecks, state_dict keys and
round trips, and the errors bad arguments raise."""
from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr

F = cr.nn.functional


def _torch():
    return pytest.importorskip("torch")


def _load_from_torch(module, reference):
    module.load_state_dict({k: cr.tensor(v.detach().numpy()) for k, v in reference.state_dict().items()})


def _compare_training_step(module, reference, x, torch, rtol=1e-4, atol=1e-5):
    """One forward and backward (upstream gradient g) through both; outputs and every gradient."""
    g = np.random.default_rng(0).standard_normal(x.shape).astype(x.dtype)
    xt, xc = torch.tensor(x, requires_grad=True), cr.tensor(x, requires_grad=True)
    yt, yc = reference(xt), module(xc)
    (yt * torch.tensor(g)).sum().backward()
    (yc * cr.tensor(g)).sum().backward()
    np.testing.assert_allclose(yc.detach().numpy(), yt.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=rtol, atol=atol)
    for (name, p), (name_t, p_t) in zip(module.named_parameters(), reference.named_parameters()):
        assert name == name_t
        np.testing.assert_allclose(p.grad.numpy(), p_t.grad.numpy(), rtol=rtol, atol=atol)


# ---------------------------------------------------------------- batch norm
BN_CASES = [("BatchNorm1d", (8, 5)), ("BatchNorm1d", (6, 5, 4)), ("BatchNorm2d", (4, 5, 3, 2))]


def test_batch_norm_forward_matches_numpy():
    x = np.random.default_rng(1).standard_normal((6, 3, 4, 5)) * 3 + 2
    w, b = np.array([1.0, 2.0, -1.0]), np.array([0.5, 0.0, 1.0])
    got = F.batch_norm(cr.tensor(x), None, None, cr.tensor(w), cr.tensor(b), training=True, eps=1e-5)
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * w[:, None, None] + b[:, None, None]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,shape", BN_CASES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_layers_match_torch_in_train_and_eval(name, shape, affine, momentum):
    torch = _torch()
    reference = getattr(torch.nn, name)(5, momentum=momentum, affine=affine)
    module = getattr(cr.nn, name)(5, momentum=momentum, affine=affine)
    if affine:
        with torch.no_grad():
            reference.weight.normal_()
            reference.bias.normal_()
    _load_from_torch(module, reference)
    rng = np.random.default_rng(2)
    for step in range(3):  # running statistics move the same way over several batches
        x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
        _compare_training_step(module, reference, x, torch)
        for key in ("running_mean", "running_var", "num_batches_tracked"):
            np.testing.assert_allclose(module.state_dict()[key].numpy(), reference.state_dict()[key].numpy(),
                                       rtol=1e-5, atol=1e-6)
    module.eval()
    reference.eval()
    _compare_training_step(module, reference, (rng.standard_normal(shape) * 2 + 1).astype(np.float32), torch)


def test_batch_norm_without_running_stats_matches_torch_in_eval():
    torch = _torch()
    reference, module = torch.nn.BatchNorm2d(3, track_running_stats=False), cr.nn.BatchNorm2d(3, track_running_stats=False)
    assert sorted(module.state_dict()) == sorted(reference.state_dict()) == ["bias", "weight"]
    module.eval()
    reference.eval()  # still the batch's own statistics
    _compare_training_step(module, reference, np.random.default_rng(3).standard_normal((4, 3, 2, 2)).astype(np.float32),
                           torch)


def test_batch_norm_state_dict_keys_and_round_trip(tmp_path):
    module = cr.nn.BatchNorm2d(4)
    assert list(module.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert module.state_dict()["num_batches_tracked"].dtype == cr.int64
    module(cr.randn(8, 4, 3, 3))
    cr.save(module.state_dict(), tmp_path / "bn.safetensors")
    copy = cr.nn.BatchNorm2d(4)
    copy.load_state_dict(cr.load(tmp_path / "bn.safetensors"))
    for key, value in module.state_dict().items():
        np.testing.assert_array_equal(copy.state_dict()[key].numpy(), value.numpy())
    assert copy.num_batches_tracked.item() == 1
    x = cr.randn(2, 4, 3, 3)
    module.eval()
    copy.eval()
    np.testing.assert_array_equal(copy(x).detach().numpy(), module(x).detach().numpy())


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(training):
    rng = np.random.default_rng(4)
    x = cr.tensor(rng.standard_normal((4, 3, 2, 3)), requires_grad=True)
    w = cr.tensor(rng.standard_normal(3), requires_grad=True)
    b = cr.tensor(rng.standard_normal(3), requires_grad=True)
    mean, var = cr.tensor(rng.standard_normal(3)), cr.tensor(rng.uniform(0.5, 2, 3))
    assert cr.autograd.gradcheck(
        lambda x, w, b: F.batch_norm(x, mean.clone(), var.clone(), w, b, training=training), (x, w, b))
    x2 = cr.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    assert cr.autograd.gradcheck(lambda x: F.batch_norm(x, None, None, training=True), (x2,))


# ---------------------------------------------------------------- layer norm
def test_layer_norm_forward_matches_numpy():
    x = np.random.default_rng(5).standard_normal((2, 3, 4, 5)) * 4 + 10
    w, b = np.random.default_rng(6).standard_normal((4, 5)), np.random.default_rng(7).standard_normal((4, 5))
    got = F.layer_norm(cr.tensor(x), (4, 5), cr.tensor(w), cr.tensor(b))
    mean, var = x.mean(axis=(2, 3), keepdims=True), x.var(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(got.numpy(), (x - mean) / np.sqrt(var + 1e-5) * w + b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,normalized", [((4, 7), 7), ((2, 3, 6), (3, 6)), ((5, 2), 2), ((3, 2, 8), 8)])
@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
def test_layer_norm_matches_torch(shape, normalized, affine, bias):
    torch = _torch()
    reference = torch.nn.LayerNorm(normalized, elementwise_affine=affine, bias=bias)
    module = cr.nn.LayerNorm(normalized, elementwise_affine=affine, bias=bias)
    if affine:
        with torch.no_grad():
            for p in reference.parameters():
                p.normal_()
    assert list(module.state_dict()) == list(reference.state_dict())
    _load_from_torch(module, reference)
    _compare_training_step(module, reference, np.random.default_rng(8).standard_normal(shape).astype(np.float32), torch)


def test_layer_norm_gradcheck():
    rng = np.random.default_rng(9)
    x = cr.tensor(rng.standard_normal((3, 2, 4)), requires_grad=True)
    w = cr.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    b = cr.tensor(rng.standard_normal((2, 4)), requires_grad=True)
    assert cr.autograd.gradcheck(lambda x, w, b: F.layer_norm(x, (2, 4), w, b), (x, w, b))
    assert cr.autograd.gradcheck(lambda x: F.layer_norm(x, 4), (x,))


# ---------------------------------------------------------------- embedding
def test_embedding_matches_torch_with_padding_idx():
    torch = _torch()
    reference, module = torch.nn.Embedding(10, 4, padding_idx=2), cr.nn.Embedding(10, 4, padding_idx=2)
    assert np.all(module.weight.detach().numpy()[2] == 0)
    _load_from_torch(module, reference)
    index = np.array([[1, 2, 3], [2, 2, 9]])
    yt, yc = reference(torch.tensor(index)), module(cr.tensor(index))
    np.testing.assert_array_equal(yc.detach().numpy(), yt.detach().numpy())
    g = np.random.default_rng(10).standard_normal((2, 3, 4)).astype(np.float32)
    (yt * torch.tensor(g)).sum().backward()
    (yc * cr.tensor(g)).sum().backward()
    np.testing.assert_allclose(module.weight.grad.numpy(), reference.weight.grad.numpy(), rtol=1e-6, atol=1e-6)
    assert np.all(module.weight.grad.numpy()[2] == 0)


def test_embedding_forward_numpy_and_gradcheck():
    weight = np.random.default_rng(11).standard_normal((6, 3))
    index = np.array([5, 0, 5, 1])
    np.testing.assert_array_equal(F.embedding(cr.tensor(index), cr.tensor(weight)).numpy(), weight[index])
    w = cr.tensor(weight, requires_grad=True)
    assert cr.autograd.gradcheck(lambda w: F.embedding(cr.tensor(index), w), (w,))
    # (padding_idx is left out on purpose: its row feeds the output but takes no gradient)


def test_embedding_init_is_standard_normal():
    weight = cr.nn.Embedding(1000, 50).weight.detach().numpy()
    assert abs(weight.mean()) < 0.02 and abs(weight.std() - 1) < 0.02


# ---------------------------------------------------------------- dropout2d
def test_dropout2d_zeroes_whole_channels_and_scales():
    cr.manual_seed(0)
    x = cr.ones(8, 16, 3, 3)
    y = cr.nn.Dropout2d(0.5)(x).numpy()
    per_channel = y.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(axis=2) | (per_channel == 2.0).all(axis=2))
    assert 0.2 < (per_channel[:, :, 0] == 0).mean() < 0.8
    layer = cr.nn.Dropout2d(0.5).eval()
    assert layer(x) is x
    x.requires_grad_()
    F.dropout2d(x, 0.25).sum().backward()
    grads = np.unique(x.grad.numpy())
    assert len(grads) == 2 and grads[0] == 0 and np.isclose(grads[1], 1 / 0.75)


# ---------------------------------------------------------------- errors
def test_norm_and_embedding_errors_name_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\)"):
        cr.nn.BatchNorm1d(3)(cr.ones(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"expected 5 channels.*\(2, 3\)"):
        cr.nn.BatchNorm1d(5)(cr.ones(2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        cr.nn.BatchNorm1d(3)(cr.ones(1, 3))
    with pytest.raises(TypeError, match="int64"):
        cr.nn.BatchNorm1d(3)(cr.ones(2, 3, dtype=cr.int64))
    with pytest.raises(ValueError, match=r"\(4,\).*\(2, 3\)"):
        F.layer_norm(cr.ones(2, 3), (4,))
    with pytest.raises(ValueError, match="weight of shape"):
        F.layer_norm(cr.ones(2, 3), (3,), cr.ones(4))
    with pytest.raises(TypeError, match="int64 indices"):
        F.embedding(cr.ones(3), cr.ones(4, 2))
    with pytest.raises(IndexError):
        F.embedding(cr.tensor([4]), cr.ones(4, 2))
    with pytest.raises(ValueError, match="padding_idx"):
        cr.nn.Embedding(4, 2, padding_idx=4)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        F.dropout2d(cr.ones(3, 3))
