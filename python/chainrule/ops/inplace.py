"""In-place ops (`+=`, `add_`, `mul_`, `clamp_`, `zero_`, `fill_`, `copy_`, `t[i] = v`) on
tensors in a graph, with PyTorch's rules.

- No graph involved (grad mode off, or neither the tensor nor the operand requires grad): the
  kernel writes into the tensor's memory, nothing else (the optimizers' path).
- A leaf that requires grad refuses, outside no_grad: its `.grad` is defined with respect to
  the values it holds, so changing them would make it wrong (RuntimeError, as PyTorch).
- Otherwise the op is recorded: its out-of-place form (a table op: `add`, `mul`, `where`, ...)
  runs on the tensor's current history, its result is written into the tensor's memory (so
  views and other references see the change, and its version counter goes up: a node that
  saved the old values raises on backward, naming the op, shape and versions), and the tensor's
  node becomes the new op's node. An op whose backward needs the old values (mul_, div_,
  clamp_) reads them from a copy made first, as PyTorch's saved `original_self`.
- In place on a basic-indexing view of a tensor in a graph (`y[0] += 1`, `y[0][1:].mul_(2)`:
  views of views too) rebases the history of the tensor they all view (PyTorch's CopySlices);
  in place on another view (`y.T.mul_(2)` with y requiring grad) raises RuntimeError.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

from chainrule import _core

C = _core

# The nodes of ops whose output is (or may be) a view of their input. An in-place op on such an
# output is refused unless the view was remembered with its base (basic indexing, narrow,
# chunk, split, unbind): changing it would change the base without the base's history knowing.
# (A reshape that copied is refused too: the node does not tell a copy from a view.)
VIEW_NODES = frozenset({"IndexBackward", "TransposeBackward", "PermuteBackward", "ExpandBackward",
                        "ReshapeBackward", "DiagonalBackward"})


def _requires_grad(x: Any) -> bool:
    return isinstance(x, C.TensorBase) and x._requires_grad


def needs_graph(t: Any, *others: Any) -> bool:
    """Whether t.op_(*others) must be recorded (or refused) rather than just run."""
    if not C.is_grad_enabled():
        return False
    if t._requires_grad or any(_requires_grad(o) for o in others):
        return True
    if _NO_GRAD_VIEWS:
        _refuse_no_grad_view(t)
    return False


# view (by id) -> (weak reference to the view, its base): views made under no_grad of a tensor
# that requires grad. Changing one in place with grad mode on would change the base behind its
# history's back: refused, as PyTorch does.
_NO_GRAD_VIEWS: dict[int, tuple[Any, Any]] = {}


def _remember_no_grad_view(view: Any, base: Any) -> None:
    key = id(view)
    _NO_GRAD_VIEWS[key] = (weakref.ref(view, lambda _: _NO_GRAD_VIEWS.pop(key, None)), base)


def _refuse_no_grad_view(t: Any) -> None:
    entry = _NO_GRAD_VIEWS.get(id(t))
    if entry is not None and entry[0]() is t and entry[1]._requires_grad:
        raise RuntimeError(
            f"a view of shape {tuple(t.shape)} was created under no_grad() from a tensor that requires "
            f"grad (shape {tuple(entry[1].shape)}) and is being modified in place with grad mode on; "
            "make the view outside no_grad(), or modify it under no_grad()")


# view (by id) -> (weak reference to the view, its base Tensor, the view steps): every view made
# while grad mode is on remembers its base. An in-place op on a basic-indexing view (steps: a
# list of slice/select steps) rebases the base's history (PyTorch's CopySlices); one on another
# view (steps: a function base -> view) is refused; an in-place op on the base makes each view's
# node again from the new base (_refresh_views).
_VIEW_BASES: dict[int, tuple[Any, Any, Any]] = {}


def remember_view(view: Any, base: Any, steps: Any) -> None:
    key = id(view)
    _VIEW_BASES[key] = (weakref.ref(view, lambda _: _VIEW_BASES.pop(key, None)), base, steps)


def index_view(t: Any, steps: Any) -> Any:
    """t viewed through basic-indexing steps (slice/select), remembered with t when a graph may
    be recorded, so that an in-place op on either one keeps the other's history right."""
    from chainrule.ops.shapes import Index

    view = C.apply(Index, t, steps)
    if C.is_grad_enabled():
        remember_view(view, t, steps)
    elif t._requires_grad:
        _remember_no_grad_view(view, t)
    return view


