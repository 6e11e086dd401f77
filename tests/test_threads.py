"""Threads: Python threads running ops and backward at once get one thread's results, long
kernels release the GIL, set_num_threads takes effect, grad mode is per thread, and chainrule
shares a process with PyTorch and NumPy (their OpenMP runtimes) in either import order.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import chainrule as cr
import numpy as np
import pytest
from chainrule import nn

PYTHON_DIR = str(Path(cr.__file__).resolve().parents[1])
N_THREADS = 4


@pytest.fixture
def restore_num_threads():
    before = cr.get_num_threads()
    yield
    cr.set_num_threads(before)


def run_in_threads(fn, args_per_thread, timeout=120):
    """Runs fn(*args) in one thread per entry, all released at once by a barrier; returns
    their results in order and re-raises the first exception."""
    barrier = threading.Barrier(len(args_per_thread))
    results = [None] * len(args_per_thread)
    errors = []

    def target(i, args):
        try:
            barrier.wait()
            results[i] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i, a)) for i, a in enumerate(args_per_thread)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


# ------------------------------------------------------------------ concurrent training
def _make_mlp(seed):
    cr.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 1))


def _train_mlp(state, x, y, steps=300):
    """Trains a fresh MLP from `state` with SGD + momentum; returns losses and final weights."""
    model = _make_mlp(0)
    model.load_state_dict({k: v.clone() for k, v in state.items()})
    optimizer = cr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.MSELoss()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_four_threads_training_mlps_match_one_thread():
    rng = np.random.default_rng(1)
    jobs = []
    for i in range(N_THREADS):
        state = {k: v.clone() for k, v in _make_mlp(100 + i).state_dict().items()}
        x = cr.tensor(rng.standard_normal((32, 4)).astype(np.float32))
        y = cr.tensor(rng.standard_normal((32, 1)).astype(np.float32))
        jobs.append((state, x, y))
    sequential = [_train_mlp(*job) for job in jobs]
    concurrent = run_in_threads(_train_mlp, jobs)
    for i, ((loss_s, w_s), (loss_c, w_c)) in enumerate(zip(sequential, concurrent)):
        assert loss_c == loss_s, f"thread {i}: loss history differs"
        for name in w_s:
            np.testing.assert_array_equal(w_c[name], w_s[name], err_msg=f"thread {i}: {name}")
        assert loss_s[-1] < 0.5 * loss_s[0]  # it trained: the comparison is not vacuous
    # the four jobs differ from each other, so a mix-up between threads would show
    assert len({round(c[0][-1], 6) for c in concurrent}) == N_THREADS


def _matmul_sigmoid_loop(x, w, iterations=300):
    """Repeated forward/backward on this thread's own tensors, with a plain update."""
    w = w.detach().clone().requires_grad_()
    sums = []
    for _ in range(iterations):
        out = (x @ w).sigmoid().sum()
        out.backward()
        with cr.no_grad():
            w -= 0.001 * w.grad
        w.grad = None
        sums.append(out.item())
    return sums, w.detach().numpy().copy()


@pytest.mark.parametrize("size", [8, 192], ids=["small", "threaded-kernels"])
def test_four_threads_matmul_sigmoid_backward_match_one_thread(size):
    rng = np.random.default_rng(2)
    jobs = [(cr.tensor(rng.standard_normal((size, size)).astype(np.float32)),
             cr.tensor(rng.standard_normal((size, size)).astype(np.float32) * 0.1))
            for _ in range(N_THREADS)]
    iterations = 300 if size == 8 else 20
    sequential = [_matmul_sigmoid_loop(x, w, iterations) for x, w in jobs]
    concurrent = run_in_threads(_matmul_sigmoid_loop, [(x, w, iterations) for x, w in jobs])
    for i, ((s_seq, w_seq), (s_con, w_con)) in enumerate(zip(sequential, concurrent)):
        assert s_con == s_seq, f"thread {i}"
        np.testing.assert_array_equal(w_con, w_seq)
        assert s_seq[-1] != s_seq[0]


