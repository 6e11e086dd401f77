"""Memory: training keeps the resident set flat, graphs and their saved arrays are freed by
reference counting alone (gc disabled), backward frees saved arrays unless retain_graph, and
memory shared with NumPy stays valid while either side holds it.

RSS is read from /proc/self/statm. Big buffers (64 MiB) are served by mmap and returned to the
system by free(), so a release shows up in RSS at once; that makes "RSS drops by ~64 MiB"
a precise statement about when chainrule lets go of a buffer.
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path

import chainrule as cr
import numpy as np
import pytest

PYTHON_DIR = str(Path(cr.__file__).resolve().parents[1])
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1 << 20
BIG = 16 * MB  # float32 elements: a 64 MiB buffer

pytestmark = pytest.mark.skipif(not Path("/proc/self/statm").exists(),
                                reason="needs /proc/self/statm (Linux)")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def run_python(code: str, timeout: float = 300) -> dict:
    """Runs `code` in a fresh interpreter importing this chainrule; returns the JSON it prints
    on its last line."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False,
                          capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ XOR training: RSS stays flat
XOR_SCRIPT = """
import gc, json, os, sys, time
import chainrule as cr

PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE

steps, warmup = {steps}, {warmup}
cr.manual_seed(0)
X = cr.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y = cr.tensor([[0.0], [1.0], [1.0], [0.0]])
W1 = cr.randn(2, 2, requires_grad=True); b1 = cr.randn(2, requires_grad=True)
W2 = cr.randn(2, 1, requires_grad=True); b2 = cr.randn(1, requires_grad=True)
optimizer = cr.optim.SGD([W1, b1, W2, b2], lr=0.1)
start = time.perf_counter()
first_cost = None
for step in range(steps):
    if step == warmup:
        gc.collect()
        rss_after_warmup, objects_after_warmup = rss(), len(gc.get_objects())
    optimizer.zero_grad()
    layer1 = cr.sigmoid(X @ W1 + b1)
    hypothesis = cr.sigmoid(layer1 @ W2 + b2)
    cost = -cr.mean(Y * cr.log(hypothesis) + (1 - Y) * cr.log(1 - hypothesis))
    cost.backward()
    optimizer.step()
    if first_cost is None:
        first_cost = cost.item()
seconds = time.perf_counter() - start
del layer1, hypothesis, cost
gc.collect()
print(json.dumps({{"growth": rss() - rss_after_warmup, "rss": rss(),
                  "objects": len(gc.get_objects()) - objects_after_warmup,
                  "seconds": seconds, "first_cost": first_cost,
                  "cost": float(-cr.mean(Y * cr.log(cr.sigmoid(cr.sigmoid(X @ W1 + b1) @ W2 + b2))
                                 + (1 - Y) * cr.log(1 - cr.sigmoid(cr.sigmoid(X @ W1 + b1) @ W2
                                                                   + b2))).item())}}))
"""


def _xor_run(steps: int, warmup: int = 5_000) -> dict:
    result = run_python(XOR_SCRIPT.format(steps=steps, warmup=warmup), timeout=600)
    print(f"\nXOR {steps} steps: {result['seconds']:.1f} s, RSS growth after warm-up "
          f"{result['growth'] / MB:.3f} MiB, gc-tracked objects {result['objects']:+d}")
    return result


def _check_xor(result: dict) -> None:
    assert result["growth"] < 5 * MB, f"RSS grew by {result['growth'] / MB:.2f} MiB"
    # every step's graph (nodes, tensors, hooks) is gone: no Python objects pile up either
    assert result["objects"] < 200, f"{result['objects']} more gc-tracked objects"
    # and the training did train (the steps ran the real thing)
    assert result["cost"] < 0.2 < result["first_cost"], result


def test_xor_training_rss_flat_100k_steps():
    """The issue's 100,000 steps: RSS flat after a warm-up of 5,000. About 12 s on the dev
    machine (20 s with a busy neighbour), under the ~20 s line for `slow`, so it always runs."""
    _check_xor(_xor_run(100_000))


# ------------------------------------------------------------------ graphs freed by refcount
@pytest.fixture
def gc_disabled():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_graph_and_saved_arrays_freed_on_last_reference(gc_disabled):
    """With gc off, dropping the last reference to the output frees every node and the big
    intermediate the graph saved (exp saves its 64 MiB output)."""
    x = cr.tensor([0.5], requires_grad=True)
    c = cr.rand(BIG)
    base = rss()
    h = (c * x).exp()      # ExpBackward saves h (64 MiB)
    out = h.sum()
    grown = rss() - base
    assert grown > 56 * MB, f"building the graph only grew RSS by {grown / MB:.1f} MiB"
    refs = [weakref.ref(out), weakref.ref(out.grad_fn), weakref.ref(h), weakref.ref(h.grad_fn)]
    del h
    held = rss() - base
    assert held > 56 * MB, "the graph should still hold exp's saved output"
    assert refs[2]() is None and refs[3]() is not None  # the Tensor is gone, its node is not
    del out
    assert all(r() is None for r in refs), [r() for r in refs]
    released = rss() - base
    assert released < 8 * MB, f"{released / MB:.1f} MiB still held after the graph was dropped"
    assert gc.collect() == 0
    del c


