"""Run by test_robustness.py in a subprocess (a crash must not take pytest down): calls every
public function of chainrule, every method of chainrule.Tensor and every function and method
of chainrule._core with hostile arguments (0-d, empty, strided and expanded arrays, huge and
negative ints, NaN, None, strings, nested lists) and reports how many calls it made.

Any exception is an acceptable answer; what fails is the process dying on a signal or a
sanitizer report. Before each call the call is written to the file named by argv[1] (flushed),
so the parent can name the one that killed the process.

    python tests/robustness_sweep.py LAST_CALL_FILE [SEED]
"""
from __future__ import annotations

import inspect
import math
import os
import random
import sys
import warnings

import chainrule as cr
import numpy as np
from chainrule import _core

# Calls whose effect reaches beyond this process or blocks: not hostile input, just unsafe to
# make blindly (rendering spawns Graphviz; show_config prints; distributed needs mpiexec).
SKIP = {"show_config", "render", "init_process_group", "barrier", "all_reduce", "broadcast",
        "all_gather", "destroy_process_group", "register_classes", "set_spin_count"}

# Random (seeded) combinations tried per callable beyond every single argument and no argument.
PAIRS_PER_CALLABLE = 60
TRIPLES_PER_CALLABLE = 40
QUADS_PER_CALLABLE = 40


