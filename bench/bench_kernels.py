"""Kernel speed (issue 3): matmul GFLOP/s, elementwise and reduction GB/s, for chainrule,
NumPy and PyTorch (when installed) in the same run, with ratios, on 1 and 2 threads.

Run: python bench/bench_kernels.py [--quick] [--json bench/results_kernels.json]
Medians of repeated timings; these machines are shared, so compare ratios, not absolutes.
NumPy's BLAS threads are set with threadpoolctl when it is installed (pip install threadpoolctl).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from typing import Any, Callable, Iterator

import numpy as np

import chainrule as cr
from chainrule import _core

try:
    import torch
except ImportError:
    torch = None
try:
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None


def median_seconds(fn: Callable[[], Any], min_time: float) -> float:
    """Median seconds per call. Each library is timed in a block of its own, after 50 ms of
    untimed calls: the library timed before may leave threads spinning for a while (OpenBLAS's
    do, for tens of ms), and timing the libraries in turns instead halved PyTorch's 2-thread
    figures."""
    warm_until = time.perf_counter() + 0.05
    fn()
    while time.perf_counter() < warm_until:
        fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(0.02 / once))  # each timing is about 20 ms
    times = []
    deadline = time.perf_counter() + min_time
    while len(times) < 5 or time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
        if len(times) >= 50:
            break
    return statistics.median(times)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    cr.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    if threadpool_limits is not None:
        with threadpool_limits(limits=n):
            yield
    else:
        yield


def row(name: str, unit: str, figures: dict[str, float], results: dict[str, Any]) -> None:
    results[name] = figures
    ours = figures["chainrule"]
    peers = "  ".join(f"{k} {v:8.1f} ({ours / v:4.2f}x)" for k, v in figures.items() if k != "chainrule")
    print(f"  {name:34s} chainrule {ours:8.1f} {unit}   {peers}")


def matmul_cases(quick: bool) -> list[tuple[str, int, int, int, str]]:
    cases = [(f"n={n}", n, n, n, "") for n in (64, 128, 256, 1024)]
    if not quick:
        cases.append(("n=2048", 2048, 2048, 2048, ""))
    cases += [("128x784 @ 784x256", 128, 784, 256, ""), ("128x256 @ 256x10", 128, 256, 10, ""),
              ("64x64 @ 64x128", 64, 64, 128, ""), ("a.T @ b, n=512", 512, 512, 512, "a"),
              ("a @ b.T, n=512", 512, 512, 512, "b")]
    return cases


def bench_matmul(dtype: Any, quick: bool, min_time: float, results: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    for label, m, k, n, transposed in matmul_cases(quick):
        a = rng.standard_normal((k, m) if transposed == "a" else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if transposed == "b" else (k, n)).astype(dtype)
        ta, tb = cr.tensor(a), cr.tensor(b)
        ta = ta.T if transposed == "a" else ta
        tb = tb.T if transposed == "b" else tb
        na = a.T if transposed == "a" else a
        nb = b.T if transposed == "b" else b
        flops = 2.0 * m * n * k
        figures = {"chainrule": flops / median_seconds(lambda: _core.matmul(ta._data, tb._data), min_time) / 1e9,
                   "numpy": flops / median_seconds(lambda: na @ nb, min_time) / 1e9}
        if torch is not None:
            pa, pb = torch.from_numpy(na), torch.from_numpy(nb)
            figures["torch"] = flops / median_seconds(lambda: pa @ pb, min_time) / 1e9
        row(f"matmul {np.dtype(dtype).name} {label}", "GFLOP/s", figures, results)


def bench_elementwise(quick: bool, min_time: float, results: dict[str, Any]) -> None:
    sizes = (1000, 1_000_000) if quick else (1000, 1_000_000, 16_000_000)
    for size in sizes:
        x = np.random.default_rng(1).standard_normal(size).astype(np.float32)
        y = np.random.default_rng(2).standard_normal(size).astype(np.float32)
        cx, cy = cr.tensor(x)._data, cr.tensor(y)._data
        cases = {
            "add": (lambda: _core.add(cx, cy), lambda: x + y, 3),
            "mul": (lambda: _core.mul(cx, cy), lambda: x * y, 3),
            "exp": (lambda: _core.exp(cx), lambda: np.exp(x), 2),
            "sigmoid": (lambda: _core.sigmoid(cx), lambda: 1 / (1 + np.exp(-x)), 2),
            "relu": (lambda: _core.relu(cx), lambda: np.maximum(x, 0), 2),
            "sigmoid_backward": (lambda: _core.sigmoid_backward(cx, cy), lambda: x * y * (1 - y), 3),
            "relu_backward": (lambda: _core.relu_backward(cx, cy), lambda: np.where(y > 0, x, 0), 3),
        }
        if torch is not None:
            px, py = torch.from_numpy(x), torch.from_numpy(y)
            peers = {"add": lambda: px + py, "mul": lambda: px * py, "exp": lambda: torch.exp(px),
                     "sigmoid": lambda: torch.sigmoid(px), "relu": lambda: torch.relu(px),
                     "sigmoid_backward": lambda: torch.ops.aten.sigmoid_backward(px, py),
                     "relu_backward": lambda: torch.ops.aten.threshold_backward(px, py, 0)}
        for name, (ours, numpy_fn, arrays) in cases.items():
            nbytes = arrays * 4 * size
            figures = {"chainrule": nbytes / median_seconds(ours, min_time) / 1e9,
                       "numpy": nbytes / median_seconds(numpy_fn, min_time) / 1e9}
            if torch is not None:
                figures["torch"] = nbytes / median_seconds(peers[name], min_time) / 1e9
            row(f"{name} n={size:.0e}", "GB/s", figures, results)


def bench_reductions(min_time: float, results: dict[str, Any]) -> None:
    x = np.random.default_rng(3).standard_normal((4096, 4096)).astype(np.float32)
    cx = cr.tensor(x)._data
    px = torch.from_numpy(x) if torch is not None else None
    for label, dims in (("all", []), ("axis 0", [0]), ("axis 1", [1])):
        axis = None if not dims else dims[0]
        figures = {"chainrule": x.nbytes / median_seconds(lambda: _core.sum(cx, dims, False), min_time) / 1e9,
                   "numpy": x.nbytes / median_seconds(lambda: x.sum(axis=axis), min_time) / 1e9}
        if px is not None:
            figures["torch"] = x.nbytes / median_seconds(
                (lambda: px.sum()) if axis is None else (lambda: px.sum(axis)), min_time) / 1e9
        row(f"sum {label} 4096x4096", "GB/s", figures, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    min_time = 0.1 if args.quick else 0.4
    results: dict[str, Any] = {"isa": _core.active_isa()}
    print(f"chainrule {cr.__version__}, kernels: {_core.active_isa()}; ratios are chainrule / peer "
          "(above 1: chainrule is faster)")
    for n in (1, 2):
        results[f"{n} thread(s)"] = section = {}
        print(f"\n{n} thread(s)")
        with threads(n):
            bench_matmul(np.float32, args.quick, min_time, section)
            bench_matmul(np.float64, True, min_time, section)
            bench_elementwise(args.quick, min_time, section)
            bench_reductions(min_time, section)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
