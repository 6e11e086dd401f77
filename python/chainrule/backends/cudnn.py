"""cuDNN, NVIDIA's GPU kernels: not available. The flags PyTorch scripts set are kept, with
PyTorch's defaults, and change nothing (chainrule computes on the CPU)."""
from __future__ import annotations

enabled = True
benchmark = False
deterministic = False


def is_available() -> bool:
    """False: chainrule has no cuDNN.

    >>> import chainrule as cr
    >>> cr.backends.cudnn.is_available()
    False
    """
    return False


def version() -> None:
    """None: no cuDNN library is loaded (PyTorch's answer without one)."""
