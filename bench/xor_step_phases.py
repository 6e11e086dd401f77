"""Where one XOR training step's time goes: forward (with graph recording), backward,
optimizer step, zero_grad, plus the raw cost of the C++ calls. Medians of many steps.

Run: python bench/xor_step_phases.py
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import chainrule as cr
from chainrule import _core

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_overhead import xor_cost, xor_setup  # noqa: E402  (the step bench_overhead times)


def main(steps: int = 3000) -> None:
    cr.set_num_threads(1)
    x, y, params, opt = xor_setup(cr)
    phases: dict[str, list[float]] = {"zero_grad": [], "forward": [], "backward": [], "step": []}
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        t1 = time.perf_counter()
        cost = xor_cost(cr, x, y, params)
        t2 = time.perf_counter()
        cost.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            phases[name].append(seconds)
    total = 0.0
    for name, values in phases.items():
        median = statistics.median(values) * 1e6
        total += median
        print(f"{name:10s} {median:7.1f} us")
    print(f"{'total':10s} {total:7.1f} us")
    a = cr.ones(2, 2)._data
    calls = 200_000
    start = time.perf_counter()
    for _ in range(calls):
        _core.mul(a, a)
    print(f"(one _core.mul on 2x2: {(time.perf_counter() - start) / calls * 1e9:.0f} ns)")


if __name__ == "__main__":
    main()
