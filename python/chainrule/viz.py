"""Drawing the graph that produced a tensor, as the lecture draws f = w*x + b.

`to_dot` returns Graphviz DOT text: one box per tensor (the leaves that require grad, the
inputs and constants that take no gradient, like the lecture's X and Y and the 1 of 1 - h, and
the final output, with shape, dtype and, when small, values and gradients) and one ellipse per
op ("Mul", "Add", ...), laid out top to bottom. Graph nodes never hold the tensors they produced (that would make cycles),
so an intermediate result appears as the edge between two ops, labelled with the shape and dtype
the edge recorded; its values show only when you pass the tensor in `names` or called
`retain_grad()` on it. `render` lays the text out with Graphviz into an SVG or PNG file.

>>> import chainrule as cr
>>> w = cr.tensor(-2.0, requires_grad=True); x = cr.tensor(5.0, requires_grad=True)
>>> b = cr.tensor(3.0, requires_grad=True)
>>> f = w * x + b
>>> f.backward()
>>> dot = cr.viz.to_dot(f, names={"w": w, "x": x, "b": b, "f": f})
>>> "grad: 5" in dot and "Mul" in dot
True
"""
from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.autograd.function import OpNode
from chainrule.tensor import Tensor

__all__ = ["GraphEdge", "GraphNode", "GraphvizNotFoundError", "render", "to_dot", "walk_graph"]


class GraphvizNotFoundError(RuntimeError):
    """The Graphviz `dot` program (which lays out and draws the graph) is not installed."""


@dataclass
class GraphNode:
    """One node of a walked graph: an op ("op"), a tensor that takes gradients ("leaf"), the
    output ("output"), or an input that takes none: a tensor named in `names` ("input", like
    the lecture's X and Y) or anything else ("constant": a tensor, or a Python number as the
    1 of 1 - h).

    `tensor` is set for tensor nodes, `value` for number constants; `name` is the op's name
    ("Mul") or the tensor's name (from `names`, else its kind). The graph holds a constant
    tensor of more than 64 elements only weakly: once it is gone, its node has shape and dtype
    but no tensor.
    """

    id: str
    kind: str
    name: str
    shape: tuple[int, ...] | None = None
    dtype: Any = None
    tensor: Tensor | None = None
    value: Any = None


class _Constant:
    """An input that took no gradient, as the walk meets it: one per use, since numbers are
    shared objects (1 is always 1); a tensor's uses share its one node."""

    __slots__ = ("dtype", "shape", "value")

    def __init__(self, value: Any, shape: tuple[int, ...], dtype: Any) -> None:
        self.value, self.shape, self.dtype = value, shape, dtype


@dataclass
class GraphEdge:
    """A value flowing from `source` to `target` (node ids), with the shape and dtype recorded
    for it. `tensor` and `name` are set for an op's output when it is known (passed in `names`
    or kept by `retain_grad()`)."""

    source: str
    target: str
    shape: tuple[int, ...] | None = None
    dtype: Any = None
    name: str | None = None
    tensor: Tensor | None = field(default=None, repr=False)


def op_name(node: OpNode) -> str:
    """An op's short name: "Mul" for a MulBackward node."""
    name = node.name()
    return name.removesuffix("Backward")


