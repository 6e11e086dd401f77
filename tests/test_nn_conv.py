"""conv2d, max_pool2d, avg_pool2d and their layers: forward against a NumPy oracle, forward and
backward against PyTorch over many argument combinations, float64 gradchecks, PyTorch's
initialisation and state_dict, and the errors bad arguments raise."""
from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr

F = cr.nn.functional


def _torch():
    return pytest.importorskip("torch")


# ---------------------------------------------------------------- NumPy oracles
def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def numpy_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Direct cross-correlation: every output element as a sum over its dilated window."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=np.float64)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    out = np.zeros((n, o, oh, ow))
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                out[:, g * og:(g + 1) * og] += np.einsum("ncij,oc->noij", patch, w[g * og:(g + 1) * og, :, i, j])
    if b is not None:
        out += b[None, :, None, None]
    return out


def numpy_pool2d(x, kernel, stride, padding, reduce):
    """max or mean over each window, padding ignored by max and counted (as zeros) by mean."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    n, c, h, w = x.shape
    fill = -np.inf if reduce is np.max else 0.0
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), fill)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = reduce(xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw], axis=(2, 3))
    return out


CONV_CASES = [
    # (N, C, H, W), O, kernel, stride, padding, dilation, groups
    ((2, 3, 7, 6), 4, 3, 1, 1, 1, 1),
    ((1, 1, 5, 5), 1, 1, 1, 0, 1, 1),
    ((3, 4, 9, 8), 6, (3, 2), (2, 1), (1, 0), (1, 2), 2),
    ((2, 4, 6, 6), 4, 3, 2, 1, 1, 4),        # depthwise
    ((2, 6, 5, 7), 9, (1, 3), 1, (0, 1), 1, 3),
    ((1, 2, 11, 4), 3, (5, 1), (3, 2), (2, 0), (2, 1), 1),
    ((4, 8, 4, 4), 16, 1, 1, 0, 1, 1),       # pointwise: no im2col
    ((2, 3, 8, 8), 5, 2, 2, 0, 1, 1),
    ((2, 2, 3, 3), 2, 3, 1, 0, 1, 1),        # a single output position
]


@pytest.mark.parametrize("shape,o,kernel,stride,padding,dilation,groups", CONV_CASES)
def test_conv2d_forward_matches_numpy(shape, o, kernel, stride, padding, dilation, groups):
    rng = np.random.default_rng(1)
    kh, kw = _pair(kernel)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((o, shape[1] // groups, kh, kw))
    b = rng.standard_normal(o)
    expected = numpy_conv2d(x, w, b, stride, padding, dilation, groups)
    got = F.conv2d(cr.tensor(x), cr.tensor(w), cr.tensor(b), stride, padding, dilation, groups)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-10)
    got32 = F.conv2d(cr.tensor(x).float(), cr.tensor(w).float(), cr.tensor(b).float(), stride, padding, dilation,
                     groups)
    assert got32.dtype == cr.float32
    np.testing.assert_allclose(got32.numpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,o,kernel,stride,padding,dilation,groups", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_forward_backward_match_torch(shape, o, kernel, stride, padding, dilation, groups, bias):
    torch = _torch()
    rng = np.random.default_rng(2)
    kh, kw = _pair(kernel)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((o, shape[1] // groups, kh, kw)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32) if bias else None
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride, padding, dilation, groups)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(g))
    xc, wc = cr.tensor(x, requires_grad=True), cr.tensor(w, requires_grad=True)
    bc = cr.tensor(b, requires_grad=True) if bias else None
    yc = F.conv2d(xc, wc, bc, stride, padding, dilation, groups)
    yc.backward(cr.tensor(g))
    np.testing.assert_allclose(yc.numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(wc.grad.numpy(), wt.grad.numpy(), rtol=1e-4, atol=1e-4)
    if bias:
        np.testing.assert_allclose(bc.grad.numpy(), bt.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 2])
def test_conv2d_large_batch_on_each_team_size_matches_numpy(threads):
    # 64 images: the images are split over the team (each thread its own columns and weight sum)
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((64, 3, 12, 12)), rng.standard_normal((8, 3, 3, 3))
    before = cr.get_num_threads()
    try:
        cr.set_num_threads(threads)
        xc, wc = cr.tensor(x, requires_grad=True), cr.tensor(w, requires_grad=True)
        y = F.conv2d(xc, wc, padding=1)
        (y * y).sum().backward()
    finally:
        cr.set_num_threads(before)
    expected = numpy_conv2d(x, w, padding=1)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-10)
    # d/dw of sum(y^2) = sum over images and positions of 2 y * patch: numpy through the same oracle
    grad_w = np.zeros_like(w)
    for i in range(3):
        for j in range(3):
            for c in range(3):
                probe = np.zeros_like(w)
                probe[:, c, i, j] = 1.0
                grad_w[:, c, i, j] = (2 * expected * numpy_conv2d(x, probe, padding=1)).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(wc.grad.numpy(), grad_w, rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("shape,o,kernel,stride,padding,dilation,groups", CONV_CASES[:6])
def test_conv2d_gradcheck(shape, o, kernel, stride, padding, dilation, groups):
    rng = np.random.default_rng(4)
    kh, kw = _pair(kernel)
    small = (min(shape[0], 2),) + shape[1:]
    x = cr.tensor(rng.standard_normal(small), requires_grad=True)
    w = cr.tensor(rng.standard_normal((o, shape[1] // groups, kh, kw)), requires_grad=True)
    b = cr.tensor(rng.standard_normal(o), requires_grad=True)
    assert cr.autograd.gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups), (x, w, b))


def test_conv2d_unbatched_input_and_string_padding():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((3, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    got = F.conv2d(cr.tensor(x), cr.tensor(w), padding="same")
    assert got.shape == (4, 6, 5)
    np.testing.assert_allclose(got.numpy(), numpy_conv2d(x[None], w, padding=1)[0], atol=1e-10)
    assert F.conv2d(cr.tensor(x), cr.tensor(w), padding="valid").shape == (4, 4, 3)


def test_conv2d_layer_initialisation_and_torch_state_dict():
    torch = _torch()
    cr.manual_seed(0)
    layer = cr.nn.Conv2d(6, 8, (3, 2), stride=2, padding=1, groups=2)
    bound = 1 / math.sqrt(3 * 3 * 2)  # fan_in = in_channels / groups * kH * kW
    assert layer.weight.shape == (8, 3, 3, 2) and layer.bias.shape == (8,)
    for p in (layer.weight, layer.bias):
        values = p.detach().numpy()
        assert values.min() >= -bound and values.max() <= bound and values.std() > bound / 4
    reference = torch.nn.Conv2d(6, 8, (3, 2), stride=2, padding=1, groups=2)
    assert list(layer.state_dict()) == list(reference.state_dict())
    layer.load_state_dict({k: cr.tensor(v.detach().numpy()) for k, v in reference.state_dict().items()})
    x = np.random.default_rng(6).standard_normal((2, 6, 7, 5)).astype(np.float32)
    np.testing.assert_allclose(layer(cr.tensor(x)).detach().numpy(), reference(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    assert cr.nn.Conv2d(2, 2, 1, bias=False).bias is None
    assert "kernel_size=(3, 2)" in repr(layer)


# ---------------------------------------------------------------- pooling
POOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1)),
    dict(kernel_size=3, stride=1),
    dict(kernel_size=2, stride=3),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=2, padding=(1, 1), ceil_mode=True),
]


@pytest.mark.parametrize("kw", POOL_CASES)
def test_pools_forward_match_numpy(kw):
    if kw.get("ceil_mode"):
        pytest.skip("the oracle has no ceil_mode (PyTorch covers it)")
    x = np.random.default_rng(7).standard_normal((2, 3, 9, 7))
    stride = kw.get("stride", kw["kernel_size"])
    padding = kw.get("padding", 0)
    np.testing.assert_allclose(F.max_pool2d(cr.tensor(x), **kw).numpy(),
                               numpy_pool2d(x, kw["kernel_size"], stride, padding, np.max))
    np.testing.assert_allclose(F.avg_pool2d(cr.tensor(x), **kw).numpy(),
                               numpy_pool2d(x, kw["kernel_size"], stride, padding, np.mean), atol=1e-12)


@pytest.mark.parametrize("kw", POOL_CASES + [dict(kernel_size=3, stride=2, dilation=2),
                                             dict(kernel_size=2, dilation=(1, 2), padding=1)])
def test_max_pool2d_matches_torch_with_indices(kw):
    torch = _torch()
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt, it = torch.nn.functional.max_pool2d(xt, return_indices=True, **kw)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(g))
    xc = cr.tensor(x, requires_grad=True)
    yc, ic = F.max_pool2d(xc, return_indices=True, **kw)
    yc.backward(cr.tensor(g))
    np.testing.assert_array_equal(yc.numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(ic.numpy(), it.numpy())
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), atol=1e-6)


@pytest.mark.parametrize("kw", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_matches_torch(kw, count_include_pad):
    torch = _torch()
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    for divisor in (None, 5):
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.nn.functional.avg_pool2d(xt, count_include_pad=count_include_pad, divisor_override=divisor, **kw)
        g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
        yt.backward(torch.tensor(g))
        xc = cr.tensor(x, requires_grad=True)
        yc = F.avg_pool2d(xc, count_include_pad=count_include_pad, divisor_override=divisor, **kw)
        yc.backward(cr.tensor(g))
        np.testing.assert_allclose(yc.numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw", POOL_CASES[:3] + POOL_CASES[5:])
def test_pools_gradcheck(kw):
    # distinct values keep each window's maximum away from a tie
    x = cr.tensor(np.random.default_rng(10).permutation(2 * 2 * 7 * 6).reshape(2, 2, 7, 6) / 10.0,
                  requires_grad=True)
    assert cr.autograd.gradcheck(lambda t: F.max_pool2d(t, **kw), (x,))
    assert cr.autograd.gradcheck(lambda t: F.avg_pool2d(t, count_include_pad=False, **kw), (x,))
    assert cr.autograd.gradcheck(lambda t: F.avg_pool2d(t, **kw), (x,))


def test_pool_layers_and_unbatched_input():
    x = cr.tensor(np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4))
    assert cr.nn.MaxPool2d(2)(x).tolist() == [[[5.0, 7.0], [13.0, 15.0]], [[21.0, 23.0], [29.0, 31.0]]]
    assert cr.nn.AvgPool2d(2, stride=2)(x).tolist()[0] == [[2.5, 4.5], [10.5, 12.5]]
    values, indices = cr.nn.MaxPool2d(2, return_indices=True)(x)
    assert indices.dtype == cr.int64 and indices.tolist()[0] == [[5, 7], [13, 15]]


def test_max_pool2d_propagates_nan_like_torch():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    out = F.max_pool2d(cr.tensor(x), 2).numpy()
    assert np.isnan(out[0, 0, 0, 0]) and out[0, 0, 1, 1] == 15


def test_cnn_trains_end_to_end():
    # conv -> relu -> pool -> linear separates two stripe orientations in a few steps
    cr.manual_seed(0)
    rng = np.random.default_rng(11)
    images = np.zeros((32, 1, 6, 6), dtype=np.float32)
    labels = rng.integers(0, 2, 32)
    for i, label in enumerate(labels):
        if label:
            images[i, 0, :, rng.integers(0, 6)] = 1.0
        else:
            images[i, 0, rng.integers(0, 6), :] = 1.0
    model = cr.nn.Sequential(cr.nn.Conv2d(1, 4, 3, padding=1), cr.nn.ReLU(), cr.nn.MaxPool2d(2), cr.nn.Flatten(),
                             cr.nn.Linear(4 * 3 * 3, 2))
    optimizer = cr.optim.Adam(model.parameters(), lr=0.05)
    x, y = cr.tensor(images), cr.tensor(labels)
    for _ in range(60):
        optimizer.zero_grad()
        loss = cr.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    assert (model(x).argmax(1) == y).all().item()


# ---------------------------------------------------------------- errors
def test_conv2d_bad_input_raises_with_shapes():
    x, w = cr.ones(2, 3, 5, 5), cr.ones(4, 3, 3, 3)
    with pytest.raises(ValueError, match=r"\(2, 4, 5, 5\).*\(4, 3, 3, 3\)"):
        F.conv2d(cr.ones(2, 4, 5, 5), w)
    with pytest.raises(ValueError, match="4-D"):
        F.conv2d(cr.ones(5, 5), w)
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        F.conv2d(cr.ones(1, 3, 2, 2), w)
    with pytest.raises(ValueError, match="stride"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="bias of shape"):
        F.conv2d(x, w, cr.ones(3))
    with pytest.raises(ValueError, match="groups=2"):
        F.conv2d(cr.ones(1, 4, 5, 5), cr.ones(3, 2, 3, 3), groups=2)
    with pytest.raises(TypeError, match="int64"):
        F.conv2d(cr.ones(1, 3, 5, 5, dtype=cr.int64), cr.ones(4, 3, 3, 3, dtype=cr.int64))
    with pytest.raises(TypeError, match="float64"):
        F.conv2d(x.double(), w)
    with pytest.raises(TypeError, match="stride"):
        F.conv2d(x, w, stride=1.5)
    with pytest.raises(TypeError):
        F.conv2d(np.ones((1, 3, 5, 5)), w)
    with pytest.raises(ValueError, match="divisible by groups"):
        cr.nn.Conv2d(3, 4, 3, groups=2)


def test_pool_bad_input_raises_with_shapes():
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        F.max_pool2d(cr.ones(4, 4), 2)
    with pytest.raises(ValueError, match="half of kernel_size"):
        F.max_pool2d(cr.ones(1, 1, 4, 4), 2, padding=2)
    with pytest.raises(ValueError, match="too small"):
        F.avg_pool2d(cr.ones(1, 1, 2, 2), 3)
    with pytest.raises(ValueError, match="positive"):
        F.max_pool2d(cr.ones(1, 1, 4, 4), 2, stride=0)
    with pytest.raises(TypeError, match="int64"):
        F.max_pool2d(cr.ones(1, 1, 4, 4, dtype=cr.int64), 2)
    with pytest.raises(ValueError, match="divisor_override"):
        F.avg_pool2d(cr.ones(1, 1, 4, 4), 2, divisor_override=0)


def test_torch_cnn_weights_through_safetensors_give_the_same_outputs(tmp_path):
    # a PyTorch model's state_dict saved with safetensors, loaded with cr.load: same logits in eval
    torch = _torch()
    safetensors_torch = pytest.importorskip("safetensors.torch")

    def build(nn):
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(4, 6, 3, stride=2, groups=2), nn.ReLU(), nn.AvgPool2d(2, ceil_mode=True),
                             nn.Flatten(), nn.LayerNorm(6), nn.Linear(6, 3))

    reference = build(torch.nn)
    reference.train()
    reference(torch.randn(8, 1, 12, 12))  # running statistics away from their initial values
    reference.eval()
    safetensors_torch.save_file({k: v.contiguous() for k, v in reference.state_dict().items()},
                                str(tmp_path / "cnn.safetensors"))
    model = build(cr.nn)
    model.load_state_dict(cr.load(tmp_path / "cnn.safetensors"))
    model.eval()
    x = np.random.default_rng(12).standard_normal((5, 1, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(model(cr.tensor(x)).detach().numpy(), reference(torch.tensor(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
