"""Making tensors: from data, from NumPy (shared), filled, ranges, random."""
from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import _core
from chainrule._convert import to_array
from chainrule._dtype import bool as bool_
from chainrule._dtype import float32, int64, to_dtype
from chainrule.random import Generator, native
from chainrule.tensor import Tensor, _shape, _sizes, _wrap, check_device

C = _core


def _allocate(op: str, fn: Any, *args: Any) -> _core.Tensor:
    """Calls a `_core` creation function; an allocation failure names the user's op."""
    try:
        return fn(*args)
    except MemoryError as error:
        raise MemoryError(f"{op}: {error}") from None


def _finish(data: _core.Tensor, requires_grad: bool) -> Tensor:
    t = _wrap(data)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A new tensor holding a copy of `data` (a number, nested lists, a NumPy array or a Tensor).

    Python floats give float32, ints int64, bools bool; a NumPy array keeps its dtype.

    >>> import chainrule as cr
    >>> cr.tensor([[1, 2], [3, 4]]).dtype
    chainrule.int64
    """
    check_device(device)
    return _finish(to_array(data, dtype), requires_grad)


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    """`data` as a tensor, without copying when it already is one of the right dtype."""
    if isinstance(data, Tensor) and (dtype is None or to_dtype(dtype) == data.dtype):
        return data
    return tensor(data, dtype=dtype)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with a NumPy array (float32, float64, int64 or bool).

    >>> import numpy as np, chainrule as cr
    >>> a = np.zeros(3, dtype=np.float32)
    >>> t = cr.from_numpy(a)
    >>> a[0] = 5
    >>> t[0].item()
    5.0
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return _wrap(C.from_numpy(array))


def from_dlpack(obj: Any) -> Tensor:
    """A tensor sharing memory with any DLPack producer on the CPU (NumPy, PyTorch, ...).

    >>> import numpy as np, chainrule as cr
    >>> a = np.arange(3.0)
    >>> t = cr.from_dlpack(a)
    >>> a[0] = 7; t[0].item()
    7.0
    """
    capsule = obj.__dlpack__() if hasattr(obj, "__dlpack__") else obj
    return _wrap(C.from_dlpack_capsule(capsule))


def _filled(shape: Any, value: Any, dtype: Any, requires_grad: bool, device: Any, op: str) -> Tensor:
    check_device(device)
    target = float32 if dtype is None else to_dtype(dtype)
    return _finish(_allocate(op, C.full, _sizes(shape, op), value, target), requires_grad)


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A tensor of zeros: `cr.zeros(2, 3)` or `cr.zeros((2, 3))`."""
    return _filled(size, 0, dtype, requires_grad, device, "zeros")


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A tensor of ones: `cr.ones(2, 3)`."""
    return _filled(size, 1, dtype, requires_grad, device, "ones")


def empty(*size: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """A tensor whose elements are not initialised: `cr.empty(2, 3)`."""
    check_device(device)
    target = float32 if dtype is None else to_dtype(dtype)
    return _finish(_allocate("empty", C.empty, _sizes(size, "empty"), target), requires_grad)


def full(size: Any, fill_value: Any, dtype: Any = None, requires_grad: bool = False,
         device: Any = None) -> Tensor:
    """A tensor filled with one value; its dtype follows the value (float -> float32).

    >>> import chainrule as cr
    >>> cr.full((2,), 7).dtype
    chainrule.int64
    """
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    if dtype is None:
        if isinstance(fill_value, (bool, np.bool_)):
            dtype = bool_
        elif isinstance(fill_value, (int, np.integer)):
            dtype = int64
        elif isinstance(fill_value, (float, np.floating)):
            dtype = float32
        else:
            raise TypeError(f"full: fill_value must be a number, got {type(fill_value).__name__}")
    size = size if isinstance(size, (tuple, list)) else (size,)
    return _filled(size, fill_value, dtype, requires_grad, device, "full")


def _like(input: Any, op: str) -> Tensor:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor as input, got {type(input).__name__}")
    return input


def zeros_like(input: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Zeros of input's shape (and dtype, unless given)."""
    t = _like(input, "zeros_like")
    return zeros(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad,
                 device=device)


