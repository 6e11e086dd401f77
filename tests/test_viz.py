"""cr.viz: the DOT text of a graph (the lecture's f = w*x + b), rendering, and xor.py --graph."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import chainrule as cr
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Subprocesses import the same chainrule as this test (site-packages, or a dev tree).
PYTHON_DIR = str(Path(cr.__file__).resolve().parents[1])

NODE = re.compile(r'^\s*(n\d+) \[label="((?:[^"\\]|\\.)*)", shape=(\w+)', re.MULTILINE)
EDGE = re.compile(r'^\s*(n\d+) -> (n\d+)(?: \[label="((?:[^"\\]|\\.)*)"\])?;', re.MULTILINE)


def parse_dot(dot: str) -> tuple[dict[str, tuple[list[str], str]], list[tuple[str, str, str]]]:
    """{node id: (label lines, shape)} and [(source, target, edge label)] of to_dot's text."""
    nodes = {m[1]: (m[2].split("\\n"), m[3]) for m in NODE.finditer(dot)}
    edges = [(m[1], m[2], m[3] or "") for m in EDGE.finditer(dot)]
    return nodes, edges


def lecture_graph() -> tuple[cr.Tensor, ...]:
    """f = w*x + b with w = -2, x = 5, b = 3, as on the chain-rule slides."""
    w = cr.tensor(-2.0, requires_grad=True)
    x = cr.tensor(5.0, requires_grad=True)
    b = cr.tensor(3.0, requires_grad=True)
    g = w * x
    f = g + b
    return w, x, b, g, f


def by_first_line(nodes: dict[str, tuple[list[str], str]]) -> dict[str, str]:
    return {lines[0]: node_id for node_id, (lines, _) in nodes.items()}


# ------------------------------------------------------------------ the lecture's f = w*x + b
def test_lecture_graph_structure():
    w, x, b, _, f = lecture_graph()
    dot = cr.viz.to_dot(f, names={"w": w, "x": x, "b": b, "f": f})
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    nodes, edges = parse_dot(dot)
    assert len(nodes) == 6  # three leaves, Mul, Add, the output
    assert len(edges) == 5
    ids = by_first_line(nodes)
    assert set(ids) == {"w", "x", "b", "f", "Mul", "Add"}
    assert nodes[ids["Mul"]][1] == "ellipse" and nodes[ids["Add"]][1] == "ellipse"
    for name in "wxbf":
        assert nodes[ids[name]][1] == "box"
    pairs = {(source, target) for source, target, _ in edges}
    assert pairs == {(ids["w"], ids["Mul"]), (ids["x"], ids["Mul"]), (ids["Mul"], ids["Add"]),
                     (ids["b"], ids["Add"]), (ids["Add"], ids["f"])}
    # the intermediate g = w*x is the edge Mul -> Add, labelled with its shape and dtype
    [g_label] = [label for s, t, label in edges if (s, t) == (ids["Mul"], ids["Add"])]
    assert g_label.split("\\n")[0] == "() float32"


def test_lecture_graph_values_then_grads():
    w, x, b, _, f = lecture_graph()
    names = {"w": w, "x": x, "b": b, "f": f}
    nodes, _ = parse_dot(cr.viz.to_dot(f, names=names))
    labels = {lines[0]: lines[1:] for lines, _ in nodes.values()}
    assert labels["w"] == ["() float32", "value: -2"]
    assert labels["x"] == ["() float32", "value: 5"]
    assert labels["b"] == ["() float32", "value: 3"]
    assert labels["f"] == ["() float32", "value: -7"]

    f.backward()
    nodes, _ = parse_dot(cr.viz.to_dot(f, names=names))
    labels = {lines[0]: lines[1:] for lines, _ in nodes.values()}
    # df/dw = x = 5, df/dx = w = -2, df/db = 1
    assert labels["w"] == ["() float32", "value: -2", "grad: 5"]
    assert labels["x"] == ["() float32", "value: 5", "grad: -2"]
    assert labels["b"] == ["() float32", "value: 3", "grad: 1"]


def test_named_or_retained_intermediate_shows_its_value_and_grad():
    w, _, _, g, f = lecture_graph()
    g.retain_grad()
    f.backward()
    for names in ({"w": w}, {"w": w, "g": g}):
        nodes, edges = parse_dot(cr.viz.to_dot(f, names=names))
        ids = by_first_line(nodes)
        [label] = [lab for s, t, lab in edges if (s, t) == (ids["Mul"], ids["Add"])]
        lines = label.split("\\n")
        assert lines[-2:] == ["value: -10", "grad: 1"]  # g = -10, df/dg = 1
        assert ("g" in names) == (lines[0] == "g")


