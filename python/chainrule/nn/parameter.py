"""Parameter: a leaf tensor that a Module registers and trains."""
from __future__ import annotations

from typing import Any

from chainrule.creation import empty
from chainrule.tensor import Tensor, _new


class Parameter(Tensor):
    """A leaf Tensor with requires_grad=True, registered by assignment to a Module attribute.

    >>> import chainrule as cr
    >>> p = cr.nn.Parameter(cr.zeros(2))
    >>> p.requires_grad, p.is_leaf
    (True, True)
    """

    __slots__ = ()

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True) -> Parameter:
        source = empty(0) if data is None else data
        p = _new(cls)
        p._data = source._data  # shares storage, as torch.nn.Parameter does
        p.grad_fn = None
        p._requires_grad = False
        p._grad = None
        p._hooks = None
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        pass

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
