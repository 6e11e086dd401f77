"""chainrule: a small deep-learning engine with a C++17/OpenMP core and a Python autograd.

>>> import chainrule as cr
>>> w = cr.tensor(-2.0, requires_grad=True); x = cr.tensor(5.0, requires_grad=True)
>>> b = cr.tensor(3.0, requires_grad=True)
>>> f = w * x + b
>>> f.backward()
>>> w.grad.item(), x.grad.item(), b.grad.item()
(5.0, -2.0, 1.0)
"""
from __future__ import annotations

import numbers as _numbers
import os as _os
from typing import TYPE_CHECKING as _TYPE_CHECKING

# How chainrule's OpenMP threads wait. Threads that spin steal the core from a descheduled
# teammate when another process keeps the other core busy (a 2-thread op then ran 1000x slower
# than on one thread); threads that sleep at once make every 2-thread region cost 30-50 us on a
# quiet machine (the thread waiting at its end sleeps, and waking it takes that long). So they
# spin briefly, then sleep (GOMP_SPINCOUNT=300, about a microsecond): measured with a busy
# neighbour, 2 threads then cost at most 1.3x one thread, and on a quiet machine a 2-thread
# 128x784 @ 784x256 runs 30% faster and a sigmoid of 1e6 floats 55% faster than with sleeping at
# once (bench/README.md). The setting is read once, when the OpenMP runtime loads with _core, and
# removed again so libraries imported later (PyTorch's own OpenMP) never see it; a
# GOMP_SPINCOUNT or OMP_WAIT_POLICY the user set is kept.
_set_spin_count = "GOMP_SPINCOUNT" not in _os.environ and "OMP_WAIT_POLICY" not in _os.environ
if _set_spin_count:
    _os.environ["GOMP_SPINCOUNT"] = "300"
try:
    from chainrule import _core
finally:
    if _set_spin_count:
        del _os.environ["GOMP_SPINCOUNT"]

# CHAINRULE_CACHE_SIZES (e.g. "l1d=32K,l2=512K,l3=32M") makes the GEMM block for other caches
# than the CPU's; the core ignores a value that does not parse, and this says why.
if _os.environ.get("CHAINRULE_CACHE_SIZES"):
    try:
        _core.parse_cache_sizes(_os.environ["CHAINRULE_CACHE_SIZES"])
    except ValueError as _error:
        import warnings as _warnings

        _warnings.warn(f"{_error}; the GEMM uses the detected cache sizes instead", RuntimeWarning, stacklevel=2)
from chainrule._dtype import bool, dtype, float32, float64, int64  # noqa: A004
from chainrule.autograd.grad_mode import (
    enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled,
)
from chainrule.tensor import Tensor
from chainrule.random import (
    Generator, default_generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state,
)
from chainrule.creation import (
    arange, as_tensor, empty, empty_like, eye, from_dlpack, from_numpy, full, full_like, linspace,
    ones, ones_like, rand, randint, randn, randperm, tensor, zeros, zeros_like,
)
from chainrule.functions import (  # noqa: A004
    add, amax, amin, argmax, argmin, cat, clamp, index_select, stack, detach, div, eq, flatten, ge, gt,
    argsort, cumprod, cumsum, gather, scatter, scatter_add, sort, topk,
    is_tensor, le, log_softmax, lt, matmul, max, maximum, mean, min, minimum, mul, ne, neg,
    numel, permute, pow, reshape, softmax, squeeze, sub, sum, transpose, unsqueeze, where,
)
from chainrule.composites import (  # noqa: E402
    bmm, chunk, diagonal, einsum, flip, masked_fill, mm, narrow, norm, split, std, std_mean, unbind, var,
    var_mean,
)
from chainrule import autograd, distributed, linalg, nn, optim, random, utils  # noqa: E402
from chainrule.serialization import load, save  # noqa: E402
from chainrule import accelerator, backends, cuda  # noqa: E402
from chainrule._device import device, get_default_device, set_default_device  # noqa: E402
from chainrule.compiler import compile  # noqa: E402, A004

__version__ = _core.__version__

# PyTorch's aliases
float = float32  # noqa: A001
double = float64
long = int64
clip = clamp


def set_num_threads(n: int) -> None:
    """Sets how many threads the C++ kernels may use (they use fewer on small inputs)."""
    if not isinstance(n, _numbers.Integral):
        raise TypeError(f"set_num_threads: expected an int, got {type(n).__name__}")
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    return _core.get_num_threads()


