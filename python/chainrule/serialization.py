"""cr.save / cr.load: a dict of name -> Tensor in the safetensors format.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
length N, N bytes of JSON mapping each name to {"dtype", "shape", "data_offsets": [begin,
end]} (offsets into the data that follows; an optional "__metadata__" maps str -> str), then
the tensors' bytes, little-endian, row-major, back to back. Files written here load with
`safetensors.numpy.load_file`, and files it writes load here.
"""
from __future__ import annotations

import json
import os
import struct
from typing import Any

import numpy as np

from chainrule.tensor import Tensor

_CODES = {"float32": "F32", "float64": "F64", "int64": "I64", "bool": "BOOL"}
_NUMPY = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8"),
          "BOOL": np.dtype(np.bool_)}


def save(state_dict: dict[str, Tensor], path: str | os.PathLike[str],
         metadata: dict[str, str] | None = None) -> None:
    """Writes tensors to `path` in the safetensors format.

    >>> import chainrule as cr, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> cr.save({"w": cr.ones(2, 2)}, path)
    >>> cr.load(path)["w"].shape
    (2, 2)
    """
    if not isinstance(state_dict, dict):
        raise TypeError(f"save: expected a dict of name -> Tensor, got {type(state_dict).__name__}")
    header: dict[str, Any] = {}
    arrays = []
    offset = 0
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"save: names must be str, got {name!r}")
        if not isinstance(value, Tensor):
            raise TypeError(f"save: {name!r} is a {type(value).__name__}, not a Tensor")
        # np.array (not ascontiguousarray, which makes 0-d arrays 1-d) keeps the shape exactly.
        array = np.array(value.detach().numpy(), dtype=_NUMPY[_CODES[value.dtype.name]], order="C")
        header[name] = {"dtype": _CODES[value.dtype.name], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        arrays.append(array)
        offset += array.nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for array in arrays:
            f.write(array.tobytes())


def load(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Reads a safetensors file into a dict of name -> Tensor (float32/float64/int64/bool)."""
    from chainrule.creation import tensor

    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"load: {path} is too short to be a safetensors file")
    (length,) = struct.unpack("<Q", raw[:8])
    if length > len(raw) - 8:
        raise ValueError(f"load: {path} has a header length of {length} bytes beyond the file's end")
    try:
        header = json.loads(raw[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"load: {path} has a malformed header: {error}") from None
    data = memoryview(raw)[8 + length:]
    result: dict[str, Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        code = info.get("dtype")
        if code not in _NUMPY:
            raise TypeError(f"load: {name!r} has dtype {code}, which chainrule does not hold "
                            "(F32, F64, I64 and BOOL are supported)")
        begin, end = info["data_offsets"]
        shape = tuple(int(s) for s in info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if not 0 <= begin <= end <= len(data) or end - begin != count * _NUMPY[code].itemsize:
            raise ValueError(f"load: {name!r} has data offsets {[begin, end]} that do not fit "
                             f"its shape {shape} and dtype {code} in {path}")
        array = np.frombuffer(data[begin:end], dtype=_NUMPY[code]).reshape(shape)
        result[name] = tensor(array)
    return result
