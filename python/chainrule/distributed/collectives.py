"""The collectives: all_reduce, broadcast, all_gather, reduce and barrier, blocking or not.

Each works in place on the tensor's own memory: a contiguous tensor's NumPy view (which shares
the memory) goes to mpi4py through the buffer protocol, so MPI reads and writes the tensor
itself, with no copy. A non-contiguous tensor goes through a contiguous copy, written back
when the collective is done. Every call first checks, with one small all-gather, that all the
processes make the same call (process_group.check_same_call), so a mistake raises the same
ValueError in every process instead of hanging.
"""
from __future__ import annotations

import enum
import functools
from typing import Any, Callable

import numpy as np

from chainrule.autograd.grad_mode import is_grad_enabled
from chainrule.distributed.process_group import ProcessGroup, _check_group
from chainrule.tensor import Tensor

_DTYPES = ("float32", "float64", "int64")


class ReduceOp(enum.Enum):
    """How all_reduce and reduce combine the processes' values, element by element."""

    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4
    BAND = 5
    BOR = 6
    BXOR = 7


def _mpi_op(group: ProcessGroup, name: str, op: Any, dtype_name: str) -> Any:
    if not isinstance(op, ReduceOp):
        raise TypeError(f"{name}: op must be a ReduceOp, got {op!r}")
    if op is ReduceOp.AVG and dtype_name == "int64":
        raise TypeError(f"{name}: ReduceOp.AVG of int64 tensors would need rounding; use SUM "
                        "and divide")
    if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR) and dtype_name != "int64":
        raise TypeError(f"{name}: ReduceOp.{op.name} takes int64 tensors, not {dtype_name}")
    return _mpi_ops(group.MPI)[op]


@functools.cache
def _mpi_ops(MPI: Any) -> dict[ReduceOp, Any]:
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
            ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX, ReduceOp.BAND: MPI.BAND,
            ReduceOp.BOR: MPI.BOR, ReduceOp.BXOR: MPI.BXOR}


def _as_buffer(name: str, tensor: Any, writes: bool = True) -> tuple[np.ndarray, Any]:
    """(the contiguous array MPI works on, the strided view to copy it back to or None).

    A contiguous tensor's array is its own memory; MPI then writes straight into the tensor."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(tensor).__name__}")
    if tensor.dtype.name not in _DTYPES:
        raise TypeError(f"{name}: dtype {tensor.dtype.name} is not supported (float32, float64 "
                        "or int64)")
    if writes and tensor.requires_grad and is_grad_enabled():
        raise RuntimeError(
            f"{name}: the tensor of shape {tensor.shape} requires grad, and a collective writes "
            "into it in place, which autograd cannot record; call it under cr.no_grad() or on "
            "tensor.detach()")
    view = tensor.numpy()
    if view.flags.c_contiguous:
        return view, None
    if writes and any(stride == 0 and size > 1 for stride, size in zip(view.strides, view.shape)):
        raise ValueError(f"{name}: the tensor of shape {tensor.shape} is expanded (several "
                         "elements share one memory location); pass a contiguous tensor")
    return np.ascontiguousarray(view), view


def _write_back(tensor: Tensor, buffer: np.ndarray, strided: Any) -> None:
    if strided is not None:
        strided[...] = buffer
    tensor._data.bump_version()  # saved-for-backward checks see the in-place change


class Work:
    """The handle of a collective started with async_op=True: wait() blocks until it is done
    (and the tensor holds the result); is_completed() asks without blocking."""

    def __init__(self, group: ProcessGroup, name: str, request: Any,
                 finish: Callable[[], None]) -> None:
        self.group = group
        self.name = name
        self.request = request
        self._finish: Callable[[], None] | None = finish  # None once done

    def wait(self, timeout: Any = None) -> bool:
        if self._finish is not None:
            self.group.wait(self.request, self.name)
            finish, self._finish = self._finish, None
            finish()
        return True

    def is_completed(self) -> bool:
        if self._finish is not None and self.request.Test():
            self.wait()
        return self._finish is None

    def __del__(self) -> None:
        # MPI may still be writing into the buffers this handle keeps alive.
        if getattr(self, "_finish", None) is not None:
            self.wait()


def _run(group: ProcessGroup, name: str, blocking: Callable[[], Any],
         nonblocking: Callable[[], Any], finish: Callable[[], None], async_op: bool) -> Work | None:
    if async_op:
        return Work(group, name, nonblocking(), finish)
    with group.watch(name):
        blocking()
    finish()
    return None


# From this size on, a blocking all_reduce is the non-blocking one (Open MPI's ring, see
# ProcessGroup) waited for by ProcessGroup.wait, which gives the core away between tests. 25 MiB
# of float32 on 2 processes against mpi4py's blocking Allreduce: 0.98-1.04x on an idle machine,
# 1.09-1.16x at load 4-5 on 2 cores (the blocking call with its spinning wait: 0.89-0.98x).
# Small buffers keep the blocking call: its algorithms (recursive doubling) have the lower
# latency.
NONBLOCKING_ALL_REDUCE_BYTES = 1 << 20


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM, group: Any = None,
               async_op: bool = False) -> Work | None:
    """Combines the tensor across all processes (op: SUM, AVG, PRODUCT, MIN, MAX, or BAND, BOR,
    BXOR of int64); every process ends with the result, in the tensor's own memory. With
    async_op=True, returns a Work whose wait() finishes it."""
    g = _check_group("all_reduce", group)
    buffer, strided = _as_buffer("all_reduce", tensor)
    mpi_op = _mpi_op(g, "all_reduce", op, tensor.dtype.name)
    g.check_same_call("all_reduce", op.value, -1, [buffer])
    IN_PLACE = g.MPI.IN_PLACE

    def finish() -> None:
        if op is ReduceOp.AVG:
            np.divide(buffer, g.size, out=buffer)
        _write_back(tensor, buffer, strided)

    def blocking() -> None:
        if buffer.nbytes >= NONBLOCKING_ALL_REDUCE_BYTES:
            g.wait(g.comm.Iallreduce(IN_PLACE, buffer, mpi_op), "all_reduce")
        else:
            g.comm.Allreduce(IN_PLACE, buffer, mpi_op)

    return _run(g, "all_reduce", blocking, lambda: g.comm.Iallreduce(IN_PLACE, buffer, mpi_op),
                finish, async_op)


def broadcast(tensor: Tensor, src: int, group: Any = None, async_op: bool = False) -> Work | None:
    """Copies process `src`'s tensor into the tensor of every other process."""
    g = _check_group("broadcast", group)
    _check_rank(g, "broadcast", "src", src)
    buffer, strided = _as_buffer("broadcast", tensor)
    g.check_same_call("broadcast", 0, src, [buffer])

    def finish() -> None:
        if g.rank != src:
            _write_back(tensor, buffer, strided)

    return _run(g, "broadcast", lambda: g.comm.Bcast(buffer, root=src),
                lambda: g.comm.Ibcast(buffer, root=src), finish, async_op)


