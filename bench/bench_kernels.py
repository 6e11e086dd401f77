"""Kernel speed (issues 3 and 14): matmul GFLOP/s, elementwise and reduction GB/s, for chainrule,
NumPy and PyTorch (when installed) in the same run, with ratios, on 1 and 2 threads.

Run: python bench/bench_kernels.py [--quick] [--repeat N] [--cpu-time] [--json out.json] [--isa avx2,avx512]

--isa runs the whole benchmark once per named ISA, each in a fresh interpreter with chainrule and
the peers forced to it (CHAINRULE_ISA; OpenBLAS: OPENBLAS_CORETYPE; PyTorch: ATEN_CPU_CAPABILITY,
MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA; NumPy's own loops: NPY_DISABLE_CPU_FEATURES: these
are read when the libraries load), and ends
with the ISAs side by side. Matmul rows also give each library's share of the ISA's FMA peak,
measured here (`_core.fma_peak_gflops`: one core, 12 independent multiply-add chains; float64
peaks at half the float32 figure, two threads at twice one).

Figures are medians of repeated timings. --repeat N measures every case N times, the libraries
taking turns, and prints the median and the spread (lowest to highest) of chainrule's ratio to
the faster peer: these machines are shared, so compare ratios, not absolutes. --cpu-time times
the one-thread runs by the calling thread's CPU time, which leaves out the time other processes
held the core (not their effect on the caches). NumPy's BLAS
threads are set with threadpoolctl when it is installed (pip install threadpoolctl).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

from machine import cpu_name  # bench/machine.py (the script's own folder)

import numpy as np

import chainrule as cr
from chainrule import _core

try:
    import torch
except ImportError:
    torch = None
try:
    import threadpoolctl
except ImportError:
    threadpoolctl = None

# What each library reads to choose its kernels, per ISA (before it loads).
ISA_ENV = {
    "generic": {"CHAINRULE_ISA": "generic", "OPENBLAS_CORETYPE": "Prescott", "ATEN_CPU_CAPABILITY": "default",
                "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"},
    "avx2": {"CHAINRULE_ISA": "avx2", "OPENBLAS_CORETYPE": "Haswell", "ATEN_CPU_CAPABILITY": "avx2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx512": {"CHAINRULE_ISA": "avx512", "OPENBLAS_CORETYPE": "SkylakeX", "ATEN_CPU_CAPABILITY": "avx512",
               "MKL_ENABLE_INSTRUCTIONS": "AVX512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
}


def numpy_env(isa: str) -> dict[str, str]:
    """NumPy's own SIMD loops (exp, add, sums) pick their kernels apart from OpenBLAS: the
    dispatch targets above `isa` are switched off by NPY_DISABLE_CPU_FEATURES."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__ as targets
    except ImportError:
        return {}
    if isa == "avx2":
        above = [t for t in targets if "512" in t or t == "X86_V4"]
    elif isa == "generic":
        above = [t for t in targets if not t.startswith("SSE") and t not in ("X86_V2", "POPCNT")]
    else:
        above = []
    return {"NPY_DISABLE_CPU_FEATURES": " ".join(above)} if above else {}


