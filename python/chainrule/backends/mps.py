"""Metal Performance Shaders (Apple GPUs): neither built nor available."""
from __future__ import annotations


def is_available() -> bool:
    """False: chainrule has no MPS backend."""
    return False


def is_built() -> bool:
    """False: chainrule was not built with MPS."""
    return False
