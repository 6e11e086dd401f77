"""Data (numbers, nested lists, NumPy arrays, Tensors) to a new array: the one conversion
`cr.tensor`, `Tensor(...)` and the ops' operand handling share. Below tensor.py and
creation.py, so both import it at their top."""
from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import _core
from chainrule._dtype import bool as bool_
from chainrule._dtype import dtype_of_numpy, float32, int64, to_dtype

C = _core


def to_array(data: Any, dtype: Any = None) -> _core.Tensor:
    """A copy of `data` as a `_core.Tensor`: Python floats give float32, ints int64, bools
    bool; a NumPy array or a Tensor keeps its dtype unless `dtype` is given."""
    if isinstance(data, C.TensorBase):
        array = data._data.numpy()
        inferred = data.dtype
    elif isinstance(data, np.ndarray):
        array = data
        inferred = dtype_of_numpy(array)
    else:
        try:
            array = np.array(data)
        except ValueError as error:
            raise ValueError(f"tensor: the data is ragged or malformed (nested lists must have "
                             f"equal lengths at every level): {error}") from None
        except OverflowError as error:
            raise ValueError(f"tensor: a number does not fit in int64 ({error})") from None
        _check_int64_range(data, array)
        if array.dtype.kind == "f":
            inferred = float32  # Python floats are float32 in chainrule, as in PyTorch
        elif array.dtype.kind in "iu":
            inferred = int64
        elif array.dtype.kind == "b":
            inferred = bool_
        elif array.dtype.kind == "O" and _is_ragged(data):
            raise ValueError("tensor: the data is ragged (nested lists must have equal lengths at "
                             "every level)")
        else:
            raise TypeError(f"tensor: cannot make a tensor from data of type "
                            f"{_describe(data)} (expected numbers or bools)")
    target = inferred if dtype is None else to_dtype(dtype)
    if array.dtype.kind == "u" and target == int64 and array.size and int(array.max()) >= 2**63:
        # NumPy's cast would wrap 2**64 - 1 to -1; a Python int that large raises too
        raise ValueError(f"tensor: the integer {int(array.max())} (of a {array.dtype} array) "
                         "does not fit in int64")
    wanted = C.numpy_dtype(target)
    if array.dtype == wanted and array.dtype.isnative and array.flags.writeable:
        # One copy, straight into chainrule's own storage (large ones on huge pages, which a
        # kernel streaming through them reads faster than NumPy's allocation).
        return C.from_numpy(array).clone()
    return C.from_numpy(np.array(array, dtype=wanted, copy=True, order="C"))


def _check_int64_range(data: Any, array: np.ndarray) -> None:
    """Python ints that int64 cannot hold make NumPy pick uint64, float64 or object arrays:
    refuse them rather than wrap around or round."""
    suspicious = array.dtype.kind == "u" or array.dtype.kind == "O" or (
        array.dtype.kind == "f" and array.size and float(np.max(np.abs(array))) >= 2.0**63)
    if not suspicious:
        return
    leaves = np.array(data, dtype=object).reshape(-1) if array.ndim else [data]
    for leaf in leaves:
        if isinstance(leaf, int) and not isinstance(leaf, bool) and not -(2**63) <= leaf < 2**63:
            raise ValueError(f"tensor: the integer {leaf} does not fit in int64")


def _is_ragged(data: Any) -> bool:
    if not isinstance(data, (list, tuple)):
        return False
    lengths = {len(x) if isinstance(x, (list, tuple)) else -1 for x in data}
    return len(lengths) > 1 or any(_is_ragged(x) for x in data)


def _describe(data: Any) -> str:
    if isinstance(data, (list, tuple)):
        inner = {type(x).__name__ for x in np.array(data, dtype=object).reshape(-1)}
        return f"{type(data).__name__} of {', '.join(sorted(inner))}"
    return type(data).__name__


