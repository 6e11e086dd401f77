"""Devices, in PyTorch's spelling, telling the truth: chainrule computes on the CPU only.

`cr.device("cpu")` and `cr.device("cpu:0")` exist; any other device PyTorch knows ("cuda",
"mps", ...) raises `DeviceUnavailableError` (a RuntimeError, and a ValueError as API.md names
for an unavailable device) saying so, and a string PyTorch would not parse raises RuntimeError
as PyTorch does. So does `set_default_device` of anything but the CPU.
"""
from __future__ import annotations

from typing import Any

# The device types PyTorch parses (torch.device's error message lists them).
_KNOWN_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve",
                "fpga", "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone")


class DeviceUnavailableError(RuntimeError, ValueError):
    """A device other than the CPU was asked for: chainrule has no GPU (or other accelerator)
    backend. A RuntimeError as a CPU-only PyTorch raises for CUDA, and a ValueError as API.md
    promises for an unavailable device."""


def _unavailable(name: str) -> DeviceUnavailableError:
    return DeviceUnavailableError(
        f"device {name!r} is not available: chainrule computes on the CPU only "
        f"(cr.cuda.is_available() is False; use 'cpu')")


class device:
    """A device: only the CPU exists. `type` is "cpu", `index` None or 0.

    >>> import chainrule as cr
    >>> cr.device("cpu"), str(cr.device("cpu", 0)), cr.zeros(1).device == cr.device("cpu")
    (device(type='cpu'), 'cpu:0', True)
    """

    __slots__ = ("index", "type")
    type: str
    index: int | None

    def __init__(self, type: Any, index: int | None = None) -> None:
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device: an index cannot be given with a device")
            type, index = type.type, type.index
        elif isinstance(type, int) and not isinstance(type, bool):
            raise _unavailable(f"cuda:{type}")  # a bare int means a CUDA device in PyTorch
        elif not isinstance(type, str):
            raise TypeError(f"device: expected a str, a device or an int, got {type.__class__.__name__}")
        name, _, suffix = type.partition(":")
        if name not in _KNOWN_TYPES:
            raise RuntimeError(f"Expected one of {', '.join(_KNOWN_TYPES)} device type at start of "
                               f"device string: {type}")
        if suffix:
            if index is not None:
                raise RuntimeError(f"device: type {type!r} already holds an index; got index={index} too")
            if not (suffix.isascii() and suffix.isdigit()):
                raise RuntimeError(f"Invalid device string: '{type}'")
            index = int(suffix)
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int):
                raise TypeError(f"device: the index must be an int, got {index.__class__.__name__}")
            if index < 0:
                raise RuntimeError(f"Device index must not be negative, got {index}")
        if name != "cpu":
            raise _unavailable(type if index is None or suffix else f"{name}:{index}")
        object.__setattr__(self, "type", name)
        object.__setattr__(self, "index", index)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("device objects are immutable")

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other: object) -> bool:
        # Beyond PyTorch (where device("cpu") == "cpu" is False): a string compares by its
        # spelling, so that code written for `t.device == "cpu"` keeps working.
        if isinstance(other, str):
            return str(self) == other
        if isinstance(other, device):
            return (self.type, self.index) == (other.type, other.index)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (device, (self.type, self.index))

    # `with cr.device("cpu"):` makes it the default device inside, as in PyTorch; the CPU is
    # the only device, so the block runs as it would without.
    def __enter__(self) -> device:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


CPU = device("cpu")


def is_device(value: Any) -> bool:
    """Whether `value` names a device (a device, a string of a device type, or an int: a CUDA
    device's index), as `Tensor.to` and `Module.to` tell a device argument from a dtype."""
    if isinstance(value, int):
        return not isinstance(value, bool)
    return isinstance(value, device) or (isinstance(value, str) and value.partition(":")[0] in _KNOWN_TYPES)


def check_device(value: Any) -> None:
    """Accepts None and the CPU in any spelling; any other device raises (see `device`)."""
    if value is not None:
        device(value)


def set_default_device(value: Any) -> None:
    """PyTorch's default device for new tensors: only the CPU (or None, the default) exists.

    >>> import chainrule as cr
    >>> cr.set_default_device("cpu"); cr.get_default_device()
    device(type='cpu')
    """
    check_device(value)


def get_default_device() -> device:
    """The device new tensors are made on: always the CPU."""
    return CPU
