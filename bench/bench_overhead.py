"""Small-model speed: where per-op overhead, not arithmetic, decides (issue 6).

Prints chainrule beside PyTorch (when installed) and hand-written NumPy, with ratios, and
writes JSON. Run: python bench/bench_overhead.py [--quick] [--json results.json]
Each figure is the median of several repeats (machines here are shared and noisy).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_reference import MlpNumpy, XorNumpy  # noqa: E402

import chainrule as cr  # noqa: E402

try:
    import torch
except ImportError:  # the peers are optional; chainrule's figures print regardless
    torch = None


def per_call(fn: Callable[[], Any], number: int, repeats: int = 7) -> float:
    """Median seconds per call over `repeats` timings of `number` calls."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


# ------------------------------------------------------------------ XOR training step
# One code path for both libraries: chainrule spells its API as PyTorch does.
def xor_setup(lib: Any) -> tuple[Any, Any, list[Any], Any]:
    """The lecture's data, parameters (standard normal) and plain gradient descent."""
    lib.manual_seed(0)
    x = lib.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = lib.tensor([[0.0], [1.0], [1.0], [0.0]])
    params = [lib.randn(2, 2, requires_grad=True), lib.randn(2, requires_grad=True),
              lib.randn(2, 1, requires_grad=True), lib.randn(1, requires_grad=True)]
    return x, y, params, lib.optim.SGD(params, lr=0.1)


def xor_cost(lib: Any, x: Any, y: Any, params: list[Any]) -> Any:
    w1, b1, w2, b2 = params
    h = lib.sigmoid(lib.sigmoid(x @ w1 + b1) @ w2 + b2)
    return -lib.mean(y * lib.log(h) + (1 - y) * lib.log(1 - h))


def xor_step(lib: Any) -> Callable[[], Any]:
    x, y, params, opt = xor_setup(lib)

    def step() -> None:
        opt.zero_grad()
        xor_cost(lib, x, y, params).backward()
        opt.step()
    return step


# ------------------------------------------------------------------ 10-op chain on 2x2
def chain(lib: Any) -> Callable[[], Any]:
    a = lib.ones(2, 2, requires_grad=True)
    b = lib.ones(2, 2, requires_grad=True)

    def run() -> None:
        y = a * b
        y = y + a
        y = y.sigmoid()
        y = y * 2.0
        y = y - b
        y = y.tanh()
        y = y * y
        y = y + 1.0
        y = y.exp()
        y = y.sum()
        y.backward()
    return run


# ------------------------------------------------------------------ one a + b
def add_pair(lib: Any) -> Callable[[], Any]:
    a = lib.ones(2, 2, requires_grad=True)
    b = lib.ones(2, 2, requires_grad=True)
    return lambda: a + b


# ------------------------------------------------------------------ MLP epochs
def digits_data(n_rows: int = 1437) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n_rows, 64)).astype(np.float32),
            rng.integers(0, 10, n_rows).astype(np.int64))


def epoch(lib: Any, sizes: list[int], batch: int, x: np.ndarray, labels: np.ndarray) -> Callable[[], Any]:
    """One epoch of an MLP with Adam and cross-entropy, in chainrule or PyTorch alike."""
    lib.manual_seed(0)
    layers: list[Any] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(lib.nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(lib.nn.ReLU())
    model = lib.nn.Sequential(*layers)
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = lib.nn.CrossEntropyLoss()
    data = lib.utils.data.TensorDataset(lib.tensor(x), lib.tensor(labels))
    loader = lib.utils.data.DataLoader(data, batch_size=batch, shuffle=True)

    def run() -> None:
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    return run


def epoch_numpy(sizes: list[int], batch: int, x: np.ndarray, labels: np.ndarray) -> Callable[[], Any]:
    model = MlpNumpy(sizes)
    rng = np.random.default_rng(0)

    def epoch() -> None:
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            rows = order[start:start + batch]
            model.step(x[rows], labels[rows])
    return epoch


# ------------------------------------------------------------------ import cost
def import_cost(module: str) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of `import module` in a fresh interpreter (median of 3)."""
    # VmHWM, not ru_maxrss: the latter survives exec, so a child would report its parent's peak.
    code = ("import time; t = time.perf_counter(); import {m}; s = time.perf_counter() - t; "
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
            "print(s, int(hwm.split()[1]) / 1024)")
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code.format(m=module)], capture_output=True,
                             text=True, check=True).stdout.split()
        runs.append((float(out[0]), float(out[1])))
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    results: dict[str, dict[str, float]] = {}

    def record(name: str, unit: str, figures: dict[str, float]) -> None:
        results[name] = figures
        ours = figures["chainrule"]
        peers = "  ".join(f"{k} {v * (1e6 if unit == 'us' else 1e3):9.2f} {unit} ({v / ours:5.2f}x)"
                          for k, v in figures.items() if k != "chainrule")
        shown = ours * 1e6 if unit == "us" else ours * 1e3
        print(f"{name:40s} chainrule {shown:9.2f} {unit}   {peers}")

    cr.set_num_threads(1)
    if torch is not None:
        torch.set_num_threads(1)
    print("ratios: peer time / chainrule time (above 1: chainrule is faster)\n")

    n = int(2000 * scale) or 50
    figures = {"chainrule": per_call(xor_step(cr), n)}
    xor_np = XorNumpy()
    figures["numpy (by hand)"] = per_call(xor_np.step, n)
    if torch is not None:
        figures["torch"] = per_call(xor_step(torch), n)
    record("XOR training step", "us", figures)

    figures = {"chainrule": per_call(chain(cr), n)}
    if torch is not None:
        figures["torch"] = per_call(chain(torch), n)
    record("10-op chain 2x2, fwd+bwd", "us", figures)

    an = np.ones((2, 2), np.float32)
    figures = {"chainrule": per_call(add_pair(cr), n * 20),
               "numpy": per_call(lambda: an + an, n * 20)}
    if torch is not None:
        figures["torch"] = per_call(add_pair(torch), n * 20)
    record("a + b, 2x2, requires grad", "us", figures)

    x, labels = digits_data()
    repeats = 5 if not args.quick else 3
    for name, sizes, batch, threads in (("digits MLP epoch (64-128-10, b32)", [64, 128, 10], 32, 1),
                                        ("wide MLP epoch (64-1024-1024-10, b256)", [64, 1024, 1024, 10], 256, 2)):
        cr.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        figures = {"chainrule": per_call(epoch(cr, sizes, batch, x, labels), 1, repeats),
                   "numpy (by hand)": per_call(epoch_numpy(sizes, batch, x, labels), 1, repeats)}
        if torch is not None:
            figures["torch"] = per_call(epoch(torch, sizes, batch, x, labels), 1, repeats)
        record(name, "ms", figures)

    ours_time, ours_rss = import_cost("chainrule")
    print(f"\nimport chainrule: {ours_time:.3f} s, {ours_rss:.0f} MB peak RSS", end="")
    results["import"] = {"chainrule_s": ours_time, "chainrule_mb": ours_rss}
    if torch is not None:
        torch_time, torch_rss = import_cost("torch")
        print(f"   (import torch: {torch_time:.3f} s, {torch_rss:.0f} MB)")
        results["import"].update(torch_s=torch_time, torch_mb=torch_rss)
    else:
        print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
