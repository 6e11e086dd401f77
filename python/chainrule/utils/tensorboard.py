"""TensorBoard logs of a training run (scalars, histograms, the graph), as in the lecture's lab.

`SummaryWriter` has the calls of PyTorch's `torch.utils.tensorboard.SummaryWriter`, takes
chainrule Tensors, and writes TensorBoard event files through `tensorboardX` (which needs
neither TensorFlow nor PyTorch: `pip install tensorboardX`). tensorboardX is imported when a
writer is made, so `import chainrule` never needs it. View the logs with
`tensorboard --logdir runs` (`pip install tensorboard`).

>>> import chainrule as cr
>>> from chainrule.utils.tensorboard import SummaryWriter
>>> W = cr.randn(2, 2, requires_grad=True)
>>> with SummaryWriter("runs/xor") as writer:  # doctest: +SKIP
...     writer.add_scalar("cost", 0.69, global_step=0)
...     writer.add_histogram("W1", W, global_step=0)
...     writer.add_graph((W * W).sum())
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from chainrule.autograd.grad_mode import enable_grad
from chainrule.tensor import Tensor
from chainrule.viz import walk_graph

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["SummaryWriter"]


def _import_tensorboardx() -> ModuleType:
    try:
        import tensorboardX
    except ImportError as error:
        raise ImportError(
            "chainrule.utils.tensorboard needs the tensorboardX package to write TensorBoard "
            "event files: pip install tensorboardX (or pip install 'chainrule[tensorboard]')"
        ) from error
    return tensorboardX


class SummaryWriter:
    """Writes scalars, histograms and graphs to an event file in `log_dir`.

    `log_dir` defaults to runs/<date_time_host><comment>, as in PyTorch. Use it as a context
    manager, or call `close()` at the end (and `flush()` to write pending events now).

    >>> from chainrule.utils.tensorboard import SummaryWriter
    >>> writer = SummaryWriter("runs/demo")  # doctest: +SKIP
    >>> for step in range(3):  # doctest: +SKIP
    ...     writer.add_scalar("loss", 1.0 / (step + 1), step)
    >>> writer.close()  # doctest: +SKIP
    """

    def __init__(self, log_dir: str | None = None, comment: str = "",
                 purge_step: int | None = None, max_queue: int = 10, flush_secs: int = 120,
                 filename_suffix: str = "") -> None:
        tensorboardx = _import_tensorboardx()
        self.writer = tensorboardx.SummaryWriter(
            logdir=None if log_dir is None else str(log_dir), comment=comment,
            purge_step=purge_step, max_queue=max_queue, flush_secs=flush_secs,
            filename_suffix=filename_suffix)

    @property
    def log_dir(self) -> str:
        """The folder the event files go to."""
        return str(self.writer.logdir)

    def get_logdir(self) -> str:
        return self.log_dir

    def add_scalar(self, tag: str, scalar_value: Any, global_step: int | None = None,
                   walltime: float | None = None) -> None:
        """Records one value of the series `tag` (a number or a one-element Tensor).

        >>> writer.add_scalar("cost", cost, step)  # doctest: +SKIP
        """
        if isinstance(scalar_value, Tensor):
            if scalar_value.numel() != 1:
                raise ValueError(f"add_scalar: {tag!r} needs a one-element tensor, got shape "
                                 f"{scalar_value.shape}")
            scalar_value = scalar_value.item()
        self.writer.add_scalar(tag, float(scalar_value), global_step, walltime)

    def add_scalars(self, main_tag: str, tag_scalar_dict: Mapping[str, Any],
                    global_step: int | None = None, walltime: float | None = None) -> None:
        """Records several series in one chart, e.g. {"train": 0.3, "test": 0.4}."""
        values = {tag: float(v.item() if isinstance(v, Tensor) else v)
                  for tag, v in tag_scalar_dict.items()}
        self.writer.add_scalars(main_tag, values, global_step, walltime)

    def add_histogram(self, tag: str, values: Any, global_step: int | None = None,
                      bins: Any = "tensorflow", walltime: float | None = None,
                      max_bins: int | None = None) -> None:
        """Records the distribution of `values` (a Tensor, array or list), e.g. a weight.

        `bins` is "tensorflow" (TensorBoard's exponential buckets) or anything
        `numpy.histogram` takes.

        >>> writer.add_histogram("W1", model[0].weight, step)  # doctest: +SKIP
        """
        array = values.detach().numpy().copy() if isinstance(values, Tensor) else np.asarray(values)
        self.writer.add_histogram(tag, array, global_step, bins, walltime, max_bins)

    def add_text(self, tag: str, text_string: str, global_step: int | None = None,
                 walltime: float | None = None) -> None:
        """Records a (markdown) text."""
        self.writer.add_text(tag, text_string, global_step, walltime)

    def add_graph(self, model: Callable[..., Any] | Tensor, input_to_model: Any = None,
                  names: Mapping[str, Tensor] | None = None) -> None:
        """Records the graph of a computation for TensorBoard's Graphs tab.

        Either `add_graph(output)` with a tensor a computation produced, or
        `add_graph(model, input)`, which runs `model(input)` (`model(*input)` for a tuple or
        list) with grad mode on and records the graph of its output (the first tensor, when it
        returns several). A `Module`'s parameters get their names (`0.weight`), and `names`
        names more tensors. Ops are nodes named after their op ("Mul_n2"); each node carries
        its output's shape and dtype. Tensors that require grad are "Parameter" nodes, named
        inputs that do not (the lecture's X and Y) "Placeholder" nodes, and other inputs
        "Const" nodes, with their values (as TensorFlow's `value` attribute) when small.

        >>> writer.add_graph(model, cr.zeros(4, 2))  # doctest: +SKIP
        """
        all_names: dict[str, Tensor] = {}
        if input_to_model is None:
            if not isinstance(model, Tensor):
                raise TypeError("add_graph: pass an output Tensor, or a model and its input "
                                f"(got a {type(model).__name__} and no input)")
            output = model
        else:
            if isinstance(model, Tensor) or not callable(model):
                raise TypeError(f"add_graph: model must be callable, got {type(model).__name__}")
            named_parameters = getattr(model, "named_parameters", None)
            if callable(named_parameters):
                all_names.update(named_parameters())
            inputs = tuple(input_to_model) if isinstance(input_to_model, (tuple, list)) else (
                input_to_model,)
            for i, x in enumerate(inputs):
                if isinstance(x, Tensor):
                    all_names["input" if len(inputs) == 1 else f"input.{i}"] = x
            with enable_grad():
                result = model(*inputs)
            output = _first_tensor(result)
        all_names.update(names or {})
        graph_def = _graph_def(output, all_names)
        event_pb2 = _import_tensorboardx().proto.event_pb2
        file_writer = self.writer._get_file_writer()  # the public add_graph needs torch.jit
        file_writer.add_event(event_pb2.Event(graph_def=graph_def.SerializeToString()))

    def flush(self) -> None:
        """Writes pending events to disk. tensorboardX writes from a background thread, so an
        event added just before may land a moment later; `close()` waits for every event."""
        self.writer.flush()

    def close(self) -> None:
        """Flushes and closes the event file (a later add_* call opens a new one)."""
        self.writer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def _first_tensor(result: Any) -> Tensor:
    if isinstance(result, Tensor):
        return result
    if isinstance(result, (tuple, list)):
        for item in result:
            if isinstance(item, Tensor):
                return item
    raise TypeError(f"add_graph: the model returned a {type(result).__name__}, not a Tensor")


_DTYPE_NAMES = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "int64": "DT_INT64",
                "bool": "DT_BOOL"}


def _graph_def(output: Tensor, names: Mapping[str, Tensor]) -> Any:
    """A TensorFlow GraphDef of output's graph (the format TensorBoard's Graphs tab reads)."""
    from tensorboardX.proto import (
        attr_value_pb2,
        graph_pb2,
        node_def_pb2,
        tensor_shape_pb2,
        types_pb2,
        versions_pb2,
    )

    nodes, edges = walk_graph(output, names)
    tf_names: dict[str, str] = {}
    taken: set[str] = set()
    for node in nodes:
        named = node.kind != "op" and node.name not in ("leaf", "output", "constant")
        default = "Const" if node.kind == "constant" else node.name
        name = _tf_name(node.name if named else f"{default}_{node.id}")
        while name in taken:
            name = f"{name}_{node.id}"
        taken.add(name)
        tf_names[node.id] = name
    inputs: dict[str, list[str]] = {node.id: [] for node in nodes}
    out_meta: dict[str, tuple[tuple[int, ...], Any]] = {
        node.id: (node.shape, node.dtype) for node in nodes if node.kind != "op"}
    for edge in edges:
        inputs[edge.target].append(tf_names[edge.source])
        out_meta.setdefault(edge.source, (edge.shape, edge.dtype))

    def attrs(node_id: str) -> dict[str, Any]:
        if node_id not in out_meta:
            return {}
        shape, dtype = out_meta[node_id]
        dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in shape or ()]
        shape_attr = attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(
            shape=[tensor_shape_pb2.TensorShapeProto(dim=dims)]))
        dtype_name = _DTYPE_NAMES.get(getattr(dtype, "name", ""), "DT_INVALID")
        return {"_output_shapes": shape_attr,
                "dtype": attr_value_pb2.AttrValue(type=types_pb2.DataType.Value(dtype_name))}

    op_types = {"leaf": "Parameter", "output": "Output", "input": "Placeholder",
                "constant": "Const"}
    node_defs = []
    for node in nodes:
        attr = attrs(node.id)
        if node.kind == "constant":
            value = _tensor_proto(node)
            if value is not None:
                attr["value"] = attr_value_pb2.AttrValue(tensor=value)
        node_defs.append(node_def_pb2.NodeDef(name=tf_names[node.id],
                                              op=op_types.get(node.kind, node.name),
                                              input=inputs[node.id], attr=attr))
    return graph_pb2.GraphDef(node=node_defs, versions=versions_pb2.VersionDef(producer=22))


def _tensor_proto(node: Any) -> Any:
    """A constant's value as a TensorFlow TensorProto (None when the graph did not keep it)."""
    from tensorboardX.proto import tensor_pb2, tensor_shape_pb2, types_pb2

    if node.tensor is not None:
        values = node.tensor.detach().numpy()
    elif node.value is not None:
        values = np.asarray(node.value)
    else:
        return None
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in values.shape]
    proto = tensor_pb2.TensorProto(tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims))
    flat = values.reshape(-1)
    if values.dtype.kind == "f":
        proto.dtype = types_pb2.DataType.Value("DT_DOUBLE" if values.dtype == np.float64
                                               else "DT_FLOAT")
        (proto.double_val if values.dtype == np.float64 else proto.float_val).extend(
            float(v) for v in flat)
    elif values.dtype.kind == "b":
        proto.dtype = types_pb2.DataType.Value("DT_BOOL")
        proto.bool_val.extend(bool(v) for v in flat)
    else:
        proto.dtype = types_pb2.DataType.Value("DT_INT64")
        proto.int64_val.extend(int(v) for v in flat)
    return proto


def _tf_name(name: str) -> str:
    # TensorBoard node names: letters, digits and _ . - / (a / makes a name scope)
    cleaned = re.sub(r"[^A-Za-z0-9_.\-/]", "_", name)
    return cleaned if re.match(r"[A-Za-z0-9.]", cleaned) else "node" + cleaned