def median_seconds(fn: Callable[[], Any], min_time: float, clock: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds per call. Each library is timed in a block of its own, after 50 ms of
    untimed calls: the library timed before may leave threads spinning for a while (OpenBLAS's
    do, for tens of ms), and timing the libraries call by call in turns instead halved PyTorch's
    2-thread figures. clock: time.thread_time counts only the time the calling thread ran (the
    one-thread figures with --cpu-time)."""
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
        start = clock()
        for _ in range(number):
            fn()
        times.append(max(clock() - start, 1e-9) / number)
        if len(times) >= 50:
            break
    return statistics.median(times)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    cr.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    if threadpoolctl is not None:
        with threadpoolctl.threadpool_limits(limits=n):
            yield
    else:
        yield


class Runner:
    """Times each case's libraries `repeat` times in turns and prints one row per case."""

    def __init__(self, min_time: float, repeat: int, peak_gflops: float, n_threads: int, results: dict[str, Any],
                 clock: Callable[[], float] = time.perf_counter):
        self.min_time, self.repeat, self.results = min_time, repeat, results
        self.peak_gflops, self.n_threads, self.clock = peak_gflops, n_threads, clock

    def case(self, name: str, unit: str, work: float, fns: dict[str, Callable[[], Any]], peak: float = 0.0) -> None:
        """work: flops or bytes per call; peak: the figure's ceiling for a share of it (0: none)."""
        rounds: dict[str, list[float]] = {lib: [] for lib in fns}
        for _ in range(self.repeat):
            for lib, fn in fns.items():
                rounds[lib].append(work / median_seconds(fn, self.min_time, self.clock) / 1e9)
        figures = {lib: statistics.median(values) for lib, values in rounds.items()}
        peers = [lib for lib in fns if lib != "chainrule"]
        ratios = [rounds["chainrule"][r] / max(rounds[p][r] for p in peers) for r in range(self.repeat)]
        entry: dict[str, Any] = dict(figures)
        entry["ratio_to_best_peer"] = statistics.median(ratios)
        entry["ratio_spread"] = [min(ratios), max(ratios)]
        if peak > 0:
            entry["share_of_peak"] = {lib: value / peak for lib, value in figures.items()}
        self.results[name] = entry
        ours = figures["chainrule"]

        def share(lib: str) -> str:
            return f" {100 * figures[lib] / peak:3.0f}%" if peak > 0 else ""

        text = "  ".join(f"{lib} {figures[lib]:7.1f}{share(lib)} ({ours / figures[lib]:4.2f}x)" for lib in peers)
        spread = f" [{min(ratios):.2f}-{max(ratios):.2f}]" if self.repeat > 1 else ""
        print(f"  {name:34s} chainrule {ours:7.1f}{share('chainrule')} {unit}  {text}  "
              f"best peer {entry['ratio_to_best_peer']:.2f}x{spread}", flush=True)


MATMUL_SHAPES = [("n=256", 256, 256, 256, ""), ("n=1024", 1024, 1024, 1024, ""), ("n=2048", 2048, 2048, 2048, ""),
                 ("128x784 @ 784x256", 128, 784, 256, ""), ("64x64 @ 64x128", 64, 64, 128, "")]
MATMUL_MORE = [("n=64", 64, 64, 64, ""), ("n=128", 128, 128, 128, ""), ("128x256 @ 256x10", 128, 256, 10, ""),
               ("a.T @ b, n=512", 512, 512, 512, "a"), ("a @ b.T, n=512", 512, 512, 512, "b")]


def bench_matmul(runner: Runner, dtype: Any, shapes: list[tuple[str, int, int, int, str]]) -> None:
    rng = np.random.default_rng(0)
    # One core's FMA peak in float32 GFLOP/s: float64 does half the flops per instruction.
    peak = runner.peak_gflops * runner.n_threads * (0.5 if dtype == np.float64 else 1.0)
    for label, m, k, n, transposed in shapes:
        a = rng.standard_normal((k, m) if transposed == "a" else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if transposed == "b" else (k, n)).astype(dtype)
        ta, tb = cr.tensor(a), cr.tensor(b)
        ta = ta.T if transposed == "a" else ta
        tb = tb.T if transposed == "b" else tb
        na = a.T if transposed == "a" else a
        nb = b.T if transposed == "b" else b
        fns: dict[str, Callable[[], Any]] = {"chainrule": lambda: _core.matmul(ta._data, tb._data),
                                             "numpy": lambda: na @ nb}
        if torch is not None:
            pa, pb = torch.from_numpy(na), torch.from_numpy(nb)
            fns["torch"] = lambda: pa @ pb
        runner.case(f"matmul {np.dtype(dtype).name} {label}", "GFLOP/s", 2.0 * m * n * k, fns, peak)


def bench_elementwise(runner: Runner, sizes: tuple[int, ...], backward: bool) -> None:
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
        }
        if backward:
            cases["sigmoid_backward"] = (lambda: _core.sigmoid_backward(cx, cy), lambda: x * y * (1 - y), 3)
            cases["relu_backward"] = (lambda: _core.relu_backward(cx, cy), lambda: np.where(y > 0, x, 0), 3)
        peers: dict[str, Callable[[], Any]] = {}
        if torch is not None:
            px, py = torch.from_numpy(x), torch.from_numpy(y)
            peers = {"add": lambda: px + py, "mul": lambda: px * py, "exp": lambda: torch.exp(px),
                     "sigmoid": lambda: torch.sigmoid(px), "relu": lambda: torch.relu(px),
                     "sigmoid_backward": lambda: torch.ops.aten.sigmoid_backward(px, py),
                     "relu_backward": lambda: torch.ops.aten.threshold_backward(px, py, 0)}
        for name, (ours, numpy_fn, arrays) in cases.items():
            fns = {"chainrule": ours, "numpy": numpy_fn}
            if torch is not None:
                fns["torch"] = peers[name]
            runner.case(f"{name} n={size:.0e}", "GB/s", arrays * 4.0 * size, fns)


