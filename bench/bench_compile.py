"""cr.compile against eager chainrule and JAX, from one run (issue 19's table).

    python bench/bench_compile.py [--repeats 7] [--quick]

Rows: the XOR training step (2-2-1 sigmoid, BCE, SGD lr 0.1) eager, compiled, jax.jit of the
whole step called from a Python loop, and JAX's lax.scan of the step inside one jit (per
step); training XOR for 10,001 steps in a fresh process, capture included, beside JAX's compile
time alone; an epoch of the digits MLP (64-128-10, batch 32, Adam, one thread) and of the wide
MLP (64-1024-1024-10, batch 256, two threads); the capture overhead (the recording call
over an eager step, the median of 30 x `--repeats` fresh captures); and what fusing elementwise
chains buys: the XOR step and an Adam step of a GELU/sigmoid MLP at batch 1024 replayed with
each elementwise op alone (`options={"fuse": False}`) and fused. Figures are medians of
`--repeats` timings; each JAX figure comes from a
fresh process with its thread count set (XLA reads it once). JAX is optional: without it the
JAX columns print as missing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_name  # noqa: E402

XOR_STEPS = 10001


def median_seconds(fn: Callable[[], Any], number: int, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


# ------------------------------------------------------------------ chainrule
def xor_step(compiled: bool, fuse: bool = True) -> Callable[[], Any]:
    import chainrule as cr

    cr.manual_seed(0)
    X = cr.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Y = cr.tensor([[0.0], [1.0], [1.0], [0.0]])
    params = [cr.randn(2, 2, requires_grad=True), cr.randn(2, requires_grad=True),
              cr.randn(2, 1, requires_grad=True), cr.randn(1, requires_grad=True)]
    W1, b1, W2, b2 = params
    opt = cr.optim.SGD(params, lr=0.1)

    def step() -> Any:
        opt.zero_grad()
        h = cr.sigmoid(cr.sigmoid(X @ W1 + b1) @ W2 + b2)
        cost = -cr.mean(Y * cr.log(h) + (1 - Y) * cr.log(1 - h))
        cost.backward()
        opt.step()
        return cost

    return cr.compile(step, options={"fuse": fuse}) if compiled else step


def elementwise_mlp_step(mode: str, batch: int = 1024) -> Callable[[], Any]:
    """One Adam step of a 64-256-256-10 MLP with GELU (tanh form) and sigmoid (many elementwise ops per
    GEMM) at batch 1024, float32: mode "eager", "unfused" (compiled, each op alone) or "fused"."""
    import chainrule as cr

    cr.manual_seed(0)
    model = cr.nn.Sequential(cr.nn.Linear(64, 256), cr.nn.GELU(approximate="tanh"), cr.nn.Linear(256, 256), cr.nn.Sigmoid(),
                             cr.nn.Linear(256, 10))
    opt = cr.optim.Adam(model.parameters(), lr=1e-3)
    x, y = mlp_data(batch)
    xb, yb = cr.tensor(x), cr.tensor(y)

    def step() -> Any:
        opt.zero_grad()
        loss = cr.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    return step if mode == "eager" else cr.compile(step, options={"fuse": mode == "fused"})


def mlp_data(rows: int, features: int = 64, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((rows, features)).astype(np.float32),
            rng.integers(0, classes, rows).astype(np.int64))


def chainrule_epoch(sizes: list[int], batch: int, rows: int, compiled: bool) -> Callable[[], None]:
    import chainrule as cr

    cr.manual_seed(0)
    layers: list[Any] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [cr.nn.Linear(fan_in, fan_out)] + ([cr.nn.ReLU()] if i < len(sizes) - 2 else [])
    model = cr.nn.Sequential(*layers)
    opt = cr.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = cr.nn.CrossEntropyLoss()
    x, y = mlp_data(rows, sizes[0], sizes[-1])
    loader = cr.utils.data.DataLoader(cr.utils.data.TensorDataset(cr.tensor(x), cr.tensor(y)),
                                      batch_size=batch, shuffle=True)

    def step(xb: Any, yb: Any) -> Any:
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    train = cr.compile(step) if compiled else step

    def epoch() -> None:
        for xb, yb in loader:
            train(xb, yb)
    return epoch


def xor_fresh_process(repeats: int) -> float:
    """Seconds to train XOR for 10,001 compiled steps in a new process (after the import),
    capture included: the median of `repeats` processes."""
    here = str(Path(__file__).resolve().parent)
    code = (f"import sys, time; sys.path.insert(0, {here!r}); import bench_compile as b; "
            f"step = b.xor_step(True); t = time.perf_counter()\n"
            f"for _ in range({XOR_STEPS}): step()\n"
            f"print(time.perf_counter() - t)")
    return statistics.median(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                  check=True).stdout) for _ in range(repeats))


# ------------------------------------------------------------------ JAX (in its own process)
def jax_part(part: str, repeats: int) -> dict[str, float]:
    import jax
    import jax.numpy as jnp

    if part == "xor":
        x = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        y = jnp.array([[0.0], [1.0], [1.0], [0.0]])
        rng = np.random.default_rng(0)
        params = [jnp.array(rng.standard_normal(s).astype(np.float32)) for s in [(2, 2), (2,), (2, 1), (1,)]]

        def cost(p: list[Any]) -> Any:
            h = jax.nn.sigmoid(jax.nn.sigmoid(x @ p[0] + p[1]) @ p[2] + p[3])
            return -jnp.mean(y * jnp.log(h) + (1 - y) * jnp.log(1 - h))

        def step(p: list[Any]) -> tuple[list[Any], Any]:
            c, g = jax.value_and_grad(cost)(p)
            return [w - 0.1 * d for w, d in zip(p, g)], c

        start = time.perf_counter()
        compiled = jax.jit(step).lower(params).compile()
        compile_seconds = time.perf_counter() - start
        state = {"p": params}

        def one() -> None:
            state["p"], _ = compiled(state["p"])
        one()
        jax.block_until_ready(state["p"])
        per_step = median_seconds(lambda: jax.block_until_ready(compiled(state["p"])[1]), 2000, repeats)

        scan_steps = 2000

        @jax.jit
        def loop(p: list[Any]) -> Any:
            return jax.lax.scan(lambda q, _: step(q), p, None, length=scan_steps)

        jax.block_until_ready(loop(params))
        scan = median_seconds(lambda: jax.block_until_ready(loop(params)), 1, repeats) / scan_steps
        return {"jit_step": per_step, "scan_step": scan, "compile": compile_seconds}

    sizes, batch, rows = json.loads(part)
    x, labels = mlp_data(rows, sizes[0], sizes[-1])
    rng = np.random.default_rng(0)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / np.sqrt(fan_in)
        params += [jnp.array(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)),
                   jnp.array(rng.uniform(-bound, bound, fan_out).astype(np.float32))]

    def loss(p: list[Any], xb: Any, yb: Any) -> Any:
        h = xb
        for i in range(0, len(p), 2):
            h = h @ p[i] + p[i + 1]
            if i + 2 < len(p):
                h = jax.nn.relu(h)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(h), yb[:, None], axis=1))

    @jax.jit
    def step(p: list[Any], m: list[Any], v: list[Any], t: Any, xb: Any, yb: Any) -> Any:
        g = jax.grad(loss)(p, xb, yb)
        t = t + 1
        m = [0.9 * a + 0.1 * d for a, d in zip(m, g)]
        v = [0.999 * a + 0.001 * d * d for a, d in zip(v, g)]
        step_size = 1e-3 / (1 - 0.9 ** t)
        root = jnp.sqrt(1 - 0.999 ** t)
        p = [w - step_size * a / (jnp.sqrt(b) / root + 1e-8) for w, a, b in zip(p, m, v)]
        return p, m, v, t

    state = {"p": params, "m": [jnp.zeros_like(w) for w in params], "v": [jnp.zeros_like(w) for w in params],
             "t": jnp.array(0.0)}
    order = np.random.default_rng(1)

    def epoch() -> None:
        rows_order = order.permutation(rows)
        for start in range(0, rows, batch):
            take = rows_order[start:start + batch]
            state["p"], state["m"], state["v"], state["t"] = step(state["p"], state["m"], state["v"], state["t"],
                                                                  x[take], labels[take])
        jax.block_until_ready(state["p"])
    epoch()  # compiles for both batch shapes
    return {"epoch": median_seconds(epoch, 1, repeats)}


def run_jax(part: str, threads: int, repeats: int) -> dict[str, float] | None:
    env = dict(os.environ)
    flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" if threads == 1 else ""
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
    env["JAX_PLATFORMS"] = "cpu"
    # XLA's CPU runtime no longer keeps to one thread for these flags (it ran the wide MLP on both
    # cores: 60 ms an epoch, 110 ms pinned): a one-thread run is pinned to one core as well.
    one_core = (lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) if threads == 1 else None
    proc = subprocess.run([sys.executable, __file__, "--jax-part", part, "--repeats", str(repeats)],
                          capture_output=True, text=True, env=env, check=False, preexec_fn=one_core)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ the table
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and fresh processes")
    parser.add_argument("--jax-part", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.jax_part:
        print(json.dumps(jax_part(args.jax_part, args.repeats)))
        return
    repeats = 3 if args.quick else args.repeats

    import chainrule as cr

    try:
        import jax
        jax_version = jax.__version__
        del jax
    except ImportError:
        jax_version = None
    print(f"cr.compile benchmark: chainrule {cr.__version__}, JAX {jax_version or 'not installed (pip install jax)'}")
    print(f"CPU: {cpu_name()}; chainrule's kernels: {cr._core.active_isa()}; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("Medians; a shared machine's load moves every figure, the ratios within a row less.\n")

    def fmt(seconds: float | None, unit: float, suffix: str) -> str:
        return "n/a" if seconds is None else f"{seconds * unit:9.2f} {suffix}"

    cr.set_num_threads(1)
    eager = median_seconds(xor_step(False), 2000, repeats)
    compiled_step = xor_step(True)
    unfused_step = xor_step(True, fuse=False)
    compiled = median_seconds(compiled_step, 2000, repeats)
    unfused = median_seconds(unfused_step, 2000, repeats)
    # Fresh captures (each records its own program), each with eager steps timed beside it (the
    # first one untimed: the capture has just pushed the eager step's data out of the caches):
    # the ratio of the two medians holds up under a shared machine's changing load.
    first, beside = [], []
    warm = xor_step(False)
    warm()
    for _ in range(30 * repeats):
        fresh = xor_step(True)
        start = time.perf_counter()
        fresh()
        first.append(time.perf_counter() - start)
        warm()
        start = time.perf_counter()
        for _ in range(4):
            warm()
        beside.append((time.perf_counter() - start) / 4)
    capture, eager_beside = statistics.median(first), statistics.median(beside)
    jax_xor = run_jax("xor", 1, repeats) if jax_version else None
    print("XOR training step (2-2-1, BCE, SGD), one thread      us per step")
    print(f"  chainrule eager                                  {fmt(eager, 1e6, 'us')}")
    print(f"  chainrule cr.compile                             {fmt(compiled, 1e6, 'us')}  "
          f"({eager / compiled:.1f}x eager)")
    print(f"    the same, each elementwise op alone (no fusion)  {fmt(unfused, 1e6, 'us')}")
    if jax_xor:
        print(f"  JAX jax.jit of the step, Python loop             {fmt(jax_xor['jit_step'], 1e6, 'us')}  "
              f"(compiled is {jax_xor['jit_step'] / compiled:.1f}x faster)")
        print(f"  JAX lax.scan of 2,000 steps in one jit, per step {fmt(jax_xor['scan_step'], 1e6, 'us')}")
    print(f"  capture (the recording call), median of {len(first)}  {fmt(capture, 1e6, 'us')}  "
          f"({capture / eager_beside:.2f}x an eager step timed beside it, {eager_beside * 1e6:.2f} us)")

    print("\nGELU/sigmoid MLP step (64-256-256-10, b1024, Adam), one thread     ms per step")
    timings = {mode: median_seconds(elementwise_mlp_step(mode), 5, repeats) for mode in ("eager", "unfused", "fused")}
    print(f"  chainrule eager                                  {fmt(timings['eager'], 1e3, 'ms')}")
    print(f"  chainrule cr.compile, each elementwise op alone  {fmt(timings['unfused'], 1e3, 'ms')}")
    print(f"  chainrule cr.compile, fused chains               {fmt(timings['fused'], 1e3, 'ms')}  "
          f"({timings['unfused'] / timings['fused']:.2f}x unfused, {timings['eager'] / timings['fused']:.2f}x eager)")

    fresh_train = xor_fresh_process(repeats)
    print(f"\nXOR, {XOR_STEPS} steps from a fresh process (capture included): {fresh_train:.3f} s", end="")
    if jax_xor:
        print(f"; JAX's compile of the step alone: {jax_xor['compile']:.3f} s "
              f"({jax_xor['compile'] / fresh_train:.1f}x the whole chainrule run)")
    else:
        print()

    for name, sizes, batch, rows, threads in (("digits MLP epoch (64-128-10, b32, Adam)", [64, 128, 10], 32, 1437, 1),
                                              ("wide MLP epoch (64-1024-1024-10, b256, Adam)",
                                               [64, 1024, 1024, 10], 256, 2048, 2)):
        cr.set_num_threads(threads)
        e = median_seconds(chainrule_epoch(sizes, batch, rows, False), 1, repeats)
        c = median_seconds(chainrule_epoch(sizes, batch, rows, True), 1, repeats)
        j = run_jax(json.dumps([sizes, batch, rows]), threads, repeats) if jax_version else None
        print(f"\n{name}, {threads} thread{'s' if threads > 1 else ''}, {rows} rows     ms per epoch")
        print(f"  chainrule eager                                  {fmt(e, 1e3, 'ms')}")
        print(f"  chainrule cr.compile                             {fmt(c, 1e3, 'ms')}  ({e / c:.2f}x eager)")
        if j:
            print(f"  JAX jax.jit of the step                          {fmt(j['epoch'], 1e3, 'ms')}  "
                  f"(compiled is {j['epoch'] / c:.2f}x JAX)")


if __name__ == "__main__":
    main()
