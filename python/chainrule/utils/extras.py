"""Optional packages that examples and extras use, asked for in one place.

`import chainrule` needs NumPy only. An example that wants scikit-learn's data or tqdm's progress
bars asks here: a missing package ends the script with one line that says what to install (never
a traceback), and progress bars fall back to the plain lines the examples print anyway.

>>> from chainrule.utils.extras import progress
>>> [x for x in progress(range(3), desc="demo", enabled=False)]
[0, 1, 2]
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TypeVar

T = TypeVar("T")

EXAMPLES_EXTRA = 'pip install "chainrule[examples]" (from a checkout: pip install ".[examples]")'


def require(module: str, *, package: str = "", install: str = EXAMPLES_EXTRA) -> ModuleType:
    """The module, or SystemExit with one line naming the script, the package (its name on PyPI
    when that differs from the import name, as scikit-learn's does) and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        script = Path(sys.argv[0]).name or "chainrule"
        name = package or module.split(".")[0]
        raise SystemExit(f"{script}: needs {name}, which is not installed: {install}") from None


def progress(iterable: Iterable[T], *, desc: str = "", enabled: bool = True) -> Iterator[T]:
    """tqdm's progress bar over `iterable` when tqdm is installed and `enabled`, else the items
    as they are (the caller's own per-epoch lines are the progress report then)."""
    if enabled:
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return iter(tqdm(iterable, desc=desc, leave=False))
    return iter(iterable)
