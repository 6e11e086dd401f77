"""chainrule.utils.tensorboard: event files written through tensorboardX, read back here."""
from __future__ import annotations

import importlib.util
import math
import struct
import sys
import time
from pathlib import Path

import chainrule as cr
import numpy as np
import pytest
from chainrule import nn

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def tbx():
    return pytest.importorskip("tensorboardX")


def read_events(log_dir: Path) -> list:
    """Every Event of the event files in log_dir, parsed from the TFRecord framing (length,
    masked CRC of the length, data, masked CRC of the data), the CRCs checked."""
    from tensorboardX.proto import event_pb2
    from tensorboardX.record_writer import masked_crc32c

    files = sorted(log_dir.glob("events.out.tfevents.*"))
    assert files, f"no event file in {log_dir}"
    events = []
    for path in files:
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            header = data[pos:pos + 8]
            (length,) = struct.unpack("<Q", header)
            (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
            assert length_crc == masked_crc32c(header)
            record = data[pos + 12:pos + 12 + length]
            (data_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
            assert data_crc == masked_crc32c(record)
            events.append(event_pb2.Event.FromString(record))
            pos += 16 + length
    return events


def scalars(events: list) -> dict[str, list[tuple[int, float]]]:
    found: dict[str, list[tuple[int, float]]] = {}
    for event in events:
        for value in event.summary.value:
            if value.WhichOneof("value") == "simple_value":
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def histograms(events: list) -> dict[str, list[tuple[int, object]]]:
    found: dict[str, list[tuple[int, object]]] = {}
    for event in events:
        for value in event.summary.value:
            if value.WhichOneof("value") == "histo":
                found.setdefault(value.tag, []).append((event.step, value.histo))
    return found


def graph_defs(events: list) -> list:
    from tensorboardX.proto import graph_pb2

    return [graph_pb2.GraphDef.FromString(e.graph_def) for e in events if e.graph_def]


# ------------------------------------------------------------------ scalars and histograms
def test_scalars_round_trip(tbx, tmp_path):
    from chainrule.utils.tensorboard import SummaryWriter

    costs = [0.75, 0.5, 0.25]
    with SummaryWriter(tmp_path) as writer:
        assert Path(writer.log_dir) == tmp_path
        for step, cost in enumerate(costs):
            writer.add_scalar("cost", cr.tensor(cost), step * 100)       # a 0-d tensor
            writer.add_scalar("accuracy", step / 2, global_step=step * 100)  # a float
        writer.add_scalar("lr", cr.tensor([0.1]))  # a one-element tensor, no step
    found = scalars(read_events(tmp_path))
    assert found["cost"] == [(0, 0.75), (100, 0.5), (200, 0.25)]
    assert found["accuracy"] == [(0, 0.0), (100, 0.5), (200, 1.0)]
    [(step, lr)] = found["lr"]
    assert step == 0 and lr == pytest.approx(0.1)
    assert set(found) == {"cost", "accuracy", "lr"}


def test_add_scalar_rejects_a_tensor_of_several_elements(tbx, tmp_path):
    from chainrule.utils.tensorboard import SummaryWriter

    with SummaryWriter(tmp_path) as writer, pytest.raises(ValueError, match=r"\(2,\)"):
        writer.add_scalar("cost", cr.ones(2))


def test_histogram_of_a_tensor(tbx, tmp_path):
    from chainrule.utils.tensorboard import SummaryWriter

    weights = cr.randn(50, 4, requires_grad=True)
    array = weights.detach().numpy().astype(np.float64)
    with SummaryWriter(tmp_path) as writer:
        writer.add_histogram("W1", weights, 3)
        writer.add_histogram("plain", [1.0, 2.0, 2.0, 5.0], 4, bins=4)
    found = histograms(read_events(tmp_path))
    [(step, histo)] = found["W1"]
    assert step == 3
    assert histo.num == 200
    assert histo.min == pytest.approx(array.min())
    assert histo.max == pytest.approx(array.max())
    assert histo.sum == pytest.approx(array.sum(), rel=1e-6, abs=1e-6)
    assert histo.sum_squares == pytest.approx((array ** 2).sum(), rel=1e-6)
    assert sum(histo.bucket) == 200
    [(step, plain)] = found["plain"]
    assert step == 4 and plain.num == 4 and plain.max == 5.0 and plain.sum == 10.0


def test_flush_writes_before_close(tbx, tmp_path):
    from chainrule.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(tmp_path, flush_secs=3600)
    writer.add_scalar("cost", 1.5, 7)
    # tensorboardX writes from a background thread: flush, then give it a moment
    deadline = time.monotonic() + 10
    while True:
        writer.flush()
        found = scalars(read_events(tmp_path)).get("cost")
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert found == [(7, 1.5)]
    writer.close()
    assert scalars(read_events(tmp_path))["cost"] == [(7, 1.5)]


# ------------------------------------------------------------------ graphs
def _nodes(graph) -> dict[str, object]:
    return {node.name: node for node in graph.node}


def _shape(node) -> list[int]:
    [shape] = node.attr["_output_shapes"].list.shape
    return [d.size for d in shape.dim]


def test_add_graph_of_an_output(tbx, tmp_path):
    from chainrule.utils.tensorboard import SummaryWriter

    w = cr.tensor(-2.0, requires_grad=True)
    x = cr.tensor(5.0, requires_grad=True)
    b = cr.tensor(3.0, requires_grad=True)
    f = w * x + b
    with SummaryWriter(tmp_path) as writer:
        writer.add_graph(f, names={"w": w, "x": x, "b": b, "f": f})
    [graph] = graph_defs(read_events(tmp_path))
    nodes = _nodes(graph)
    assert sorted(nodes) == ["Add_n1", "Mul_n2", "b", "f", "w", "x"]
    assert list(nodes["Mul_n2"].input) == ["w", "x"]
    assert list(nodes["Add_n1"].input) == ["Mul_n2", "b"]
    assert list(nodes["f"].input) == ["Add_n1"]
    assert nodes["Mul_n2"].op == "Mul" and nodes["Add_n1"].op == "Add"
    assert nodes["w"].op == "Parameter" and nodes["f"].op == "Output"
    assert _shape(nodes["Mul_n2"]) == [] and _shape(nodes["w"]) == []


def test_add_graph_of_a_model_and_input(tbx, tmp_path):
    from chainrule.utils.tensorboard import SummaryWriter

    model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid())
    with cr.no_grad(), SummaryWriter(tmp_path) as writer:  # add_graph turns grad mode on
        writer.add_graph(model, cr.zeros(4, 2))
    [graph] = graph_defs(read_events(tmp_path))
    nodes = _nodes(graph)
    assert {"0.weight", "0.bias"} <= set(nodes)
    assert _shape(nodes["0.weight"]) == [3, 2]
    [output] = [n for n in graph.node if n.op == "Output"]
    assert _shape(output) == [4, 3]
    [sigmoid] = [n for n in graph.node if n.op == "Sigmoid"]
    assert list(output.input) == [sigmoid.name]
    assert _shape(sigmoid) == [4, 3]
    # every input names a node of the graph
    assert all(name in nodes for node in graph.node for name in node.input)


def test_add_graph_bad_arguments(tbx, tmp_path):
    from chainrule.utils.tensorboard import SummaryWriter

    with SummaryWriter(tmp_path) as writer:
        with pytest.raises(TypeError, match="output Tensor"):
            writer.add_graph(lambda x: x)
        with pytest.raises(TypeError, match="not a Tensor"):
            writer.add_graph(lambda x: 3.0, cr.ones(2))


# ------------------------------------------------------------------ without tensorboardX
def test_missing_tensorboardx_names_pip_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    from chainrule.utils.tensorboard import SummaryWriter

    with pytest.raises(ImportError, match="pip install tensorboardX"):
        SummaryWriter(tmp_path)


# ------------------------------------------------------------------ examples/xor.py --logdir
def _load_xor():
    spec = importlib.util.spec_from_file_location("xor_example", EXAMPLES / "xor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_xor_logdir(tbx, tmp_path):
    xor = _load_xor()
    result = xor.train(hidden=10, lr=1.0, steps=1001, seed=0, verbose=False, logdir=tmp_path)
    events = read_events(tmp_path)
    costs = scalars(events)["cost"]
    assert [step for step, _ in costs] == list(range(0, 1001, 100))
    values = [cost for _, cost in costs]
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert values[-1] < values[0]
    # the last logged cost is the cost at step 1000, before that step's update
    assert values[-1] == pytest.approx(result["cost"], rel=0.05)
    found = histograms(events)
    assert [step for step, _ in found["W1"]] == [0, 1000]
    assert [step for step, _ in found["W2"]] == [0, 1000]
    assert [h.num for _, h in found["W1"]] == [20, 20]   # W1 is 2 x 10
    assert [h.num for _, h in found["W2"]] == [10, 10]   # W2 is 10 x 1


def test_xor_without_logdir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    xor = _load_xor()
    xor.train(steps=3, verbose=False)
    assert list(tmp_path.iterdir()) == []


def test_xor_logdir_writes_the_graph(tbx, tmp_path):
    # The lecture's TensorBoard slide: the whole graph of the cost, inputs and constants too.
    xor = _load_xor()
    xor.train(hidden=2, steps=3, seed=0, verbose=False, logdir=tmp_path)
    [graph] = graph_defs(read_events(tmp_path))
    nodes = _nodes(graph)
    assert nodes["X"].op == "Placeholder" and nodes["Y"].op == "Placeholder"
    assert _shape(nodes["X"]) == [4, 2] and _shape(nodes["Y"]) == [4, 1]
    assert nodes["W1"].op == "Parameter" and _shape(nodes["W1"]) == [2, 2]
    assert nodes["cost"].op == "Output"
    matmuls = [n for n in graph.node if n.op == "MatMul"]
    first, second = sorted((list(n.input) for n in matmuls), key=lambda i: i[1])
    assert first == ["X", "W1"]  # both operands, the input X too
    assert second[1] == "W2" and nodes[second[0]].op == "Sigmoid"
    consts = [n for n in graph.node if n.op == "Const"]
    values = sorted(tuple(c.attr["value"].tensor.float_val) or
                    tuple(c.attr["value"].tensor.int64_val) for c in consts)
    assert values == [(1,), (1.0, 0.0, 0.0, 1.0)]  # the 1 of 1 - h, and 1 - Y
    assert all(name in nodes for node in graph.node for name in node.input)
    ops = {n.op for n in graph.node}
    assert {"MatMul", "Add", "Sigmoid", "Log", "Mul", "Sub", "Mean", "Neg"} <= ops