def bench_reductions(runner: Runner, sides: tuple[int, ...]) -> None:
    for side in sides:
        x = np.random.default_rng(3).standard_normal((side, side)).astype(np.float32)
        cx = cr.tensor(x)._data
        px = torch.from_numpy(x) if torch is not None else None
        for label, dims in (("all", []), ("axis 0", [0]), ("axis 1", [1])):
            axis = None if not dims else dims[0]
            fns: dict[str, Callable[[], Any]] = {"chainrule": lambda: _core.sum(cx, dims, False),
                                                 "numpy": lambda: x.sum(axis=axis)}
            if px is not None:
                fns["torch"] = (lambda: px.sum()) if axis is None else (lambda: px.sum(axis))
            runner.case(f"sum {label} {side}x{side}", "GB/s", float(x.nbytes), fns)


def peer_kernels() -> str:
    """Which kernels the peers actually loaded (a forced ISA they do not know falls back)."""
    parts = []
    if threadpoolctl is not None:
        for info in threadpoolctl.threadpool_info():
            if info.get("internal_api") == "openblas":
                parts.append(f"NumPy's OpenBLAS {info.get('version')}: {info.get('architecture')}")
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
        parts.append(f"NumPy {np.__version__} loops: AVX-512 {'on' if features.get('AVX512_SKX') and features.get('X86_V4', True) else 'off'}")
    except ImportError:
        pass
    if torch is not None:
        parts.append(f"PyTorch {torch.__version__}: {torch.backends.cpu.get_cpu_capability()}")
    return "; ".join(parts) or "no peer details (install threadpoolctl)"



