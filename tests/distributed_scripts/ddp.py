"""Run under `mpiexec -n N`: DistributedDataParallel against one process on the whole batch.

Each process trains on its 1/N of every batch; after K Adam steps the parameters must equal
those of a plain model trained in this process on the whole batch (to float32 round-off), with
one bucket or many, with no_sync gradient accumulation, and with gradient_as_bucket_view (whose
parameters must equal the default's bit for bit). Any failed check raises, which
aborts the job; rank 0 prints a summary line."""
from __future__ import annotations

import numpy as np

import chainrule as cr
import chainrule.distributed as dist
from chainrule.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group(backend="mpi")
rank, world = dist.get_rank(), dist.get_world_size()
STEPS, PER_PROCESS, FEATURES, CLASSES = 6, 8, 6, 3
rng = np.random.default_rng(7)
X = rng.standard_normal((STEPS, 2, world * PER_PROCESS, FEATURES)).astype(np.float32)
Y = rng.integers(0, CLASSES, size=(STEPS, 2, world * PER_PROCESS))


def make_model(seed: int, wide: int = 32) -> cr.nn.Module:
    """wide=8192 makes the middle weight 1 MiB: a bucket of its own, all-reduced in its .grad."""
    cr.manual_seed(seed)
    return cr.nn.Sequential(cr.nn.Linear(FEATURES, 32), cr.nn.Tanh(), cr.nn.Linear(32, wide),
                            cr.nn.ReLU(), cr.nn.Linear(wide, CLASSES))


def mine(batch: np.ndarray) -> cr.Tensor:
    return cr.tensor(batch[rank * PER_PROCESS:(rank + 1) * PER_PROCESS])


def train(model, micro_batches: int, ddp: DDP | None = None, set_to_none: bool = True) -> None:
    """STEPS Adam steps; each step sums the gradients of `micro_batches` batches."""
    net = ddp if ddp is not None else model
    optimizer = cr.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = cr.nn.CrossEntropyLoss()
    for step in range(STEPS):
        optimizer.zero_grad(set_to_none=set_to_none)
        for m in range(micro_batches):
            if ddp is None:  # the reference: the whole batch
                loss_fn(model(cr.tensor(X[step, m])), cr.tensor(Y[step, m])).backward()
            elif m < micro_batches - 1:
                with ddp.no_sync():
                    loss_fn(ddp(mine(X[step, m])), mine(Y[step, m])).backward()
            else:
                loss_fn(ddp(mine(X[step, m])), mine(Y[step, m])).backward()
        optimizer.step()


def same_everywhere(model: cr.nn.Module) -> None:
    """Every process holds bit-identical parameters."""
    for name, p in model.named_parameters():
        gathered = [cr.zeros_like(p) for _ in range(world)]
        dist.all_gather(gathered, p.detach())
        for r in range(world):
            assert np.array_equal(gathered[r].numpy(), p.detach().numpy()), (name, r)


def grads_are_bucket_views(ddp: DDP) -> bool:
    """Whether every .grad lies inside its bucket's memory."""
    buckets = ddp._reducer.buckets
    return all(any(np.shares_memory(p.grad.numpy(), b.buffer) for b in buckets)
               for p in ddp.module.parameters())


