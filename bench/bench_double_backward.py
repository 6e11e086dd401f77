"""Double backward (create_graph=True) against PyTorch: a Hessian-vector product and one
gradient-penalty training step, on an MLP (the same code path for both libraries).

Run: python bench/bench_double_backward.py [--quick] [--threads N] [--json out.json]
Each figure is the median over repeats, the libraries timed in turns; the ratio is
chainrule / PyTorch from this one run (machines here are shared and noisy).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

import chainrule as cr

try:
    import torch
except ImportError:
    torch = None

SIZES = {"batch": 64, "inputs": 32, "hidden": 128, "classes": 10}


def setup(lib: Any, sizes: dict[str, int]) -> tuple[Any, ...]:
    rng = np.random.default_rng(0)
    b, n, h, c = sizes["batch"], sizes["inputs"], sizes["hidden"], sizes["classes"]
    shapes = [(n, h), (h,), (h, h), (h,), (h, c), (c,)]
    params = [lib.tensor(rng.standard_normal(s) / np.sqrt(s[0]), requires_grad=True) for s in shapes]
    x = lib.tensor(rng.standard_normal((b, n)))
    target = lib.tensor(rng.integers(0, c, b))
    vs = [lib.tensor(rng.standard_normal(s)) for s in shapes]
    return params, x, target, vs


def mlp(params: list[Any], x: Any) -> Any:
    w1, b1, w2, b2, w3, b3 = params
    return ((x @ w1 + b1).tanh() @ w2 + b2).sigmoid() @ w3 + b3


def hvp(lib: Any, params: list[Any], x: Any, target: Any, vs: list[Any]) -> None:
    loss = lib.nn.functional.cross_entropy(mlp(params, x), target)
    grads = lib.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vs))
    lib.autograd.grad(dot, params)


def penalty_step(lib: Any, params: list[Any], x: Any, target: Any, vs: list[Any]) -> None:
    xi = x.detach().requires_grad_(True)
    critic = mlp(params, xi).sum(1)
    (gx,) = lib.autograd.grad(critic.sum(), xi, create_graph=True)
    penalty = (((gx ** 2).sum(1) + 1e-12).sqrt() - 1.0).square().mean()
    loss = critic.mean() + 10.0 * penalty
    for p in params:
        p.grad = None
    loss.backward()
    with lib.no_grad():
        for p in params:
            p -= 1e-3 * p.grad


def first_order_step(lib: Any, params: list[Any], x: Any, target: Any, vs: list[Any]) -> None:
    """For scale: the same model's ordinary training step (no create_graph)."""
    loss = lib.nn.functional.cross_entropy(mlp(params, x), target)
    for p in params:
        p.grad = None
    loss.backward()


def time_in_turns(fns: dict[str, Callable[[], None]], number: int, repeats: int) -> dict[str, float]:
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times[name].append((time.perf_counter() - start) / number)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    cr.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    number, repeats = (5, 3) if args.quick else (20, 7)
    results = {}
    print(f"MLP {SIZES['inputs']}-{SIZES['hidden']}-{SIZES['hidden']}-{SIZES['classes']}, batch "
          f"{SIZES['batch']}, float32, {args.threads} thread(s); median of {repeats} x {number} calls")
    print(f"{'case':<34}{'chainrule ms':>14}{'PyTorch ms':>12}{'ratio':>8}")
    for name, fn in [("Hessian-vector product", hvp), ("gradient-penalty step", penalty_step),
                     ("first-order step (for scale)", first_order_step)]:
        state = {"chainrule": setup(cr, SIZES)}
        calls = {"chainrule": lambda s=state["chainrule"]: fn(cr, *s)}
        if torch is not None:
            state["torch"] = setup(torch, SIZES)
            calls["torch"] = lambda s=state["torch"]: fn(torch, *s)
        got = time_in_turns(calls, number, repeats)
        ours, theirs = got["chainrule"], got.get("torch")
        ratio = ours / theirs if theirs else float("nan")
        results[name] = {"chainrule_s": ours, "torch_s": theirs, "ratio": ratio}
        print(f"{name:<34}{ours * 1e3:>14.3f}{(theirs or float('nan')) * 1e3:>12.3f}{ratio:>8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sizes": SIZES, "threads": args.threads, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