def run_here(args: argparse.Namespace) -> dict[str, Any]:
    isa = _core.active_isa()
    min_time = 0.1 if args.quick else (0.4 if args.repeat == 1 else 0.25)
    # (a build from before the peak was exposed runs without the shares)
    peak = _core.fma_peak_gflops(isa, 0.5) if hasattr(_core, "fma_peak_gflops") else 0.0
    results: dict[str, Any] = {"isa": isa, "fma_peak_gflops_f32": peak, "fma_peak_gflops_f64": peak / 2,
                               "peers": peer_kernels(), "cache_sizes": list(_core.cache_sizes()), "cpu": cpu_name(),
                               "load_before": os.getloadavg()[0]}
    print(f"{results['cpu']}, {os.cpu_count()} CPUs; chainrule {cr.__version__}, kernels: {isa}, caches "
          f"{results['cache_sizes']}; {results['peers']}", flush=True)
    print(f"FMA peak of one core under {isa}: {peak:.1f} GFLOP/s float32, {peak / 2:.1f} float64 (x2 on 2 threads); "
          f"load average {results['load_before']:.1f}. Ratios: chainrule / peer (above 1: chainrule is faster), "
          "% of the peak for matmul", flush=True)
    for n in (1, 2):
        results[f"{n} thread(s)"] = section = {}
        print(f"\n{n} thread(s)" + (", timed by the thread's CPU time" if args.cpu_time and n == 1 else ""), flush=True)
        # Each library computes on the calling thread when it has one thread (OpenBLAS and PyTorch
        # too), so its CPU time leaves out the time other processes held the core.
        cpu_time = args.cpu_time and n == 1
        runner = Runner(min_time, args.repeat, peak, n, section, time.thread_time if cpu_time else time.perf_counter)
        section["clock"] = "thread CPU time" if cpu_time else "wall"
        with threads(n):
            shapes = MATMUL_SHAPES if args.quick or args.isa else MATMUL_SHAPES + MATMUL_MORE
            bench_matmul(runner, np.float32, [s for s in shapes if not (args.quick and s[0] == "n=2048")])
            bench_matmul(runner, np.float64, [s for s in MATMUL_SHAPES if not (args.quick and s[0] == "n=2048")])
            sizes = (1_000_000,) if args.quick else (1_000_000, 16_000_000)
            bench_elementwise(runner, sizes if args.isa else (1000,) + sizes, backward=not args.isa)
            bench_reductions(runner, (1000,) if args.quick else (1000, 4096))
    results["load_after"] = os.getloadavg()[0]
    print(f"\nload average {results['load_before']:.1f} before, {results['load_after']:.1f} after", flush=True)
    return results


def side_by_side(all_results: dict[str, dict[str, Any]]) -> None:
    isas = list(all_results)
    print("\n" + "=" * 100 + "\nchainrule / faster peer, each ISA with the peers forced to it (median [spread]); "
          "matmul: chainrule's % of the FMA peak")
    print("  peaks: " + ", ".join(f"{isa} {r['fma_peak_gflops_f32']:.0f} GFLOP/s f32" for isa, r in all_results.items()))
    for section in ("1 thread(s)", "2 thread(s)"):
        print(f"\n{section:36s}" + "".join(f"{isa:>28s}" for isa in isas))
        for name, first in all_results[isas[0]][section].items():
            if not isinstance(first, dict):
                continue
            cells = []
            for isa in isas:
                entry = all_results[isa][section].get(name)
                if entry is None:
                    cells.append(f"{'-':>28s}")
                    continue
                lo, hi = entry["ratio_spread"]
                share = entry.get("share_of_peak", {}).get("chainrule")
                text = f"{entry['ratio_to_best_peer']:.2f}x [{lo:.2f}-{hi:.2f}]" + (f" {100 * share:3.0f}%" if share else "")
                cells.append(f"{text:>28s}")
            print(f"  {name:34s}" + "".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=None,
                        help="measure each case this many times, libraries in turns (default 1; 3 with --isa)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--isa", default=None,
                        help="comma-separated ISAs (generic, avx2, avx512): one run each, every library forced to it")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time the one-thread runs by the calling thread's CPU time (for a busy machine)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat is None:
        args.repeat = 3 if args.isa else 1
    if args.isa and not args.child:
        all_results = {}
        for isa in args.isa.split(","):
            if isa not in ISA_ENV:
                parser.error(f"unknown ISA {isa!r} (expected one of {', '.join(ISA_ENV)})")
            if not _core.cpu_supports(isa):
                print(f"\n### {isa}: this CPU does not run it; skipped", flush=True)
                continue
            env = {**ISA_ENV[isa], **numpy_env(isa)}
            print(f"\n### {isa}: " + " ".join(f"{k}={v!r}" for k, v in env.items()), flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "results.json")
                command = [sys.executable, __file__, "--child", "--isa", isa, "--repeat", str(args.repeat), "--json", out]
                command += ["--cpu-time"] if args.cpu_time else []
                subprocess.run(command + (["--quick"] if args.quick else []), env={**os.environ, **env},
                               check=True)
                with open(out) as f:
                    all_results[isa] = json.load(f)
        if len(all_results) > 1:
            side_by_side(all_results)
        results: dict[str, Any] = all_results
    else:
        results = run_here(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
