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
def xor_chainrule() -> Callable[[], Any]:
    cr.manual_seed(0)
    x = cr.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = cr.tensor([[0.0], [1.0], [1.0], [0.0]])
    w1, b1 = cr.randn(2, 2, requires_grad=True), cr.randn(2, requires_grad=True)
    w2, b2 = cr.randn(2, 1, requires_grad=True), cr.randn(1, requires_grad=True)
    opt = cr.optim.SGD([w1, b1, w2, b2], lr=0.1)

    def step() -> None:
        opt.zero_grad()
        h = cr.sigmoid(cr.sigmoid(x @ w1 + b1) @ w2 + b2)
        cost = -cr.mean(y * cr.log(h) + (1 - y) * cr.log(1 - h))
        cost.backward()
        opt.step()
    return step


def xor_torch() -> Callable[[], Any]:
    torch.manual_seed(0)
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    w1, b1 = torch.randn(2, 2, requires_grad=True), torch.randn(2, requires_grad=True)
    w2, b2 = torch.randn(2, 1, requires_grad=True), torch.randn(1, requires_grad=True)
    opt = torch.optim.SGD([w1, b1, w2, b2], lr=0.1)

    def step() -> None:
        opt.zero_grad()
        h = torch.sigmoid(torch.sigmoid(x @ w1 + b1) @ w2 + b2)
        cost = -torch.mean(y * torch.log(h) + (1 - y) * torch.log(1 - h))
        cost.backward()
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


def epoch_chainrule(sizes: list[int], batch: int, x: np.ndarray, labels: np.ndarray) -> Callable[[], Any]:
    cr.manual_seed(0)
    layers: list[Any] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(cr.nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(cr.nn.ReLU())
    model = cr.nn.Sequential(*layers)
    opt = cr.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = cr.nn.CrossEntropyLoss()
    loader = cr.utils.data.DataLoader(cr.utils.data.TensorDataset(cr.tensor(x), cr.tensor(labels)),
                                      batch_size=batch, shuffle=True)

    def epoch() -> None:
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    return epoch


def epoch_torch(sizes: list[int], batch: int, x: np.ndarray, labels: np.ndarray) -> Callable[[], Any]:
    torch.manual_seed(0)
    layers: list[Any] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    data = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(labels))
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True)

    def epoch() -> None:
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    return epoch


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
    figures = {"chainrule": per_call(xor_chainrule(), n)}
    xor_np = XorNumpy()
    figures["numpy (by hand)"] = per_call(xor_np.step, n)
    if torch is not None:
        figures["torch"] = per_call(xor_torch(), n)
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
        figures = {"chainrule": per_call(epoch_chainrule(sizes, batch, x, labels), 1, repeats),
                   "numpy (by hand)": per_call(epoch_numpy(sizes, batch, x, labels), 1, repeats)}
        if torch is not None:
            figures["torch"] = per_call(epoch_torch(sizes, batch, x, labels), 1, repeats)
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
