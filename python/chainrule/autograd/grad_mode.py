"""Whether operations record a graph: a thread-local switch, as in PyTorch."""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable, TypeVar

from chainrule import _core

F = TypeVar("F", bound=Callable[..., Any])

# The switch itself is a C thread-local (read by every recorded op): _core.is_grad_enabled()
# and _core.set_grad_enabled(flag).
_get = _core.is_grad_enabled
_set = _core.set_grad_enabled


def is_grad_enabled() -> bool:
    """True when operations on tensors that require grad record a graph.

    >>> import chainrule as cr
    >>> with cr.no_grad():
    ...     cr.is_grad_enabled()
    False
    """
    return _get()


class _GradModeScope:
    """Grad mode inside a `with` block or a decorated function, restored after."""

    def __init__(self, mode: bool) -> None:
        self.mode = mode
        self.previous: list[bool] = []

    def __enter__(self) -> None:
        self.previous.append(_get())
        _set(self.mode)

    def __exit__(self, *exc: object) -> None:
        _set(self.previous.pop())

    def __call__(self, fn: F) -> F:
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _GradModeScope(mode):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class set_grad_enabled(_GradModeScope):
    """Turns graph recording on or off: at once when called (`cr.set_grad_enabled(False)`), or
    for a `with` block or a decorated function, as in PyTorch."""

    def __init__(self, mode: bool) -> None:
        super().__init__(bool(mode))
        self.before = _get()
        _set(self.mode)  # takes effect now, like torch.set_grad_enabled(False)

    def __enter__(self) -> None:
        self.previous.append(self.before)  # restore what was there before the call

    def __call__(self, fn: F) -> F:
        _set(self.before)  # as a decorator it only applies inside the function
        return super().__call__(fn)


class no_grad(_GradModeScope):
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


class enable_grad(_GradModeScope):
    """Records the graph again inside a `no_grad` block."""

    def __init__(self) -> None:
        super().__init__(True)


_inference = threading.local()  # the inference-mode depth of this thread


def is_inference_mode_enabled() -> bool:
    """True inside `cr.inference_mode()`."""
    return getattr(_inference, "depth", 0) > 0


class inference_mode(_GradModeScope):
    """`no_grad` for code that will never need gradients (evaluation, serving): records no
    graph inside, as a `with` block or a decorator (`@cr.inference_mode()` or
    `@cr.inference_mode`). `inference_mode(False)` changes nothing, as in PyTorch.

    PyTorch also marks the results as inference tensors that autograd refuses later; chainrule
    has no such mark, so results are ordinary tensors that do not require grad.

    >>> import chainrule as cr
    >>> w = cr.ones(2, requires_grad=True)
    >>> with cr.inference_mode():
    ...     y = w * 2
    >>> y.requires_grad, cr.is_inference_mode_enabled()
    (False, False)
    """

    def __new__(cls, mode: Any = True) -> Any:
        if isinstance(mode, bool):
            return super().__new__(cls)
        return cls()(mode)  # used bare as a decorator: @cr.inference_mode

    def __init__(self, mode: bool = True) -> None:
        super().__init__(False)
        self.enabled = mode

    def __enter__(self) -> None:
        if self.enabled:
            super().__enter__()
            _inference.depth = getattr(_inference, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            _inference.depth -= 1
            super().__exit__()

    def __call__(self, fn: F) -> F:
        enabled = self.enabled

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with inference_mode(enabled):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
