"""`cr.accelerator`, PyTorch's device-agnostic view of the accelerator: none exists here, so
`current_accelerator()` is None, as on a CPU-only PyTorch build.

>>> import chainrule as cr
>>> cr.accelerator.is_available(), cr.accelerator.current_accelerator()
(False, None)
"""
from __future__ import annotations

from typing import Any


def is_available() -> bool:
    """False: chainrule computes on the CPU only."""
    return False


def current_accelerator(check_available: bool = False) -> Any:
    """None: there is no accelerator (PyTorch's answer on a CPU build)."""
    return None


def device_count() -> int:
    """0: no accelerator device."""
    return 0
