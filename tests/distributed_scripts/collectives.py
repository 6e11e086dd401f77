"""Run under `mpiexec -n N`: every collective, on contiguous and strided tensors of each dtype,
against NumPy (each process builds every process's input, so it knows the expected result).
Any failed check raises, which aborts the job with a non-zero status; rank 0 prints the count
of checks at the end."""
from __future__ import annotations

import numpy as np

import chainrule as cr
import chainrule.distributed as dist

dist.init_process_group(backend="mpi")
rank, world = dist.get_rank(), dist.get_world_size()
checks = 0


def data(r: int, dtype: str, shape=(3, 4)) -> np.ndarray:
    """Process r's input: distinct per process, exact in every dtype (small integers)."""
    rng = np.random.default_rng(100 + r)
    return rng.integers(-4, 5, size=shape).astype(dtype) + (r if dtype == "int64" else 0.25 * r)


def layouts(array: np.ndarray):
    """(name, tensor holding `array`'s values, the values as the tensor shows them)."""
    yield "contiguous", cr.tensor(array), array
    t = cr.tensor(np.ascontiguousarray(array.T)).T  # a transposed view: non-contiguous
    yield "transposed", t, array
    wide = np.zeros((array.shape[0], 2 * array.shape[1]), dtype=array.dtype)
    wide[:, ::2] = array
    yield "every other column", cr.tensor(wide)[:, ::2], array


def check(got: cr.Tensor, expected: np.ndarray, what: str) -> None:
    global checks
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, err_msg=what)
    assert got.dtype.name == expected.dtype.name, what
    checks += 1


REDUCE = {dist.ReduceOp.SUM: lambda xs: np.sum(xs, axis=0),
          dist.ReduceOp.AVG: lambda xs: np.mean(xs, axis=0),
          dist.ReduceOp.PRODUCT: lambda xs: np.prod(xs, axis=0),
          dist.ReduceOp.MIN: lambda xs: np.min(xs, axis=0),
          dist.ReduceOp.MAX: lambda xs: np.max(xs, axis=0),
          dist.ReduceOp.BAND: lambda xs: np.bitwise_and.reduce(xs, axis=0),
          dist.ReduceOp.BOR: lambda xs: np.bitwise_or.reduce(xs, axis=0),
          dist.ReduceOp.BXOR: lambda xs: np.bitwise_xor.reduce(xs, axis=0)}
BITWISE = (dist.ReduceOp.BAND, dist.ReduceOp.BOR, dist.ReduceOp.BXOR)

# Large tensors: from collectives.NONBLOCKING_ALL_REDUCE_BYTES on, a blocking all_reduce takes
# the non-blocking path (its own algorithm and wait).
LARGE = (700, 400)  # 280,000 elements: 1.1 MB of float32
assert 280_000 * 4 >= dist.collectives.NONBLOCKING_ALL_REDUCE_BYTES
for dtype, ops in (("float32", (dist.ReduceOp.SUM, dist.ReduceOp.AVG, dist.ReduceOp.MAX)),
                   ("float64", (dist.ReduceOp.MIN,)), ("int64", (dist.ReduceOp.BXOR,))):
    everyone = np.stack([data(r, dtype, LARGE) for r in range(world)])
    for op in ops:
        expected = REDUCE[op](everyone).astype(dtype)
        for async_op in (False, True):
            for layout, t, _ in list(layouts(everyone[rank]))[:2]:
                work = dist.all_reduce(t, op=op, async_op=async_op)
                if work is not None:
                    work.wait()
                check(t, expected, f"large all_reduce {op.name} {dtype} {layout} async={async_op}")