report = []
trained: dict[tuple, cr.nn.Module] = {}
for bucket_cap_mb, micro_batches, as_view, set_to_none, wide in (
        (25, 1, False, True, 32), (0.002, 1, False, True, 32), (0.002, 2, False, True, 32),
        (25, 2, False, True, 32), (25, 1, True, True, 32), (0.002, 1, True, True, 32),
        (0.002, 2, True, True, 32), (25, 2, True, False, 32), (0.002, 2, True, False, 32),
        (25, 1, False, True, 8192), (25, 2, False, False, 8192), (25, 1, True, True, 8192),
        (25, 2, True, False, 8192)):
    reference = make_model(0, wide)
    train(reference, micro_batches)
    model = make_model(1 + rank, wide)  # different in every process until DDP broadcasts rank 0's
    if rank == 0:
        model = make_model(0, wide)
    ddp = DDP(model, bucket_cap_mb=bucket_cap_mb, gradient_as_bucket_view=as_view)
    assert ddp.module is model
    train(model, micro_batches, ddp, set_to_none)
    assert grads_are_bucket_views(ddp) == as_view, (bucket_cap_mb, micro_batches, as_view)
    in_place = [b for b in ddp._reducer.buckets if b.in_place]
    if wide > 32:  # the 1 MiB weight: its own bucket, all-reduced in the .grad backward made
        assert [b.params[0][1] for b in in_place] == [model[2].weight], in_place
        assert model[2].weight.grad is in_place[0].flat and not in_place[0].own_buffer
    else:
        assert not in_place
    key = (bucket_cap_mb, micro_batches, wide)
    trained[key + (as_view,)] = model
    if as_view:  # the same arithmetic as without views: the same parameters, bit for bit
        for (name, p), (_, q) in zip(model.named_parameters(), trained[key + (False,)].named_parameters()):
            assert np.array_equal(p.detach().numpy(), q.detach().numpy()), (bucket_cap_mb, name)
    worst = 0.0
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        diff = float(np.max(np.abs(p.detach().numpy() - q.detach().numpy())))
        worst = max(worst, diff)
        # (Adam divides by the gradients' running size, which turns their round-off, larger over
        # 8192 hidden units, into up to 0.3% of a step of lr 1e-2.)
        assert diff <= (1e-5 if wide == 32 else 1e-4), (bucket_cap_mb, micro_batches, name, diff)
    same_everywhere(model)
    report.append(f"{len(ddp._reducer.buckets)} bucket(s), {micro_batches} micro-batch(es)"
                  f"{', gradient_as_bucket_view' if as_view else ''}"
                  f"{f', {len(in_place)} in place' if in_place else ''}: max |diff| {worst:.2g}")

# Overlap: with several buckets, all-reduces have started before backward reaches the first
# layer's weight (the last gradient to be computed).
model = make_model(0)
ddp = DDP(model, bucket_cap_mb=0.002)
started_before_last = []
model[0].weight.register_hook(lambda g: started_before_last.append(ddp._reducer.next_bucket))
ddp(mine(X[0, 0])).sum().backward()
buckets = len(ddp._reducer.buckets)  # [last layer, middle layer], [first layer]
assert buckets >= 2 and started_before_last == [buckets - 1], (buckets, started_before_last)
# The averaged gradient is in .grad when backward returns.
local = make_model(0)
local(mine(X[0, 0])).sum().backward()
for p, q in zip(model.parameters(), local.parameters()):
    expected = q.grad.detach().clone()
    dist.all_reduce(expected, op=dist.ReduceOp.AVG)
    np.testing.assert_allclose(p.grad.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)

# A gradient that is part of a graph (create_graph=True) is not taken over: the in-place bucket
# copies it into a buffer of its own, and .grad still ends averaged.
model, local = make_model(0, 8192), make_model(0, 8192)
ddp = DDP(model)
ddp(mine(X[0, 0])).pow(2).sum().backward(create_graph=True)
local(mine(X[0, 0])).pow(2).sum().backward()
assert [b.own_buffer for b in ddp._reducer.buckets if b.in_place] == [True]
for p, q in zip(model.parameters(), local.parameters()):
    expected = q.grad.detach().clone()
    dist.all_reduce(expected, op=dist.ReduceOp.AVG)
    np.testing.assert_allclose(p.grad.detach().numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)

# state_dict: the module's own keys; load_state_dict takes them with or without "module.".
assert list(ddp.state_dict()) == list(model.state_dict())
prefixed = {f"module.{k}": v * 0 for k, v in model.state_dict().items()}
ddp.load_state_dict(prefixed)
assert all(float(p.detach().abs().sum().item()) == 0 for p in model.parameters())