def _refresh_views(base: Any, skip: Any = None) -> None:
    """base was changed in place: each remembered view of it reads the new base (PyTorch
    regenerates a view's grad_fn the same way), so its gradient reaches the new history."""
    from chainrule.ops.shapes import Index

    for ref, owner, steps in list(_VIEW_BASES.values()):
        view = ref()
        if owner is base and view is not None and view is not skip and base._requires_grad:
            _set_node(view, (steps(base) if callable(steps) else C.apply(Index, base, steps)).grad_fn)
            view._requires_grad = True
            _refresh_views(view)  # and the views of that view


def _set_node(t: Any, node: Any) -> None:
    """t's history becomes node; retain_grad() follows the tensor (as PyTorch: .grad is that of
    the newest version)."""
    old = t.grad_fn
    if old is not None and old is not node and old.retained is not None and old.retained() is t:
        old.retained = None
        node.retained = weakref.ref(t)
    t.grad_fn = node


def view_base(t: Any) -> tuple[Any, Any] | None:
    """(base, steps) when t is a view of a tensor (and still that view)."""
    entry = _VIEW_BASES.get(id(t))
    if entry is None or entry[0]() is not t:
        return None
    return entry[1], entry[2]


def root_view_base(t: Any) -> tuple[Any, Any] | None:
    """(root, steps) for a view: through views of views (y[0][1:]) made by basic indexing, the
    tensor they all view and the steps from it, one chain (steps apply one after another). The
    steps are a function when any view on the way is not basic indexing (a transpose, ...)."""
    based = view_base(t)
    if based is None:
        return None
    root, steps = based
    outer = view_base(root)
    while outer is not None:
        if callable(steps) or callable(outer[1]):
            return outer[0], lambda _: None  # not one chain of basic-indexing steps
        root, steps = outer[0], [*outer[1], *steps]
        outer = view_base(root)
    return root, steps


def check(t: Any, op: str) -> None:
    """RuntimeError for the in-place ops PyTorch refuses: on a leaf that requires grad or a view
    of one, on a view made under no_grad, and (here) on a view that reshapes or reorders a
    tensor in a graph (transpose, permute, expand, view/reshape, diagonal)."""
    if _NO_GRAD_VIEWS:
        _refuse_no_grad_view(t)
    if t.grad_fn is None and t._requires_grad:
        raise RuntimeError(
            f"{op}: a leaf Variable that requires grad (shape {tuple(t.shape)}) is being used in an "
            "in-place operation; update it under chainrule.no_grad(), or clone() it first")
    based = root_view_base(t)
    if based is not None:
        base = based[0]
        if callable(based[1]):
            raise RuntimeError(
                f"{op}: in-place operation on a view ({t.grad_fn.name() if t.grad_fn else 'view'}, shape "
                f"{tuple(t.shape)}) of a tensor of shape {tuple(base.shape)} is not supported while "
                "autograd records it; clone() the view first, or write into the base tensor")
        if base.grad_fn is None and base._requires_grad:
            raise RuntimeError(
                f"{op}: a view of a leaf Variable that requires grad (shape {tuple(base.shape)}) is "
                "being used in an in-place operation; update it under chainrule.no_grad()")
        return
    if t.grad_fn is not None and t.grad_fn.name() in VIEW_NODES:
        raise RuntimeError(
            f"{op}: in-place operation on a view ({t.grad_fn.name()}) of a tensor that requires "
            f"grad (shape {tuple(t.shape)}) is not supported; clone() the view first, or write into "
            "the base tensor")