def hostile_values() -> list[tuple[str, object]]:
    """(label, value) pairs; fresh objects, since a call may modify its arguments in place."""
    leaf = cr.ones(3, requires_grad=True)
    values = [
        ("0-d", cr.tensor(1.5)),
        ("0-d int", cr.tensor(3)),
        ("empty", cr.zeros(0, 3)),
        ("vector", cr.arange(6).float()),
        ("matrix", cr.ones(2, 3)),
        ("int matrix", cr.arange(6).reshape(2, 3)),
        ("bool", cr.tensor([True, False])),
        ("f64 4-d", cr.zeros(1, 2, 1, 2, dtype=cr.float64)),
        ("transposed", cr.ones(3, 2).T),
        ("expanded", cr.ones(1, 3).expand(4, 3)),
        ("stepped", cr.arange(10).float()[::3]),
        ("leaf", leaf),
        ("nonleaf", leaf * 2),
        ("raw 0-d", cr.tensor(2.0)._data),
        ("raw matrix", cr.ones(2, 3)._data),
        ("raw empty", cr.zeros(0)._data),
        ("raw int", cr.arange(4)._data),
        ("0", 0), ("1", 1), ("-1", -1), ("2", 2), ("-7", -7),
        ("2**40", 2**40), ("2**62", 2**62), ("-2**63", -2**63), ("2**63", 2**63), ("2**70", 2**70),
        ("-2**70", -2**70),
        ("0.5", 0.5), ("-2.5", -2.5), ("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf),
        ("True", True), ("None", None), ("''", ""), ("'abc'", "abc"), ("b'x'", b"x"),
        ("()", ()), ("(-1,)", (-1,)), ("(2**62, 4)", (2**62, 4)), ("(0, -3)", (0, -3)),
        ("[1, [2]]", [1, [2]]), ("[[]]", [[]]), ("[2**63]", [2**63]), ("{}", {}),
        ("float32", cr.float32), ("int64", cr.int64), ("object()", object()),
        ("np 0-d", np.array(1.0)), ("np uint64", np.array([2**64 - 1], dtype=np.uint64)),
        ("np strided", np.arange(12.0).reshape(3, 4)[:, ::2]),
        ("lambda", lambda *a, **k: a[0] if a else None),
        ("slice", slice(2**70, None)), ("Ellipsis", ...),
    ]
    return values


def public_callables() -> list[tuple[str, object]]:
    """Every public function and class of the package, its submodules and its Tensor."""
    out: list[tuple[str, object]] = []
    modules = [("cr", cr), ("cr.autograd", cr.autograd), ("cr.nn.functional", cr.nn.functional),
               ("cr.nn.init", cr.nn.init), ("cr.viz", cr.viz), ("cr.utils.data", cr.utils.data),
               ("cr.optim", cr.optim), ("cr.nn", cr.nn)]
    for prefix, module in modules:
        names = getattr(module, "__all__", None) or [
            n for n in dir(module) if not n.startswith("_")]
        for name in sorted(set(names)):
            value = getattr(module, name, None)
            if callable(value) and not inspect.ismodule(value) and name not in SKIP:
                out.append((f"{prefix}.{name}", value))
    return out


def method_names(cls: type) -> list[str]:
    names = []
    for name in sorted(dir(cls)):
        if name.startswith("__") and name not in {"__getitem__", "__setitem__", "__pow__",
                                                   "__rpow__", "__matmul__", "__add__",
                                                   "__array__", "__len__", "__iter__",
                                                   "__float__", "__int__", "__bool__",
                                                   "__repr__", "__index__"}:
            continue
        if name in SKIP:
            continue
        if callable(getattr(cls, name, None)):
            names.append(name)
    return names


def core_functions() -> list[tuple[str, object]]:
    out = []
    for name in sorted(dir(_core)):
        value = getattr(_core, name)
        if name.startswith("_") or name in SKIP or isinstance(value, type) or not callable(value):
            continue
        out.append((f"_core.{name}", value))
    return out


def receivers() -> list[tuple[str, object, type]]:
    """Objects whose methods are swept: (label, object, class whose methods to list)."""
    leaf = cr.ones(2, 3, requires_grad=True)
    return [
        ("Tensor 0-d", cr.tensor(1.0), cr.Tensor),
        ("Tensor matrix", cr.ones(2, 3), cr.Tensor),
        ("Tensor nonleaf", leaf * 3, cr.Tensor),
        ("_core.Tensor 0-d", cr.tensor(1.0)._data, _core.Tensor),
        ("_core.Tensor empty", cr.zeros(0, 2)._data, _core.Tensor),
        ("_core.Tensor transposed", cr.ones(3, 2).T._data, _core.Tensor),
        ("_core.Node", (leaf * 3).grad_fn, type((leaf * 3).grad_fn)),
    ]


class Sweep:
    def __init__(self, log_path: str, seed: int) -> None:
        self.log = open(log_path, "w")  # noqa: SIM115 - rewritten before every call, kept open
        self.rng = random.Random(seed)
        self.calls = 0
        self.threads = cr.get_num_threads()

    def call(self, label: str, fn: object, args: tuple) -> None:
        self.log.seek(0)
        self.log.write(f"{label}{args!r}"[:2000])
        self.log.truncate()
        self.log.flush()
        self.calls += 1
        try:
            result = fn(*args)  # type: ignore[operator]
            if inspect.isgenerator(result):
                next(result, None)
        except BaseException as error:
            if isinstance(error, (SystemExit, KeyboardInterrupt)):
                raise
        finally:
            # Undo process-wide settings a call may have changed.
            _core.set_grad_enabled(True)
            cr.set_num_threads(self.threads)

    def sweep(self, label: str, fn: object) -> None:
        values = hostile_values()
        self.call(label, fn, ())
        for name, value in values:
            self.call(f"{label}[{name}]", fn, (value,))
        for _ in range(PAIRS_PER_CALLABLE):
            pair = self.rng.sample(values, 2)
            self.call(f"{label}[{pair[0][0]}, {pair[1][0]}]", fn, (pair[0][1], pair[1][1]))
        for _ in range(TRIPLES_PER_CALLABLE):
            picks = [self.rng.choice(values) for _ in range(3)]
            self.call(f"{label}[{', '.join(p[0] for p in picks)}]", fn, tuple(p[1] for p in picks))
        # Four arguments, ints weighted up: methods like slice(dim, start, stop, step) get past
        # argument conversion only with ints, and their checks are what is being swept.
        ints = [v for v in values if isinstance(v[1], int) and not isinstance(v[1], bool)]
        for _ in range(QUADS_PER_CALLABLE):
            picks = [self.rng.choice(ints if self.rng.random() < 0.6 else values) for _ in range(4)]
            self.call(f"{label}[{', '.join(p[0] for p in picks)}]", fn, tuple(p[1] for p in picks))


def main() -> None:
    warnings.simplefilter("ignore")
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    sweep = Sweep(sys.argv[1], seed)
    counts = {}
    before = sweep.calls
    for label, fn in public_callables():
        sweep.sweep(label, fn)
    counts["public functions"] = sweep.calls - before
    before = sweep.calls
    for label, fn in core_functions():
        sweep.sweep(label, fn)
    counts["_core functions"] = sweep.calls - before
    before = sweep.calls
    for label, obj, cls in receivers():
        for name in method_names(cls):
            method = getattr(obj, name, None)
            if method is not None:
                sweep.sweep(f"{label}.{name}", method)
    counts["methods"] = sweep.calls - before
    print(" ".join(f"{k}={v}" for k, v in counts.items()), f"total={sweep.calls}")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: the sweep's objects are in odd states by design


if __name__ == "__main__":
    main()
