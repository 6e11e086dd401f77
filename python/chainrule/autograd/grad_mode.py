"""Whether operations record a graph: a thread-local switch, as in PyTorch."""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class _GradMode(threading.local):
    enabled = True


state = _GradMode()


def is_grad_enabled() -> bool:
    """True when operations on tensors that require grad record a graph.

    >>> import chainrule as cr
    >>> with cr.no_grad():
    ...     cr.is_grad_enabled()
    False
    """
    return state.enabled


class set_grad_enabled:
    """Turns graph recording on or off, as a context manager or a decorator."""

    def __init__(self, mode: bool) -> None:
        self.mode = mode
        self.previous: list[bool] = []

    def __enter__(self) -> None:
        self.previous.append(state.enabled)
        state.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        state.enabled = self.previous.pop()

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(self.mode):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(set_grad_enabled):
    """Records no graph inside: results do not require grad.

    >>> import chainrule as cr
    >>> w = cr.ones(2, requires_grad=True)
    >>> with cr.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    def __init__(self) -> None:
        super().__init__(False)

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class enable_grad(set_grad_enabled):
    """Records the graph again inside a `no_grad` block."""

    def __init__(self) -> None:
        super().__init__(True)
