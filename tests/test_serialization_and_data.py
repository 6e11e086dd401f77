"""cr.save / cr.load (the safetensors format, interoperable with safetensors.numpy) and
cr.utils.data (TensorDataset, DataLoader)."""
from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn

D = cr.utils.data

DTYPES = {"float32": (cr.float32, np.float32), "float64": (cr.float64, np.float64),
          "int64": (cr.int64, np.int64), "bool": (cr.bool, np.bool_)}



def _array(shape, np_dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np_dtype is np.bool_:
        return np.asarray(rng.uniform(size=shape) > 0.5)
    if np_dtype is np.int64:
        return np.asarray(rng.integers(-1000, 1000, size=shape), dtype=np.int64)
    return np.asarray(rng.normal(size=shape), dtype=np_dtype)


SHAPES = [pytest.param((), id="0d"), pytest.param((0,), id="empty"),
          pytest.param((3, 0, 2), id="empty3d"), pytest.param((1,), id="one"),
          pytest.param((7,), id="1d"), pytest.param((2, 3), id="2d"),
          pytest.param((2, 3, 4), id="3d")]


# ------------------------------------------------------------------ save / load round trip
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype_name", list(DTYPES))
def test_save_load_round_trip_every_dtype_and_shape(tmp_path, dtype_name, shape):
    cr_dtype, np_dtype = DTYPES[dtype_name]
    data = _array(shape, np_dtype)
    t = cr.tensor(data)
    assert t.dtype == cr_dtype and t.shape == shape
    path = tmp_path / "t.safetensors"
    cr.save({"t": t}, str(path))
    loaded = cr.load(str(path))
    assert list(loaded) == ["t"]
    got = loaded["t"]
    assert isinstance(got, cr.Tensor)
    assert got.dtype == cr_dtype
    assert got.shape == shape
    np.testing.assert_array_equal(got.numpy(), data)


def test_save_load_many_tensors_in_one_file(tmp_path):
    state = {name: cr.tensor(_array(shape, DTYPES[name][1], seed=i))
             for i, (name, shape) in enumerate([("float32", (4, 5)), ("float64", (3,)),
                                                 ("int64", (2, 2, 2)), ("bool", (6,))])}
    state["layer.0.weight"] = cr.randn(3, 2)
    state["empty"] = cr.zeros(0, 4)
    path = tmp_path / "many.safetensors"
    cr.save(state, path)            # a pathlib.Path works too
    loaded = cr.load(path)
    assert sorted(loaded) == sorted(state)
    for name, t in state.items():
        assert loaded[name].dtype == t.dtype, name
        assert loaded[name].shape == t.shape, name
        np.testing.assert_array_equal(loaded[name].numpy(), t.numpy(), err_msg=name)


def test_save_non_contiguous_views_and_tensors_requiring_grad(tmp_path):
    base = cr.tensor(np.arange(24, dtype=np.float32).reshape(4, 6))
    state = {"transposed": base.T, "strided": base[::2, 1::3], "row": base[2],
             "param": nn.Parameter(cr.tensor([1.5, -2.5])),
             "expanded": cr.tensor([1.0, 2.0, 3.0]).expand(2, 3)}
    assert not state["transposed"].is_contiguous()
    path = tmp_path / "views.safetensors"
    cr.save(state, path)
    loaded = cr.load(path)
    for name, t in state.items():
        assert loaded[name].shape == t.shape, name
        np.testing.assert_array_equal(loaded[name].numpy(), t.detach().numpy(), err_msg=name)
    assert not loaded["param"].requires_grad


def test_loaded_tensors_are_independent_of_the_saved_ones(tmp_path):
    t = cr.tensor([1.0, 2.0, 3.0])
    path = tmp_path / "a.safetensors"
    cr.save({"t": t}, path)
    loaded = cr.load(path)["t"]
    loaded.add_(10.0)                 # writable, not a read-only view of the file's bytes
    np.testing.assert_array_equal(loaded.numpy(), [11.0, 12.0, 13.0])
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(cr.load(path)["t"].numpy(), [1.0, 2.0, 3.0])


def test_save_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "w.safetensors"
    cr.save({"a": cr.ones(100)}, path)
    cr.save({"b": cr.zeros(2)}, path)
    loaded = cr.load(path)
    assert list(loaded) == ["b"]
    np.testing.assert_array_equal(loaded["b"].numpy(), [0.0, 0.0])


def test_file_layout_is_safetensors(tmp_path):
    path = tmp_path / "layout.safetensors"
    cr.save({"w": cr.tensor([[1.0, 2.0]]), "i": cr.tensor([7, 8, 9])}, path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert header["w"]["dtype"] == "F32" and header["w"]["shape"] == [1, 2]
    assert header["i"]["dtype"] == "I64" and header["i"]["shape"] == [3]
    data = raw[8 + n:]
    b, e = header["i"]["data_offsets"]
    np.testing.assert_array_equal(np.frombuffer(data[b:e], dtype="<i8"), [7, 8, 9])
    b, e = header["w"]["data_offsets"]
    np.testing.assert_array_equal(np.frombuffer(data[b:e], dtype="<f4"), [1.0, 2.0])
    assert len(data) == max(v["data_offsets"][1] for v in header.values()
                            if isinstance(v, dict) and "data_offsets" in v)


# ------------------------------------------------------------------ interop with safetensors
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype_name", list(DTYPES))
def test_file_written_by_chainrule_loads_with_safetensors_numpy(tmp_path, dtype_name, shape):
    st = pytest.importorskip("safetensors.numpy")
    cr_dtype, np_dtype = DTYPES[dtype_name]
    data = _array(shape, np_dtype, seed=3)
    path = tmp_path / "cr.safetensors"
    cr.save({"x": cr.tensor(data), "other.name": cr.tensor(data)}, str(path))
    loaded = st.load_file(str(path))
    assert sorted(loaded) == ["other.name", "x"]
    assert loaded["x"].dtype == np.dtype(np_dtype)
    assert loaded["x"].shape == shape
    np.testing.assert_array_equal(loaded["x"], data)
    np.testing.assert_array_equal(loaded["other.name"], data)


@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (7,), (2, 3), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("dtype_name", list(DTYPES))
def test_file_written_by_safetensors_numpy_loads_with_chainrule(tmp_path, dtype_name, shape):
    st = pytest.importorskip("safetensors.numpy")
    cr_dtype, np_dtype = DTYPES[dtype_name]
    data = _array(shape, np_dtype, seed=4)
    path = tmp_path / "st.safetensors"
    st.save_file({"x": data, "y": np.arange(5, dtype=np.int64)}, str(path),
                 metadata={"format": "pt"})
    loaded = cr.load(str(path))
    assert sorted(loaded) == ["x", "y"]      # __metadata__ is not a tensor
    assert loaded["x"].dtype == cr_dtype
    assert loaded["x"].shape == shape
    np.testing.assert_array_equal(loaded["x"].numpy(), data)
    np.testing.assert_array_equal(loaded["y"].numpy(), np.arange(5))


def test_torch_state_dict_through_safetensors_loads_into_chainrule_model(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.numpy")
    th = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    path = tmp_path / "torch.safetensors"
    st.save_file({k: v.detach().numpy() for k, v in th.state_dict().items()}, str(path))
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    model.load_state_dict(cr.load(path))
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(model(cr.tensor(x)).numpy(),
                               th(torch.tensor(x)).detach().numpy(), rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------ model state_dict
def _model():
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))


def test_state_dict_saved_and_loaded_into_fresh_model_gives_identical_outputs(tmp_path):
    cr.manual_seed(1)
    model = _model()
    opt = cr.optim.SGD(model.parameters(), lr=0.1)   # a trained model, not just its init
    x = cr.randn(16, 5)
    for _ in range(3):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    path = tmp_path / "model.safetensors"
    cr.save(model.state_dict(), path)
    cr.manual_seed(2)
    fresh = _model()
    assert not np.allclose(fresh(x).detach().numpy(), model(x).detach().numpy())
    fresh.load_state_dict(cr.load(path))
    np.testing.assert_array_equal(fresh(x).detach().numpy(), model(x).detach().numpy())
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), fresh.named_parameters()):
        assert n1 == n2
        assert p2.requires_grad and p2.is_leaf
        np.testing.assert_array_equal(p1.numpy(), p2.numpy())