def test_concurrent_big_matmuls_are_correct():
    """Two threads each running OpenMP-parallel matmuls at once (two teams) get the right
    numbers."""
    rng = np.random.default_rng(3)
    pairs = [(rng.standard_normal((700, 500)).astype(np.float32),
              rng.standard_normal((500, 600)).astype(np.float32)) for _ in range(2)]

    def work(a, b):
        ta, tb = cr.tensor(a), cr.tensor(b)
        return [(ta @ tb).numpy() for _ in range(5)]

    results = run_in_threads(work, pairs)
    for (a, b), outs in zip(pairs, results):
        expected = a.astype(np.float64) @ b.astype(np.float64)
        for out in outs:
            np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("fn", ["randn", "rand"])
def test_generator_hands_each_call_a_whole_segment_across_threads(fn):
    """Four threads drawing from the one generator at once: every call gets a contiguous piece
    of the seeded stream (the same 40 chunks as one thread draws, in some order), none torn or
    repeated."""
    import hashlib

    def digest(t):
        return hashlib.sha1(t.numpy().tobytes()).hexdigest()

    draw = getattr(cr, fn)
    cr.manual_seed(123)
    sequential = [digest(draw(500_000)) for _ in range(N_THREADS * 10)]
    cr.manual_seed(123)
    concurrent = run_in_threads(lambda: [digest(draw(500_000)) for _ in range(10)],
                                [()] * N_THREADS)
    chunks = [c for per_thread in concurrent for c in per_thread]
    assert len(set(sequential)) == len(sequential)
    assert sorted(chunks) == sorted(sequential)


# ------------------------------------------------------------------ grad mode is per thread
def test_no_grad_in_one_thread_does_not_leak_into_another():
    stop = threading.Event()

    def toggler():
        while not stop.is_set():
            with cr.no_grad():
                time.sleep(0)

    thread = threading.Thread(target=toggler)
    thread.start()
    try:
        w = cr.ones(3, requires_grad=True)
        for _ in range(3000):
            y = w * 2.0
            assert y.requires_grad and y.grad_fn is not None
            assert cr.is_grad_enabled()
    finally:
        stop.set()
        thread.join()


def test_thread_started_inside_no_grad_records_graphs():
    """Grad mode is thread-local and starts enabled in a new thread, as in PyTorch."""
    seen = []

    def child():
        w = cr.ones(2, requires_grad=True)
        seen.append((cr.is_grad_enabled(), (w * 3.0).requires_grad))

    with cr.no_grad():
        t = threading.Thread(target=child)
        t.start()
        t.join()
        assert not cr.is_grad_enabled()
    assert seen == [(True, True)]


def test_enable_grad_decorator_inside_no_grad():
    @cr.enable_grad()
    def double(w):
        return w * 2.0

    w = cr.ones(2, requires_grad=True)
    with cr.no_grad():
        y = double(w)
    assert y.requires_grad


# ------------------------------------------------------------------ the GIL
def _counts_during(kernel):
    """Runs kernel() in this thread while a pure-Python thread counts; returns (increments
    during the call, call seconds, increments per second of the counter on its own)."""
    state = {"count": 0, "stop": False}

    def count():
        while not state["stop"]:
            state["count"] += 1

    thread = threading.Thread(target=count)
    thread.start()
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)  # a GIL held in C would leak at most ~1 ms of counting
    try:
        time.sleep(0.05)
        c0, t0 = state["count"], time.perf_counter()
        time.sleep(0.2)  # the counter alone, for its rate on this machine right now
        rate = (state["count"] - c0) / (time.perf_counter() - t0)
        c0, t0 = state["count"], time.perf_counter()
        kernel()
        during, seconds = state["count"] - c0, time.perf_counter() - t0
    finally:
        state["stop"] = True
        thread.join()
        sys.setswitchinterval(old_interval)
    return during, seconds, rate


@pytest.fixture(scope="module")
def big_operands():
    cr.manual_seed(0)
    # exp and tanh run on float64: the vectorized float32 versions finish 40M elements in tens
    # of ms, too quick to tell; the GIL is released by the same binding for every dtype.
    return {"m": cr.rand(2500, 2500), "v": cr.rand(40_000_000),
            "v64": cr.rand(30_000_000, dtype=cr.float64)}


KERNELS = {
    "matmul": lambda o: o["m"] @ o["m"],
    "exp": lambda o: o["v64"].exp(),
    "tanh": lambda o: o["v64"].tanh(),
    "add": lambda o: o["v"] + o["v"],
    "amax": lambda o: o["v"].amax(),
}