def test_ids_follow_the_walk_and_are_stable():
    w, x, b, _, f = lecture_graph()
    dot = cr.viz.to_dot(f)
    assert dot == cr.viz.to_dot(f)
    nodes, _ = parse_dot(dot)
    assert list(nodes) == [f"n{i}" for i in range(6)]
    order = [(nodes[f"n{i}"][0][0], nodes[f"n{i}"][0][2:3]) for i in range(6)]
    # output, then depth first with inputs in argument order: Add, Mul, w, x, b
    assert order == [("output", ["value: -7"]), ("Add", []), ("Mul", []),
                     ("leaf", ["value: -2"]), ("leaf", ["value: 5"]), ("leaf", ["value: 3"])]
    walked, _ = cr.viz.walk_graph(f)
    assert [(n.id, n.kind) for n in walked] == [
        ("n0", "output"), ("n1", "op"), ("n2", "op"), ("n3", "leaf"), ("n4", "leaf"),
        ("n5", "leaf")]
    assert walked[3].tensor is w and walked[4].tensor is x and walked[5].tensor is b


def test_show_values_and_max_elements():
    f = lecture_graph()[-1]
    assert "value:" not in cr.viz.to_dot(f, show_values=False)
    eight = cr.arange(8.0).reshape(2, 4).requires_grad_()
    nine = cr.arange(9.0).reshape(3, 3).requires_grad_()
    nodes, _ = parse_dot(cr.viz.to_dot(eight.sum(), names={"eight": eight}))
    eight_lines = by_first_line(nodes)
    assert nodes[eight_lines["eight"]][0][1:] == ["(2, 4) float32",
                                                  "value: [[0, 1, 2, 3], [4, 5, 6, 7]]"]
    nodes, _ = parse_dot(cr.viz.to_dot(nine.sum(), names={"nine": nine}))
    assert nodes[by_first_line(nodes)["nine"]][0][1:] == ["(3, 3) float32"]
    nodes, _ = parse_dot(cr.viz.to_dot(nine.sum(), max_elements=9, names={"nine": nine}))
    assert len(nodes[by_first_line(nodes)["nine"]][0]) == 3


def test_shapes_and_dtypes_on_edges():
    a = cr.randn(2, 3, dtype=cr.float64, requires_grad=True)
    m = cr.randn(3, 4, dtype=cr.float64, requires_grad=True)
    out = (a @ m).sigmoid().sum()
    nodes, edges = parse_dot(cr.viz.to_dot(out, names={"a": a, "m": m}))
    ids = by_first_line(nodes)
    assert nodes[ids["a"]][0][1] == "(2, 3) float64"
    assert nodes[ids["m"]][0][1] == "(3, 4) float64"
    labels = {(nodes[s][0][0], nodes[t][0][0]): lab for s, t, lab in edges}
    assert labels[("MatMul", "Sigmoid")] == "(2, 4) float64"
    assert labels[("Sigmoid", "Sum")] == "(2, 4) float64"
    assert nodes[ids["output"]][0][1] == "() float64"


def test_constants_shared_leaves_and_shared_ops():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    nodes, edges = parse_dot(cr.viz.to_dot(x * 3.0 + cr.ones(2)))
    # constants are drawn where the op that uses them is: a tensor with its values, a number
    # as itself
    assert [lines for lines, _ in nodes.values()] == [
        ["output", "(2,) float32", "value: [4, 7]"], ["Add"], ["Mul"],
        ["leaf", "(2,) float32", "value: [1, 2]"], ["3"],
        ["constant", "(2,) float32", "value: [1, 1]"]]
    assert sorted((s, t) for s, t, _ in edges) == [("n1", "n0"), ("n2", "n1"), ("n3", "n2"),
                                                   ("n4", "n2"), ("n5", "n1")]
    nodes, edges = parse_dot(cr.viz.to_dot(x * x))
    assert [(s, t) for s, t, _ in edges] == [("n1", "n0"), ("n2", "n1"), ("n2", "n1")]
    a = x * 2.0
    nodes, edges = parse_dot(cr.viz.to_dot(a + a))  # the Mul node is drawn once, used twice
    assert [lines[0] for lines, _ in nodes.values()] == ["output", "Add", "Mul", "leaf", "2"]
    assert sorted((s, t) for s, t, _ in edges) == [("n1", "n0"), ("n2", "n1"), ("n2", "n1"),
                                                   ("n3", "n2"), ("n4", "n2")]
    c = cr.tensor([5.0, 6.0])
    nodes, edges = parse_dot(cr.viz.to_dot(x * c + c, names={"c": c}))  # c drawn once
    assert [lines[0] for lines, _ in nodes.values()] == ["output", "Add", "Mul", "leaf", "c"]
    assert nodes["n4"][0] == ["c", "(2,) float32", "value: [5, 6]"]
    assert sorted((s, t) for s, t, _ in edges) == [("n1", "n0"), ("n2", "n1"), ("n3", "n2"),
                                                   ("n4", "n1"), ("n4", "n2")]