def test_state_dict_with_0d_parameter_round_trips(tmp_path):
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.scale = nn.Parameter(cr.tensor(1.5))

        def forward(self, x):
            return self.lin(x) * self.scale

    a, b = Scaled(), Scaled()
    path = tmp_path / "scaled.safetensors"
    cr.save(a.state_dict(), path)
    b.load_state_dict(cr.load(path))
    assert b.scale.shape == ()
    x = cr.randn(3, 2)
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())


# ------------------------------------------------------------------ corrupt files
def _valid_bytes(tmp_path):
    path = tmp_path / "valid.safetensors"
    cr.save({"w": cr.randn(4, 4), "b": cr.zeros(4)}, path)
    return path.read_bytes()


def _header_with(entries):
    encoded = json.dumps(entries).encode()
    return struct.pack("<Q", len(encoded)) + encoded


CORRUPTIONS = {
    "empty_file": lambda raw: b"",
    "short_file": lambda raw: raw[:5],
    "truncated_data": lambda raw: raw[:-10],
    "truncated_header": lambda raw: raw[:20],
    "huge_header_length": lambda raw: struct.pack("<Q", 2**40) + raw[8:],
    "garbage": lambda raw: b"\x07" * 64,
    "bad_json": lambda raw: struct.pack("<Q", 10) + b"{not json!" + b"\x00" * 16,
    "offsets_past_end": lambda raw: _header_with(
        {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}) + b"\x00" * 8,
    "offsets_wrong_size": lambda raw: _header_with(
        {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}) + b"\x00" * 8,
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_file_raises_value_error(tmp_path, kind):
    raw = CORRUPTIONS[kind](_valid_bytes(tmp_path))
    path = tmp_path / f"{kind}.safetensors"
    path.write_bytes(raw)
    with pytest.raises(ValueError):
        cr.load(path)


def _entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    listed = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    return {"dtype": dtype, "shape": listed(shape), "data_offsets": listed(offsets)}


# Malformed headers (each once gave AttributeError, KeyError, TypeError, a bare NumPy error, or
# was accepted): (header, data bytes, the field the message must name).
MALFORMED_HEADERS = {
    "json_list": ([1, 2], 0, "header"),
    "entry_not_object": ({"w": [1]}, 0, "'w'"),
    "missing_offsets": ({"w": {"dtype": "F32", "shape": [2]}}, 8, "'data_offsets'"),
    "missing_dtype": ({"w": {"shape": [2], "data_offsets": [0, 8]}}, 8, "'dtype'"),
    "list_dtype": ({"w": _entry(dtype=["F32"])}, 8, "'dtype'"),
    "unknown_dtype": ({"w": _entry(dtype="F99")}, 8, "'dtype'"),
    "float_offsets": ({"w": _entry(offsets=(0.0, 8.0))}, 8, "'data_offsets'"),
    "bool_offsets": ({"w": _entry(shape=(1,), offsets=(False, True))}, 1, "'data_offsets'"),
    "three_offsets": ({"w": _entry(offsets=(0, 8, 8))}, 8, "'data_offsets'"),
    "negative_shape": ({"w": _entry(shape=(-1, -1), offsets=(0, 4))}, 4, "'shape'"),
    "float_shape": ({"w": _entry(shape=(1.7,), offsets=(0, 4))}, 4, "'shape'"),
    "shape_not_list": ({"w": _entry(shape=2)}, 8, "'shape'"),
    "negative_offset": ({"w": _entry(offsets=(-8, 0))}, 8, "'data_offsets'"),
    "overlapping": ({"a": _entry(offsets=(0, 8)), "b": _entry(offsets=(4, 12))}, 12,
                    "'data_offsets'"),
    "same_bytes_twice": ({"a": _entry(offsets=(0, 8)), "b": _entry(offsets=(0, 8))}, 8,
                         "'data_offsets'"),
    "gap": ({"a": _entry(offsets=(0, 8)), "b": _entry(offsets=(12, 20))}, 20, "'data_offsets'"),
    "bytes_left_over": ({"a": _entry(offsets=(0, 8))}, 16, "header"),
    "huge_shape": ({"w": _entry(shape=(2**62, 2**62), offsets=(0, 8))}, 8, "'data_offsets'"),
    "metadata_not_strings": ({"__metadata__": {"k": 1}}, 0, "__metadata__"),
}


@pytest.mark.parametrize("kind", list(MALFORMED_HEADERS))
def test_malformed_header_raises_value_error_naming_the_field(tmp_path, kind):
    header, data_size, field = MALFORMED_HEADERS[kind]
    path = tmp_path / f"{kind}.safetensors"
    path.write_bytes(_header_with(header) + b"\x00" * data_size)
    with pytest.raises(ValueError) as error:
        cr.load(path)
    message = str(error.value)
    assert message.startswith("load:") and field in message, message


def test_duplicate_key_raises_value_error(tmp_path):
    entry = json.dumps(_entry())
    encoded = ('{"w": %s, "w": %s}' % (entry, entry)).encode()
    path = tmp_path / "dup.safetensors"
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"\x00" * 8)
    with pytest.raises(ValueError, match=r"^load: .*'w' appears more than once"):
        cr.load(path)


