"""`cr.cuda`, as a CPU-only PyTorch answers it: no CUDA device exists.

Scripts written for a GPU ask `cuda.is_available()` and pick "cpu" when it is False; they seed
with `cuda.manual_seed_all`, which with no device to seed does nothing (as in PyTorch).
"""
from __future__ import annotations


def is_available() -> bool:
    """False: chainrule has no CUDA backend.

    >>> import chainrule as cr
    >>> "cuda" if cr.cuda.is_available() else "cpu"
    'cpu'
    """
    return False


def device_count() -> int:
    """0: no CUDA device."""
    return 0


def manual_seed(seed: int) -> None:
    """Seeds the generators of the CUDA devices: there are none, so nothing happens."""


def manual_seed_all(seed: int) -> None:
    """Seeds the generators of every CUDA device: there are none, so nothing happens."""