def walk_graph(tensor: Tensor, names: Mapping[str, Tensor] | None = None
               ) -> tuple[list[GraphNode], list[GraphEdge]]:
    """The nodes and edges of the graph that produced `tensor`, ids n0, n1, ... in walk order.

    The walk is depth first from the output, inputs in argument order, with an explicit stack
    (no recursion, so a chain of any depth works). Inputs that take no gradient are nodes too
    ("input" when `names` names them, else "constant"), from what the graph recorded of them.

    >>> import chainrule as cr
    >>> w = cr.tensor(-2.0, requires_grad=True)
    >>> nodes, edges = cr.viz.walk_graph(w * 5.0)
    >>> [(n.id, n.kind) for n in nodes]
    [('n0', 'output'), ('n1', 'op'), ('n2', 'leaf'), ('n3', 'constant')]
    >>> [(e.source, e.target) for e in edges]
    [('n1', 'n0'), ('n2', 'n1'), ('n3', 'n1')]
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"walk_graph: expected a chainrule Tensor, got {type(tensor).__name__}")
    tensor_names: dict[int, str] = {}     # id(tensor) -> name, for leaves and the output
    op_outputs: dict[int, tuple[str | None, Tensor]] = {}  # id(node) -> its named output
    for name, named in (names or {}).items():
        if not isinstance(named, Tensor):
            raise TypeError(f"walk_graph: names[{name!r}] is a {type(named).__name__}, not a "
                            "Tensor")
        tensor_names[id(named)] = name
        if named.grad_fn is not None:
            op_outputs[id(named.grad_fn)] = (name, named)

    nodes: list[GraphNode] = []
    ids: dict[int, str] = {}
    pending: list[tuple[Any, Any, tuple[int, ...], Any]] = []  # (source, target, shape, dtype)

    def add_tensor_node(t: Tensor, kind: str) -> None:
        node_id = f"n{len(nodes)}"
        ids[id(t)] = node_id
        nodes.append(GraphNode(node_id, kind, tensor_names.get(id(t), kind), t.shape, t.dtype, t))

    def add_constant_node(constant: _Constant) -> None:
        """A node for an input that takes no gradient: a tensor (drawn once however often it is
        used; "input" when `names` names it) or a Python number (one node per use)."""
        value = constant.value
        if isinstance(value, Tensor):
            if id(value) not in ids:
                add_tensor_node(value, "input" if id(value) in tensor_names else "constant")
            ids[id(constant)] = ids[id(value)]
            return
        ids[id(constant)] = f"n{len(nodes)}"
        nodes.append(GraphNode(ids[id(constant)], "constant", "constant", constant.shape,
                               constant.dtype, value=value))

    add_tensor_node(tensor, "output")
    stack: list[Any] = []
    if tensor.grad_fn is not None:
        pending.append((tensor.grad_fn, tensor, tensor.shape, tensor.dtype))
        stack.append(tensor.grad_fn)
    while stack:
        item = stack.pop()
        if id(item) in ids:
            continue
        if isinstance(item, Tensor):
            add_tensor_node(item, "leaf")
            continue
        if isinstance(item, _Constant):
            add_constant_node(item)
            continue
        node_id = f"n{len(nodes)}"
        ids[id(item)] = node_id
        nodes.append(GraphNode(node_id, "op", op_name(item)))
        constants = getattr(item, "constants", ())
        inputs = []
        for slot, edge in enumerate(item.edges):
            if edge is not None:
                inputs.append(edge)
            elif slot < len(constants) and constants[slot] is not None:
                value, shape, dtype = constants[slot]
                if isinstance(value, weakref.ref):  # a large tensor, named while it lives
                    value = value()
                inputs.append((_Constant(value, tuple(shape), dtype), shape, dtype))
        for target, shape, dtype in inputs:
            pending.append((target, item, shape, dtype))
        # reversed, so that the first input is walked (and numbered) first
        stack.extend(target for target, _, _ in reversed(inputs) if id(target) not in ids)

    edges = []
    for source, target, shape, dtype in pending:
        name, known = None, None
        if isinstance(source, OpNode):
            name, known = op_outputs.get(id(source), (None, None))
            if known is None and isinstance(source.retained, weakref.ref):
                known = source.retained()  # retain_grad() keeps a weak reference to the output
        if target is tensor or not isinstance(source, OpNode):
            known = None  # the output's node, or the input's own, shows it already
        edges.append(GraphEdge(ids[id(source)], ids[id(target)], tuple(shape), dtype, name,
                               known))
    return nodes, edges


def to_dot(tensor: Tensor, show_values: bool = True, max_elements: int = 8,
           names: Mapping[str, Tensor] | None = None) -> str:
    """Graphviz DOT text of the graph that produced `tensor`.

    Tensor nodes (boxes) show name, shape and dtype and, when `show_values` and the tensor has
    at most `max_elements` elements, its values and (once backward has filled it) its grad.
    Op nodes (ellipses) show the op's name. Edges between ops carry the intermediate result's
    shape and dtype. `names` maps names to tensors of the graph (leaves, the output, or
    intermediate results, whose values then show on their edges). Node ids are n0, n1, ... in
    the order of `walk_graph`, so the text is the same on every run.

    >>> import chainrule as cr
    >>> w = cr.tensor(-2.0, requires_grad=True); x = cr.tensor(5.0, requires_grad=True)
    >>> print(cr.viz.to_dot(w * x, names={"w": w, "x": x}))  # doctest: +ELLIPSIS
    digraph chainrule {
    ...
      n1 [label="Mul", shape=ellipse, ...];
      n2 [label="w\\n() float32\\nvalue: -2", shape=box, ...];
    ...
      n2 -> n1;
    ...
    """
    nodes, edges = walk_graph(tensor, names)
    lines = [
        "digraph chainrule {",
        # Top to bottom, inputs first, as the lecture reads a network: a deep chain then grows
        # down a page instead of across it (the XOR graph: 1071 x 1352 px, was 3422 x 288).
        "  rankdir=TB;",
        "  ranksep=0.3; nodesep=0.3;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for node in nodes:
        if node.kind == "op":
            lines.append(f'  {node.id} [label="{_escape(node.name)}", shape=ellipse, '
                         'style=filled, fillcolor=lightgray];')
            continue
        if node.kind == "constant" and node.tensor is None and node.value is not None:
            # a Python number: its value is all there is to say
            lines.append(f'  {node.id} [label="{_escape(_format_number(node.value))}", '
                         'shape=box, style="rounded,filled", fillcolor=white];')
            continue
        label = [node.name, _shape_and_dtype(node.shape, node.dtype)]
        if show_values and node.tensor is not None:
            label += _values(node.tensor, max_elements)
        color = _COLORS[node.kind]
        lines.append(f'  {node.id} [label="{_join(label)}", shape=box, style=filled, '
                     f'fillcolor={color}];')
    kinds = {node.id: node.kind for node in nodes}
    for edge in edges:
        # into the output and out of a tensor's box, the box shows shape and values
        if kinds[edge.target] == "output" or kinds[edge.source] != "op":
            lines.append(f"  {edge.source} -> {edge.target};")
            continue
        label = [_shape_and_dtype(edge.shape, edge.dtype)]
        if edge.name is not None:
            label.insert(0, edge.name)
        if show_values and edge.tensor is not None:
            label += _values(edge.tensor, max_elements)
        lines.append(f'  {edge.source} -> {edge.target} [label="{_join(label)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(tensor: Tensor, path: str | Path, format: str | None = None,
           **to_dot_options: Any) -> Path:
    """Draws the graph of `tensor` into a file; returns its path.

    The format comes from `format` or the path's suffix ("svg", "png", "pdf", ...; "svg" when
    there is none); missing parent folders are made. A ".dot" or ".gv" path gets the DOT text
    itself and needs nothing else; other formats need the `graphviz` Python package
    (ImportError without it) and the Graphviz `dot` program (GraphvizNotFoundError, a
    RuntimeError, without it).
    `to_dot_options` go to `to_dot` (show_values, max_elements, names).

    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> cr.viz.render((x * x).sum(), "square.svg")  # doctest: +SKIP
    PosixPath('square.svg')
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".") or "svg").lower()
    dot = to_dot(tensor, **to_dot_options)
    if fmt in ("dot", "gv"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dot)
        return path
    try:
        import graphviz
    except ImportError as error:
        raise ImportError(
            f"render: drawing a {fmt} file needs the graphviz Python package "
            "(pip install graphviz) and the Graphviz `dot` program (e.g. apt-get install "
            "graphviz or brew install graphviz); to_dot() gives the DOT text without them"
        ) from error
    if fmt not in graphviz.FORMATS:
        raise ValueError(f"render: unknown output format {fmt!r} (from {str(path)!r}); use "
                         "svg, png, pdf or another Graphviz format")
    try:
        drawn = graphviz.Source(dot).pipe(format=fmt)
    except graphviz.ExecutableNotFound as error:
        raise GraphvizNotFoundError(
            "render: the Graphviz `dot` program was not found on PATH; install Graphviz "
            "(e.g. apt-get install graphviz or brew install graphviz; the graphviz Python "
            "package from pip install graphviz only calls it)") from error
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(drawn)
    return path


_COLORS = {"output": "darkolivegreen1", "leaf": "lightblue", "input": "khaki1",
           "constant": "white"}


def _format_number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _join(lines: list[str]) -> str:
    return "\\n".join(_escape(line) for line in lines)


def _shape_and_dtype(shape: tuple[int, ...] | None, dtype: Any) -> str:
    return f"{tuple(shape) if shape is not None else '?'} {getattr(dtype, 'name', dtype)}"


def _values(t: Tensor, max_elements: int) -> list[str]:
    if t.numel() > max_elements:
        return []
    lines = [f"value: {_format_array(t.numpy())}"]
    if t.grad is not None:
        lines.append(f"grad: {_format_array(t.grad.numpy())}")
    return lines


def _format_array(array: np.ndarray) -> str:
    text = np.array2string(array, separator=", ", formatter={"float_kind": lambda v: f"{v:.4g}"})
    return " ".join(text.split())
