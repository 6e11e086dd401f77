"""Sums on one and two threads where the data comes from (issue 14: the sums' threads).

A sum in a training step usually reads what the op before it just wrote. On two threads that op
left each half of its result in the cache of the core that wrote it; a sum that reads it all on
one core fetches the other half from the other core. This times a sum of 1000 x 1000 float32
(whole, along dim 1 and along dim 0) in four situations, for chainrule and PyTorch (when
installed) on 1 and 2 threads:

- "again": the same array summed back to back (bench_kernels' situation);
- "after x * 2": the array just made by an elementwise op on the same threads;
- "paused": 1 ms of sleep before each sum (the threads have gone to sleep);
- "paused, after x * 2": both.

Only the sum is timed (wall clock); medians over the calls, the libraries in turns, for
`--repeat` rounds (the best round's median is printed).

Run: python bench/bench_sum_threads.py [--repeat 3] [--calls 200]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import numpy as np

import chainrule as cr

try:
    import torch
except ImportError:
    torch = None

SITUATIONS = {"again": (False, False), "after x * 2": (True, False), "paused": (False, True),
              "paused, after x * 2": (True, True)}


def time_sums(x: Any, dim: int | None, produce: bool, pause: bool, calls: int) -> float:
    """Median seconds of `calls` sums of x (or of x * 2, made just before each)."""
    times = []
    for _ in range(calls + 3):
        y = x * 2 if produce else x
        if pause:
            time.sleep(0.001)
        start = time.perf_counter()
        if dim is None:
            y.sum()
        else:
            y.sum(dim)
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    data = np.random.default_rng(0).standard_normal((1000, 1000)).astype(np.float32)
    libs: list[tuple[str, Any, Callable[[int], None]]] = [("chainrule", cr.tensor(data), cr.set_num_threads)]
    if torch is not None:
        libs.append(("torch", torch.from_numpy(data.copy()), torch.set_num_threads))
    print(f"sum of 1000 x 1000 float32, us (median of {args.calls} calls, best of {args.repeat} rounds); "
          f"chainrule kernels: {cr._core.active_isa()}")
    header = f"{'':28}" + "".join(f"{name + ' ' + str(t) + 'T':>16}" for name, _, _ in libs for t in (1, 2))
    print(header + ("   2T: torch time / chainrule time" if torch is not None else ""))
    for dim in (None, 1, 0):
        for situation, (produce, pause) in SITUATIONS.items():
            best: dict[tuple[str, int], float] = {}
            for _ in range(args.repeat):
                for threads in (1, 2):
                    for name, x, set_threads in libs:
                        set_threads(threads)
                        seconds = time_sums(x, dim, produce, pause, args.calls)
                        best[name, threads] = min(best.get((name, threads), float("inf")), seconds)
            label = f"{'sum()' if dim is None else f'sum({dim})'} {situation}"
            row = f"{label:28}" + "".join(f"{best[name, t] * 1e6:16.1f}" for name, _, _ in libs for t in (1, 2))
            if torch is not None:
                row += f"   {best['torch', 2] / best['chainrule', 2]:.2f}x"
            print(row, flush=True)


if __name__ == "__main__":
    main()