def record(t: Any, op: str, compute: Callable[[Any], Any], *others: Any, reads_self: bool = True) -> Any:
    """t.op_(...) in a graph: out = compute(old t) (recorded), written into t, t's node := out's.
    reads_self: the op's backward needs t's old values (they are copied first)."""
    from chainrule.tensor import _wrap

    check(t, op)
    if reads_self and t._requires_grad:
        source = _wrap(t._data.clone(), t.grad_fn)
    else:
        source = t if not t._requires_grad else _wrap(t._data, t.grad_fn)
    out = compute(source)
    if out._requires_grad and not t.dtype.is_floating_point:
        raise TypeError(f"{op}: result dtype {out.dtype.name} requires grad and cannot be stored in place in a "
                        f"tensor of dtype {t.dtype.name} (shape {tuple(t.shape)})")
    if out.dtype != t.dtype:
        out = out.to(t.dtype)
    if tuple(out.shape) != tuple(t.shape):
        raise RuntimeError(
            f"{op}: output with shape {tuple(t.shape)} doesn't match the broadcast shape "
            f"{tuple(out.shape)}")
    based = root_view_base(t)
    if based is not None and out._requires_grad:
        return _rebase(t, out, *based)
    C.copy_(t._data, out._data)  # into t's memory: its version goes up
    if out._requires_grad:
        _set_node(t, out.grad_fn)
        t._requires_grad = True
        _refresh_views(t)
    return t


def _rebase(view: Any, out: Any, base: Any, steps: Any) -> Any:
    """The view's new values `out` written into the base's memory; the base's history becomes
    where(inside the view, out placed, base's old values), the view's that indexed again."""
    import chainrule as cr
    from chainrule.ops.shapes import Index, ViewScatter
    from chainrule.tensor import _wrap

    mask = C.full(list(base.shape), False, C.DType.bool)
    C.fill_(_apply(mask, steps), True)
    placed = C.apply(ViewScatter, out, list(base.shape), Index, steps)
    old_base = _wrap(base._data, base.grad_fn) if base._requires_grad else C.wrap(base._data)
    new_base = cr.where(C.wrap(mask), placed, old_base)
    C.copy_(view._data, out._data)  # into the base's memory: its version goes up
    _set_node(base, new_base.grad_fn)
    base._requires_grad = True
    _set_node(view, C.apply(Index, new_base, steps).grad_fn)
    view._requires_grad = True
    _refresh_views(base, skip=view)
    _refresh_views(view)  # the views of the changed view read its new history too
    return view


def overwrite(t: Any, op: str, value: Any) -> Any:
    """t.fill_(v) / t.copy_(src) / t.zero_() in a graph: t's old history gets a zero gradient,
    src's its own (recorded as where(all true, value, t))."""
    import chainrule as cr

    def compute(old: Any) -> Any:
        new = value if isinstance(value, C.TensorBase) else cr.full(tuple(t.shape), value, dtype=t.dtype)
        everywhere = cr.ones(tuple(t.shape), dtype=cr.bool)
        return cr.where(everywhere, new.to(t.dtype) if new.dtype != t.dtype else new, old)

    return record(t, op, compute, value, reads_self=False)


def setitem(t: Any, steps: Any, value: Any) -> Any:
    """t[index] = value in a graph: t outside the indexed part, value (broadcast) inside it."""
    import chainrule as cr
    from chainrule.ops.shapes import Index, ViewScatter

    view_shape = _view_shape(t, steps)
    mask = C.full(list(t.shape), False, C.DType.bool)
    C.fill_(_apply(mask, steps), True)
    inside = C.wrap(mask)

    def compute(old: Any) -> Any:
        v = value if isinstance(value, C.TensorBase) else cr.full(view_shape, value, dtype=t.dtype)
        v = v.to(t.dtype) if v.dtype != t.dtype else v
        if tuple(v.shape) != view_shape:
            v = v.expand(*view_shape)
        if v._requires_grad:
            placed = C.apply(ViewScatter, v, list(t.shape), Index, steps)
        else:
            placed = C.wrap(_scatter(v._data, t.shape, steps))
        return cr.where(inside, placed, old)

    return record(t, "__setitem__", compute, value, reads_self=False)


def _apply(a: Any, steps: Any) -> Any:
    from chainrule.ops.kernels import apply_view_steps

    return apply_view_steps(a, steps)


def _view_shape(t: Any, steps: Any) -> tuple[int, ...]:
    return tuple(_apply(C.full(list(t.shape), 0, C.DType.bool), steps).shape)


def _scatter(v: Any, shape: Any, steps: Any) -> Any:
    out = C.full(list(shape), 0, v.dtype)
    C.copy_(_apply(out, steps), v)
    return out
