"""cr.save / cr.load: a dict of name -> Tensor in the safetensors format.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
length N, N bytes of JSON mapping each name to {"dtype", "shape", "data_offsets": [begin,
end]} (offsets into the data that follows; an optional "__metadata__" maps str -> str), then
the tensors' bytes, little-endian, row-major, back to back. Files written here load with
`safetensors.numpy.load_file`, and files it writes load here.
"""
from __future__ import annotations

import json
import math
import os
import stat
import struct
from typing import Any

import numpy as np

from chainrule.tensor import Tensor

_CODES = {"float32": "F32", "float64": "F64", "int64": "I64", "bool": "BOOL"}
_NUMPY = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8"),
          "BOOL": np.dtype(np.bool_)}
# Every dtype code of the safetensors format: a file may hold ones chainrule does not.
_SAFETENSORS_CODES = {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
                      "I32", "U32", "F32", "F64", "I64", "U64"}


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
    _check_path(path, "save")
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


def _check_path(path: Any, op: str) -> str | bytes | os.PathLike[str]:
    """A file name; open() would take an int for a file descriptor to take over (and close)."""
    if isinstance(path, bool) or not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{op}: expected a file path (str or os.PathLike), got "
                        f"{type(path).__name__}")
    return path


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads hook: JSON allows a name twice (the last one wins); a tensor file must not."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"load: header: the key {key!r} appears more than once")
        out[key] = value
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_header(raw: bytes, data_size: int) -> list[tuple[str, str, tuple[int, ...], int, int]]:
    """Validates the whole header before any tensor byte is read: the JSON object, each entry's
    dtype, shape and data_offsets, and that the entries tile the data region exactly (in range,
    back to back, no overlap, nothing left over). Returns (name, dtype code, shape, begin, end)
    per tensor, in the file's order. ValueError naming the entry and the field otherwise."""
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"load: header: not valid UTF-8 JSON ({error})") from None
    # A malformed file is a ValueError (the file's content is wrong), not a TypeError.
    if not isinstance(header, dict):
        got = type(header).__name__
        raise ValueError(f"load: header: expected a JSON object, got {got}")  # noqa: TRY004
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise ValueError("load: header: '__metadata__' must map strings to strings")
            continue
        where = f"load: header entry {name!r}"
        if not isinstance(info, dict):
            raise ValueError(f"{where}: expected an object with dtype, shape and "  # noqa: TRY004
                             f"data_offsets, got {type(info).__name__}")
        for field in ("dtype", "shape", "data_offsets"):
            if field not in info:
                raise ValueError(f"{where}: the field {field!r} is missing")
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(code, str) or code not in _SAFETENSORS_CODES:
            raise ValueError(f"{where}: field 'dtype' is {code!r}, not a safetensors dtype")
        if code not in _NUMPY:
            raise TypeError(f"{where}: dtype {code}, which chainrule does not hold "
                            "(F32, F64, I64 and BOOL are supported)")
        if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape):
            raise ValueError(f"{where}: field 'shape' must be a list of non-negative ints, got "
                             f"{shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(_is_int(o) for o in offsets)):
            raise ValueError(f"{where}: field 'data_offsets' must be a list of two ints, got "
                             f"{offsets!r}")
        begin, end = offsets
        nbytes = math.prod(shape) * _NUMPY[code].itemsize  # Python ints: no overflow
        if not 0 <= begin <= end <= data_size:
            raise ValueError(f"{where}: field 'data_offsets' {offsets} is outside the data "
                             f"region of {data_size} bytes")
        if end - begin != nbytes:
            raise ValueError(f"{where}: field 'data_offsets' {offsets} spans {end - begin} bytes "
                             f"but shape {shape} of {code} needs {nbytes}")
        entries.append((name, code, tuple(shape), begin, end))
    # The tensors must tile the data region: sorted by position, each starts where the last
    # ended (a gap or an overlap is a corrupt or hostile file), and the last ends at the end.
    position, previous = 0, None
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin != position:
            kind = "overlaps" if begin < position else "leaves a gap after"
            raise ValueError(f"load: header entry {name!r}: field 'data_offsets' starts at "
                             f"{begin}, so it {kind} {previous!r} (which ends at {position})")
        position, previous = end, name
    if position != data_size:
        raise ValueError(f"load: header: the tensors cover {position} bytes of the "
                         f"{data_size}-byte data region")
    return entries


def load(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Reads a safetensors file into a dict of name -> Tensor (float32/float64/int64/bool).

    Only a regular file is read. The header's length is checked against the file's size and
    the whole header is validated before any tensor data is read (ValueError starting with
    'load:' and naming the field for a malformed file).
    """
    from chainrule.creation import tensor

    _check_path(path, "load")
    # A FIFO, a device or a directory is refused before open() (opening a FIFO blocks, and a
    # device such as /dev/zero never ends); fstat after open closes the race with a rename.
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(f"load: {path!r} is not a regular file")
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"load: {path!r} is not a regular file")
        size = info.st_size
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f"load: {path!r} is too short to be a safetensors file "
                             f"({size} bytes; the header length alone takes 8)")
        (length,) = struct.unpack("<Q", prefix)
        if length > size - 8:
            raise ValueError(f"load: header length {length} reaches beyond the end of {path!r} "
                             f"({size} bytes)")
        raw_header = f.read(length)
        data_size = size - 8 - length
        entries = _parse_header(raw_header, data_size)
        data = f.read(data_size)
    if len(raw_header) != length or len(data) != data_size:
        raise ValueError(f"load: {path!r} changed size while it was read")
    result: dict[str, Tensor] = {}
    for name, code, shape, begin, end in entries:
        item = _NUMPY[code]
        array = np.frombuffer(data, dtype=item, count=(end - begin) // item.itemsize,
                              offset=begin).reshape(shape)
        result[name] = tensor(array)
    return result