# A parameter that takes no part in the loss: the next forward says which.
class WithUnused(cr.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = cr.nn.Linear(FEATURES, 2)
        self.unused = cr.nn.Linear(FEATURES, 2)

    def forward(self, x):
        return self.used(x)


ddp = DDP(WithUnused())
ddp(mine(X[0, 0])).sum().backward()
try:
    ddp(mine(X[0, 0]))
    raise AssertionError("an unused parameter went unnoticed")
except RuntimeError as e:
    assert "unused.weight" in str(e), e

# find_unused_parameters=True: the unused parameter takes part with zeros; its .grad stays None
# (no process used it), and training matches one process on the whole batch.
model, reference = WithUnused(), WithUnused()
ddp = DDP(model, find_unused_parameters=True)  # every process now holds process 0's parameters
reference.load_state_dict(model.state_dict())
optimizers = cr.optim.Adam(ddp.parameters(), lr=1e-2), cr.optim.Adam(reference.parameters(), lr=1e-2)
for step in range(3):
    for opt in optimizers:
        opt.zero_grad()
    ddp(mine(X[step, 0])).pow(2).sum().backward()
    reference(cr.tensor(X[step, 0])).pow(2).sum().div(world).backward()
    for opt in optimizers:
        opt.step()
assert model.unused.weight.grad is None and model.unused.bias.grad is None
for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
    np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), atol=1e-6, err_msg=name)


class SometimesUsed(cr.nn.Module):
    """Process 1 also runs `extra`; process 0 does not."""

    def __init__(self) -> None:
        super().__init__()
        self.base = cr.nn.Linear(FEATURES, 2)
        self.extra = cr.nn.Linear(FEATURES, 2)

    def forward(self, x):
        return self.base(x) + (self.extra(x) if rank == 1 else 0)


# Used by one process only: every process's .grad gets the average, the others counting zero.
for as_view in (False, True):
    model = SometimesUsed()
    ddp = DDP(model, find_unused_parameters=True, gradient_as_bucket_view=as_view)
    local = SometimesUsed()
    local.load_state_dict(model.state_dict())
    ddp(mine(X[0, 0])).pow(2).sum().backward()
    local(mine(X[0, 0])).pow(2).sum().backward()
    for name, q in local.named_parameters():
        expected = q.grad.detach().clone() if q.grad is not None else cr.zeros_like(q)
        dist.all_reduce(expected, op=dist.ReduceOp.AVG)
        got = dict(model.named_parameters())[name].grad
        assert got is not None, (name, as_view)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)

# With no_sync: a parameter used by the first micro-batch only is averaged with the gradient it
# accumulated then (and the other parameters with their sums, as always).
class Switch(cr.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.base = cr.nn.Linear(FEATURES, 2)
        self.extra = cr.nn.Linear(FEATURES, 2)
        self.use_extra = True

    def forward(self, x):
        return self.base(x) + self.extra(x) if self.use_extra else self.base(x)


model = Switch()
ddp = DDP(model, find_unused_parameters=True)
local = Switch()
local.load_state_dict(model.state_dict())
for net in (ddp, local):
    model.use_extra = local.use_extra = True
    if net is ddp:
        with ddp.no_sync():
            net(mine(X[0, 0])).pow(2).sum().backward()
    else:
        net(mine(X[0, 0])).pow(2).sum().backward()
    model.use_extra = local.use_extra = False
    net(mine(X[0, 1])).pow(2).sum().backward()
for name, q in local.named_parameters():
    expected = q.grad.detach().clone()
    dist.all_reduce(expected, op=dist.ReduceOp.AVG)
    np.testing.assert_allclose(dict(model.named_parameters())[name].grad.numpy(), expected.numpy(),
                               rtol=1e-5, atol=1e-6, err_msg=name)
# A second forward before the first one's backward says so (the first started the averaging).
model.use_extra = False
ddp(mine(X[0, 0]))
try:
    ddp(mine(X[0, 0]))
    raise AssertionError("a forward without its backward went unnoticed")
except RuntimeError as e:
    assert "no_grad" in str(e), e

# Shapes that differ between the processes are named at construction.
try:
    DDP(cr.nn.Linear(FEATURES + rank, 2))
    raise AssertionError("different models went unnoticed")
except ValueError as e:
    assert "weight" in str(e) and "disagree" in str(e), e

dist.destroy_process_group()
if rank == 0:
    print("ddp: " + "; ".join(report))