def test_valid_header_with_zero_size_tensors_and_metadata_loads(tmp_path):
    header = {"__metadata__": {"format": "pt"}, "e": _entry(shape=(0, 3), offsets=(8, 8)),
              "w": _entry(offsets=(0, 8)), "z": _entry(shape=(0,), offsets=(8, 8))}
    path = tmp_path / "ok.safetensors"
    path.write_bytes(_header_with(header) + np.array([1.5, 2.5], np.float32).tobytes())
    loaded = cr.load(path)
    assert loaded["e"].shape == (0, 3) and loaded["z"].shape == (0,)
    np.testing.assert_array_equal(loaded["w"].numpy(), [1.5, 2.5])


@pytest.mark.parametrize("target", ["/dev/zero", "directory", "fifo"])
def test_load_refuses_what_is_not_a_regular_file_promptly(tmp_path, target):
    # /dev/zero once never returned (it has no end) and grew memory without bound; a FIFO
    # would block in open()
    if target == "directory":
        path = str(tmp_path)
    elif target == "fifo":
        path = str(tmp_path / "pipe")
        os.mkfifo(path)
    else:
        path = target
        if not os.path.exists(path):
            pytest.skip("no /dev/zero here")
    start = time.perf_counter()
    with pytest.raises(ValueError, match="^load: .*not a regular file"):
        cr.load(path)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("fn", ["load", "save"])