def _gil_was_released(during, seconds, rate):
    """More than 10 ms of the counter's solo progress during the call, and more than a twentieth
    of the call. A call holding the GIL lets the counter run only around its edges (about one
    1 ms switch interval each)."""
    return during > max(0.010, 0.05 * seconds) * rate


def test_gil_detector_control():
    """The method can fail: a C call that holds the GIL (the re engine backtracking) reads as
    held."""
    during, seconds, rate = _counts_during(lambda: re.match(r"(a+)+b", "a" * 23))
    assert seconds > 0.1
    assert not _gil_was_released(during, seconds, rate), (during, seconds, rate)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_long_kernels_release_the_gil(name, big_operands, restore_num_threads):
    """A counting thread makes progress during one long C++ call (>= 50 ms)."""
    cr.set_num_threads(1)  # leave a core to the counter
    kernel = KERNELS[name]
    during, seconds, rate = _counts_during(lambda: kernel(big_operands))
    if seconds < 0.05:
        pytest.skip(f"{name} took only {seconds * 1e3:.0f} ms here: too short to tell")
    assert _gil_was_released(during, seconds, rate), (
        f"{name}: {during} increments during a {seconds:.2f} s call "
        f"(counter alone: {rate:.0f}/s): the call held the GIL")


def test_backward_of_a_big_matmul_lets_other_threads_run(big_operands, restore_num_threads):
    cr.set_num_threads(1)
    w = big_operands["m"].detach().clone().requires_grad_()
    m = big_operands["m"]
    loss = (m @ w).sum()

    during, seconds, rate = _counts_during(loss.backward)
    assert seconds > 0.05
    assert _gil_was_released(during, seconds, rate), (during, seconds, rate)


# ------------------------------------------------------------------ set_num_threads
def test_set_num_threads_takes_effect(restore_num_threads):
    for n in (1, 2, 3, 1):
        cr.set_num_threads(n)
        assert cr.get_num_threads() == n
    # process-wide, as in PyTorch: another thread sees the same setting
    seen = []
    cr.set_num_threads(1)
    t = threading.Thread(target=lambda: seen.append(cr.get_num_threads()))
    t.start()
    t.join()
    assert seen == [1]


@pytest.mark.parametrize("bad", [0, -1])
def test_set_num_threads_rejects_non_positive(bad, restore_num_threads):
    with pytest.raises(ValueError):
        cr.set_num_threads(bad)
    assert cr.get_num_threads() >= 1