def test_matmul_shows_both_operands():
    # The lecture's first layer: X takes no gradient, yet MatMul has two operands on the page.
    X = cr.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    W1 = cr.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    nodes, edges = parse_dot(cr.viz.to_dot(X @ W1, names={"X": X, "W1": W1}))
    ids = by_first_line(nodes)
    assert nodes[ids["X"]][0] == ["X", "(4, 2) float32", "value: [[0, 0], [0, 1], [1, 0], [1, 1]]"]
    assert {(s, t) for s, t, _ in edges} == {(ids["X"], ids["MatMul"]), (ids["W1"], ids["MatMul"]),
                                             (ids["MatMul"], ids["output"])}
    nodes, _ = cr.viz.walk_graph(X @ W1, names={"X": X})
    assert [(n.kind, n.name) for n in nodes] == [("output", "output"), ("op", "MatMul"),
                                                 ("input", "X"), ("leaf", "leaf")]  # X first


def test_large_constants_are_named_while_alive_and_never_kept():
    import gc
    import weakref

    w = cr.ones(3, requires_grad=True)
    batch = cr.ones(100, 3)
    y = (batch * w).sum()
    nodes, _ = cr.viz.walk_graph(y, names={"batch": batch})
    [node] = [n for n in nodes if n.kind != "op" and n.name == "batch"]
    assert node.kind == "input" and node.shape == (100, 3)
    lines = parse_dot(cr.viz.to_dot(y, names={"batch": batch}))[0]
    assert ["batch", "(100, 3) float32"] in [label for label, _ in lines.values()]  # no values
    alive = weakref.ref(batch)
    del batch, nodes, node
    gc.collect()
    assert alive() is None  # the graph did not keep the batch
    nodes, _ = cr.viz.walk_graph(y)
    [node] = [n for n in nodes if n.kind == "constant"]
    assert node.tensor is None and node.shape == (100, 3) and node.dtype == cr.float32


def test_a_leaf_or_a_tensor_without_graph_is_one_node():
    for t in (cr.tensor([1.0, 2.0], requires_grad=True), cr.ones(2) * 2):
        nodes, edges = parse_dot(cr.viz.to_dot(t))
        assert list(nodes) == ["n0"] and edges == []
        values = f"value: [{t[0].item():g}, {t[1].item():g}]"
        assert nodes["n0"][0] == ["output", "(2,) float32", values]


def test_labels_are_escaped():
    x = cr.tensor(1.0, requires_grad=True)
    dot = cr.viz.to_dot(x * 2.0, names={'say "hi"\\': x})
    assert 'label="say \\"hi\\"\\\\\\n' in dot
    assert len(parse_dot(dot)[0]) == 4  # x, Mul, the number 2, the output


def test_bad_arguments():
    with pytest.raises(TypeError, match="Tensor"):
        cr.viz.to_dot([1.0, 2.0])
    x = cr.tensor(1.0, requires_grad=True)
    with pytest.raises(TypeError, match="names"):
        cr.viz.to_dot(x * 2.0, names={"x": 1.0})


def test_ten_thousand_op_chain():
    x = cr.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0
    dot = cr.viz.to_dot(y)
    nodes, edges = parse_dot(dot)
    assert len(nodes) == 20_002 and len(edges) == 20_001  # each Mul with its constant 1.0
    assert sum(lines[0] == "Mul" for lines, _ in nodes.values()) == 10_000
    assert sum(lines[0] == "1" for lines, _ in nodes.values()) == 10_000
    assert nodes["n10001"][0][0] == "leaf"  # depth first: the chain, then its constants


# ------------------------------------------------------------------ render
def test_render_dot_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    f = lecture_graph()[-1]
    path = cr.viz.render(f, tmp_path / "sub" / "f.dot")
    assert path.read_text() == cr.viz.to_dot(f)


