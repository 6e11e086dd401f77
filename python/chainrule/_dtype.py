"""The four dtypes and the conversions between their spellings (ours, NumPy's, Python's)."""
from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from chainrule import _core

dtype = _core.DType
# Printed as PyTorch prints its dtypes: chainrule.float32
dtype.__repr__ = dtype.__str__ = lambda self: f"chainrule.{self.name}"  # type: ignore[method-assign]
# The very objects that Tensor.dtype returns, so `t.dtype is cr.float32` holds.
bool, int64, float32, float64 = _core.DTYPES  # noqa: A001  (PyTorch's spelling: cr.bool)

_BY_NUMPY = {
    np.dtype(np.float32): float32,
    np.dtype(np.float64): float64,
    np.dtype(np.int64): int64,
    np.dtype(np.bool_): bool,
}


def to_dtype(value: Any) -> _core.DType:
    """Any accepted spelling of a dtype as a chainrule dtype.

    >>> to_dtype("float64"), to_dtype(np.float32), to_dtype(float)
    (chainrule.float64, chainrule.float32, chainrule.float32)
    """
    if isinstance(value, _core.DType):
        return value
    if value is builtins.float:
        return float32
    if value is builtins.int:
        return int64
    if value is builtins.bool:
        return bool
    if isinstance(value, str):
        names = {"float": float32, "float32": float32, "double": float64, "float64": float64,
                 "long": int64, "int64": int64, "bool": bool}
        if value in names:
            return names[value]
        raise TypeError(f"unknown dtype {value!r} (expected float32, float64, int64 or bool)")
    try:
        return _BY_NUMPY[np.dtype(value)]
    except (TypeError, KeyError):
        raise TypeError(f"unsupported dtype {value!r} (expected float32, float64, int64 or bool)")


def dtype_of_numpy(array: np.ndarray) -> _core.DType:
    """The dtype a NumPy array becomes in `cr.tensor`: other integer types give int64."""
    found = _BY_NUMPY.get(array.dtype)
    if found is not None:
        return found
    if array.dtype.kind in "iu":
        return int64
    if array.dtype.kind == "f":
        return float64 if array.dtype.itemsize > 4 else float32
    raise TypeError(f"tensor: cannot make a tensor from data of NumPy dtype {array.dtype} "
                    "(expected numbers or bools)")