def test_file_descriptor_numbers_are_not_paths(fn):
    # open(3) would take over (and close) whatever this process has open as descriptor 3
    call = (lambda: cr.load(1)) if fn == "load" else (lambda: cr.save({}, 1))
    with pytest.raises(TypeError, match=f"^{fn}: expected a file path"):
        call()


def test_missing_file_raises_os_error(tmp_path):
    with pytest.raises(OSError):
        cr.load(tmp_path / "does_not_exist.safetensors")


# ------------------------------------------------------------------ TensorDataset
def test_tensor_dataset_len_and_items():
    x = cr.tensor(np.arange(20, dtype=np.float32).reshape(10, 2))
    y = cr.arange(10)
    ds = D.TensorDataset(x, y)
    assert len(ds) == 10
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi.numpy(), [6.0, 7.0])
    assert yi.item() == 3 and yi.dtype == cr.int64
    assert len(D.TensorDataset(x)[0]) == 1


def test_tensor_dataset_rejects_different_lengths():
    with pytest.raises(ValueError):
        D.TensorDataset(cr.zeros(4, 2), cr.zeros(5))


# ------------------------------------------------------------------ DataLoader
N = 10


def _dataset():
    x = cr.tensor(np.arange(N * 3, dtype=np.float32).reshape(N, 3))
    y = cr.arange(N)
    return D.TensorDataset(x, y)


def _epoch(loader):
    return [(xb.numpy().copy(), yb.numpy().copy()) for xb, yb in loader]