def test_render_without_graphviz_package_names_pip_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz now raises ImportError
    f = lecture_graph()[-1]
    with pytest.raises(ImportError, match="pip install graphviz"):
        cr.viz.render(f, tmp_path / "f.svg")
    assert not (tmp_path / "f.svg").exists()


def test_render_without_dot_program(tmp_path, monkeypatch):
    pytest.importorskip("graphviz")
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot there
    f = lecture_graph()[-1]
    with pytest.raises(cr.viz.GraphvizNotFoundError, match="dot"):
        cr.viz.render(f, tmp_path / "f.svg")
    assert issubclass(cr.viz.GraphvizNotFoundError, RuntimeError)


def _needs_graphviz():
    pytest.importorskip("graphviz")
    if shutil.which("dot") is None:
        pytest.skip("the Graphviz dot program is not installed")


@pytest.mark.parametrize("suffix,magic", [(".svg", b"<svg"), (".png", b"\x89PNG")])
def test_render_svg_and_png(tmp_path, suffix, magic):
    _needs_graphviz()
    w, x, b, _, f = lecture_graph()
    f.backward()
    path = cr.viz.render(f, tmp_path / f"f{suffix}", names={"w": w, "x": x, "b": b})
    data = path.read_bytes()
    assert path == tmp_path / f"f{suffix}"
    assert magic in data[:400]
    if suffix == ".svg":
        text = data.decode()
        assert "Mul" in text and "Add" in text and "grad: 5" in text


def test_render_format_argument_and_unknown_format(tmp_path):
    _needs_graphviz()
    f = lecture_graph()[-1]
    path = cr.viz.render(f, tmp_path / "graph", format="svg")
    assert b"<svg" in path.read_bytes()[:400]
    with pytest.raises(ValueError, match="format"):
        cr.viz.render(f, tmp_path / "graph.nonsense")


# ------------------------------------------------------------------ packaging and the example
def test_import_chainrule_stays_light():
    code = ("import sys, chainrule\n"
            "print(sorted(m for m in ('graphviz', 'tensorboardX', 'tensorboard', 'torch') "
            "if m in sys.modules))\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PYTHON_DIR, env.get("PYTHONPATH", "")) if p)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _load_xor():
    spec = importlib.util.spec_from_file_location("xor_example", EXAMPLES / "xor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_xor_graph_option(tmp_path):
    xor = _load_xor()
    target = tmp_path / "xor.svg"
    xor.train(steps=20, verbose=False, graph=target)
    if importlib.util.find_spec("graphviz") is not None and shutil.which("dot"):
        text = target.read_text()
        assert "<svg" in text
    else:
        text = target.with_suffix(".dot").read_text()
    for name in ("X", "Y", "W1", "b1", "W2", "b2", "cost", "MatMul", "Sigmoid", "Log", "Mean"):
        assert name in text


def test_xor_graph_reads_on_a_page(tmp_path):
    # The whole XOR graph (inputs, constants, weights, 15 ops) laid out top to bottom: taller
    # than wide and narrow enough for a page (it was 3422 x 288 px left to right).
    _needs_graphviz()
    xor = _load_xor()
    target = tmp_path / "xor.png"
    xor.train(steps=20, verbose=False, graph=target)
    header = target.read_bytes()[:24]
    width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    assert width < 1400 and height > width, (width, height)


def test_xor_graph_draws_inputs_and_constants(tmp_path):
    xor = _load_xor()
    xor.train(steps=3, verbose=False, graph=tmp_path / "xor.dot")  # .dot: the text itself
    nodes, edges = parse_dot((tmp_path / "xor.dot").read_text())
    ids = by_first_line(nodes)
    assert nodes[ids["X"]][0][2] == "value: [[0, 0], [0, 1], [1, 0], [1, 1]]"
    assert nodes[ids["Y"]][0][2] == "value: [[0], [1], [1], [0]]"
    assert nodes[ids["constant"]][0][2] == "value: [[1], [0], [0], [1]]"  # 1 - Y
    assert "1" in ids  # the 1 of 1 - hypothesis
    into_matmul = [s for s, t, _ in edges if nodes[t][0][0] == "MatMul"]
    assert len(into_matmul) == 4  # both products have both operands
    assert ids["X"] in into_matmul and ids["W1"] in into_matmul


def test_xor_graph_falls_back_to_dot_text(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    xor = _load_xor()
    xor.train(steps=5, verbose=False, graph=tmp_path / "xor.png")
    assert not (tmp_path / "xor.png").exists()
    dot = (tmp_path / "xor.dot").read_text()
    assert dot.startswith("digraph") and "W1" in dot and "cost" in dot
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "xor.dot" in out[0]
