"""Zero-copy exchange with NumPy and PyTorch: the buffer protocol, __array__, from_numpy and
DLPack both ways. Each test proves the memory is shared (a write on one side shows on the
other) and that lifetimes are safe whichever side is deleted first."""
import gc

import numpy as np
import pytest

import chainrule as cr


def _filled(shape=(3, 4), dtype=np.float32):
    values = np.arange(np.prod(shape)).reshape(shape)
    return (values % 2 == 1) if dtype is np.bool_ else values.astype(dtype)


# ------------------------------------------------------------------ buffer protocol
@pytest.mark.parametrize("dtype,fmt", [(np.float32, "f"), (np.float64, "d"), (np.int64, "q"),
                                       (np.bool_, "?")])
def test_memoryview_shares_memory_with_shape_strides_and_format(dtype, fmt):
    t = cr.tensor(_filled(dtype=dtype))
    view = memoryview(t)
    assert view.format == fmt
    assert view.shape == (3, 4)
    assert view.strides == (4 * view.itemsize, view.itemsize)
    array = np.asarray(view)
    assert np.shares_memory(array, t.numpy())


def test_memoryview_of_a_transposed_view_keeps_its_strides():
    t = cr.tensor(_filled()).T
    view = memoryview(t)
    assert view.shape == (4, 3) and view.strides == (4, 16)
    np.testing.assert_array_equal(np.asarray(view), _filled().T)


def test_write_through_memoryview_is_seen_by_the_tensor():
    t = cr.zeros(2, 3)
    np.asarray(memoryview(t))[1, 2] = 7.0
    assert t[1, 2].item() == 7.0


def test_memoryview_outlives_the_tensor():
    t = cr.tensor(_filled())
    view = memoryview(t)
    del t
    gc.collect()
    assert view.tolist()[2][3] == 11.0


def test_array_protocol_shares_memory_and_converts_dtype():
    t = cr.tensor(_filled())
    a = np.asarray(t)
    a[0, 0] = -1.0
    assert t[0, 0].item() == -1.0
    assert np.asarray(t, dtype=np.float64).dtype == np.float64


# ------------------------------------------------------------------ from_numpy / numpy()
def test_from_numpy_survives_the_array_being_deleted():
    a = _filled()
    t = cr.from_numpy(a)
    a[1, 1] = 42.0
    del a
    gc.collect()
    assert t[1, 1].item() == 42.0 and t.sum().item() == pytest.approx(66 - 5 + 42)


def test_numpy_survives_the_tensor_being_deleted():
    t = cr.tensor(_filled())
    a = t.numpy()
    del t
    gc.collect()
    assert a[2, 3] == 11.0


# ------------------------------------------------------------------ DLPack with NumPy
def test_numpy_reads_a_tensor_through_dlpack_without_copy():
    t = cr.tensor(_filled())
    a = np.from_dlpack(t)
    assert a.shape == (3, 4) and a.dtype == np.float32
    t[0, 1] = 100.0
    assert a[0, 1] == 100.0
    del t
    gc.collect()
    assert a[0, 1] == 100.0  # the capsule's deleter keeps the storage for the array


def test_numpy_reads_a_strided_view_through_dlpack():
    t = cr.tensor(_filled())[:, ::2].T
    a = np.from_dlpack(t)
    np.testing.assert_array_equal(a, _filled()[:, ::2].T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_from_dlpack_of_numpy_shares_memory(dtype):
    a = _filled(dtype=dtype)
    t = cr.from_dlpack(a)
    assert t.dtype == cr.tensor(a).dtype
    np.testing.assert_array_equal(t.numpy(), a)
    if dtype is not np.bool_:
        a[0, 0] = 9
        assert t[0, 0].item() == 9
    del a
    gc.collect()
    assert t.shape == (3, 4) and t.numel() == 12


def test_dlpack_device_is_cpu():
    assert cr.ones(2).__dlpack_device__() == (1, 0)


def test_a_capsule_can_be_consumed_once():
    capsule = cr.ones(2).__dlpack__()
    cr.from_dlpack(capsule)
    with pytest.raises(ValueError, match="consumed once"):
        cr.from_dlpack(capsule)


def test_unconsumed_capsule_frees_its_tensor():
    for _ in range(2000):  # would leak 2000 x 4 MB if the capsule's destructor did nothing
        cr.zeros(1_000_000).__dlpack__()


# ------------------------------------------------------------------ DLPack with PyTorch


def test_torch_reads_a_tensor_through_dlpack_without_copy(torch):
    t = cr.tensor(_filled())
    x = torch.from_dlpack(t)
    x[2, 2] = -5.0
    assert t[2, 2].item() == -5.0
    del t
    gc.collect()
    assert x[2, 2].item() == -5.0 and x.sum().item() == pytest.approx(66 - 10 - 5)


def test_from_dlpack_of_torch_shares_memory_and_outlives_it(torch):
    x = torch.arange(12, dtype=torch.float64).reshape(3, 4).t()
    t = cr.from_dlpack(x)
    assert t.dtype == cr.float64 and t.shape == (4, 3)
    np.testing.assert_array_equal(t.numpy(), x.numpy())
    x[0, 0] = 77.0
    assert t[0, 0].item() == 77.0
    del x
    gc.collect()
    assert t[0, 0].item() == 77.0


def test_gradients_flow_through_a_tensor_taken_from_torch(torch):
    w = cr.from_dlpack(torch.ones(3)).requires_grad_()
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 2.0, 2.0])
