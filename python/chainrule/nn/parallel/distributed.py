"""DistributedDataParallel: the same model in every process, each on its share of the batch,
with gradients averaged across processes during backward (PyTorch's design, over MPI).

How the averaging overlaps backward. The parameters are packed, in reverse order (the order
backward reaches them: the last layer's gradients are ready first), into buckets of about
`bucket_cap_mb` megabytes, each a flat buffer. A post-accumulate-grad hook on every parameter
copies its gradient into its bucket as soon as backward has it; when a bucket is full, a
non-blocking all-reduce of it starts, and backward goes on differentiating the layers below
while MPI sums the bucket (each gradient arrives divided by the number of processes, so the
sum is the mean). When the last bucket is full the hook waits for all of them and copies the
averages back into `.grad` (with gradient_as_bucket_view, `.grad` is already a view of the
bucket and nothing is copied), so backward returns with averaged gradients. Buckets start
strictly in order, so every process issues the same all-reduces in the same order (MPI
requires it). One bucket per parameter would pay MPI's
per-call latency many times; one bucket for everything would start only when backward is done:
the bucket size trades the two (docs/distributed.md).

A gradient of 1 MiB or more is a bucket of its own, and it is all-reduced where it lies, in the
fresh `.grad` backward just made: at that size MPI's per-call latency is nothing beside the
transfer, and the copy into a bucket is not (the wide MLP's 4 MiB weight: 0.8 ms of a 20 ms step).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import numpy as np

from chainrule.autograd.grad_mode import is_grad_enabled, no_grad
from chainrule.distributed import collectives
from chainrule.distributed.process_group import ProcessGroup, default_group
from chainrule.nn.module import Module
from chainrule.tensor import Tensor


class _Bucket:
    """Parameters of one dtype whose gradients are all-reduced together in one flat buffer.

    The buffer is a chainrule tensor (`flat`); `buffer` is its NumPy view, the memory MPI reads
    and writes, `slots[i]` the flat piece of parameter i and `views[i]` the same piece as a
    tensor of the parameter's shape (the `.grad` of gradient_as_bucket_view).

    A bucket `in_place` holds one large parameter and no buffer of its own: each backward, `flat`
    becomes the parameter's fresh `.grad` and MPI works on it there (a gradient backward cannot
    hand over, one that is part of a create_graph graph, gets a buffer made for it)."""

    __slots__ = ("buffer", "flat", "in_place", "own_buffer", "params", "pending", "request", "slots",
                 "views")

    def __init__(self, params: list[tuple[str, Tensor]], dtype: Any, in_place: bool = False) -> None:
        self.params = params
        self.in_place = in_place
        self.pending = len(params)
        self.request: Any = None
        self.own_buffer = False
        if not in_place:
            self.allocate(dtype)

    def allocate(self, dtype: Any) -> None:
        from chainrule.creation import zeros

        offsets = np.cumsum([0] + [p.numel() for _, p in self.params]).tolist()
        with no_grad():
            self.flat = zeros(offsets[-1], dtype=dtype)
            self.views = [self.flat[a:b].view(p.shape)
                          for (a, b), (_, p) in zip(zip(offsets, offsets[1:]), self.params)]
        self.buffer = self.flat.numpy()
        self.slots = [self.buffer[a:b] for a, b in zip(offsets, offsets[1:])]
        self.own_buffer = True

    def adopt(self, grad: Tensor) -> bool:
        """An in-place bucket takes `grad` as its memory for this backward, if it can: a
        contiguous gradient that is no part of a graph. Else it copies into a buffer of its own."""
        if grad.requires_grad or not grad.is_contiguous():
            return False
        self.flat = grad
        self.buffer = grad.numpy().reshape(-1)
        self.views = [grad]
        self.slots = [self.buffer]
        self.own_buffer = False
        return True


FIRST_BUCKET_BYTES = 1024 * 1024  # PyTorch's dist._DEFAULT_FIRST_BUCKET_BYTES
IN_PLACE_BYTES = 1024 * 1024  # a gradient this large is all-reduced where it lies


class _Reducer:
    """Fills the buckets from the gradient hooks and all-reduces them as they fill."""

    def __init__(self, group: ProcessGroup, named_params: Sequence[tuple[str, Tensor]],
                 bucket_cap_bytes: int, gradient_as_bucket_view: bool = False,
                 find_unused_parameters: bool = False) -> None:
        self.group = group
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.find_unused_parameters = find_unused_parameters
        self.unused: list[Tensor] = []  # this iteration's parameters the forward did not use
        self.used_in_no_sync: set[int] = set()  # reached by a forward under no_sync since the last average
        self.scale = 1.0 / group.size
        self.buckets: list[_Bucket] = []
        self.where: dict[int, tuple[_Bucket, int]] = {}  # id(param) -> (bucket, slot)
        current: list[tuple[str, Tensor]] = []
        size = 0
        for name, p in reversed(named_params):
            # As PyTorch: the first bucket (the last layers' gradients, ready first) is capped at
            # 1 MiB, so that its all-reduce starts early and overlaps the rest of backward.
            cap = min(FIRST_BUCKET_BYTES, bucket_cap_bytes) if not self.buckets else bucket_cap_bytes
            nbytes = p.numel() * p.dtype.itemsize
            if current and (p.dtype != current[0][1].dtype or size >= cap or nbytes >= IN_PLACE_BYTES):
                self._add_bucket(current)
                current, size = [], 0
            if nbytes >= IN_PLACE_BYTES:
                self._add_bucket([(name, p)], in_place=True)
                continue
            current.append((name, p))
            size += nbytes
        if current:
            self._add_bucket(current)
        self.active = False  # expecting this iteration's gradients
        self.next_bucket = 0  # the first bucket not started yet
        self.requests: list[Any] = []  # those of the buckets started in this backward
        self.ready: set[int] = set()

    def _add_bucket(self, params: list[tuple[str, Tensor]], in_place: bool = False) -> None:
        bucket = _Bucket(params, params[0][1].dtype, in_place)
        for i, (_, p) in enumerate(params):
            self.where[id(p)] = (bucket, i)
        self.buckets.append(bucket)

    def prepare(self, active: bool) -> None:
        """Called by forward: the next backward's gradients are to be averaged (or not)."""
        if self.active and self.ready:
            if self.ready <= {id(p) for p in self.unused} | self.used_in_no_sync:
                raise RuntimeError(
                    "DistributedDataParallel: a forward ran before the previous forward's "
                    "backward (with find_unused_parameters=True each forward under grad mode "
                    "starts the averaging: run evaluation under cr.no_grad())")
            missing = [name for b in self.buckets for name, p in b.params if id(p) not in self.ready]
            raise RuntimeError(
                "DistributedDataParallel: the previous backward did not produce gradients for "
                f"every parameter, so they were not averaged: {missing} got none (pass "
                "find_unused_parameters=True when the forward leaves some parameters out, or "
                "remove them from the model)")
        self.active = active
        self.ready.clear()
        self.unused.clear()
        self.next_bucket = 0
        self.requests.clear()
        for bucket in self.buckets:
            bucket.pending = len(bucket.params)

    def mark_unused(self, outputs: Any) -> None:
        """find_unused_parameters: after the forward, the parameters its graph does not reach
        count as ready with a zero gradient, so their buckets can complete. (Another process may
        have used them: the averages then reach their .grad in finish.) One that a forward under
        no_sync reached since the last average is ready with the gradient it accumulated."""
        reached = self._reached(outputs)
        if not self.active:  # under no_sync: remember, for the backward that averages
            self.used_in_no_sync |= reached
            return
        for bucket in self.buckets:
            for _, p in bucket.params:
                if id(p) in reached:
                    continue
                if id(p) in self.used_in_no_sync and p.grad is not None:
                    self.on_gradient(p)
                else:
                    self.unused.append(p)
                    self.on_gradient(p, unused=True)

    @staticmethod
    def _reached(outputs: Any) -> set[int]:
        """The ids of the leaf tensors the graph behind `outputs` reaches."""
        reached: set[int] = set()
        # a leaf output (the model returned a parameter itself) is reached as it is
        stack = [t.grad_fn if t.grad_fn is not None else t
                 for t in _tensors_in(outputs) if t.requires_grad]
        seen: set[int] = set()
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, Tensor):  # a leaf
                reached.add(id(node))
                continue
            stack.extend(edge[0] for edge in node.edges if edge is not None)
        return reached

    def on_gradient(self, p: Tensor, unused: bool = False) -> None:
        """p's gradient is in p.grad: copy it into its bucket; start buckets that are full.
        (unused: p has no gradient in this iteration, and its slot gets zeros.)"""
        if not self.active:
            return
        key = id(p)
        if key in self.ready:
            if any(q is p for q in self.unused):
                raise RuntimeError(
                    "DistributedDataParallel: a parameter that the forward's outputs do not "
                    f"depend on got a gradient (shape {tuple(p.shape)}): with "
                    "find_unused_parameters=True, use parameters only inside the forward")
            raise RuntimeError("DistributedDataParallel: a parameter's gradient was produced "
                               "twice in one iteration (two backward passes through one forward)")
        self.ready.add(key)
        bucket, i = self.where[key]
        grad = p.grad
        if unused:
            if not bucket.own_buffer:
                bucket.allocate(p.dtype)
            bucket.slots[i].fill(0)
            self._bucket_ready(bucket)
            return
        assert grad is not None  # the engine calls this hook right after setting it
        # Divided on the way in (as PyTorch does), so the sum MPI makes is already the mean and
        # no pass over the buckets is needed afterwards. A strided gradient is read in place
        # (no contiguous copy first).
        # (Both engines give .grad a fresh tensor when they accumulate, so it is never the
        # bucket's view here, unlike PyTorch's in-place accumulation; nothing else holds it yet,
        # so an in-place bucket may work on it.)
        if bucket.in_place and bucket.adopt(grad):
            if self.scale != 1.0:
                np.multiply(bucket.buffer, self.scale, out=bucket.buffer)
        else:
            if not bucket.own_buffer:
                bucket.allocate(grad.dtype)
            slot = bucket.slots[i]
            np.multiply(grad.numpy(), self.scale, out=slot.reshape(grad.shape))
            if self.gradient_as_bucket_view:
                p.grad = bucket.views[i]  # no copy back after the all-reduce
        self._bucket_ready(bucket)

    def _bucket_ready(self, bucket: _Bucket) -> None:
        """One more of the bucket's gradients is in; start the buckets that are full, in order."""
        bucket.pending -= 1
        if bucket.pending:
            if self.requests:
                # MPI moves a non-blocking all-reduce along only while the process is inside
                # an MPI call (Open MPI runs no progress thread by default): a test per gradient
                # keeps the started buckets going while backward computes the rest.
                self.group.MPI.Request.Testall(self.requests)
            return
        buckets = self.buckets
        comm, MPI = self.group.comm, self.group.MPI
        while self.next_bucket < len(buckets) and buckets[self.next_bucket].pending == 0:
            started = buckets[self.next_bucket]
            started.request = comm.Iallreduce(MPI.IN_PLACE, started.buffer, MPI.SUM)
            self.requests.append(started.request)
            self.next_bucket += 1
        if self.next_bucket == len(buckets):
            self.finish()

    def finish(self) -> None:
        """Waits for every bucket, then writes the averages into the parameters' .grad (with
        gradient_as_bucket_view they are already there: each .grad is a view of its bucket)."""
        self.active = False
        self.group.wait(self.requests, "DistributedDataParallel gradient all_reduce")
        self.requests.clear()
        unused = {id(p) for p in self.unused}
        used_elsewhere = self._used_elsewhere(unused) if self.find_unused_parameters else set()
        self.used_in_no_sync.clear()
        for bucket in self.buckets:
            # MPI wrote the buckets behind autograd's back: saved-tensor checks must see it.
            bucket.flat._data.bump_version()
            for i, (_, p) in enumerate(bucket.params):
                grad = p.grad
                if id(p) in unused:  # another process's gradient, or none anywhere (.grad kept)
                    if id(p) in used_elsewhere:
                        with no_grad():
                            p.grad = (bucket.views[i] if self.gradient_as_bucket_view
                                      else bucket.views[i].clone())
                    continue
                assert grad is not None  # its hook ran, so it has one
                if grad is bucket.views[i]:
                    continue  # a view of the bucket, or the in-place bucket's own gradient
                target = grad.numpy()
                if target.flags.c_contiguous:
                    np.copyto(target.reshape(-1), bucket.slots[i])
                    grad._data.bump_version()
                else:
                    from chainrule.creation import from_numpy

                    with no_grad():
                        grad.copy_(from_numpy(bucket.slots[i].reshape(grad.shape)))
        self.ready.clear()

    def _used_elsewhere(self, unused: set[int]) -> set[int]:
        """Of this process's unused parameters, those another process used (an all-reduce of
        one flag per parameter, in the same order everywhere)."""
        order = [p for bucket in self.buckets for _, p in bucket.params]
        flags = np.array([id(p) not in unused for p in order], dtype=np.uint8)
        self.group.comm.Allreduce(self.group.MPI.IN_PLACE, flags, self.group.MPI.MAX)
        return {id(p) for p, used in zip(order, flags) if used and id(p) in unused}


