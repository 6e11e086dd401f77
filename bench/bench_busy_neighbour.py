"""A 2-thread op while another process keeps a core busy (issue 5: threads must not collapse).

Starts a CPU-bound neighbour process, then times an elementwise add of 1e5 elements (below the
grain: one thread) and of 1e6 (split over the threads), a sigmoid of 1e6, a sum of 1e6 and the
column sums of a 1000 x 1000 matrix (split over the threads too), and a 128x784 @ 784x256 matmul
on 1 and 2 threads, for chainrule and PyTorch (when installed).
Prints medians and the 2-thread / 1-thread slowdown (the target for chainrule: at most 2x).

Run: python bench/bench_busy_neighbour.py
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any, Callable

import chainrule as cr

try:
    import torch
except ImportError:
    torch = None


def median_seconds(fn: Callable[[], Any], repeats: int = 200) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(lib: Any, set_threads: Callable[[int], None]) -> dict[str, tuple[float, float]]:
    x, y = lib.rand(100_000), lib.rand(1_000_000)
    a, b = lib.rand(128, 784), lib.rand(784, 256)
    m = lib.rand(1000, 1000)
    cases = {"add 1e5": lambda: x + x, "add 1e6": lambda: y + y, "sigmoid 1e6": lambda: y.sigmoid(),
             "sum 1e6": lambda: y.sum(), "sum(0) 1000x1000": lambda: m.sum(0),
             "matmul 128x784x256": lambda: a @ b}
    out = {}
    for name, fn in cases.items():
        per_threads = []
        for threads in (1, 2):
            set_threads(threads)
            per_threads.append(median_seconds(fn, 200 if "1e5" in name else 50))
        out[name] = (per_threads[0], per_threads[1])
    return out


def main() -> None:
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        libs = [("chainrule", cr, cr.set_num_threads)]
        if torch is not None:
            libs.append(("torch", torch, torch.set_num_threads))
        print("with a busy neighbour process on the other core (medians)")
        for name, lib, set_threads in libs:
            for case, (one, two) in measure(lib, set_threads).items():
                print(f"{name:10s} {case:20s} 1 thread {one * 1e6:9.1f} us   2 threads "
                      f"{two * 1e6:9.1f} us   slowdown {two / one:7.1f}x")
    finally:
        neighbour.kill()


if __name__ == "__main__":
    main()