def show_config() -> None:
    """Prints the version, compiler, OpenMP threads, the SIMD kernels chosen at run time and the
    cache sizes the matrix product blocks for."""
    print(f"chainrule {__version__}")
    print(f"  compiler:        {_core.compiler}")
    if _set_spin_count:
        waiting = "threads spin briefly, then sleep (GOMP_SPINCOUNT=300)"
    else:
        waiting = (f"OMP_WAIT_POLICY={_os.environ.get('OMP_WAIT_POLICY', '')}, "
                   f"GOMP_SPINCOUNT={_os.environ.get('GOMP_SPINCOUNT', '')}")
    print(f"  OpenMP:          {_core.openmp_version}, {_core.get_num_threads()} threads, {waiting}")
    print(f"  SIMD kernels:    {_core.active_isa()} (CPU supports: "
          f"{', '.join(i for i in ('generic', 'avx2', 'avx512') if _core.cpu_supports(i))}; "
          f"set CHAINRULE_ISA to choose)")
    def sizes(caches: tuple[int, int, int]) -> str:
        l1, l2, l3 = caches
        return f"L1d {l1 >> 10} KiB, L2 {l2 >> 10} KiB, L3 {l3 / 2**20:g} MiB"

    used, detected = _core.cache_sizes(), _core.detected_cache_sizes()
    if used == detected:
        print(f"  caches:          {sizes(used)} (GEMM blocking; set CHAINRULE_CACHE_SIZES to choose)")
    else:
        print(f"  caches:          {sizes(used)} (GEMM blocking, from CHAINRULE_CACHE_SIZES; "
              f"the CPU's: {sizes(detected)})")
from chainrule import viz  # noqa: E402

# The public names, for `from chainrule import *` and for type checkers (py.typed: a strict
# checker sees only what is listed here). tests/test_typing.py keeps it in step with the module.
__all__ = [
    "Tensor", "dtype", "bool", "float32", "float64", "int64", "float", "double", "long",
    "enable_grad", "inference_mode", "is_grad_enabled", "is_inference_mode_enabled", "no_grad",
    "set_grad_enabled",
    "Generator", "default_generator", "get_rng_state", "seed", "set_rng_state",
    "arange", "as_tensor", "empty", "empty_like", "eye", "from_dlpack", "from_numpy", "full",
    "full_like", "initial_seed", "linspace", "manual_seed", "ones", "ones_like", "rand",
    "randint", "randn", "randperm", "tensor", "zeros", "zeros_like",
    "add", "amax", "amin", "argmax", "argmin", "cat", "clamp", "clip",
    "index_select", "stack", "detach", "div", "eq", "flatten", "ge", "gt", "is_tensor",
    "le", "log_softmax", "lt", "matmul", "max", "maximum", "mean", "min", "minimum", "mul",
    "ne", "neg", "numel", "permute", "pow", "reshape", "softmax",
    "squeeze", "sub", "sum", "transpose", "unsqueeze", "where",
    "bmm", "chunk", "diagonal", "einsum", "flip", "masked_fill", "mm", "narrow", "norm", "split", "std",
    "std_mean", "unbind", "var", "var_mean",
    "argsort", "cumprod", "cumsum", "gather", "scatter", "scatter_add", "sort", "topk",
    "autograd", "distributed", "linalg", "nn", "optim", "random", "utils", "viz", "load", "save",
    "set_num_threads", "get_num_threads", "show_config", "compile",
    "accelerator", "backends", "cuda", "device", "get_default_device", "set_default_device",
]

# The functions made from the op table (chainrule/ops): at run time from the table itself,
# for type checkers from the region below (`python -m chainrule.ops.stubs` writes it).
from chainrule import functions as _functions, ops as _ops  # noqa: E402

globals().update({_name: getattr(_functions, _name) for _name in _ops.names("function")})
__all__ += _ops.names("function")
if _TYPE_CHECKING:
    # op table: generated by `python -m chainrule.ops.stubs`; do not edit
    from chainrule.functions import abs as abs
    from chainrule.functions import cos as cos
    from chainrule.functions import erf as erf
    from chainrule.functions import exp as exp
    from chainrule.functions import log as log
    from chainrule.functions import relu as relu
    from chainrule.functions import sigmoid as sigmoid
    from chainrule.functions import sin as sin
    from chainrule.functions import softplus as softplus
    from chainrule.functions import sqrt as sqrt
    from chainrule.functions import square as square
    from chainrule.functions import tanh as tanh
    # end of op table
    pass