@pytest.mark.parametrize("batch_size,drop_last,sizes", [
    (1, False, [1] * N), (3, False, [3, 3, 3, 1]), (3, True, [3, 3, 3]), (5, False, [5, 5]),
    (5, True, [5, 5]), (4, True, [4, 4]), (10, False, [10]), (32, False, [10]), (32, True, []),
])
def test_dataloader_batching_in_order(batch_size, drop_last, sizes):
    loader = D.DataLoader(_dataset(), batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == len(sizes)
    batches = _epoch(loader)
    assert [len(yb) for _, yb in batches] == sizes
    if sizes:
        ys = np.concatenate([yb for _, yb in batches])
        np.testing.assert_array_equal(ys, np.arange(sum(sizes)))
        for xb, yb in batches:
            assert xb.shape == (len(yb), 3) and xb.dtype == np.float32
            assert yb.dtype == np.int64
            np.testing.assert_array_equal(xb, np.arange(N * 3).reshape(N, 3)[yb])


def test_dataloader_defaults_batch_size_one_no_shuffle():
    loader = D.DataLoader(_dataset())
    assert len(loader) == N
    batches = _epoch(loader)
    assert [yb.tolist() for _, yb in batches] == [[i] for i in range(N)]
    assert batches[0][0].shape == (1, 3)


def test_dataloader_can_be_iterated_again():
    loader = D.DataLoader(_dataset(), batch_size=4)
    first, second = _epoch(loader), _epoch(loader)
    assert len(first) == len(second) == 3
    for (x1, y1), (x2, y2) in zip(first, second):
        np.testing.assert_array_equal(y1, y2)


def test_dataloader_shuffle_is_a_permutation_keeping_rows_paired():
    cr.manual_seed(0)
    loader = D.DataLoader(_dataset(), batch_size=3, shuffle=True)
    batches = _epoch(loader)
    assert [len(yb) for _, yb in batches] == [3, 3, 3, 1]
    order = np.concatenate([yb for _, yb in batches])
    assert sorted(order.tolist()) == list(range(N))
    assert order.tolist() != list(range(N))
    for xb, yb in batches:   # x and y are shuffled together
        np.testing.assert_array_equal(xb, np.arange(N * 3).reshape(N, 3)[yb])


def test_dataloader_shuffle_with_drop_last_draws_from_all_rows():
    cr.manual_seed(0)
    loader = D.DataLoader(_dataset(), batch_size=4, shuffle=True, drop_last=True)
    seen = set()
    for _ in range(20):
        batches = _epoch(loader)
        assert [len(yb) for _, yb in batches] == [4, 4]
        ys = np.concatenate([yb for _, yb in batches])
        assert len(set(ys.tolist())) == 8
        seen.update(ys.tolist())
    assert seen == set(range(N))   # the dropped rows change from epoch to epoch


def _shuffled_orders(seed, epochs=3, before=None):
    cr.manual_seed(seed)
    if before is not None:
        before()
    loader = D.DataLoader(_dataset(), batch_size=4, shuffle=True)
    return [np.concatenate([yb for _, yb in _epoch(loader)]).tolist() for _ in range(epochs)]


def test_shuffle_is_reproducible_under_manual_seed():
    assert _shuffled_orders(123) == _shuffled_orders(123)


def test_shuffle_differs_across_epochs():
    orders = _shuffled_orders(5, epochs=4)
    assert all(sorted(o) == list(range(N)) for o in orders)
    assert len({tuple(o) for o in orders}) == 4


def test_shuffle_depends_on_the_seed():
    assert _shuffled_orders(1) != _shuffled_orders(2)


def test_shuffle_draws_from_chainrules_generator_not_numpys():
    np.random.seed(1)
    a = _shuffled_orders(7)
    np.random.seed(2)
    b = _shuffled_orders(7)
    assert a == b
    # the same generator that cr.rand draws from: consuming it first changes the order
    c = _shuffled_orders(7, before=lambda: cr.rand(5))
    assert c != a


def test_dataloader_batches_train_a_model():
    cr.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(np.int64)
    loader = D.DataLoader(D.TensorDataset(cr.tensor(x), cr.tensor(y)), batch_size=16,
                          shuffle=True)
    model = nn.Linear(2, 2)
    opt = cr.optim.Adam(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(30):
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    accuracy = (model(cr.tensor(x)).argmax(1) == cr.tensor(y)).float().mean().item()
    assert accuracy >= 0.95


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_dataloader_rejects_bad_batch_size(bad):
    with pytest.raises((ValueError, TypeError)):
        D.DataLoader(_dataset(), batch_size=bad)


def test_tensor_dataset_batches_take_indexing_rules():
    # a TensorDataset's batch is one index_select per tensor; an index counted from the end
    # still works as indexing does, an index past the end raises IndexError, and a tensor that
    # requires grad is indexed through autograd
    class Order(cr.utils.data.Sampler):
        def __init__(self, order):
            self.order = order

        def __iter__(self):
            return iter(self.order)

        def __len__(self):
            return len(self.order)

    weights = cr.arange(10).float().requires_grad_()
    data = cr.utils.data.TensorDataset(cr.arange(10) * 2, weights)
    batches = list(cr.utils.data.DataLoader(data, batch_size=2, sampler=Order([-1, 0, 3])))
    assert [b[0].tolist() for b in batches] == [[18, 0], [6]]
    assert batches[0][1].requires_grad
    batches[0][1].sum().backward()
    assert weights.grad.tolist() == [1.0] + [0.0] * 8 + [1.0]
    with pytest.raises(IndexError, match="10"):
        list(cr.utils.data.DataLoader(data, batch_size=2, sampler=Order([10])))
