"""The dim-wise index and scan ops (issue 17): gather, scatter_add, sort, topk and cumsum, for
chainrule, PyTorch (when installed) and NumPy in the same run, as medians and ratios.

Run: python bench/bench_dim_ops.py [--quick] [--threads N] [--repeat N]

NumPy's forms: take_along_axis (gather), add.at (scatter_add: NumPy has no scatter kernel of
its own, so its figure is slow by design), sort/argsort (kind="stable", as chainrule's sort is
stable), argpartition + a sort of the k (topk), cumsum. Each case is timed `--repeat` rounds,
the libraries taking turns in every round, and each figure is the median over the rounds; the
ratio is chainrule's time over the other's (below 1: chainrule is faster). These machines are
shared: compare ratios, not absolutes.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import chainrule as cr
import numpy as np
from chainrule import _core
from machine import cpu_name  # bench/machine.py (the script's own folder)

try:
    import torch
except ImportError:
    torch = None


def _time(fn: Callable[[], Any], budget: float = 0.05) -> float:
    """Seconds per call: the best of a few batches sized to take about `budget` seconds."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    calls = max(1, int(budget / once))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def _np_topk(a: np.ndarray, k: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    part = np.argpartition(-a, k - 1, axis=axis)
    top = np.take(part, range(k), axis=axis)
    values = np.take_along_axis(a, top, axis=axis)
    order = np.argsort(-values, axis=axis, kind="stable")
    return np.take_along_axis(values, order, axis=axis), np.take_along_axis(top, order, axis=axis)


def _np_scatter_add(out: np.ndarray, dim: int, index: np.ndarray, src: np.ndarray) -> np.ndarray:
    out = out.copy()
    coords = list(np.indices(index.shape, sparse=True))
    coords[dim] = index
    np.add.at(out, tuple(coords), src)
    return out


def cases(quick: bool) -> list[tuple[str, dict[str, Callable[[], Any]]]]:
    rng = np.random.default_rng(0)
    sizes = [(256, 256), (2048, 1024)] if not quick else [(256, 256), (1024, 512)]
    made: list[tuple[str, dict[str, Callable[[], Any]]]] = []
    for rows, cols in sizes:
        a = rng.standard_normal((rows, cols)).astype(np.float32)
        ta = cr.from_numpy(a)
        pa = torch.from_numpy(a) if torch is not None else None
        for dim in (1, 0):
            index = rng.integers(0, a.shape[dim], size=a.shape)
            ti = cr.from_numpy(index)
            pi = torch.from_numpy(index) if torch is not None else None
            zeros = np.zeros_like(a)
            tz, pz = cr.from_numpy(zeros), (torch.from_numpy(zeros) if torch is not None else None)
            shape = f"{rows}x{cols} dim={dim}"
            made.append((f"gather {shape}", {
                "chainrule": lambda ta=ta, d=dim, ti=ti: ta.gather(d, ti),
                "torch": (lambda pa=pa, d=dim, pi=pi: pa.gather(d, pi)) if torch is not None else None,
                "numpy": lambda a=a, d=dim, i=index: np.take_along_axis(a, i, axis=d)}))
            made.append((f"scatter_add {shape}", {
                "chainrule": lambda tz=tz, d=dim, ti=ti, ta=ta: tz.scatter_add(d, ti, ta),
                "torch": ((lambda pz=pz, d=dim, pi=pi, pa=pa: pz.scatter_add(d, pi, pa))
                          if torch is not None else None),
                "numpy": lambda z=zeros, d=dim, i=index, a=a: _np_scatter_add(z, d, i, a)}))
            made.append((f"sort {shape}", {
                "chainrule": lambda ta=ta, d=dim: ta.sort(d),
                "torch": (lambda pa=pa, d=dim: pa.sort(dim=d, stable=True)) if torch is not None else None,
                "numpy": lambda a=a, d=dim: (np.sort(a, axis=d, kind="stable"),
                                             np.argsort(a, axis=d, kind="stable"))}))
            made.append((f"topk k=8 {shape}", {
                "chainrule": lambda ta=ta, d=dim: ta.topk(8, d),
                "torch": (lambda pa=pa, d=dim: pa.topk(8, d)) if torch is not None else None,
                "numpy": lambda a=a, d=dim: _np_topk(a, 8, d)}))
            made.append((f"cumsum {shape}", {
                "chainrule": lambda ta=ta, d=dim: ta.cumsum(d),
                "torch": (lambda pa=pa, d=dim: pa.cumsum(d)) if torch is not None else None,
                "numpy": lambda a=a, d=dim: np.cumsum(a, axis=d)}))
    one_d = rng.standard_normal(1 << 20).astype(np.float32)
    t1, p1 = cr.from_numpy(one_d), (torch.from_numpy(one_d) if torch is not None else None)
    made.append(("sort 1-D 2^20", {
        "chainrule": lambda: t1.sort(),
        "torch": (lambda: p1.sort(stable=True)) if torch is not None else None,
        "numpy": lambda: (np.sort(one_d, kind="stable"), np.argsort(one_d, kind="stable"))}))
    made.append(("topk k=8 1-D 2^20", {
        "chainrule": lambda: t1.topk(8),
        "torch": (lambda: p1.topk(8)) if torch is not None else None,
        "numpy": lambda: _np_topk(one_d, 8, 0)}))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--threads", type=int, default=None, help="threads for chainrule and PyTorch")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per case (the median is printed)")
    args = parser.parse_args()
    if args.threads:
        cr.set_num_threads(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()}; chainrule SIMD: {_core.active_isa()}; threads: chainrule "
          f"{cr.get_num_threads()}" + (f", torch {torch.get_num_threads()} ({torch.__version__}, "
                                       f"capability {torch.backends.cpu.get_cpu_capability()})" if torch else "")
          + f"; numpy {np.__version__}; float32; median of {args.repeat} rounds")
    header = f"{'case':34s} {'chainrule':>11s} {'torch':>11s} {'numpy':>11s} {'cr/torch':>9s} {'cr/numpy':>9s}"
    print(header)
    print("-" * len(header))
    for name, fns in cases(args.quick):
        times: dict[str, list[float]] = {lib: [] for lib, fn in fns.items() if fn is not None}
        for _ in range(args.repeat):
            for lib in times:
                times[lib].append(_time(fns[lib]))
        med = {lib: statistics.median(ts) for lib, ts in times.items()}
        us = [f"{med[lib] * 1e6:9.1f}us" if lib in med else f"{'-':>11s}" for lib in ("chainrule", "torch", "numpy")]
        ratios = [f"{med['chainrule'] / med[lib]:9.2f}" if lib in med else f"{'-':>9s}" for lib in ("torch", "numpy")]
        print(f"{name:34s} {' '.join(us)} {' '.join(ratios)}")


if __name__ == "__main__":
    main()