def _tensors_in(value: Any) -> Iterator[Tensor]:
    """The tensors in a forward's output: itself, or inside tuples, lists and dicts."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors_in(item)


class DistributedDataParallel(Module):
    """Wraps a module for data-parallel training: call it as the module; backward() then leaves
    every process with the gradients averaged over all processes.

    At construction the parameters and buffers of process 0 are copied to all the others, so
    every process starts from the same model. `no_sync()` skips the averaging (to accumulate
    gradients over several backward passes; the next backward outside it averages the sum).
    `module` is the wrapped module; `state_dict()` is the module's own (no `module.` prefix,
    so a checkpoint loads into the plain model), and `load_state_dict` takes either form.

    `gradient_as_bucket_view=True` (as in PyTorch) makes each parameter's `.grad` a view into
    its bucket once backward has put it there: the averaged gradients are not copied back out
    of the buckets, and the model's gradients take no memory of their own. The values are the
    same as without it; what differs is that `.grad` shares memory with the bucket, so a
    reference to last step's `.grad` sees this step's gradient.

    `find_unused_parameters=True` (as in PyTorch) lets a forward leave parameters out (a branch
    taken on some inputs only): after each forward, the graph is walked from the outputs, and
    the parameters it does not reach take part in the averaging with zeros. Their `.grad` is
    left as it was, unless another process used them: then it gets the average. Without it, a
    parameter that gets no gradient makes the next forward raise (a bucket that never fills
    would hang every process). `static_graph` is accepted and changes nothing.
    """

    module: Module
    broadcast_buffers: bool
    require_backward_grad_sync: bool
    bucket_cap_mb: float
    gradient_as_bucket_view: bool
    _reducer: _Reducer

    def __init__(self, module: Module, device_ids: Any = None, output_device: Any = None,
                 dim: int = 0, broadcast_buffers: bool = True, process_group: Any = None,
                 bucket_cap_mb: float = 25, find_unused_parameters: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False) -> None:
        super().__init__()
        if device_ids not in (None, [], ["cpu"]) or output_device not in (None, "cpu"):
            raise ValueError("DistributedDataParallel: chainrule runs on the CPU; leave "
                             "device_ids and output_device unset")
        if dim != 0:
            raise ValueError("DistributedDataParallel: the batch is split along dim 0")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got "
                             f"{bucket_cap_mb!r}")
        group = default_group("DistributedDataParallel")
        if process_group is not None and process_group is not group:
            raise ValueError("DistributedDataParallel: only the default process group exists")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.require_backward_grad_sync = True
        self.bucket_cap_mb = bucket_cap_mb
        self.gradient_as_bucket_view = bool(gradient_as_bucket_view)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.static_graph = bool(static_graph)  # a hint PyTorch uses; nothing here needs it
        self._broadcast_from_rank_0(list(module.named_parameters()) + list(module.named_buffers()))
        trained = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        reducer = _Reducer(group, trained, int(bucket_cap_mb * 1024 * 1024),
                           self.gradient_as_bucket_view, self.find_unused_parameters)
        self._reducer = reducer
        for _, p in trained:
            p.register_post_accumulate_grad_hook(reducer.on_gradient)

    @staticmethod
    def _broadcast_from_rank_0(named: list[tuple[str, Tensor]]) -> None:
        with no_grad():
            for name, t in named:
                try:
                    collectives.broadcast(t.detach(), 0)
                except ValueError as e:  # say which parameter differs between the processes
                    raise ValueError(f"DistributedDataParallel: {name}: {e}") from None

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        if self.broadcast_buffers:
            buffers = list(self.module.named_buffers())
            if buffers:
                self._broadcast_from_rank_0(buffers)
        active = is_grad_enabled() and self.require_backward_grad_sync
        self._reducer.prepare(active)
        outputs = self.module(*inputs, **kwargs)
        if is_grad_enabled() and self.find_unused_parameters:
            self._reducer.mark_unused(outputs)
        return outputs

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Gradients of backward passes whose forward ran inside stay local (accumulating in
        .grad); the first backward after it averages the accumulated sum, so k micro-batches
        cost one all-reduce: `with ddp.no_sync(): loss(ddp(x1)).backward()`, then
        `loss(ddp(x2)).backward()` averages the sum of both gradients."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def state_dict(self) -> Any:
        return self.module.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> Any:
        # A checkpoint saved from torch's DDP (or from named_parameters here) has the prefix.
        if state_dict and all(k.startswith("module.") for k in state_dict):
            state_dict = {k[len("module."):]: v for k, v in state_dict.items()}
        return self.module.load_state_dict(state_dict, strict=strict)

    def extra_repr(self) -> str:
        view = ", gradient_as_bucket_view=True" if self.gradient_as_bucket_view else ""
        return f"bucket_cap_mb={self.bucket_cap_mb}{view}"