for dtype in ("float32", "float64", "int64"):
    everyone = np.stack([data(r, dtype) for r in range(world)])
    mine = everyone[rank]
    for op, oracle in REDUCE.items():
        if (op is dist.ReduceOp.AVG and dtype == "int64") or (op in BITWISE and dtype != "int64"):
            continue
        expected = oracle(everyone).astype(dtype)
        for async_op in (False, True):
            for layout, t, _ in layouts(mine):
                what = f"all_reduce {op.name} {dtype} {layout} async={async_op}"
                work = dist.all_reduce(t, op=op, async_op=async_op)
                if async_op:
                    assert work.wait() and work.is_completed(), what
                check(t, expected, what)
        for dst in range(world):
            for layout, t, _ in layouts(mine):
                dist.reduce(t, dst, op=op)
                check(t, expected if rank == dst else mine, f"reduce {op.name} dst={dst} {layout}")
    for src in range(world):
        for layout, t, _ in layouts(mine):
            work = dist.broadcast(t, src, async_op=src == 1)
            if work is not None:
                work.wait()
            check(t, everyone[src], f"broadcast src={src} {dtype} {layout}")
    for layout, t, _ in layouts(mine):
        # Outputs of each layout too: fresh zeros, contiguous, transposed, strided, ...
        outputs = [list(layouts(np.zeros_like(mine)))[(r + 1) % 3][1] for r in range(world)]
        dist.all_gather(outputs, t)
        for r in range(world):
            check(outputs[r], everyone[r], f"all_gather {dtype} {layout} from rank {r}")
        stacked = cr.zeros(world, *mine.shape, dtype=t.dtype)
        dist.all_gather_into_tensor(stacked, t, async_op=True).wait()
        check(stacked, everyone, f"all_gather_into_tensor {dtype} {layout}")

# In place, with no copy: a NumPy view taken before the call sees the result.
t = cr.tensor(data(rank, "float32"))
view_before = t.numpy()
address = view_before.ctypes.data
dist.all_reduce(t)
assert t.numpy().ctypes.data == address
np.testing.assert_array_equal(view_before, sum(data(r, "float32") for r in range(world)))

# The version counter moves, so a tensor saved for backward and then reduced is caught.
w = cr.ones(3, requires_grad=True)
x = cr.full((3,), 2.0)
y = (w * x).sum()
dist.all_reduce(x)
try:
    y.backward()
    raise AssertionError("backward through a tensor changed by all_reduce did not raise")
except RuntimeError as e:
    assert "modified by an in-place operation" in str(e), e

# Errors, raised alike in every process (so none is left waiting).
expect = [
    (RuntimeError, "requires grad", lambda: dist.all_reduce(cr.ones(2, requires_grad=True))),
    (TypeError, "bool", lambda: dist.all_reduce(cr.ones(2).bool())),
    (TypeError, "AVG of int64", lambda: dist.all_reduce(cr.ones(2).long(), dist.ReduceOp.AVG)),
    (TypeError, "BAND takes int64", lambda: dist.all_reduce(cr.ones(2), dist.ReduceOp.BAND)),
    (TypeError, "expected a Tensor", lambda: dist.all_reduce(np.ones(2))),
    (ValueError, "src=", lambda: dist.broadcast(cr.ones(2), world)),
    (ValueError, "list of", lambda: dist.all_gather([cr.ones(2)] * (world + 1), cr.ones(2))),
    (ValueError, "expanded", lambda: dist.all_reduce(cr.ones(1).expand(3))),
    (ValueError, "disagree", lambda: dist.all_reduce(cr.ones(2 + rank))),
    (ValueError, "disagree", lambda: dist.all_reduce(cr.ones(2, dtype=cr.float64 if rank else cr.float32))),
    (ValueError, "disagree", lambda: dist.broadcast(cr.ones(2), 0) if rank else dist.all_reduce(cr.ones(2))),
    (ValueError, "twice", lambda: dist.init_process_group("mpi")),
    (ValueError, "backend", lambda: dist.init_process_group("nccl")),
]
for error, words, call in expect:
    try:
        call()
    except error as e:
        assert words in str(e), (words, str(e))
        checks += 1
    else:
        raise AssertionError(f"expected {error.__name__} mentioning {words!r}")
with cr.no_grad():  # allowed under no_grad
    p = cr.ones(2, requires_grad=True)
    dist.all_reduce(p)
assert p.tolist() == [float(world)] * 2

dist.barrier()
assert dist.barrier(async_op=True).wait()
dist.destroy_process_group()
assert not dist.is_initialized()
if rank == 0:
    print(f"collectives: {checks} checks passed on {world} processes")
