"""The optional peers of the test suite, imported once, each None when it is not installed.

`pip install ".[test]"` does not bring PyTorch (a large download), so every comparison with it
must skip, never fail, without it; the NumPy oracle beside it still runs. Test modules take
optional packages from here (or `pytest.importorskip` inside a test), never with a module-level
`import torch`: `tests/test_optional_imports.py` fails on one.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Optional

import pytest


def load(name: str) -> Optional[ModuleType]:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


torch = load("torch")

# For tests whose only oracle is PyTorch (its repr, its error types).
requires_torch = pytest.mark.skipif(
    torch is None, reason="PyTorch is not installed (pip install torch==2.13.0 to compare with it)")