def reduce(tensor: Tensor, dst: int, op: ReduceOp = ReduceOp.SUM, group: Any = None,
           async_op: bool = False) -> Work | None:
    """Like all_reduce, but only process `dst` receives the result; the others' tensors are
    left as they were."""
    g = _check_group("reduce", group)
    _check_rank(g, "reduce", "dst", dst)
    buffer, strided = _as_buffer("reduce", tensor)
    mpi_op = _mpi_op(g, "reduce", op, tensor.dtype.name)
    g.check_same_call("reduce", op.value, dst, [buffer])
    root = g.rank == dst
    send = g.MPI.IN_PLACE if root else buffer
    receive = buffer if root else None

    def finish() -> None:
        if root:
            if op is ReduceOp.AVG:
                np.divide(buffer, g.size, out=buffer)
            _write_back(tensor, buffer, strided)

    return _run(g, "reduce", lambda: g.comm.Reduce(send, receive, mpi_op, root=dst),
                lambda: g.comm.Ireduce(send, receive, mpi_op, root=dst), finish, async_op)


def all_gather(tensor_list: list[Tensor], tensor: Tensor, group: Any = None,
               async_op: bool = False) -> Work | None:
    """Fills tensor_list[i] with process i's tensor, in every process (one output per
    process, each of the input's shape and dtype)."""
    g = _check_group("all_gather", group)
    if not isinstance(tensor_list, list) or len(tensor_list) != g.size:
        raise ValueError(f"all_gather: tensor_list must be a list of {g.size} tensors (one per "
                         f"process), got {_describe(tensor_list)}")
    send, _ = _as_buffer("all_gather", tensor, writes=False)
    outputs = [_as_buffer("all_gather", out) for out in tensor_list]
    for i, out in enumerate(tensor_list):
        if out.shape != tensor.shape or out.dtype != tensor.dtype:
            raise ValueError(f"all_gather: tensor_list[{i}] is {out.dtype.name} {out.shape} but "
                             f"the input is {tensor.dtype.name} {tensor.shape}")
    g.check_same_call("all_gather", 0, -1, [send])
    gathered = np.empty((g.size,) + send.shape, dtype=send.dtype)

    def finish() -> None:
        for out, (buffer, strided), row in zip(tensor_list, outputs, gathered):
            buffer[...] = row
            _write_back(out, buffer, strided)

    return _run(g, "all_gather", lambda: g.comm.Allgather(send, gathered),
                lambda: g.comm.Iallgather(send, gathered), finish, async_op)


def all_gather_into_tensor(output_tensor: Tensor, input_tensor: Tensor, group: Any = None,
                           async_op: bool = False) -> Work | None:
    """Process i's input lands in the i-th block of output_tensor, whose first dim is the
    input's times the number of processes (or which stacks them: shape (world, *input.shape)).
    A contiguous output is written by MPI directly."""
    g = _check_group("all_gather_into_tensor", group)
    send, _ = _as_buffer("all_gather_into_tensor", input_tensor, writes=False)
    buffer, strided = _as_buffer("all_gather_into_tensor", output_tensor)
    if output_tensor.dtype != input_tensor.dtype or output_tensor.numel() != g.size * send.size:
        raise ValueError(f"all_gather_into_tensor: the output must hold {g.size} inputs of "
                         f"{input_tensor.dtype.name} {input_tensor.shape}; got "
                         f"{output_tensor.dtype.name} {output_tensor.shape}")
    g.check_same_call("all_gather_into_tensor", 0, -1, [send])
    flat = buffer.reshape(-1)  # a view: the buffer is contiguous

    def finish() -> None:
        _write_back(output_tensor, buffer, strided)

    return _run(g, "all_gather_into_tensor", lambda: g.comm.Allgather(send, flat),
                lambda: g.comm.Iallgather(send, flat), finish, async_op)


def barrier(group: Any = None, async_op: bool = False) -> Work | None:
    """Returns once every process has called barrier()."""
    g = _check_group("barrier", group)
    # The call check is itself an all-gather, which no process leaves before all have entered.
    g.check_same_call("barrier", 0, -1, [])
    if async_op:
        return Work(g, "barrier", g.comm.Ibarrier(), lambda: None)
    return None


def _check_rank(group: ProcessGroup, name: str, what: str, rank: Any) -> None:
    if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank < group.size:
        raise ValueError(f"{name}: {what}={rank!r} is not a rank of this job (0 to "
                         f"{group.size - 1})")


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__