def test_dropping_a_big_intermediate_releases_its_memory(gc_disabled):
    a = cr.ones(BIG)
    base = rss()
    b = a * 2.0
    assert rss() - base > 56 * MB
    assert float(b[12345]) == 2.0
    del b
    assert rss() - base < 8 * MB


def test_backward_frees_saved_arrays_while_output_is_alive(gc_disabled):
    """After backward (no retain_graph) the 64 MiB saved by exp is released although `out`,
    and so its grad_fn, is still referenced; with retain_graph=True it is kept."""
    x = cr.tensor([0.5], requires_grad=True)
    c = cr.rand(BIG)
    base = rss()
    h = (c * x).exp()
    out = h.sum()
    del h
    assert rss() - base > 56 * MB

    out.backward(retain_graph=True)
    after_retained = rss() - base
    assert after_retained > 56 * MB, "retain_graph=True must keep the saved arrays"
    first = x.grad.item()
    expected = float(np.sum(c.numpy().astype(np.float64) * np.exp(0.5 * c.numpy())))
    assert first == pytest.approx(expected, rel=1e-4)

    out.backward()
    after = rss() - base
    assert out.grad_fn is not None   # the graph's nodes are still there ...
    assert after < 8 * MB, f"... but {after / MB:.1f} MiB of saved arrays were not freed"
    assert x.grad.item() == pytest.approx(2 * expected, rel=1e-4)
    with pytest.raises(RuntimeError):
        out.backward()               # and a third pass finds them gone
    del out, c, x
    assert gc.collect() == 0


def test_many_graphs_with_gc_disabled_keep_rss_flat(gc_disabled):
    """Two thousand forward/backward passes on (64, 64) tensors, gc off: nothing accumulates
    (each pass allocates ~150 KiB of intermediates, so a leak would show as ~300 MiB)."""
    w = cr.randn(64, 64, requires_grad=True)
    x = cr.randn(64, 64)

    def one_pass():
        loss = ((x @ w).tanh() * (x @ w).sigmoid()).mean()
        loss.backward()
        w.grad = None

    for _ in range(100):
        one_pass()
    base = rss()
    for _ in range(2000):
        one_pass()
    growth = rss() - base
    assert growth < 5 * MB, f"RSS grew by {growth / MB:.2f} MiB over 2000 passes"
    assert gc.collect() == 0


def test_nn_training_steps_create_no_reference_cycles(gc_disabled):
    """Modules, losses, Adam, dropout, state_dict and the DataLoader: a training step leaves
    nothing that only the cycle collector could free."""
    import chainrule.nn.functional as F
    from chainrule.utils.data import DataLoader, TensorDataset

    cr.manual_seed(0)
    model = cr.nn.Sequential(cr.nn.Linear(8, 32), cr.nn.ReLU(), cr.nn.Dropout(0.1),
                             cr.nn.Linear(32, 4))
    optimizer = cr.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = cr.nn.CrossEntropyLoss()
    x, y = cr.randn(64, 8), cr.randint(0, 4, (64,))
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    gc.collect()
    first = None
    for _ in range(20):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
        optimizer.zero_grad()
        extra = F.binary_cross_entropy_with_logits(model(x)[:, 0], (y > 1).float())
        extra.backward()
        optimizer.step()
        model.state_dict()
        first = loss.item() if first is None else first
    assert gc.collect() == 0
    with cr.no_grad():
        model.eval()
        assert loss_fn(model(x), y).item() < first


# ------------------------------------------------------------------ memory shared with NumPy
def test_from_numpy_keeps_the_array_alive(gc_disabled):
    a = np.arange(1000, dtype=np.float64)
    ref = weakref.ref(a)
    t = cr.from_numpy(a)
    a[3] = -7.0                      # shared, not copied
    assert t[3].item() == -7.0
    del a
    assert ref() is not None, "the tensor must keep the ndarray (its memory) alive"
    np.testing.assert_array_equal((t * 2.0).numpy()[:4], [0.0, 2.0, 4.0, -14.0])
    del t
    assert ref() is None, "the ndarray must be released with the last tensor using it"


