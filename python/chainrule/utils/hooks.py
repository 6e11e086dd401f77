"""Handles that remove a registered hook, as PyTorch's `torch.utils.hooks.RemovableHandle`."""
from __future__ import annotations

import itertools
import weakref
from typing import Any

__all__ = ["RemovableHandle"]


class RemovableHandle:
    """Returned by `register_forward_hook` and friends: `handle.remove()` takes the hook out
    (again a no-op), and `with handle:` removes it at the block's end.

    The handle holds its hook dict weakly, so keeping a handle never keeps a module alive.
    """

    _next_id = itertools.count()

    def __init__(self, hooks_dict: dict[int, Any]) -> None:
        self.hooks_dict_ref = weakref.ref(hooks_dict)
        self.id = next(RemovableHandle._next_id)

    def remove(self) -> None:
        hooks_dict = self.hooks_dict_ref()
        if hooks_dict is not None:
            hooks_dict.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
