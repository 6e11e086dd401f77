"""`Variable`: PyTorch's deprecated wrapper from before tensors carried gradients. As in
PyTorch today, `Variable(t, requires_grad=...)` simply returns a tensor."""
from __future__ import annotations

from typing import Any


class _VariableMeta(type):
    def __instancecheck__(cls, instance: Any) -> bool:
        from chainrule.tensor import Tensor  # tensor.py imports autograd: only at call time

        return isinstance(instance, Tensor)


class Variable(metaclass=_VariableMeta):
    """`Variable(t, requires_grad=False)` is a new leaf tensor sharing `t`'s data (PyTorch's
    legacy constructor); `isinstance(x, Variable)` holds for any tensor.

    >>> import chainrule as cr
    >>> from chainrule.autograd import Variable
    >>> x = Variable(cr.ones(2), requires_grad=True)
    >>> isinstance(x, cr.Tensor), x.requires_grad, x.is_leaf
    (True, True, True)
    """

    def __new__(cls, data: Any = None, requires_grad: bool = False, volatile: bool = False) -> Any:
        from chainrule.tensor import Tensor

        if data is None:
            return Tensor([])
        if not isinstance(data, Tensor):
            raise TypeError(f"Variable data has to be a tensor, but got {type(data).__name__}")
        # PyTorch's legacy constructor makes a new leaf sharing the data, even of a non-leaf
        return data.detach().requires_grad_(requires_grad)