def ones_like(input: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    """Ones of input's shape (and dtype, unless given)."""
    t = _like(input, "ones_like")
    return ones(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad,
                device=device)


def full_like(input: Tensor, fill_value: Any, dtype: Any = None, requires_grad: bool = False,
              device: Any = None) -> Tensor:
    t = _like(input, "full_like")
    return full(t.shape, fill_value, dtype=t.dtype if dtype is None else dtype,
                requires_grad=requires_grad, device=device)


def empty_like(input: Tensor, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Tensor:
    t = _like(input, "empty_like")
    return empty(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad,
                 device=device)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False,
        device: Any = None) -> Tensor:
    """The n x m identity matrix (m defaults to n)."""
    check_device(device)
    sizes = _sizes((n,) if m is None else (n, m), "eye")
    target = float32 if dtype is None else to_dtype(dtype)
    return _finish(C.eye(sizes[0], sizes[-1], target), requires_grad)


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: Any = None,
           requires_grad: bool = False, device: Any = None, end: Any = None) -> Tensor:
    """Values from start (inclusive) to end (exclusive) by step; int64 when all are ints.

    >>> import chainrule as cr
    >>> cr.arange(5).tolist()
    [0, 1, 2, 3, 4]
    """
    check_device(device)
    end = stop if end is None else end  # `end` is PyTorch's name for stop
    if end is None:
        start, end = 0, start
    for value in (start, end, step):
        if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
            raise TypeError(f"arange: start, end and step must be numbers, got {value!r}")
    all_ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    target = (int64 if all_ints else float32) if dtype is None else to_dtype(dtype)
    if all_ints and target == int64:
        for value in (start, end, step):
            if not -(2**63) <= value < 2**63:
                raise ValueError(f"arange: {value} does not fit in int64")
        return _finish(C.arange_int64(int(start), int(end), int(step)), requires_grad)  # exact
    return _finish(C.arange(float(start), float(end), float(step), target), requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None,
             requires_grad: bool = False, device: Any = None) -> Tensor:
    """`steps` evenly spaced values from start to end, both included."""
    check_device(device)
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool):
        raise TypeError(f"linspace: steps must be an int, got {steps!r}")
    if steps < 0:
        raise ValueError(f"linspace: steps must be non-negative, got {steps}")
    values = np.linspace(float(start), float(end), int(steps))
    return tensor(values, dtype=float32 if dtype is None else dtype, requires_grad=requires_grad)


def _float_dtype(dtype: Any, op: str) -> Any:
    target = float32 if dtype is None else to_dtype(dtype)
    if not target.is_floating_point:
        raise TypeError(f"{op}: expected a float dtype, got {target.name}")
    return target


def rand(*size: Any, generator: Generator | None = None, dtype: Any = None,
         requires_grad: bool = False, device: Any = None) -> Tensor:
    """Uniform random values in [0, 1), float32 by default, from `generator` (default: the
    one `cr.manual_seed` seeds)."""
    check_device(device)
    return _finish(_allocate("rand", C.rand, _sizes(size, "rand"), _float_dtype(dtype, "rand"),
                             native(generator, "rand")), requires_grad)


def randn(*size: Any, generator: Generator | None = None, dtype: Any = None,
          requires_grad: bool = False, device: Any = None) -> Tensor:
    """Standard normal random values, float32 by default, from `generator`."""
    check_device(device)
    return _finish(_allocate("randn", C.randn, _sizes(size, "randn"), _float_dtype(dtype, "randn"),
                             native(generator, "randn")), requires_grad)


def randint(low: int, high: Any = None, size: Any = None, *, generator: Generator | None = None,
            dtype: Any = None, device: Any = None) -> Tensor:
    """Random int64 values in [low, high): `cr.randint(0, 10, (3,))` or `cr.randint(10, (3,))`."""
    check_device(device)
    if size is None:
        if high is None:
            raise TypeError("randint: a size is required, as in randint(low, high, size)")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    for value in (low, high):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"randint: low and high must be ints, got {value!r}")
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"randint: {value} does not fit in int64")
    size = size if isinstance(size, (tuple, list)) else (size,)
    out = _wrap(C.randint(int(low), int(high), _sizes(size, "randint"), native(generator, "randint")))
    return out if dtype is None else out.to(dtype)


def randperm(n: int, *, generator: Generator | None = None, dtype: Any = None,
             device: Any = None) -> Tensor:
    """A random permutation of 0 .. n-1 (int64), from `generator`."""
    check_device(device)
    out = _wrap(C.randperm(_sizes((n,), "randperm")[0], native(generator, "randperm")))
    return out if dtype is None else out.to(dtype)