def test_numpy_of_a_tensor_outlives_the_tensor(gc_disabled):
    t = cr.full((BIG,), 3.0)
    base_with_t = rss()
    tref = weakref.ref(t)
    arr = t.numpy()
    t.add_(1.0)
    assert arr[0] == 4.0             # shared, not copied
    del t
    assert tref() is None
    assert arr[BIG - 1] == 4.0 and arr.sum(dtype=np.float64) == 4.0 * BIG
    assert abs(rss() - base_with_t) < 8 * MB   # the storage is still there, once
    del arr
    assert base_with_t - rss() > 56 * MB, "the storage must be freed with the last ndarray"


SHARING_LOOP = """
import json
import numpy as np
import chainrule as cr

bad = 0
for i in range(300):
    n = 1000 + 37 * i                       # big ones (>128 KiB) are mmapped: a use after
    a = np.full(n * (16 if i % 10 == 0 else 1), float(i), dtype=np.float32)  # free faults
    t = cr.from_numpy(a)
    del a
    junk = np.full(t.shape[0], -1.0, dtype=np.float32)   # would reuse freed memory
    bad += int(not np.all((t + 1.0).numpy() == i + 1.0)) + int(abs(t.sum().item() - i * t.shape[0]) > 1e-5 * i * t.shape[0])

    u = cr.full((n * (16 if i % 10 == 5 else 1),), float(i)) * 2.0
    arr = u.numpy()
    del u
    junk = cr.full((arr.shape[0],), -1.0)
    bad += int(not np.all(arr == 2.0 * i))
    del junk

    view = cr.from_numpy(np.arange(n, dtype=np.float64))[10:20].numpy()
    junk = np.full(n, -1.0)
    bad += int(not np.array_equal(view, np.arange(10, 20, dtype=np.float64)))
print(json.dumps({"bad": bad}))
"""


def test_memory_shared_with_numpy_stays_valid_in_loops():
    """from_numpy then del the array; numpy() then del the tensor; 300 rounds, fresh memory
    allocated in between to overwrite anything freed too early. Run in a subprocess: a use after
    free may crash."""
    assert run_python(SHARING_LOOP, timeout=120) == {"bad": 0}


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i8"])
def test_from_numpy_of_non_native_byte_order_never_reinterprets_bytes(dtype):
    a = np.arange(4).astype(dtype)
    with pytest.raises(ValueError, match="byte order"):  # as PyTorch: refuse, never reinterpret
        cr.from_numpy(a)


def test_tensor_of_non_native_byte_order_copies_the_values():
    """cr.tensor (a copy) converts the byte order; the values survive."""
    for dtype in (">f4", ">f8", ">i8"):
        a = np.arange(4).astype(dtype)
        np.testing.assert_array_equal(cr.tensor(a).numpy(), [0, 1, 2, 3])


def test_failing_calls_leak_nothing():
    """Calls that raise (bad shapes, a freed graph, a changed saved tensor) free what they
    allocated: 2,000 rounds with 40 KiB operands (a leak would be ~80 MiB) leave RSS flat.
    (Operands stay below the size where kernels fork threads, so a busy machine cannot make
    this slow.)"""
    a = cr.ones(100, 100)
    b = cr.ones(3, 7)
    w = cr.ones(100, requires_grad=True)

    def second_backward():
        y = (a * w).sum()
        y.backward()
        y.backward()

    def changed_saved_tensor():
        x = cr.ones(100, 100)
        y = (w * x).sum()
        x.add_(1.0)
        y.backward()

    calls = [lambda: a + b, lambda: a @ b, lambda: cr.cat([a, b]), lambda: a.reshape(7, -1),
             lambda: cr.tensor([[1.0] * 1000, [2.0]]), second_backward, changed_saved_tensor]

    def round_():
        for call in calls:
            with pytest.raises((ValueError, RuntimeError)):
                call()

    for _ in range(100):
        round_()
    gc.collect()
    base = rss()
    for _ in range(2000):
        round_()
    gc.collect()
    growth = rss() - base
    assert growth < 5 * MB, f"RSS grew by {growth / MB:.2f} MiB over 2,000 rounds of failing calls"


def _address(t) -> int:
    return t.numpy().__array_interface__["data"][0]


def test_a_freed_buffer_serves_the_next_request_of_its_size_and_big_ones_go_back(gc_disabled):
    # A training step allocates the same sizes every iteration: a freed 1 MiB buffer is kept and
    # serves the next 1 MiB request (no fresh pages to fault in), whose contents are its own.
    a = cr.ones(1 << 18)
    where = _address(a)
    del a
    b = cr.zeros(1 << 18)
    assert _address(b) == where and not b.numpy().any()
    del b
    c = cr.ones(4, 1 << 16)  # the same byte count in another shape
    assert _address(c) == where and c.numpy().all()
    del c
    # 64 MiB is past what is kept: its memory goes back to the system at once
    base = rss()
    big = cr.ones(1 << 24)
    assert rss() - base > 56 * MB
    del big
    assert rss() - base < 8 * MB
