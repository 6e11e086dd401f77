"""The PyTorch spellings built from the op table's entries: mm and bmm (matmul), chunk, split,
unbind and narrow (views by basic indexing), std and var (their entries), norms (the
vector_norm entry), einsum (diagonal, permute, reshape, sum and matmul) and F.pad (the pad
entry, or index_select for reflect, replicate and circular). Each differentiates through the
entries it is made of; the Tensor methods and `cr.` functions of the same names call these.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule import _core, ops
from chainrule.ops import inplace
from chainrule.tensor import Tensor, _check_dim, _dims, _tensor_operand, _wrap, apply

C = _core
_BOOL = C.DType.bool


# ------------------------------------------------------------------ matrix products
def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """The product of two matrices (2-D only; matmul broadcasts, mm does not).

    >>> import chainrule as cr
    >>> cr.mm(cr.ones(2, 3), cr.ones(3, 4)).shape
    (2, 4)
    """
    a, b = _tensor_operand(input, "mm"), _tensor_operand(mat2, "mm")
    for name, t in (("self", a), ("mat2", b)):
        if t.ndim != 2:
            raise ValueError(f"mm: {name} must be a matrix (2-D), got shape {t.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"mm: mat1 and mat2 shapes cannot be multiplied ({a.shape[0]}x{a.shape[1]} "
                         f"and {b.shape[0]}x{b.shape[1]})")
    _same_dtype("mm", a, b)
    return C.grad_matmul(a, b)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """Batched matrix product of two 3-D tensors with the same batch size (no broadcasting).

    >>> import chainrule as cr
    >>> cr.bmm(cr.ones(5, 2, 3), cr.ones(5, 3, 4)).shape
    (5, 2, 4)
    """
    a, b = _tensor_operand(input, "bmm"), _tensor_operand(mat2, "bmm")
    for name, t in (("batch1", a), ("batch2", b)):
        if t.ndim != 3:
            raise ValueError(f"bmm: {name} must be a 3-D tensor, got shape {t.shape}")
    if b.shape[:2] != (a.shape[0], a.shape[2]):
        raise ValueError(f"bmm: expected the first two dims of batch2 to be ({a.shape[0]}, {a.shape[2]}) "
                         f"(batch1 has shape {a.shape}), got batch2 of shape {b.shape}")
    _same_dtype("bmm", a, b)
    return C.grad_matmul(a, b)


def _same_dtype(op: str, a: Tensor, b: Tensor) -> None:
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: expected both operands to have the same dtype, got {a.dtype.name} "
                        f"and {b.dtype.name}")


# ------------------------------------------------------------------ views along a dim
def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """A view of `length` elements along `dim` from `start` (negative start counts from the end).

    >>> import chainrule as cr
    >>> cr.arange(6).narrow(0, 2, 3).tolist()
    [2, 3, 4]
    """
    t = _tensor_operand(input, "narrow")
    if t.ndim == 0:
        raise IndexError("narrow: cannot narrow a 0-d tensor")
    _check_dim(dim, t.ndim, "narrow")
    size = t.shape[dim]
    if not -size <= start <= size:
        raise IndexError(f"narrow: start {start} is out of range for dim {dim} of size {size} "
                         f"(shape {t.shape})")
    start = start + size if start < 0 else start
    if length < 0 or start + length > size:
        raise ValueError(f"narrow: start ({start}) + length ({length}) exceeds dim {dim} of size "
                         f"{size} (shape {t.shape})")
    return inplace.index_view(t, [("slice", (dim % t.ndim, start, start + length, 1))])


def split(tensor: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Views along `dim`: pieces of split_size_or_sections elements each (the last may be
    smaller), or of the sizes a list gives (they must add up to the dim's size).

    >>> import chainrule as cr
    >>> [p.shape for p in cr.arange(5).split(2)]
    [(2,), (2,), (1,)]
    """
    t = _tensor_operand(tensor, "split")
    if t.ndim == 0:
        raise ValueError("split: expected a tensor with at least one dim, got a 0-d tensor")
    _check_dim(dim, t.ndim, "split")
    size = t.shape[dim]
    if isinstance(split_size_or_sections, (list, tuple)):
        sections = list(split_size_or_sections)
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sections):
            raise TypeError(f"split: split sizes must be ints, got {sections!r}")
        if any(s < 0 for s in sections):
            raise ValueError(f"split: split sizes must not be negative, got {sections}")
        if sum(sections) != size:
            raise ValueError(f"split: split sizes {sections} must add up to {size}, the size of "
                             f"dim {dim} of the tensor of shape {t.shape}")
    else:
        step = split_size_or_sections
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"split: split_size must be an int or a list of ints, got {step!r}")
        if step < 0 or (step == 0 and size != 0):
            raise ValueError(f"split: split_size must be positive (0 only for a dim of size 0), got "
                             f"{step} for dim {dim} of size {size} (shape {t.shape})")
        sections = [min(int(step), size - s) for s in range(0, size, step)] if size else [0]
    pieces, start = [], 0
    for length in sections:
        pieces.append(narrow(t, dim, start, int(length)))
        start += int(length)
    return tuple(pieces)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """At most `chunks` views along `dim`, of ceil(size / chunks) elements each (the last may be
    smaller; fewer chunks when the size does not fill them), as PyTorch splits.

    >>> import chainrule as cr
    >>> [p.shape for p in cr.zeros(5, 2).chunk(3)]
    [(2, 2), (2, 2), (1, 2)]
    """
    t = _tensor_operand(input, "chunk")
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)):
        raise TypeError(f"chunk: chunks must be an int, got {chunks!r}")
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be greater than 0, got {chunks}")
    if t.ndim == 0:
        raise ValueError("chunk: expected a tensor with at least one dim, got a 0-d tensor")
    _check_dim(dim, t.ndim, "chunk")
    size = t.shape[dim]
    if size == 0:  # PyTorch gives `chunks` empty pieces
        return tuple(narrow(t, dim, 0, 0) for _ in range(chunks))
    return split(t, -(-size // int(chunks)), dim)


def flip(input: Tensor, dims: Any) -> Tensor:
    """The elements in reverse order along each of `dims` (a copy, as PyTorch's flip); its
    gradient is the upstream gradient flipped back.

    >>> import chainrule as cr
    >>> cr.tensor([[1, 2], [3, 4]]).flip(1).tolist()
    [[2, 1], [4, 3]]
    """
    t = _tensor_operand(input, "flip")
    dims = [dims] if isinstance(dims, int) else list(dims)
    seen: list[int] = []
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool):
            raise TypeError(f"flip: dims must be ints, got {type(d).__name__}")
        _check_dim(d, max(t.ndim, 1), "flip")
        d = d % max(t.ndim, 1)
        if d in seen:
            raise ValueError(f"flip: dim {d} appears more than once in dims {tuple(dims)} (shape {t.shape})")
        seen.append(d)
    out = t
    for d in seen:
        if t.ndim and t.shape[d] > 1:
            reverse = C.arange(t.shape[d] - 1, -1, -1, C.DType.int64)
            out = apply(ops.IndexSelect, out, d, reverse)
    return out if out is not t else t.clone()


def unbind(input: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices along `dim`, with that dim removed (views).

    >>> import chainrule as cr
    >>> [p.tolist() for p in cr.tensor([[1, 2], [3, 4]]).unbind(1)]
    [[1, 3], [2, 4]]
    """
    t = _tensor_operand(input, "unbind")
    if t.ndim == 0:
        raise ValueError("unbind: expected a tensor with at least one dim, got a 0-d tensor")
    _check_dim(dim, t.ndim, "unbind")
    dim = dim % t.ndim
    return tuple(inplace.index_view(t, [("select", (dim, i))]) for i in range(t.shape[dim]))


def diagonal(input: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal of dims dim1 and dim2 as a view; those dims are removed and the diagonal
    is the last dim. offset > 0: above the main diagonal, < 0: below.

    >>> import chainrule as cr
    >>> cr.arange(9).reshape(3, 3).diagonal().tolist()
    [0, 4, 8]
    """
    t = _tensor_operand(input, "diagonal")
    if t.ndim < 2:
        raise ValueError(f"diagonal: expected a tensor with at least 2 dims, got shape {t.shape}")
    for d in (dim1, dim2):
        _check_dim(d, t.ndim, "diagonal")
    d1, d2 = dim1 % t.ndim, dim2 % t.ndim
    if d1 == d2:
        raise ValueError(f"diagonal: dim1 and dim2 must differ, both are {d1} (shape {t.shape})")
    from chainrule.tensor import _view

    return _view(ops.Diagonal, t, int(offset), d1, d2)


# ------------------------------------------------------------------ masked_fill
def _fill_value(value: Any, op: str) -> Any:
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ValueError(f"{op}: only a 0-d value tensor can fill, got one of shape {value.shape}")
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, (int, float)):
        raise TypeError(f"{op}: value must be a number or a 0-d tensor, got {type(value).__name__}")
    return value


def _mask(mask: Any, op: str) -> Tensor:
    mask = _tensor_operand(mask, op)
    if mask.dtype != _BOOL:
        raise TypeError(f"{op}: expected a bool mask, got a mask of dtype {mask.dtype.name}")
    return mask


def masked_fill(input: Tensor, mask: Tensor, value: Any) -> Tensor:
    """`value` where the bool `mask` (broadcast with input) is True, else input's elements.

    >>> import chainrule as cr
    >>> cr.zeros(3).masked_fill(cr.tensor([True, False, True]), 5.0).tolist()
    [5.0, 0.0, 5.0]
    """
    t = _tensor_operand(input, "masked_fill")
    return apply(ops.MaskedFill, t, _mask(mask, "masked_fill"),
                 _fill_value(value, "masked_fill"))


def masked_fill_(input: Tensor, mask: Tensor, value: Any) -> Tensor:
    """masked_fill in place: the mask must broadcast to input's shape, which stays."""

    mask, value = _mask(mask, "masked_fill_"), _fill_value(value, "masked_fill_")
    if tuple(C.broadcast_shapes(list(input.shape), list(mask.shape))) != input.shape:
        raise ValueError(f"masked_fill_: a mask of shape {mask.shape} does not broadcast to the "
                         f"tensor's shape {input.shape}")
    if inplace.needs_graph(input, value):  # recorded as the out-of-place masked_fill
        return inplace.record(input, "masked_fill_", lambda t: masked_fill(t, mask, value), value,
                              reads_self=False)
    fill = value._data.to(input.dtype) if isinstance(value, Tensor) else C.full((), value, input.dtype)
    C.copy_(input._data, C.where(mask._data, fill, input._data))
    return input


# ------------------------------------------------------------------ var and std
def _correction(op: str, dim: Any, unbiased: Any, correction: Any) -> tuple[Any, float]:
    """(dim, correction) from PyTorch's spellings: correction=, the older unbiased=, and
    var(unbiased) with the bool in dim's place."""
    if isinstance(dim, bool):
        if unbiased is not None:
            raise TypeError(f"{op}: unbiased given twice")
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: pass correction or unbiased, not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    if isinstance(correction, bool) or not isinstance(correction, (int, float)):
        raise TypeError(f"{op}: correction must be a number, got {correction!r}")
    return dim, float(correction)


def _var_or_std(op: str, input: Tensor, dim: Any, unbiased: Any, keepdim: bool, correction: Any) -> Tensor:
    t = _tensor_operand(input, op)
    dim, corr = _correction(op, dim, unbiased, correction)
    if not t.dtype.is_floating_point:
        raise TypeError(f"{op}: std and var take floating point tensors only, got {t.dtype.name}")
    out = apply(ops.Std if op == "std" else ops.Var, t, _dims(dim), corr, bool(keepdim))
    count = t.numel() // max(1, out.numel()) if t.numel() else 0
    if count - corr <= 0:
        warnings.warn(f"{op}: degrees of freedom is <= 0 (correction {corr:g} for {count} "
                      "elements per result)", UserWarning, stacklevel=4)
    return out


def var(input: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
        correction: Any = None) -> Tensor:
    """The variance over dim (None: all), dividing by n - correction (correction=1: Bessel's,
    the default; unbiased=False means correction=0).

    >>> import chainrule as cr
    >>> cr.tensor([1.0, 2.0, 3.0, 4.0]).var().item()
    1.6666666269302368
    """
    return _var_or_std("var", input, dim, unbiased, keepdim, correction)


def std(input: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
        correction: Any = None) -> Tensor:
    """The standard deviation: sqrt of var with the same arguments.

    >>> import chainrule as cr
    >>> round(cr.tensor([1.0, 3.0]).std().item(), 4)
    1.4142
    """
    return _var_or_std("std", input, dim, unbiased, keepdim, correction)


def var_mean(input: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
             correction: Any = None) -> tuple[Tensor, Tensor]:
    """(var, mean) over the same dims."""
    v = var(input, dim, unbiased, keepdim, correction=correction)
    dim = None if isinstance(dim, bool) else dim
    return v, input.mean(dim, keepdim)


def std_mean(input: Tensor, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
             correction: Any = None) -> tuple[Tensor, Tensor]:
    """(std, mean) over the same dims."""
    s = std(input, dim, unbiased, keepdim, correction=correction)
    return s, input.mean(None if isinstance(dim, bool) else dim, keepdim)


# ------------------------------------------------------------------ norms
def _ord(value: Any, op: str) -> float:
    if isinstance(value, Tensor) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{op}: ord must be a number, got {value!r}")
    return float(value)


def _float_input(input: Any, dtype: Any, op: str) -> Tensor:
    t = _tensor_operand(input, op)
    if dtype is not None:
        t = t.to(dtype)
    if not t.dtype.is_floating_point:
        raise TypeError(f"{op}: expected a floating point tensor, got {t.dtype.name}")
    return t


def vector_norm(x: Tensor, ord: Any = 2, dim: Any = None, keepdim: bool = False, *,
                dtype: Any = None) -> Tensor:
    """The vector ord-norm over dim (None or (): all elements): (sum |x|^ord)^(1/ord); inf and
    -inf: the largest and smallest |x|; 0: the number of nonzeros.

    >>> import chainrule as cr
    >>> cr.linalg.vector_norm(cr.tensor([3.0, -4.0])).item()
    5.0
    """
    t = _float_input(x, dtype, "linalg.vector_norm")
    p = _ord(ord, "linalg.vector_norm")
    dims = _dims(dim)
    if math.isinf(p) and t.numel() == 0 and (not dims or any(t.shape[d] == 0 for d in dims)):
        raise ValueError(f"linalg.vector_norm: cannot take the {p} norm over an empty dim (shape "
                         f"{t.shape}): the max has no identity")
    return apply(ops.VectorNorm, t, p, dims, bool(keepdim))


def _matrix_norm(t: Tensor, ord: Any, dims: list[int], keepdim: bool, op: str) -> Tensor:
    if len(dims) != 2:
        raise ValueError(f"{op}: a matrix norm needs 2 dims, got dim={tuple(dims)}")
    for d in dims:
        _check_dim(d, t.ndim, op)
    row, col = dims[0] % t.ndim, dims[1] % t.ndim
    if row == col:
        raise ValueError(f"{op}: the two dims of a matrix norm must differ, got {tuple(dims)}")
    if ord == "fro":
        return vector_norm(t, 2, (row, col), keepdim)
    if isinstance(ord, str) or ord in (2, -2):
        raise ValueError(f"{op}: the matrix norm ord={ord!r} needs singular values, which chainrule "
                         "does not compute (use 'fro', 1, -1, inf or -inf)")
    p = _ord(ord, op)
    if abs(p) not in (1.0, math.inf):
        raise ValueError(f"{op}: matrix norm order {ord!r} is not supported (use 'fro', 1, -1, inf "
                         "or -inf)")
    # ord 1: the largest column sum of |A|; inf: the largest row sum (the minimum for -1, -inf)
    summed, other = (row, col) if abs(p) == 1 else (col, row)
    sums = t.abs().sum(summed, keepdim=True)
    out = sums.amax(other, keepdim=True) if p > 0 else sums.amin(other, keepdim=True)
    return out if keepdim else out.squeeze(max(row, col)).squeeze(min(row, col))


def linalg_norm(A: Tensor, ord: Any = None, dim: Any = None, keepdim: bool = False, *,
                dtype: Any = None) -> Tensor:
    """torch.linalg.norm: a vector norm (dim an int, or A 1-D) or a matrix norm (dim a pair, or
    A 2-D; 'fro', 1, -1, inf, -inf). Without ord and dim, the 2-norm of all elements.

    >>> import chainrule as cr
    >>> cr.linalg.norm(cr.tensor([[1.0, -2.0], [3.0, 4.0]]), float("inf")).item()
    7.0
    """
    t = _float_input(A, dtype, "linalg.norm")
    if isinstance(dim, int) and not isinstance(dim, bool):
        dim = (dim,)
    if dim is not None:
        dims = _dims(dim)
        if len(dims) == 1:
            if isinstance(ord, str):
                raise ValueError(f"linalg.norm: ord={ord!r} is a matrix norm; it needs 2 dims, got "
                                 f"dim={tuple(dims)}")
            return vector_norm(t, 2 if ord is None else ord, dims, keepdim)
        return _matrix_norm(t, "fro" if ord is None else ord, dims, keepdim, "linalg.norm")
    if ord is None:
        return vector_norm(t, 2, None, keepdim)
    if t.ndim == 1 and not isinstance(ord, str):
        return vector_norm(t, ord, None, keepdim)
    if t.ndim == 2:
        return _matrix_norm(t, ord, [0, 1], keepdim, "linalg.norm")
    raise ValueError(f"linalg.norm: with ord given and no dim, the input must be 1-D or 2-D "
                     f"(a string ord: 2-D), got shape {t.shape}")


def norm(input: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False, out: Any = None,
         dtype: Any = None) -> Tensor:
    """torch.norm: the vector p-norm over dim (None: all elements); p='fro' is the 2-norm (over
    at most 2 dims). p='nuc' needs singular values and raises.

    >>> import chainrule as cr
    >>> cr.tensor([[3.0, 4.0]]).norm().item()
    5.0
    """
    if out is not None:
        raise TypeError("norm: out= is not supported; use the returned tensor")
    t = _tensor_operand(input, "norm")
    if isinstance(p, str):
        if p == "nuc":
            raise ValueError("norm: p='nuc' (the nuclear norm) needs singular values, which "
                             "chainrule does not compute")
        if p != "fro":
            raise ValueError(f"norm: p must be a number, 'fro' or 'nuc', got {p!r}")
        if dim is not None and not isinstance(dim, int) and len(dim) > 2:
            raise ValueError(f"norm: p='fro' takes at most 2 dims, got dim={tuple(dim)}")
        p = 2
    return vector_norm(t, 2 if p is None else p, dim, keepdim, dtype=dtype)


# ------------------------------------------------------------------ einsum
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _sublist_equation(args: Sequence[Any]) -> tuple[str, list[Any]]:
    """einsum(op0, [0, 1], op1, [1, 2], [0, 2]): the sublist form, as an equation."""
    def term(sublist: Any) -> str:
        letters = []
        for s in sublist:
            if s is Ellipsis:
                letters.append("...")
            elif isinstance(s, int) and not isinstance(s, bool) and 0 <= s < len(_LETTERS):
                letters.append(_LETTERS[s])
            else:
                raise ValueError(f"einsum: sublist subscripts must be ints in [0, 52) or ..., got {s!r}")
        return "".join(letters)

    operands = list(args[0::2])
    sublists = list(args[1::2])
    output = None
    if len(operands) > len(sublists):  # a trailing output sublist
        output = operands.pop()
    equation = ",".join(term(s) for s in sublists)
    return equation + ("" if output is None else "->" + term(output)), operands


def _parse_term(term: str, position: int) -> tuple[list[str], bool]:
    """A term's letters, with "..." kept as one token; whether it had an ellipsis."""
    tokens, i, ellipsis = [], 0, False
    while i < len(term):
        ch = term[i]
        if ch == ".":
            if term[i:i + 3] != "..." or ellipsis:
                raise ValueError(f"einsum: found '.' at index {position + i} that is not part of one "
                                 "ellipsis ('...')")
            tokens.append("...")
            ellipsis = True
            i += 3
            continue
        if ch not in _LETTERS:
            raise ValueError(f"einsum: invalid subscript {ch!r} at index {position + i} of the "
                             "equation; subscripts must be letters in [a-zA-Z]")
        tokens.append(ch)
        i += 1
    return tokens, ellipsis


def einsum(*args: Any) -> Tensor:
    """Einstein summation: einsum("ij,jk->ik", a, b) (also the operands as one list, and the
    sublist form). "..." broadcasts; a subscript repeated on one operand takes its diagonal;
    without "->", the output is the subscripts that appear once, in alphabetical order. Made of
    diagonal, sum, permute, reshape and matmul, so it differentiates through them.

    >>> import chainrule as cr
    >>> cr.einsum("ij,j->i", cr.ones(2, 3), cr.arange(3.0)).tolist()
    [3.0, 3.0]
    """
    if not args:
        raise TypeError("einsum: expected an equation and operands")
    if isinstance(args[0], str):
        equation, operands = args[0], list(args[1:])
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = list(operands[0])
    else:
        equation, operands = _sublist_equation(args)
    tensors = [_tensor_operand(o, "einsum") for o in operands]
    for other in tensors[1:]:  # as PyTorch: no promotion between operands
        _same_dtype("einsum", tensors[0], other)
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(tensors):
        raise ValueError(f"einsum: the equation {equation!r} has subscripts for {len(terms)} "
                         f"operand(s) but {len(tensors)} were given")

    # Each operand's labels: its letters, and for "..." one label per dim it covers ("0", "1",
    # ...), aligned from the right across operands so that they broadcast.
    parsed, position = [], 0
    for term in terms:
        parsed.append(_parse_term(term, position))
        position += len(term) + 1
    ellipsis_dims = 0
    for k, ((tokens, has_ellipsis), t) in enumerate(zip(parsed, tensors)):
        letters = len(tokens) - has_ellipsis
        if (t.ndim != letters) if not has_ellipsis else (t.ndim < letters):
            raise ValueError(f"einsum: operand {k} has shape {t.shape} ({t.ndim} dims) but "
                             f"{letters} subscripts{'' if has_ellipsis else ' and no ellipsis'}"
                             f" in {terms[k]!r}")
        if has_ellipsis:
            ellipsis_dims = max(ellipsis_dims, t.ndim - letters)
    ellipsis_labels = [str(j) for j in range(ellipsis_dims)]
    labels: list[list[str]] = []
    for (tokens, _), t in zip(parsed, tensors):
        covered = t.ndim - (len(tokens) - (1 if "..." in tokens else 0))
        expanded = []
        for token in tokens:
            expanded += ellipsis_labels[ellipsis_dims - covered:] if token == "..." else [token]
        labels.append(expanded)

    sizes: dict[str, int] = {}
    for k, (names, t) in enumerate(zip(labels, tensors)):
        for name, size in zip(names, t.shape):
            seen = sizes.get(name, 1)
            if seen != 1 and size != 1 and seen != size:
                what = f"subscript {name}" if name in _LETTERS else "a dim covered by '...'"
                raise ValueError(f"einsum: {what} has size {size} in operand {k} (shape {t.shape}), "
                                 f"which does not broadcast with size {seen} seen before")
            sizes[name] = max(seen, size) if name in sizes else size

    if arrow:
        out_tokens, _ = _parse_term(rhs, len(lhs) + 2)
        output: list[str] = []
        for token in out_tokens:
            if token == "...":
                output += ellipsis_labels
            elif token in output:
                raise ValueError(f"einsum: output subscript {token} appears more than once")
            elif not any(token in names for names in labels):
                raise ValueError(f"einsum: output subscript {token} does not appear in any operand's "
                                 "subscripts")
            else:
                output.append(token)
    else:
        counts: dict[str, int] = {}
        for names in labels:
            for name in names:
                counts[name] = counts.get(name, 0) + 1
        output = ellipsis_labels + sorted(n for n, c in counts.items() if c == 1 and n in _LETTERS)

    # A label repeated on one operand: its diagonal.
    work = []
    for t, names in zip(tensors, labels):
        names = list(names)
        while len(set(names)) != len(names):
            name = next(n for i, n in enumerate(names) if n in names[i + 1:])
            first = names.index(name)
            second = names.index(name, first + 1)
            if t.shape[first] != t.shape[second]:
                raise ValueError(f"einsum: subscript {name} is repeated on an operand of shape "
                                 f"{t.shape} with sizes {t.shape[first]} and {t.shape[second]}; "
                                 "a diagonal needs equal sizes")
            t = diagonal(t, 0, first, second)
            names = [n for i, n in enumerate(names) if i not in (first, second)] + [name]
        work.append((t, names))

    def needed(after: int) -> set[str]:
        keep = set(output)
        for _, names in work[after:]:
            keep.update(names)
        return keep

    result, names = _sum_out(*work[0], needed(1))
    for k in range(1, len(work)):
        result, names = _contract(result, names, *work[k], needed(k + 1))
    result, names = _sum_out(result, names, set(output))
    if not output:
        return result
    return result.permute([names.index(n) for n in output]) if names != output else result


def _sum_out(t: Tensor, names: list[str], keep: set[str]) -> tuple[Tensor, list[str]]:
    gone = [i for i, n in enumerate(names) if n not in keep]
    if not gone:
        return t, names
    return t.sum(tuple(gone)), [n for n in names if n in keep]


def _contract(a: Tensor, la: list[str], b: Tensor, lb: list[str],
              keep: set[str]) -> tuple[Tensor, list[str]]:
    """Two operands into one by one batched matmul: labels in both that are kept are its
    batch, labels in both that are not are summed over (the inner dim), the rest stay."""
    a, la = _sum_out(a, la, keep | set(lb))
    b, lb = _sum_out(b, lb, keep | set(la))
    batch = [n for n in la if n in lb and n in keep]
    inner = [n for n in la if n in lb and n not in keep]
    a_free = [n for n in la if n not in lb]
    b_free = [n for n in lb if n not in la]
    # shared labels of size 1 on one side broadcast: expand that side
    a_shape = [max(a.shape[la.index(n)], b.shape[lb.index(n)]) if n in lb else a.shape[la.index(n)]
               for n in la]
    b_shape = [max(b.shape[lb.index(n)], a.shape[la.index(n)]) if n in la else b.shape[lb.index(n)]
               for n in lb]
    if tuple(a_shape) != a.shape:
        a = a.expand(a_shape)
    if tuple(b_shape) != b.shape:
        b = b.expand(b_shape)

    def size(names: list[str], shape: list[int], subset: list[str]) -> list[int]:
        return [shape[names.index(n)] for n in subset]

    batch_sizes = size(la, a_shape, batch)
    a_free_sizes, b_free_sizes = size(la, a_shape, a_free), size(lb, b_shape, b_free)
    inner_size = math.prod(size(la, a_shape, inner))
    a = _permuted(a, la, batch + a_free + inner).reshape(
        [math.prod(batch_sizes), math.prod(a_free_sizes), inner_size])
    b = _permuted(b, lb, batch + inner + b_free).reshape(
        [math.prod(batch_sizes), inner_size, math.prod(b_free_sizes)])
    out = C.grad_matmul(a, b).reshape(batch_sizes + a_free_sizes + b_free_sizes)
    return out, batch + a_free + b_free


def _permuted(t: Tensor, names: list[str], order: list[str]) -> Tensor:
    return t if names == order else t.permute([names.index(n) for n in order])


# ------------------------------------------------------------------ F.pad
_NON_CONSTANT = ("reflect", "replicate", "circular")


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: Any = None) -> Tensor:
    """Pads the last len(pad) // 2 dims: pad = (left, right) for the last dim, then (top,
    bottom) for the one before, ... mode 'constant' fills with value (0 by default; a negative
    pad crops); 'reflect' mirrors without repeating the edge, 'replicate' repeats the edge,
    'circular' wraps around (these three pad the last 1, 2 or 3 dims of a batched or unbatched
    input, as PyTorch's).

    >>> import chainrule as cr
    >>> import chainrule.nn.functional as F
    >>> F.pad(cr.tensor([[1.0, 2.0, 3.0]]), (2, 1), mode="reflect").tolist()
    [[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]]
    """
    t = _tensor_operand(input, "pad")
    if not isinstance(pad, (tuple, list)) or not all(
            isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"pad: pad must be a tuple of ints, got {pad!r}")
    pads = [int(p) for p in pad]
    if len(pads) % 2:
        raise ValueError(f"pad: the padding length must be even, got {len(pads)} ({tuple(pads)})")
    if len(pads) // 2 > t.ndim:
        raise ValueError(f"pad: padding of length {len(pads)} pads {len(pads) // 2} dims, but the "
                         f"input has shape {t.shape}")
    if mode == "constant":
        for i in range(len(pads) // 2):
            dim = t.ndim - 1 - i
            if t.shape[dim] + pads[2 * i] + pads[2 * i + 1] < 0 or \
                    t.shape[dim] - max(0, -pads[2 * i]) - max(0, -pads[2 * i + 1]) < 0:
                raise ValueError(f"pad: padding {tuple(pads[2 * i:2 * i + 2])} crops dim {dim} of "
                                 f"size {t.shape[dim]} (input shape {t.shape}) below zero")
        fill = 0 if value is None else value
        if isinstance(fill, Tensor):
            fill = fill.item()
        return apply(ops.ConstantPad, t, pads, fill)
    if mode not in _NON_CONSTANT:
        raise ValueError(f"pad: unrecognised padding mode {mode!r} (use 'constant', 'reflect', "
                         "'replicate' or 'circular')")
    if value is not None:
        raise ValueError(f"pad: padding mode {mode!r} doesn't take a value argument")
    n = len(pads) // 2
    if n not in (1, 2, 3) or t.ndim not in (n + 1, n + 2):
        raise ValueError(f"pad: mode {mode!r} with padding of length {len(pads)} is not supported "
                         f"for an input of shape {t.shape}: padding length 2 pads a 2-D or 3-D "
                         "input, 4 a 3-D or 4-D one, 6 a 4-D or 5-D one")
    for i in range(n):
        dim = t.ndim - 1 - i
        before, after = pads[2 * i], pads[2 * i + 1]
        positions = _pad_index(mode, t.shape[dim], before, after, dim, input.shape)
        t = t.index_select(dim, _wrap(_index_from_runs(positions)))
    return t


def _index_from_runs(positions: np.ndarray) -> _core.Tensor:
    """The int64 index `positions` made by `_core` ops (aranges and fills of its runs of step 1,
    -1 or 0), not from NumPy data: cr.compile records how it was made and replays the step."""
    runs, start = [], 0
    while start < len(positions):
        step = int(positions[start + 1] - positions[start]) if start + 1 < len(positions) else 1
        step = step if step in (-1, 0, 1) else 1
        stop = start + 1
        while stop < len(positions) and positions[stop] - positions[stop - 1] == step:
            stop += 1
        first, count = int(positions[start]), stop - start
        runs.append(C.full([count], first, C.DType.int64) if step == 0
                    else C.arange(first, first + step * count, step, C.DType.int64))
        start = stop
    return runs[0] if len(runs) == 1 else C.cat(runs, 0)


def _pad_index(mode: str, size: int, before: int, after: int, dim: int, shape: Any) -> np.ndarray:
    """The positions of the input a non-constant pad reads, along one dim."""
    if mode == "reflect" and (before >= size or after >= size):
        raise ValueError(f"pad: reflect padding ({before}, {after}) must be less than the size "
                         f"{size} of dim {dim} of the input of shape {shape}")
    if mode == "circular" and (before > size or after > size):
        raise ValueError(f"pad: circular padding ({before}, {after}) wraps around dim {dim} of size "
                         f"{size} (input shape {shape}) more than once")
    # a negative pad crops first; the other side pads the cropped dim (as PyTorch does)
    start = max(0, -before)
    kept = size - start - max(0, -after)
    if kept <= 0:
        raise ValueError(f"pad: padding ({before}, {after}) of dim {dim} of size {size} (input "
                         f"shape {shape}) leaves nothing to pad from")
    positions = np.arange(-max(0, before), kept + max(0, after), dtype=np.int64)
    if mode == "reflect":
        positions = np.abs(positions)
        positions = np.where(positions >= kept, 2 * (kept - 1) - positions, positions)
    elif mode == "replicate":
        positions = np.clip(positions, 0, kept - 1)
    else:
        positions = positions % kept
    return positions + start


__all__ = ["bmm", "chunk", "diagonal", "einsum", "linalg_norm", "masked_fill", "masked_fill_", "mm",
           "narrow", "norm", "pad", "split", "std", "std_mean", "unbind", "var", "var_mean",
           "vector_norm"]
