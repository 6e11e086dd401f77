"""Every Tensor op as a function of the package too: `cr.exp(t)`, `cr.add(a, b)`, ..."""
from __future__ import annotations

from typing import Any

from chainrule import _core, ops
from chainrule.tensor import Tensor, _tensor_operand, apply, cat, maximum, minimum, stack  # noqa: F401


C = _core


def _t(x: Any, op: str) -> Tensor:
    return _tensor_operand(x, op)


def add(input: Any, other: Any) -> Tensor:
    """input + other, broadcasting."""
    return input + other if isinstance(input, Tensor) else _t(other, "add").__radd__(input)


def sub(input: Any, other: Any) -> Tensor:
    """input - other, broadcasting."""
    return input - other if isinstance(input, Tensor) else _t(other, "sub").__rsub__(input)


def mul(input: Any, other: Any) -> Tensor:
    """input * other, broadcasting."""
    return input * other if isinstance(input, Tensor) else _t(other, "mul").__rmul__(input)


def div(input: Any, other: Any) -> Tensor:
    """input / other (true division: integers give float32)."""
    return input / other if isinstance(input, Tensor) else _t(other, "div").__rtruediv__(input)


def pow(input: Any, exponent: Any) -> Tensor:  # noqa: A001
    """input ** exponent."""
    return input ** exponent if isinstance(input, Tensor) else _t(exponent, "pow").__rpow__(input)


def neg(input: Tensor) -> Tensor:
    return -_t(input, "neg")


def matmul(input: Tensor, other: Tensor) -> Tensor:
    """Matrix product as numpy.matmul: 1-D, 2-D and batched with broadcast batch dims.

    >>> import chainrule as cr
    >>> cr.matmul(cr.ones(2, 3), cr.ones(3)).tolist()
    [3.0, 3.0]
    """
    return _core.grad_matmul(_t(input, "matmul"), _t(other, "matmul"))


def eq(input: Tensor, other: Any) -> Tensor:
    return _t(input, "eq") == other


def ne(input: Tensor, other: Any) -> Tensor:
    return _t(input, "ne") != other


def lt(input: Tensor, other: Any) -> Tensor:
    return _t(input, "lt") < other


def le(input: Tensor, other: Any) -> Tensor:
    return _t(input, "le") <= other


def gt(input: Tensor, other: Any) -> Tensor:
    return _t(input, "gt") > other


def ge(input: Tensor, other: Any) -> Tensor:
    return _t(input, "ge") >= other


def exp(input: Tensor) -> Tensor:
    return C.grad_exp(input)


def log(input: Tensor) -> Tensor:
    return C.grad_log(input)


def sqrt(input: Tensor) -> Tensor:
    return _t(input, "sqrt").sqrt()


def abs(input: Tensor) -> Tensor:  # noqa: A001
    return _t(input, "abs").abs()


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + e^-x); its derivative is sigmoid(x) * (1 - sigmoid(x))."""
    return C.grad_sigmoid(input)


def tanh(input: Tensor) -> Tensor:
    return C.grad_tanh(input)


def relu(input: Tensor) -> Tensor:
    return C.grad_relu(input)


def sin(input: Tensor) -> Tensor:
    return _t(input, "sin").sin()


def cos(input: Tensor) -> Tensor:
    return _t(input, "cos").cos()


def square(input: Tensor) -> Tensor:
    return _t(input, "square").square()


def clamp(input: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    return _t(input, "clamp").clamp(min, max)


def softmax(input: Tensor, dim: int) -> Tensor:
    return _t(input, "softmax").softmax(dim)


def log_softmax(input: Tensor, dim: int) -> Tensor:
    return _t(input, "log_softmax").log_softmax(dim)


def where(condition: Tensor, input: Any, other: Any) -> Tensor:
    """Elements of input where condition is True, else of other (broadcasting)."""
    from chainrule.creation import as_tensor

    condition = _t(condition, "where")
    a = input if isinstance(input, Tensor) else as_tensor(input)
    b = other if isinstance(other, Tensor) else as_tensor(other)
    if not isinstance(input, Tensor) and b.dtype.is_floating_point:
        a = a.to(b.dtype)  # a Python number takes the tensor's float dtype
    if not isinstance(other, Tensor) and a.dtype.is_floating_point:
        b = b.to(a.dtype)
    return apply(ops.Where, condition, a, b)


def sum(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A001
    return _t(input, "sum").sum(dim, keepdim)


def mean(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _t(input, "mean").mean(dim, keepdim)


def amax(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _t(input, "amax").amax(dim, keepdim)


def amin(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _t(input, "amin").amin(dim, keepdim)


def max(input: Tensor, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001
    return _t(input, "max").max(dim, keepdim)


def min(input: Tensor, dim: Any = None, keepdim: bool = False) -> Any:  # noqa: A001
    return _t(input, "min").min(dim, keepdim)


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return _t(input, "argmax").argmax(dim, keepdim)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return _t(input, "argmin").argmin(dim, keepdim)


def reshape(input: Tensor, shape: Any) -> Tensor:
    return _t(input, "reshape").reshape(shape)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    return _t(input, "transpose").transpose(dim0, dim1)


def permute(input: Tensor, dims: Any) -> Tensor:
    return _t(input, "permute").permute(dims)


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return _t(input, "flatten").flatten(start_dim, end_dim)


def squeeze(input: Tensor, dim: int | None = None) -> Tensor:
    return _t(input, "squeeze").squeeze(dim)


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    return _t(input, "unsqueeze").unsqueeze(dim)


def detach(input: Tensor) -> Tensor:
    return _t(input, "detach").detach()


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:
    return _t(input, "numel").numel()


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    return _t(input, "index_select").index_select(dim, index)
