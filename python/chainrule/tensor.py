"""The Tensor: a `_core` array plus what autograd needs (requires_grad, grad, grad_fn).

Every op goes through `apply`: one `_core` call in the op's forward, and, when an input
requires grad and grad mode is on, one graph node holding that op's backward.
"""
from __future__ import annotations

import inspect
import weakref
from collections import namedtuple
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from chainrule import _core, ops
from chainrule._convert import to_array
from chainrule._device import CPU, is_device
from chainrule._device import check_device as check_device
from chainrule._dtype import float32, float64, int64, to_dtype
from chainrule.autograd import engine as _engine
from chainrule.autograd.function import NO_RECORD, OpNode
from chainrule.ops import inplace as _inplace_ops

C = _core
_grad_enabled = C.is_grad_enabled
_new = object.__new__
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

values_indices = namedtuple("values_indices", ["values", "indices"])
values_indices.__name__ = "return_types"


class _RemovableHandle:
    """What registering a hook returns: remove() takes the hook off its list again."""

    __slots__ = ("hooks", "hook")

    def __init__(self, hooks: list[Any], hook: Callable[..., Any]) -> None:
        hooks.append(hook)
        self.hooks = hooks
        self.hook = hook

    def remove(self) -> None:
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


class Tensor(C.TensorBase):
    """A dense n-dimensional array of float32, float64, int64 or bool, with autograd.

    >>> import chainrule as cr
    >>> x = cr.tensor([[1.0, 2.0]], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([[2.0000, 4.0000]])
    """

    # The fields (_data, grad_fn, _requires_grad, _grad, _hooks) live in the C base, where
    # recording an op and the backward engine read them without Python code.
    __slots__ = ()
    __array_priority__ = 1000  # NumPy defers `ndarray + Tensor` to our reflected ops

    def __init__(self, data: Any = (), dtype: Any = None, requires_grad: bool = False) -> None:
        self._data = to_array(data, float32 if dtype is None else dtype)
        self.grad_fn = None
        self._requires_grad = False
        self._grad = None
        self._hooks = None
        if requires_grad:
            self.requires_grad_(True)

    # ------------------------------------------------------------ attributes
    # shape, dtype, ndim and numel() are read from the array by the C base.
    def size(self, dim: int | None = None) -> Any:
        """The shape, or the size of one dim."""
        return self.shape if dim is None else self._data.size(dim)

    def dim(self) -> int:
        return self.ndim

    @property
    def device(self) -> Any:
        """The device holding the data: always `cr.device("cpu")` (which also equals "cpu")."""
        return CPU

    @property
    def is_cuda(self) -> bool:
        return False

    @property
    def data(self) -> Tensor:
        """The same data (shared storage) as a tensor outside the graph, as `detach()`.
        Assigning a tensor replaces this tensor's data (shape and dtype too) without autograd
        seeing it, as in PyTorch: `p.data = p.data.double()`.

        >>> import chainrule as cr
        >>> w = cr.ones(2, requires_grad=True)
        >>> _ = w.data.mul_(3); w
        tensor([3.0000, 3.0000], requires_grad=True)
        """
        return _wrap(self._data)

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"data: expected a Tensor, got {type(value).__name__}")
        if self._requires_grad and not value.dtype.is_floating_point:
            raise TypeError(f"data: a tensor that requires grad cannot take data of dtype "
                            f"{value.dtype.name} (only float tensors can require grad)")
        self._data = value._data

    def __format__(self, spec: str) -> str:
        """As PyTorch: a 0-d tensor formats as its number (`f"{loss:.4f}"`); another tensor
        takes only the empty spec (its str)."""
        if self.ndim == 0:
            return format(self.item(), spec)
        if spec:
            raise TypeError(f"unsupported format string {spec!r} passed to Tensor.__format__ "
                            f"(a tensor of shape {self.shape}; only 0-d tensors take a format spec)")
        return str(self)

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Sets requires_grad on a leaf, in place; returns self."""
        if self.grad_fn is not None:
            if not requires_grad:
                raise RuntimeError("requires_grad_: cannot turn off requires_grad on a non-leaf "
                                   "tensor; use detach() instead")
            return self
        if requires_grad and not self._data.dtype.is_floating_point:
            raise TypeError(f"requires_grad_: only float tensors can require grad, got dtype "
                            f"{self._data.dtype.name}")
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def grad(self) -> Tensor | None:
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        self._grad = value  # the C field checks type, shape and dtype (grad_checks.cpp)

    def retain_grad(self) -> None:
        """Keeps `.grad` on this non-leaf tensor after backward."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad: the tensor does not require grad")
        if self.grad_fn is not None:
            self.grad_fn.retained = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        return self.grad_fn is not None and self.grad_fn.retained is not None

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> Callable[[], None]:
        """Calls hook(grad) when this tensor's gradient is computed; a returned Tensor replaces
        the gradient. Returns a function that removes the hook."""
        if not self._requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that does not "
                               "require grad")
        if self.grad_fn is not None:
            if self.grad_fn.hooks is None:
                self.grad_fn.hooks = []
            hooks = self.grad_fn.hooks
        else:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        hooks.append(hook)
        return lambda: hooks.remove(hook) if hook in hooks else None

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> Any:
        """Calls hook(tensor) on this leaf as soon as backward has accumulated its gradient into
        `.grad` (while backward goes on with the rest of the graph), as in PyTorch. Returns a
        handle whose remove() takes the hook off.

        >>> import chainrule as cr
        >>> w = cr.ones(2, requires_grad=True)
        >>> handle = w.register_post_accumulate_grad_hook(lambda t: print(t.grad))
        >>> (w * 3).sum().backward()
        tensor([3.0000, 3.0000])
        """
        if self.grad_fn is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: post accumulate grad hooks "
                               "cannot be registered on non-leaf tensors")
        if not self._requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on a "
                               "tensor that does not require grad")
        if self._post_hooks is None:
            self._post_hooks = []
        return _RemovableHandle(self._post_hooks, hook)

    # ------------------------------------------------------------ conversion
    def item(self) -> Any:
        return self._data.item()

    def tolist(self) -> Any:
        return self._data.numpy().tolist()

    def numpy(self) -> np.ndarray:
        """An ndarray sharing this tensor's memory (strides included)."""
        return self._data.numpy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self._data.numpy()
        if dtype is not None and np.dtype(dtype) != array.dtype:
            return array.astype(dtype)
        return array.copy() if copy else array

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickling (and copy.deepcopy) through a NumPy copy of the values."""
        return (_rebuild_tensor, (type(self), np.array(self._data.numpy()), self._requires_grad))

    def __dlpack__(self, stream: Any = None, **kwargs: Any) -> Any:
        """A DLPack capsule sharing this tensor's memory (for np.from_dlpack, torch.from_dlpack)."""
        if stream is not None and stream != -1:
            raise ValueError("__dlpack__: chainrule tensors live on the CPU; stream must be None")
        if kwargs.get("copy"):
            return C.to_dlpack(self._data.clone())
        return C.to_dlpack(self._data)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # (kDLCPU, device 0)

    def __float__(self) -> float:
        return float(self._data.item())

    def __int__(self) -> int:
        return int(self._data.item())

    def __index__(self) -> int:
        if self._data.dtype != int64:
            raise TypeError(f"only int64 tensors can be used as an index, got {self.dtype.name}")
        return int(self._data.item())

    def __bool__(self) -> bool:
        if self._data.numel() != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} with more than one "
                             "element is ambiguous; use .any() or .all()")
        return bool(self._data.item())

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        return (self[i] for i in range(len(self)))

    # Identity hashing (== is elementwise), in C: leaves are dict keys in every backward.
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        array = self._data.numpy()
        if self.dtype.is_floating_point:
            body = np.array2string(array, separator=", ", precision=4, floatmode="fixed",
                                   prefix="tensor(", threshold=1000)
        else:
            body = np.array2string(array, separator=", ", prefix="tensor(", threshold=1000)
        extras = []
        if self.dtype == float64:
            extras.append("dtype=chainrule.float64")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name()}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """A tensor of another dtype (a copy), or self when nothing changes. Only "cpu" exists."""
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        for arg in args:
            if is_device(arg):
                device = arg
            else:
                dtype = arg
        if kwargs:
            raise TypeError(f"to: unexpected arguments {sorted(kwargs)}")
        if device is not None:
            check_device(device)
        if dtype is None:
            return self
        dtype = to_dtype(dtype)
        if dtype == self.dtype:
            return self
        if self._requires_grad and not dtype.is_floating_point:
            return _wrap(self._data.to(dtype))  # integer results never carry gradients
        return apply(ops.Cast, self, dtype)

    def float(self) -> Tensor:
        return self.to(float32)

    def double(self) -> Tensor:
        return self.to(float64)

    def long(self) -> Tensor:
        return self.to(int64)

    def bool(self) -> Tensor:
        return self.to(C.DType.bool)

    def cpu(self) -> Tensor:
        return self

    def cuda(self, device: Any = None, non_blocking: bool = False) -> Tensor:
        """Raises: chainrule has no CUDA backend (PyTorch built without CUDA raises too)."""
        check_device("cuda" if device is None else f"cuda:{device}" if isinstance(device, int) else device)
        return self

    def detach(self) -> Tensor:
        """The same data (shared storage) outside the graph."""
        return _wrap(self._data)

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self._requires_grad = False
        return self

    def clone(self) -> Tensor:
        return apply(ops.Identity, self, "clone")

    def contiguous(self) -> Tensor:
        if self._data.is_contiguous():
            return self
        return apply(ops.Identity, self, "contiguous")

    def is_contiguous(self) -> bool:
        return self._data.is_contiguous()

    # ------------------------------------------------------------ arithmetic
    # + - * / @ and unary - are C slots of the base class (native ops, _core/native_ops.cpp);
    # operands other than Tensors and Python numbers go through _operator_fallback below.
    # Type checkers see their signatures here; at run time the slots answer.
    if TYPE_CHECKING:
        def __add__(self, other: Tensor | float | np.ndarray) -> Tensor: ...
        def __radd__(self, other: Tensor | float | np.ndarray) -> Tensor: ...
        def __sub__(self, other: Tensor | float | np.ndarray) -> Tensor: ...
        def __rsub__(self, other: Tensor | float | np.ndarray) -> Tensor: ...
        def __mul__(self, other: Tensor | float | np.ndarray) -> Tensor: ...
        def __rmul__(self, other: Tensor | float | np.ndarray) -> Tensor: ...
        def __truediv__(self, other: Tensor | float | np.ndarray) -> Tensor: ...
        def __rtruediv__(self, other: Tensor | float | np.ndarray) -> Tensor: ...
        def __matmul__(self, other: Tensor | np.ndarray) -> Tensor: ...
        def __rmatmul__(self, other: Tensor | np.ndarray) -> Tensor: ...
        def __neg__(self) -> Tensor: ...

    def __pow__(self, other: Any) -> Tensor:
        return apply(ops.Pow, self, _operand(other))

    def __rpow__(self, other: Any) -> Tensor:
        return apply(ops.Pow, _operand(other), self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return apply(ops.Abs, self)

    def __iadd__(self, other: Any) -> Tensor:
        return self.add_(other)

    def __isub__(self, other: Any) -> Tensor:
        return self.sub_(other)

    def __imul__(self, other: Any) -> Tensor:
        return self.mul_(other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self.div_(other)

    # comparisons: bool results, never differentiable
    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _wrap(C.eq(self._data, _raw(other)))

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _wrap(C.ne(self._data, _raw(other)))

    def __lt__(self, other: Any) -> Tensor:
        return _wrap(C.lt(self._data, _raw(other)))

    def __le__(self, other: Any) -> Tensor:
        return _wrap(C.le(self._data, _raw(other)))

    def __gt__(self, other: Any) -> Tensor:
        return _wrap(C.gt(self._data, _raw(other)))

    def __ge__(self, other: Any) -> Tensor:
        return _wrap(C.ge(self._data, _raw(other)))

    def logical_not(self) -> Tensor:
        return _wrap(C.logical_not(self._data))

    def __invert__(self) -> Tensor:
        if self.dtype != C.DType.bool:
            raise TypeError(f"~ is only supported for bool tensors, got {self.dtype.name}")
        return self.logical_not()

    # named forms, as in PyTorch
    def add(self, other: Any) -> Tensor:
        return self + other

    def sub(self, other: Any) -> Tensor:
        return self - other

    def mul(self, other: Any) -> Tensor:
        return self * other

    def div(self, other: Any) -> Tensor:
        return self / other

    def pow(self, exponent: Any) -> Tensor:
        return self ** exponent

    def matmul(self, other: Any) -> Tensor:
        return self @ other

    def neg(self) -> Tensor:
        return -self

    def eq(self, other: Any) -> Tensor:
        return self == other

    def ne(self, other: Any) -> Tensor:
        return self != other

    def lt(self, other: Any) -> Tensor:
        return self < other

    def le(self, other: Any) -> Tensor:
        return self <= other

    def gt(self, other: Any) -> Tensor:
        return self > other

    def ge(self, other: Any) -> Tensor:
        return self >= other

    # ------------------------------------------------------------ unary
    # The simple elementwise functions are made from the op table (chainrule/ops, installed at
    # the end of this file); type checkers read their declarations here.
    if TYPE_CHECKING:
        # op table: generated by `python -m chainrule.ops.stubs`; do not edit
        def abs(self) -> Tensor: ...
        def cos(self) -> Tensor: ...
        def erf(self) -> Tensor: ...
        def exp(self) -> Tensor: ...
        def log(self) -> Tensor: ...
        def relu(self) -> Tensor: ...
        def sigmoid(self) -> Tensor: ...
        def sin(self) -> Tensor: ...
        def softplus(self, beta: float = 1.0, threshold: float = 20.0) -> Tensor: ...
        def sqrt(self) -> Tensor: ...
        def square(self) -> Tensor: ...
        def tanh(self) -> Tensor: ...
        # end of op table
        pass

    def sign(self) -> Tensor:
        return _wrap(C.sign(self._data))

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        return apply(ops.Clamp, self, _number(min, "clamp"), _number(max, "clamp"))

    clip = clamp

    def softmax(self, dim: int) -> Tensor:
        _check_dim(dim, self.ndim, "softmax")
        x = self if self.dtype.is_floating_point else self.float()
        shifted = x - x.amax(dim, keepdim=True).detach()
        e = shifted.exp()
        return e / e.sum(dim, keepdim=True)

    def log_softmax(self, dim: int) -> Tensor:
        _check_dim(dim, self.ndim, "log_softmax")
        x = self if self.dtype.is_floating_point else self.float()
        shifted = x - x.amax(dim, keepdim=True).detach()
        return shifted - shifted.exp().sum(dim, keepdim=True).log()

    # ------------------------------------------------------------ reductions
    def sum(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return C.grad_sum(self, None if dim is None else _dims(dim), keepdim)

    def mean(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return C.grad_mean(self, None if dim is None else _dims(dim), keepdim)

    def amax(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return apply(ops.Amax, self, _dims(dim), keepdim)

    def amin(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        return apply(ops.Amin, self, _dims(dim), keepdim)

    def max(self, dim: Any = None, keepdim: bool = False) -> Any:
        """The largest element (0-d) or, with an int dim, (values, indices) along it."""
        return self._extreme(dim, keepdim, largest=True)

    def min(self, dim: Any = None, keepdim: bool = False) -> Any:
        return self._extreme(dim, keepdim, largest=False)

    def _extreme(self, dim: Any, keepdim: bool, largest: bool) -> Any:
        if dim is None:
            return self.amax() if largest else self.amin()
        if isinstance(dim, Tensor):  # max(other): the elementwise form
            return maximum(self, dim) if largest else minimum(self, dim)
        if not isinstance(dim, int):
            raise TypeError(f"{'max' if largest else 'min'}: dim must be an int, got {type(dim).__name__}")
        indices = (C.argmax if largest else C.argmin)(self._data, dim, keepdim)
        wrapped = dim + self.ndim if dim < 0 else dim
        values = apply(ops.MaxAlongDim, self, wrapped, keepdim, indices, largest)
        return values_indices(values, _wrap(indices))

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return _wrap(C.argmax(self._data, dim, keepdim))

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        return _wrap(C.argmin(self._data, dim, keepdim))

    def all(self) -> Tensor:
        """True when every element is nonzero (True for an empty tensor)."""
        return _wrap(C.eq(C.sum(C.logical_not(self._data), [], False), 0))

    def any(self) -> Tensor:
        """True when some element is nonzero (False for an empty tensor)."""
        return _wrap(C.gt(C.sum(self._data.to(C.DType.bool), [], False), 0))

    # ------------------------------------------------------------ shapes
    def reshape(self, *shape: Any) -> Tensor:
        return _view(ops.Reshape, self, "reshape", _shape(shape, "reshape"))

    def view(self, *shape: Any) -> Tensor:
        return _view(ops.Reshape, self, "view", _shape(shape, "view"))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return _view(ops.Reshape, self, "flatten", start_dim, end_dim)

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            return _view(ops.Reshape, self, "squeeze")
        return _view(ops.Reshape, self, "squeeze", dim)

    def unsqueeze(self, dim: int) -> Tensor:
        return _view(ops.Reshape, self, "unsqueeze", dim)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        return _view(ops.Transpose, self, dim0, dim1)

    def t(self) -> Tensor:
        if self.ndim > 2:
            raise ValueError(f"t: expected a tensor with at most 2 dims, got shape {self.shape}")
        return self.transpose(0, 1) if self.ndim == 2 else self

    @property
    def T(self) -> Tensor:  # noqa: N802
        if self.ndim != 2:
            raise ValueError(f".T: expected a 2-D tensor, got shape {self.shape}; use permute()")
        return self.transpose(0, 1)

    def permute(self, *dims: Any) -> Tensor:
        return _view(ops.Permute, self, _shape(dims, "permute"))

    def expand(self, *shape: Any) -> Tensor:
        return _view(ops.Expand, self, _shape(shape, "expand"))

    def expand_as(self, other: Tensor) -> Tensor:
        return self.expand(_tensor_operand(other, "expand_as").shape)

    def view_as(self, other: Tensor) -> Tensor:
        """A view of self with other's shape."""
        return self.view(_tensor_operand(other, "view_as").shape)

    def reshape_as(self, other: Tensor) -> Tensor:
        return self.reshape(_tensor_operand(other, "reshape_as").shape)

    def narrow(self, dim: int, start: int, length: int) -> Tensor:
        return _composites().narrow(self, dim, start, length)

    def split(self, split_size: Any, dim: int = 0) -> tuple[Tensor, ...]:
        """Views along dim of split_size elements each, or of the sizes a list gives."""
        return _composites().split(self, split_size, dim)

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        return _composites().chunk(self, chunks, dim)

    def flip(self, *dims: Any) -> Tensor:
        """Reversed along each of dims (`t.flip(0)`, `t.flip((0, 1))`, `t.flip(0, 1)`)."""
        return _composites().flip(self, dims[0] if len(dims) == 1 else dims)

    def unbind(self, dim: int = 0) -> tuple[Tensor, ...]:
        return _composites().unbind(self, dim)

    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
        return _composites().diagonal(self, offset, dim1, dim2)

    # ------------------------------------------------------------ products, masks, statistics
    def mm(self, mat2: Tensor) -> Tensor:
        """The product of two matrices (2-D only)."""
        return _composites().mm(self, mat2)

    def bmm(self, mat2: Tensor) -> Tensor:
        """The batched product of two 3-D tensors with the same batch size."""
        return _composites().bmm(self, mat2)

    def masked_fill(self, mask: Tensor, value: Any) -> Tensor:
        return _composites().masked_fill(self, mask, value)

    def masked_fill_(self, mask: Tensor, value: Any) -> Tensor:
        return _composites().masked_fill_(self, mask, value)

    def var(self, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
            correction: Any = None) -> Tensor:
        """The variance over dim, dividing by n - correction (default 1; unbiased=False: 0)."""
        return _composites().var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
            correction: Any = None) -> Tensor:
        return _composites().std(self, dim, unbiased, keepdim, correction=correction)

    def norm(self, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
        """The vector p-norm over dim (None: all elements); 'fro' is the 2-norm."""
        return _composites().norm(self, p, dim, keepdim, dtype=dtype)

    # ------------------------------------------------------------ new tensors like this one
    def new_zeros(self, *size: Any, dtype: Any = None, device: Any = None,
                  requires_grad: bool = False) -> Tensor:
        """Zeros of the given size, with self's dtype unless given."""
        from chainrule.creation import zeros

        return zeros(*size, dtype=self.dtype if dtype is None else dtype, device=device,
                     requires_grad=requires_grad)

    def new_ones(self, *size: Any, dtype: Any = None, device: Any = None,
                 requires_grad: bool = False) -> Tensor:
        from chainrule.creation import ones

        return ones(*size, dtype=self.dtype if dtype is None else dtype, device=device,
                    requires_grad=requires_grad)

    def new_empty(self, *size: Any, dtype: Any = None, device: Any = None,
                  requires_grad: bool = False) -> Tensor:
        from chainrule.creation import empty

        return empty(*size, dtype=self.dtype if dtype is None else dtype, device=device,
                     requires_grad=requires_grad)

    def new_full(self, size: Any, fill_value: Any, *, dtype: Any = None, device: Any = None,
                 requires_grad: bool = False) -> Tensor:
        from chainrule.creation import full

        return full(size, fill_value, dtype=self.dtype if dtype is None else dtype, device=device,
                    requires_grad=requires_grad)

    def new_tensor(self, data: Any, dtype: Any = None, device: Any = None,
                   requires_grad: bool = False) -> Tensor:
        """A copy of data (outside any graph) with self's dtype unless given."""
        from chainrule.creation import tensor

        if isinstance(data, Tensor):
            data = data.detach().numpy().copy()
        return tensor(data, dtype=self.dtype if dtype is None else dtype, device=device,
                      requires_grad=requires_grad)

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, Tensor) and index.ndim == 0 and index.dtype == C.DType.bool:
            # a 0-d mask selects the whole tensor once (True) or not at all (False)
            return self.unsqueeze(0)[index.reshape(1)]
        rows, rest = _split_tensor_index(self, index)
        if rows is None:
            steps = _view_steps(self._data, index)
            return _inplace_ops.index_view(self, steps)  # in place on either: the other follows
        t = apply(ops.IndexSelect, self, 0, rows.reshape([-1]))
        if rows.ndim != 1:  # an N-d index: the gathered rows take the index's shape
            t = t.reshape(tuple(rows.shape) + self.shape[1:])
        return t if rest is None else apply(ops.Index, t, _view_steps(t._data, rest))

    def index_select(self, dim: int, index: Tensor) -> Tensor:
        return apply(ops.IndexSelect, self, dim, _tensor_operand(index, "index_select")._data)

    def __setitem__(self, index: Any, value: Any) -> None:
        if _split_tensor_index(self, index)[0] is not None:
            raise IndexError("__setitem__: assigning through an index tensor is not supported; "
                             "use ints, slices, None or ...")
        value = _operand(value)  # a NumPy array becomes a tensor
        if _inplace_ops.needs_graph(self, value):
            _inplace_ops.setitem(self, _view_steps(self._data, index), value)
            return
        view = ops.apply_view_steps(self._data, _view_steps(self._data, index))
        if isinstance(value, Tensor):
            C.copy_(view, value._data)
        else:
            C.fill_(view, value)

    # ------------------------------------------------------------ dim-wise index and scan ops
    # gather/scatter (ops/indexing.py) and cumsum/cumprod (ops/scans.py); sort and topk run
    # one C++ kernel and take their values' gradient from gather at the indices it found.
    def gather(self, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
        """The elements along `dim` at the positions in `index` (int64, as many dims as self);
        the result has index's shape: `out[i][j] = self[i][index[i][j]]` for dim 1.

        >>> import chainrule as cr
        >>> cr.tensor([[1, 2], [3, 4]]).gather(1, cr.tensor([[0, 0], [1, 0]])).tolist()
        [[1, 1], [4, 3]]
        """
        return apply(ops.Gather, self, _int_arg(dim, "gather", "dim"), _index_data(index, "gather"))

    def scatter(self, dim: int, index: Tensor, src: Any = None, *, value: Any = None,
                reduce: str | None = None) -> Tensor:
        """A copy with `src`'s elements (or one number, `value`) written along `dim` at the
        positions in `index`: `out[i][index[i][j]] = src[i][j]` for dim 1.

        >>> import chainrule as cr
        >>> cr.zeros(2, 3).scatter(1, cr.tensor([[2], [0]]), cr.ones(2, 1)).tolist()
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
        """
        dim, index, source = _scatter_arguments(dim, index, src, value, reduce, "scatter")
        if isinstance(source, Tensor):
            return apply(ops.Scatter, self, dim, index, source)
        return apply(ops.ScatterValue, self, dim, index, source)

    def scatter_(self, dim: int, index: Tensor, src: Any = None, *, value: Any = None,
                 reduce: str | None = None) -> Tensor:
        """scatter in place (the in-place rules of add_ apply); returns self."""
        dim, index, source = _scatter_arguments(dim, index, src, value, reduce, "scatter_")
        if _inplace_ops.needs_graph(self, source):  # recorded as the out-of-place scatter
            return _inplace_ops.record(self, "scatter_", lambda t: apply(ops.Scatter if isinstance(source, Tensor) else ops.ScatterValue, t, dim, index, source),
                                       source,
                                       reads_self=False)
        if isinstance(source, Tensor):
            C.scatter_(self._data, dim, index, source._data)
        else:
            C.scatter_value_(self._data, dim, index, source)
        return self

    def scatter_add(self, dim: int, index: Tensor, src: Tensor) -> Tensor:
        """A copy with `src`'s elements added along `dim` at the positions in `index`
        (positions named twice add up): `out[i][index[i][j]] += src[i][j]` for dim 1.

        >>> import chainrule as cr
        >>> cr.zeros(3).scatter_add(0, cr.tensor([0, 2, 0]), cr.ones(3)).tolist()
        [2.0, 0.0, 1.0]
        """
        return apply(ops.ScatterAdd, self, _int_arg(dim, "scatter_add", "dim"), _index_data(index, "scatter_add"),
                     _tensor_operand(src, "scatter_add"))

    def scatter_add_(self, dim: int, index: Tensor, src: Tensor) -> Tensor:
        """scatter_add in place (the in-place rules of add_ apply); returns self."""
        dim = _int_arg(dim, "scatter_add_", "dim")
        index_data, src = _index_data(index, "scatter_add_"), _tensor_operand(src, "scatter_add_")
        if _inplace_ops.needs_graph(self, src):  # recorded as the out-of-place scatter_add
            return _inplace_ops.record(self, "scatter_add_", lambda t: apply(ops.ScatterAdd, t, dim, index_data, src), src,
                                       reads_self=False)
        C.scatter_add_(self._data, dim, index_data, src._data)
        return self

    def sort(self, dim: int = -1, descending: bool = False, *, stable: bool = False) -> Any:
        """(values, indices) sorted along `dim`. Every sort is stable (equal elements keep their
        order), so `stable` changes nothing; NaN sorts above every number, as in PyTorch.

        >>> import chainrule as cr
        >>> cr.tensor([3, 1, 2]).sort(descending=True).indices.tolist()
        [0, 2, 1]
        """
        dim = _int_arg(dim, "sort", "dim")
        values, indices = C.sort(self._data, dim, bool(descending))
        return values_indices(self._selected(values, dim, indices), _wrap(indices))

    def argsort(self, dim: int = -1, descending: bool = False, *, stable: bool = False) -> Tensor:
        """The indices that sort the tensor along `dim` (stable, as sort)."""
        return _wrap(C.sort(self._data, _int_arg(dim, "argsort", "dim"), bool(descending))[1])

    def topk(self, k: int, dim: int | None = None, largest: bool = True, sorted: bool = True) -> Any:  # noqa: A002
        """(values, indices) of the k largest (smallest, `largest=False`) elements along `dim`
        (the last by default), largest first; always in sorted order.

        >>> import chainrule as cr
        >>> cr.tensor([1.0, 5.0, 3.0]).topk(2).values.tolist()
        [5.0, 3.0]
        """
        dim = -1 if dim is None else _int_arg(dim, "topk", "dim")
        values, indices = C.topk(self._data, _int_arg(k, "topk", "k"), dim, bool(largest))
        return values_indices(self._selected(values, dim, indices), _wrap(indices))

    def _selected(self, values: Any, dim: int, indices: Any) -> Tensor:
        """sort's and topk's values as a result: with a gradient, gather's at the indices."""
        if self._requires_grad and _grad_enabled():
            return apply(ops.Gather, self, dim, indices)  # the same values, recorded
        return _wrap(values)

    def cumsum(self, dim: int, *, dtype: Any = None) -> Tensor:
        """Cumulative sums along `dim` (int64 and bool give int64; float32 sums in float64).

        >>> import chainrule as cr
        >>> cr.tensor([1, 2, 3]).cumsum(0).tolist()
        [1, 3, 6]
        """
        source = self if dtype is None else self.to(dtype)
        return apply(ops.Cumsum, source, _int_arg(dim, "cumsum", "dim"), False)

    def cumprod(self, dim: int, *, dtype: Any = None) -> Tensor:
        """Cumulative products along `dim`; the gradient is exact where the input has zeros.

        >>> import chainrule as cr
        >>> cr.tensor([1.0, 2.0, 3.0]).cumprod(0).tolist()
        [1.0, 2.0, 6.0]
        """
        source = self if dtype is None else self.to(dtype)
        return apply(ops.Cumprod, source, _int_arg(dim, "cumprod", "dim"))

    # ------------------------------------------------------------ in place
    def add_(self, other: Any, *, alpha: Any = 1) -> Tensor:
        if alpha != 1:
            other = other * alpha
        return _inplace(self, C.add_, other, "add_", lambda t: t + other, reads_self=False)

    def sub_(self, other: Any, *, alpha: Any = 1) -> Tensor:
        if alpha != 1:
            other = other * alpha
        return _inplace(self, C.sub_, other, "sub_", lambda t: t - other, reads_self=False)

    def mul_(self, other: Any) -> Tensor:
        return _inplace(self, C.mul_, other, "mul_", lambda t: t * other)

    def div_(self, other: Any) -> Tensor:
        return _inplace(self, C.div_, other, "div_", lambda t: t / other)

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        """In-place clamp (see clamp)."""
        if _inplace_ops.needs_graph(self, min, max):
            return _inplace_ops.record(self, "clamp_", lambda t: t.clamp(min, max), min, max)
        C.copy_(self._data, self.clamp(min, max)._data)  # nothing requires grad: nothing recorded
        return self

    def zero_(self) -> Tensor:
        if _inplace_ops.needs_graph(self):
            return _inplace_ops.overwrite(self, "zero_", 0)
        C.fill_(self._data, 0)
        return self

    def fill_(self, value: Any) -> Tensor:
        if isinstance(value, Tensor) and _inplace_ops.needs_graph(self, value):
            return _inplace_ops.overwrite(self, "fill_", value.reshape(()))
        value = _number(value, "fill_")
        if _inplace_ops.needs_graph(self):
            return _inplace_ops.overwrite(self, "fill_", value)
        C.fill_(self._data, value)
        return self

    def copy_(self, src: Any) -> Tensor:
        src = _tensor_operand(src, "copy_")
        if _inplace_ops.needs_graph(self, src):
            return _inplace_ops.overwrite(self, "copy_", src.expand(*self.shape) if src.shape != self.shape else src)
        C.copy_(self._data, src._data)
        return self

    def uniform_(self, low: float = 0.0, high: float = 1.0, *, generator: Any = None) -> Tensor:
        from chainrule.random import native  # chainrule.random needs this module first

        if _inplace_ops.needs_graph(self):
            values = C.full(list(self.shape), 0, self.dtype)
            C.uniform_(values, float(low), float(high), native(generator, "uniform_"))
            return _inplace_ops.overwrite(self, "uniform_", _wrap(values))
        C.uniform_(self._data, float(low), float(high), native(generator, "uniform_"))
        return self

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator: Any = None) -> Tensor:
        from chainrule.random import native

        if _inplace_ops.needs_graph(self):
            values = C.full(list(self.shape), 0, self.dtype)
            C.normal_(values, float(mean), float(std), native(generator, "normal_"))
            return _inplace_ops.overwrite(self, "normal_", _wrap(values))
        C.normal_(self._data, float(mean), float(std), native(generator, "normal_"))
        return self

    # ------------------------------------------------------------ autograd
    def backward(self, gradient: Tensor | None = None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs: Any = None) -> None:
        """Accumulates d(self)/d(leaf) into every leaf's `.grad` by the chain rule.

        `gradient` (the upstream grad, of self's shape) is needed unless self has one element.
        Without retain_graph=True, the graph's saved arrays are freed afterwards.
        create_graph=True records the backward pass too, so `.grad` can be differentiated again
        (retain_graph then defaults to True); `inputs` limits accumulation to those tensors.
        """
        if gradient is None and self._requires_grad and not create_graph and inputs is None:
            _engine.run((self,), (None,), bool(retain_graph))  # the common case, straight to the engine
            return
        if create_graph or inputs is not None:
            from chainrule.autograd.api import backward

            backward(self, gradient, retain_graph, create_graph, inputs)
            return
        _engine.run_backward((self,), (gradient,), bool(retain_graph))


# ------------------------------------------------------------------ the op path
def _composites() -> Any:
    """chainrule.composites (mm, split, std, norm, ...), which is made of this module's Tensor:
    imported when a method first needs it."""
    from chainrule import composites

    return composites


def _rebuild_tensor(cls: type, array: np.ndarray, requires_grad: bool) -> Tensor:
    t = _new(cls)
    t._data = C.from_numpy(array)
    t.grad_fn = None
    t._requires_grad = requires_grad
    t._grad = None
    t._hooks = None
    return t


def _wrap(data: _core.Tensor, node: OpNode | None = None) -> Tensor:
    t = _new(Tensor)
    t._data = data
    t.grad_fn = node
    t._requires_grad = node is not None
    t._grad = None
    t._hooks = None
    return t


apply = C.apply
"""apply(op, *args): runs op's forward on the raw arrays of args (Tensors replaced by their
`_data`); when grad mode is on and an argument requires grad, the call's node (an instance of
op) gets one edge per argument: where that input's gradient goes (its grad_fn, or the leaf
itself), with the shape and dtype it must have there. In C (_core/autograd.cpp)."""


# The native ops of one operand, read from the op table (their _core entries take one argument).
_UNARY = frozenset(name for name, entry in ops.TABLE.items()
                   if entry.native and len(inspect.signature(entry.forward).parameters) == 1)


def _operator_fallback(name: str, a: Any, b: Any) -> Tensor:
    """Native ops (+ - * / @, unary -, exp, log, sigmoid, tanh, relu) with an operand that is
    neither a Tensor nor a Python number: NumPy arrays and scalars become tensors; anything else
    raises TypeError."""
    op = getattr(C, "grad_" + name)
    if name in _UNARY:
        return op(_tensor_operand(a, name))
    if name == "matmul":
        return op(_tensor_operand(a, "matmul"), _tensor_operand(b, "matmul"))
    a, b = _operand(a), _operand(b)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{name}: expected a Tensor operand, got {type(a).__name__} and {type(b).__name__}")
    return op(a, b)


def _operand(value: Any) -> Any:
    """A Tensor or a Python number, as ops take them; NumPy arrays become tensors."""
    if isinstance(value, (Tensor, int, float)):
        return value
    if isinstance(value, np.ndarray):
        return _wrap(to_array(value))
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"unsupported operand type {type(value).__name__} for a tensor op "
                    "(expected a Tensor or a Python number)")


def _tensor_operand(value: Any, op: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return _wrap(to_array(value))
    raise TypeError(f"{op}: expected a Tensor, got {type(value).__name__}")


def _raw(value: Any) -> Any:
    value = _operand(value)
    return value._data if isinstance(value, Tensor) else value


def _number(value: Any, op: str) -> Any:
    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, (np.generic, Tensor)) and np.ndim(value) == 0:
        return value.item()
    raise TypeError(f"{op}: expected a Python number, got {type(value).__name__}")


def _dims(dim: Any) -> list[int]:
    if dim is None:
        return []
    dims = [dim] if isinstance(dim, int) else dim
    if not isinstance(dims, (tuple, list)) or not all(isinstance(d, int) for d in dims):
        raise TypeError(f"dim must be None, an int or a tuple of ints, got {dim!r}")
    for d in dims:
        if not _INT64_MIN <= d <= _INT64_MAX:
            raise IndexError(f"dim {d} is out of range")
    return list(dims)


def _shape(args: Sequence[Any], op: str) -> list[int]:
    """Sizes given as f(2, 3) or f((2, 3)), checked to be ints."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    sizes = []
    for size in args:
        if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)):
            if isinstance(size, Tensor) and size.dtype == int64 and size.numel() == 1:
                size = size.item()
            else:
                raise TypeError(f"{op}: expected ints for sizes, got {size!r} of type "
                                f"{type(size).__name__}")
        size = int(size)
        if not _INT64_MIN <= size <= _INT64_MAX:
            raise ValueError(f"{op}: size {size} does not fit in int64")
        sizes.append(size)
    return sizes


def _sizes(args: Sequence[Any], op: str) -> list[int]:
    """A new tensor's shape: ints, none negative, with an element count int64 can hold."""
    sizes = _shape(args, op)
    count = 1
    for size in sizes:
        if size < 0:
            raise ValueError(f"{op}: negative size in shape {tuple(sizes)}")
        count *= size
    if count > _INT64_MAX:
        raise ValueError(f"{op}: shape {tuple(sizes)} has more elements than int64 can count")
    return sizes


def _check_dim(dim: int, ndim: int, op: str) -> None:
    low, high = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not low <= dim <= high:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dims "
                         f"(expected a dim in [{low}, {high}])")


def _view_steps(data: _core.Tensor, index: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """Basic indexing (ints, slices, None, ...) as a list of view calls on the raw array."""
    if not isinstance(index, tuple):
        index = (index,)
    consumed = sum(1 for i in index if i is not None and i is not Ellipsis)
    if sum(1 for i in index if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if consumed > data.ndim:
        raise IndexError(f"too many indices for a tensor of shape {data.shape}: {consumed} given")
    steps: list[tuple[str, tuple[Any, ...]]] = []
    dim = 0
    for item in index:
        if item is None:
            steps.append(("unsqueeze", (dim,)))
            dim += 1
        elif item is Ellipsis:
            dim += data.ndim - consumed
        elif isinstance(item, slice):
            step = 1 if item.step is None else _index_int(item.step)
            if step <= 0:
                raise ValueError(f"slice step must be positive, got {step}")
            step = min(step, 2**62)  # a step past every size takes the first element only
            # Bounds beyond any size clamp (as in NumPy); the core clips them to the dim.
            start = 0 if item.start is None else max(min(_index_int(item.start), 2**62), -(2**62))
            stop = 2**62 if item.stop is None else max(min(_index_int(item.stop), 2**62), -(2**62))
            steps.append(("slice", (dim, start, stop, step)))
            dim += 1
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) or (
                isinstance(item, Tensor) and item.dtype == int64 and item.ndim == 0):
            position = int(item)
            if not _INT64_MIN <= position <= _INT64_MAX:
                raise IndexError(f"index {position} is out of bounds for dim {dim} with size "
                                 f"{data.shape[dim]}")
            steps.append(("select", (dim, position)))
        else:
            raise IndexError(f"unsupported index {item!r}: use ints, slices, None or ...")
    return steps


def _split_tensor_index(t: Tensor, index: Any) -> tuple[Any, Any]:
    """An index whose first entry is an int64 tensor, a list of ints or a bool mask, split into
    (rows to gather along dim 0, the basic index applied after); (None, index) otherwise."""
    first, rest = (index[0], index[1:]) if isinstance(index, tuple) and index else (index, None)
    if isinstance(first, (list, np.ndarray)):
        first = _wrap(to_array(first))
        if first.dtype not in (int64, C.DType.bool):
            raise IndexError(f"index lists and arrays must hold ints or bools, got {first.dtype.name}")
    if not isinstance(first, Tensor) or (first.ndim == 0 and first.dtype == int64):
        return None, index
    if first.dtype == C.DType.bool:
        mask = first.numpy()
        if mask.shape != t.shape[:mask.ndim]:
            raise IndexError(f"boolean mask of shape {mask.shape} does not match the indexed "
                             f"tensor's leading shape {t.shape[:mask.ndim]}")
        rows = C.from_numpy(np.flatnonzero(mask).astype(np.int64))
        if mask.ndim > 1:
            raise IndexError("boolean masks of more than one dim are not supported; flatten first")
    elif first.dtype == int64:
        rows = first._data
    else:
        raise IndexError(f"tensors used as indices must be int64 or bool, got {first.dtype.name}")
    return rows, (None if not rest else (slice(None),) + tuple(rest))


def _index_int(value: Any) -> int:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, Tensor) and value.dtype == int64 and value.numel() == 1:
        return int(value.item())
    raise TypeError(f"slice indices must be integers or None, got {value!r}")


def _int_arg(value: Any, op: str, name: str) -> int:
    """A dim or a count given as an int (TypeError otherwise)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        value = int(value)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise IndexError(f"{op}: {name} {value} is out of range")
        return value
    if isinstance(value, Tensor) and value.dtype == int64 and value.numel() == 1:
        return int(value.item())
    raise TypeError(f"{op}: {name} must be an int, got {value!r}")


def _index_data(index: Any, op: str) -> Any:
    """The raw int64 array of an index argument (the kernel checks its dtype and values)."""
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, np.ndarray):
        return to_array(index)
    raise TypeError(f"{op}: index must be a Tensor, got {type(index).__name__}")


def _scatter_arguments(dim: Any, index: Any, src: Any, value: Any, reduce: Any, op: str) -> tuple[int, Any, Any]:
    """(dim, the index's array, a src Tensor or a number) of scatter's two spellings:
    scatter(dim, index, src) and scatter(dim, index, value)."""
    if reduce is not None:
        raise ValueError(f"{op}: reduce={reduce!r} is not supported (PyTorch deprecates it); use "
                         "scatter_add for reduce='add'")
    if (src is None) == (value is None):
        raise TypeError(f"{op}: expected one of src (a Tensor) or value (a number)")
    source = value if src is None else src
    if isinstance(source, np.ndarray):
        source = _wrap(to_array(source))
    elif not isinstance(source, Tensor):
        source = _number(source, op)
    return _int_arg(dim, op, "dim"), _index_data(index, op), source


def _view(op: Any, t: Tensor, *args: Any) -> Tensor:
    """A view op (reshape, transpose, permute, expand): when it shares t's memory in a graph, the
    view is remembered with t, so that an in-place change of t later reaches the view's
    gradient (and one of the view itself is refused: it cannot be written back to t's history)."""
    out = apply(op, t, *args)
    if _grad_enabled():
        if out._data.shares_storage(t._data):
            _inplace_ops.remember_view(out, t, lambda base: apply(op, base, *args))
    elif t._requires_grad and out._data.shares_storage(t._data):
        _inplace_ops._remember_no_grad_view(out, t)
    return out


def _inplace(t: Tensor, fn: Callable[..., None], other: Any, op: str,
             compute: Callable[[Tensor], Tensor] | None = None, reads_self: bool = True) -> Tensor:
    """t.op_(other): the kernel `fn` in place; in a graph, recorded as `compute` (its
    out-of-place form) by chainrule.ops.inplace (PyTorch's rules; see there)."""
    if _inplace_ops.needs_graph(t, other):
        if compute is None:
            _inplace_ops.check(t, op)
            raise RuntimeError(f"{op}: in-place operation on a tensor in a graph is not recorded")
        return _inplace_ops.record(t, op, compute, other, reads_self=reads_self)
    fn(t._data, _raw(other))
    return t


# ------------------------------------------------------------------ elementwise functions
def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Joins tensors along an existing dim.

    >>> import chainrule as cr
    >>> cr.cat([cr.zeros(1, 2), cr.ones(2, 2)]).shape
    (3, 2)
    """
    items = [_tensor_operand(t, "cat") for t in tensors]
    if not items:
        raise ValueError("cat: expected a non-empty list of tensors")
    return apply(ops.Cat, dim, *items)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Joins same-shaped tensors along a new dim.

    >>> import chainrule as cr
    >>> cr.stack([cr.zeros(2), cr.ones(2)], dim=1).shape
    (2, 2)
    """
    items = [_tensor_operand(t, "stack") for t in tensors]
    if not items:
        raise ValueError("stack: expected a non-empty list of tensors")
    for i, t in enumerate(items):
        if t.shape != items[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape} but tensor 0 has shape "
                             f"{items[0].shape}; all must match")
    return cat([t.unsqueeze(dim) for t in items], dim)


def maximum(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise maximum with broadcasting; NaN wins, as in NumPy."""
    return apply(ops.Maximum, _tensor_operand(a, "maximum"), _tensor_operand(b, "maximum"))


def minimum(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise minimum with broadcasting; NaN wins, as in NumPy."""
    return apply(ops.Minimum, _tensor_operand(a, "minimum"), _tensor_operand(b, "minimum"))


# The C layer makes results as Tensors, native ops' nodes as Functions, and sends operators
# with other operands to _operator_fallback.
C.register_classes(Tensor, OpNode, NO_RECORD, _operator_fallback)
ops.install_methods(Tensor)