def test_results_equal_with_one_two_and_three_threads(restore_num_threads):
    rng = np.random.default_rng(4)
    a = cr.tensor(rng.standard_normal((400, 300)).astype(np.float32))
    b = cr.tensor(rng.standard_normal((300, 500)).astype(np.float32))
    # Large enough that every kernel below splits over 2 threads (2^18 elements a thread)
    v = cr.tensor(rng.standard_normal(4_200_003).astype(np.float32))
    u = cr.tensor(rng.standard_normal(4_200_003).astype(np.float32))

    def compute():
        w = b.clone().requires_grad_()
        loss = (a @ w).tanh().sum()
        loss.backward()
        return {"matmul": (a @ b).numpy().copy(), "add": (v + u).numpy().copy(), "relu": v.relu().numpy().copy(),
                "add_": v.clone().add_(u).numpy().copy(),  # in place: a chunk run twice would add u twice
                "exp": v.exp().numpy().copy(), "sigmoid": v.sigmoid().numpy().copy(),
                "where": cr.where(v > u, v, u).numpy().copy(),
                "sum": v.sum().item(), "mean_dim": v[:4_200_000].reshape(2100, 2000).mean(1)
                .numpy().copy(), "amax": v.amax().item(), "argmax": v.argmax().item(),
                "grad": w.grad.numpy().copy()}

    cr.set_num_threads(1)
    one = compute()
    # 3 threads on this 2-core machine: a thread that gets its core late finds chunks of its
    # run taken by the others (parallel_chunks); every element must still be written once.
    for threads in (2, 3):
        cr.set_num_threads(threads)
        two = compute()
        for name in ("add", "add_", "relu", "exp", "sigmoid", "where", "amax", "argmax"):  # elementwise: exact
            np.testing.assert_array_equal(two[name], one[name], err_msg=f"{name}, {threads} threads")
        for name in ("matmul", "sum", "mean_dim", "grad"):  # reductions: round-off may differ
            np.testing.assert_allclose(two[name], one[name], rtol=1e-5, atol=1e-4, err_msg=name)
        expected = a.numpy().astype(np.float64) @ b.numpy().astype(np.float64)
        np.testing.assert_allclose(two["matmul"], expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(one["add"], v.numpy() + u.numpy())
    np.testing.assert_array_equal(one["add_"], one["add"])
    np.testing.assert_array_equal(one["relu"], np.maximum(v.numpy(), 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_column_reductions_split_by_rows_match_numpy(dtype, restore_num_threads):
    # From 4 blocks of 64 rows a thread, reductions along dim 0 split the rows over the team,
    # each thread into accumulators of its own, combined in order after; fewer rows split the
    # columns. 1000 and 1531 rows (an uneven split, a partial block) and 300 (columns) on 1-3
    # threads, against NumPy; amax/amin exact, NaN propagated from any thread's rows.
    rng = np.random.default_rng(11)
    for rows, cols in ((1000, 1000), (1531, 700), (300, 4000)):
        x = rng.standard_normal((rows, cols)) * 100
        x = x.astype(dtype)
        if dtype != np.int64:
            x[rows - 3, 5] = np.nan  # in the last thread's rows
            x[2, 7] = np.nan  # in the first thread's
        want_sum = x.astype(np.float64).sum(0) if dtype != np.int64 else x.sum(0)
        for threads in (1, 2, 3):
            cr.set_num_threads(threads)
            t = cr.tensor(x)
            got = t.sum(0).numpy()
            if dtype == np.int64:
                np.testing.assert_array_equal(got, want_sum, err_msg=f"{rows}x{cols}, {threads} threads")
            else:
                np.testing.assert_allclose(got, want_sum, rtol=1e-5, atol=1e-3, err_msg=f"{rows}x{cols}, {threads} threads")
                assert np.isnan(got[5]) and np.isnan(got[7])
            np.testing.assert_array_equal(t.amax(0).numpy(), x.max(0), err_msg=f"amax {rows}x{cols}, {threads} threads")
            np.testing.assert_array_equal(t.amin(0).numpy(), x.min(0), err_msg=f"amin {rows}x{cols}, {threads} threads")
            if dtype == np.float32:  # a strided view of the columns takes the same path
                np.testing.assert_allclose(t[:, ::2].sum(0).numpy(), x[:, ::2].astype(np.float64).sum(0),
                                           rtol=1e-5, atol=1e-3)


# ------------------------------------------------------------------ living with torch
IMPORT_SCRIPT = """
import {first}, {second}, numpy as np
import torch, chainrule as cr
rng = np.random.default_rng(0)
a = rng.standard_normal((512, 384)).astype(np.float32)
b = rng.standard_normal((384, 256)).astype(np.float32)
v = rng.standard_normal(3_000_000).astype(np.float32)
expected_mm = a.astype(np.float64) @ b.astype(np.float64)
expected_sum = v.astype(np.float64).sum()
for round_ in range(3):   # interleave the two libraries' thread pools
    c_mm = (cr.tensor(a) @ cr.tensor(b)).numpy()
    t_mm = (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
    c_sum = cr.tensor(v).sum().item()
    t_sum = torch.from_numpy(v).sum().item()
    np.testing.assert_allclose(c_mm, expected_mm, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(t_mm, expected_mm, rtol=1e-4, atol=1e-3)
    assert abs(c_sum - expected_sum) < 1e-6 * np.abs(v).sum(), (c_sum, expected_sum)
    assert abs(t_sum - expected_sum) < 1e-6 * np.abs(v).sum(), (t_sum, expected_sum)
x = cr.tensor(a[:4, :3], requires_grad=True)
(x.sigmoid() * 2.0).sum().backward()
tx = torch.tensor(a[:4, :3], requires_grad=True)
(tx.sigmoid() * 2.0).sum().backward()
np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)
print("ok", cr.get_num_threads(), torch.get_num_threads())
"""


@pytest.mark.parametrize("order", [("torch", "chainrule"), ("chainrule", "torch"),
                                   ("numpy", "chainrule")])
def test_torch_chainrule_numpy_in_one_process(order):
    pytest.importorskip("torch")
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    code = textwrap.dedent(IMPORT_SCRIPT.format(first=order[0], second=order[1]))
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True, env=env, timeout=180)
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stderr[-3000:]}"
    assert proc.stdout.startswith("ok")
