"""Bad input from Python never crashes the process: it raises the exception API.md lists, with
the op and the offending shapes, dtypes or dims in the message, and leaves its inputs as they were.

`CASES` is the table: (description, setup, call, expected exception, substrings of the message).
`setup()` makes fresh inputs (a tuple of tensors / modules); `call(*inputs)` is the bad call.
Every message substring is matched case-insensitively (so "mul" matches "MulBackward").
Calls that break the contract today are marked xfail(strict=True) in `BUGS`. Calls that can kill
the interpreter are also run in subprocesses at the end of the file.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F

HERE = Path(__file__).resolve()
# The directory holding the chainrule these tests imported (site-packages, or a dev tree), so
# subprocesses import the same one.
PYTHON_DIR = str(Path(cr.__file__).resolve().parents[1])


# ------------------------------------------------------------------ helpers for the table
def T(*shape, rg=False, dtype=np.float32):
    """A tensor with distinct, non-trivial values (so an in-place change is visible)."""
    n = int(np.prod(shape)) if shape else 1
    data = (np.arange(n, dtype=np.float64).reshape(shape) * 0.5 + 0.25).astype(dtype)
    return cr.tensor(data, requires_grad=rg)


def I(*shape):  # noqa: E743
    n = int(np.prod(shape)) if shape else 1
    return cr.tensor(np.arange(n, dtype=np.int64).reshape(shape))


def B(*values):
    return cr.tensor(list(values))


def P(*shape):
    """Probabilities in (0, 1)."""
    n = int(np.prod(shape)) if shape else 1
    return cr.tensor(np.linspace(0.1, 0.9, n).reshape(shape).astype(np.float32))


def none():
    return ()


def _iadd(t):
    t += 1


def _isub(t):
    t -= 1


def _imul(t):
    t *= 2


def _setitem_tensor(t, v):
    t[0] = v


def _setitem_scalar(t):
    t[0] = 5.0


def _set_requires_grad(t):
    t.requires_grad = True


def _assign_grad(x, g):
    x.grad = g


def _freed_graph():
    x = T(3, rg=True)
    y = (x * x).sum()
    y.backward()  # frees MulBackward's saved tensors; x.grad == 2x
    return x, y


def _saved_operand_changed():
    x = T(3, rg=True)
    w = T(3)
    y = (x * w).sum()  # MulBackward saved w
    w.add_(1.0)        # w does not require grad: allowed, bumps its version
    return x, w, y


def _saved_output_changed():
    x = T(3, rg=True)
    e = x.exp()        # ExpBackward saves its output
    with cr.no_grad():
        e.add_(1.0)
    return x, e.sum()


def _saved_leaf_changed():
    x = T(3, rg=True)
    y = (x * x).sum()
    with cr.no_grad():
        x.mul_(2.0)
    return x, y


CASES = [
    # --- broadcasting: every binary op, with the op and both shapes in the message
    ("add (2,3) + (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: a + b,
     ValueError, ["add", "(2, 3)", "(4, 3)"]),
    ("sub (2,3) - (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: a - b,
     ValueError, ["sub", "(2, 3)", "(4, 3)"]),
    ("mul (2,3) * (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: a * b,
     ValueError, ["mul", "(2, 3)", "(4, 3)"]),
    ("div (2,3) / (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: a / b,
     ValueError, ["div", "(2, 3)", "(4, 3)"]),
    ("pow (2,3) ** (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: a ** b,
     ValueError, ["pow", "(2, 3)", "(4, 3)"]),
    ("maximum (2,3), (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: cr.maximum(a, b),
     ValueError, ["maximum", "(2, 3)", "(4, 3)"]),
    ("minimum (2,3), (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: cr.minimum(a, b),
     ValueError, ["minimum", "(2, 3)", "(4, 3)"]),
    ("eq (2,3) == (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: a == b,
     ValueError, ["eq", "(2, 3)", "(4, 3)"]),
    ("ne (2,3) != (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: a != b,
     ValueError, ["ne", "(2, 3)", "(4, 3)"]),
    ("lt (2,3) < (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: a < b,
     ValueError, ["lt", "(2, 3)", "(4, 3)"]),
    ("le (2,3) <= (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: a <= b,
     ValueError, ["le", "(2, 3)", "(4, 3)"]),
    ("gt (2,3) > (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: a > b,
     ValueError, ["gt", "(2, 3)", "(4, 3)"]),
    ("ge (2,3) >= (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: a >= b,
     ValueError, ["ge", "(2, 3)", "(4, 3)"]),
    ("cr.add function (3,) + (4,)", lambda: (T(3), T(4)), lambda a, b: cr.add(a, b),
     ValueError, ["add", "(3,)", "(4,)"]),
    ("add with grad (2,3) + (3,2)", lambda: (T(2, 3, rg=True), T(3, 2, rg=True)),
     lambda a, b: a + b, ValueError, ["add", "(2, 3)", "(3, 2)"]),
    ("where cond (2,3), x (4,3), y (2,3)", lambda: (T(2, 3) > 1.0, T(4, 3), T(2, 3)),
     lambda c, a, b: cr.where(c, a, b), ValueError, ["where", "(4, 3)"]),
    ("in-place add_ (2,3) += (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: a.add_(b),
     ValueError, ["add", "(2, 3)", "(4, 3)"]),
    ("in-place add_ whose result would grow self (3,) by (2,3)", lambda: (T(3), T(2, 3)),
     lambda a, b: a.add_(b), ValueError, ["add", "(3,)", "(2, 3)"]),
    ("in-place mul_ whose result would grow self (1,3) by (2,3)", lambda: (T(1, 3), T(2, 3)),
     lambda a, b: a.mul_(b), ValueError, ["mul", "(1, 3)", "(2, 3)"]),
    ("copy_ (3,) from (4,)", lambda: (T(3), T(4)), lambda a, b: a.copy_(b),
     ValueError, ["copy_", "(3,)", "(4,)"]),
    ("t[0] = tensor of shape (5,) into a row of 3", lambda: (T(2, 3), T(5)), _setitem_tensor,
     ValueError, ["(3,)", "(5,)"]),

    # --- matmul: both shapes in the message
    ("matmul (4,3) @ (2,2)", lambda: (T(4, 3), T(2, 2)), lambda a, b: a @ b,
     ValueError, ["matmul", "(4, 3)", "(2, 2)"]),
    ("cr.matmul (3,) @ (4,)", lambda: (T(3), T(4)), lambda a, b: cr.matmul(a, b),
     ValueError, ["matmul", "(3,)", "(4,)"]),
    ("matmul batch dims (2,3,4) @ (3,4,5)", lambda: (T(2, 3, 4), T(3, 4, 5)), lambda a, b: a @ b,
     ValueError, ["matmul", "(2, 3, 4)", "(3, 4, 5)"]),
    ("matmul 0-d @ (3,)", lambda: (T(), T(3)), lambda a, b: a @ b,
     ValueError, ["matmul", "()", "(3,)"]),
    ("matmul with grad (2,3) @ (2,3)", lambda: (T(2, 3, rg=True), T(2, 3, rg=True)),
     lambda a, b: a @ b, ValueError, ["matmul", "(2, 3)"]),
    ("Linear(3, 2) on input (4, 5)", lambda: (nn.Linear(3, 2), T(4, 5)), lambda m, x: m(x),
     ValueError, ["(4, 5)"]),

    # --- reshape / view
    ("reshape (2,3) -> (4,2)", lambda: (T(2, 3),), lambda t: t.reshape(4, 2),
     ValueError, ["reshape", "(4, 2)", "6"]),
    ("view (2,3) -> (4,2)", lambda: (T(2, 3),), lambda t: t.view(4, 2),
     ValueError, ["view", "(4, 2)", "6"]),
    ("reshape with two -1", lambda: (T(2, 3),), lambda t: t.reshape(-1, -1),
     ValueError, ["reshape", "-1"]),
    ("view with two -1", lambda: (T(2, 3),), lambda t: t.view(-1, -1),
     ValueError, ["view", "-1"]),
    ("view(6) of a transposed (3,2) tensor", lambda: (T(2, 3),), lambda t: t.T.view(6),
     ValueError, ["view", "(3, 2)"]),
    ("view(6) of a transposed tensor via transpose(0,1)", lambda: (T(2, 3),),
     lambda t: t.transpose(0, 1).view(-1), ValueError, ["view", "(3, 2)"]),
    ("reshape with a negative size -2", lambda: (T(2, 3),), lambda t: t.reshape(-2, 3),
     ValueError, ["reshape", "-2"]),
    ("reshape to a shape whose count overflows int64", lambda: (T(2, 3),),
     lambda t: t.reshape(2**40, 2**40), ValueError, ["reshape", "1099511627776"]),
    ("reshape(-1, 0) of an empty tensor (ambiguous -1)", lambda: (cr.tensor([]),),
     lambda t: t.reshape(-1, 0), ValueError, ["reshape", "-1"]),
    ("view(-1, 0) of an empty tensor (ambiguous -1)", lambda: (cr.tensor([]),),
     lambda t: t.view(-1, 0), ValueError, ["view", "-1"]),

    # --- expand / permute / .T
    ("expand (2,3) -> (4,3)", lambda: (T(2, 3),), lambda t: t.expand(4, 3),
     ValueError, ["expand", "(2, 3)", "(4, 3)"]),
    ("expand (2,3) -> (3,) (fewer dims)", lambda: (T(2, 3),), lambda t: t.expand(3),
     ValueError, ["expand", "(2, 3)"]),
    ("expand (1,1) -> (2**40, 2**40): element count overflows int64", lambda: (T(1, 1),),
     lambda t: t.expand(2**40, 2**40), ValueError, ["expand", "1099511627776"]),
    ("permute with 2 dims on a 3-D tensor", lambda: (T(2, 3, 4),), lambda t: t.permute(0, 1),
     ValueError, ["permute", "(2, 3, 4)"]),
    ("permute with a repeated dim", lambda: (T(2, 3, 4),), lambda t: t.permute(0, 0, 1),
     ValueError, ["permute", "0"]),
    ("permute with dim 3 on a 3-D tensor", lambda: (T(2, 3, 4),), lambda t: t.permute(0, 1, 3),
     IndexError, ["permute", "3"]),
    (".T on a 3-D tensor", lambda: (T(2, 3, 4),), lambda t: t.T,
     ValueError, ["(2, 3, 4)"]),

    # --- dims out of range: IndexError naming the op and the dim
    ("transpose(0, 2) on 2-D", lambda: (T(2, 3),), lambda t: t.transpose(0, 2),
     IndexError, ["transpose", "2"]),
    ("squeeze(2) on 2-D", lambda: (T(2, 3),), lambda t: t.squeeze(2),
     IndexError, ["squeeze", "2"]),
    ("unsqueeze(3) on 2-D", lambda: (T(2, 3),), lambda t: t.unsqueeze(3),
     IndexError, ["unsqueeze", "3"]),
    ("unsqueeze(-4) on 2-D", lambda: (T(2, 3),), lambda t: t.unsqueeze(-4),
     IndexError, ["unsqueeze", "-4"]),
    ("sum(2) on 2-D", lambda: (T(2, 3),), lambda t: t.sum(2),
     IndexError, ["sum", "2"]),
    ("cr.sum(t, 2) on 2-D", lambda: (T(2, 3),), lambda t: cr.sum(t, 2),
     IndexError, ["sum", "2"]),
    ("mean(-3) on 2-D", lambda: (T(2, 3),), lambda t: t.mean(-3),
     IndexError, ["mean", "-3"]),
    ("amax(5) on 2-D", lambda: (T(2, 3),), lambda t: t.amax(5),
     IndexError, ["amax", "5"]),
    ("amin((0, 2)) on 2-D", lambda: (T(2, 3),), lambda t: t.amin((0, 2)),
     IndexError, ["amin", "2"]),
    ("argmax(2) on 2-D", lambda: (T(2, 3),), lambda t: t.argmax(2),
     IndexError, ["argmax", "2"]),
    ("argmin(-3) on 2-D", lambda: (T(2, 3),), lambda t: t.argmin(-3),
     IndexError, ["argmin", "-3"]),
    ("max(dim=2) on 2-D", lambda: (T(2, 3),), lambda t: t.max(dim=2),
     IndexError, ["max", "2"]),
    ("softmax(2) on 2-D", lambda: (T(2, 3),), lambda t: t.softmax(2),
     IndexError, ["softmax", "2"]),
    ("log_softmax(5) on 2-D", lambda: (T(2, 3),), lambda t: t.log_softmax(5),
     IndexError, ["log_softmax", "5"]),
    ("sum(2) on 2-D with grad", lambda: (T(2, 3, rg=True),), lambda t: t.sum(2),
     IndexError, ["sum", "2"]),
    ("flatten(0, 5) on 2-D", lambda: (T(2, 3),), lambda t: t.flatten(0, 5),
     IndexError, ["flatten", "5"]),
    ("cat along dim 2 of 2-D tensors", lambda: (T(2, 3), T(2, 3)),
     lambda a, b: cr.cat([a, b], dim=2), IndexError, ["cat", "2"]),

    # --- a dim named twice
    ("sum((0, 0))", lambda: (T(2, 3),), lambda t: t.sum((0, 0)),
     ValueError, ["sum", "0"]),
    ("mean((1, -1)): the same dim twice", lambda: (T(2, 3),), lambda t: t.mean((1, -1)),
     ValueError, ["mean", "1"]),
    ("amax((0, 0))", lambda: (T(2, 3),), lambda t: t.amax((0, 0)),
     ValueError, ["amax", "0"]),
    ("amin((-1, 1)) with grad", lambda: (T(2, 3, rg=True),), lambda t: t.amin((-1, 1)),
     ValueError, ["amin", "1"]),

    # --- cat / stack
    ("cat (2,3) with (2,4) along dim 0", lambda: (T(2, 3), T(2, 4)), lambda a, b: cr.cat([a, b]),
     ValueError, ["cat", "(2, 3)", "(2, 4)"]),
    ("stack (2,3) with (4,3)", lambda: (T(2, 3), T(4, 3)), lambda a, b: cr.stack([a, b]),
     ValueError, ["stack", "(2, 3)", "(4, 3)"]),
    ("cat of an empty list", none, lambda: cr.cat([]), ValueError, ["cat"]),

    # --- negative sizes
    ("zeros(-1)", none, lambda: cr.zeros(-1), ValueError, ["zeros", "-1"]),
    ("ones(2, -3)", none, lambda: cr.ones(2, -3), ValueError, ["ones", "-3"]),
    ("empty(-1)", none, lambda: cr.empty(-1), ValueError, ["empty", "-1"]),
    ("full((-2,), 1.0)", none, lambda: cr.full((-2,), 1.0), ValueError, ["full", "-2"]),
    ("rand(-1)", none, lambda: cr.rand(-1), ValueError, ["rand", "-1"]),
    ("randn(3, -1)", none, lambda: cr.randn(3, -1), ValueError, ["randn", "-1"]),
    ("randint(0, 5, (-1,))", none, lambda: cr.randint(0, 5, (-1,)), ValueError, ["randint", "-1"]),
    ("eye(-1)", none, lambda: cr.eye(-1), ValueError, ["eye", "-1"]),

    # --- shapes whose element count or byte size overflows int64
    ("zeros(2**40, 2**40): element count overflows", none, lambda: cr.zeros(2**40, 2**40),
     ValueError, ["zeros", "1099511627776"]),
    ("empty(2**62, 4): element count overflows", none, lambda: cr.empty(2**62, 4),
     ValueError, ["empty", "4611686018427387904"]),
    ("empty(2**62) float32: byte size overflows", none, lambda: cr.empty(2**62),
     ValueError, ["empty", "4611686018427387904"]),
    ("empty(2**63): a size beyond int64", none, lambda: cr.empty(2**63),
     ValueError, ["empty", "9223372036854775808"]),
    ("ones(1).expand(2**62).contiguous(): byte size overflows", lambda: (T(1),),
     lambda t: t.expand(2**62).contiguous(), ValueError, ["4611686018427387904"]),

    # --- allocations the machine cannot satisfy (~256 TiB)
    ("empty(2**46) float32 (256 TiB)", none, lambda: cr.empty(2**46),
     MemoryError, ["empty", "70368744177664"]),
    ("zeros(2**45, dtype=float64) (256 TiB)", none, lambda: cr.zeros(2**45, dtype=cr.float64),
     MemoryError, ["zeros", "35184372088832"]),
    ("matmul (2**23,1) @ (1,2**23): 256 TiB result", lambda: (cr.ones(2**23, 1), cr.ones(1, 2**23)),
     lambda a, b: a @ b, MemoryError, ["matmul", "8388608"]),
    ("expand(2**23, 2**23).contiguous() of a (1,1) tensor", lambda: (T(1, 1),),
     lambda t: t.expand(2**23, 2**23).contiguous(), MemoryError, ["8388608"]),

    # --- cr.tensor data
    ("tensor of ragged [[1, 2], [3]]", none, lambda: cr.tensor([[1, 2], [3]]),
     ValueError, ["tensor"]),
    ("tensor of ragged [[1, 2], 3]", none, lambda: cr.tensor([[1, 2], 3]),
     ValueError, ["tensor"]),
    ("tensor of ragged [[[1], [2]], [[3]]]", none, lambda: cr.tensor([[[1], [2]], [[3]]]),
     ValueError, ["tensor"]),
    ("tensor(['a'])", none, lambda: cr.tensor(["a"]), TypeError, ["tensor", "str"]),
    ("tensor([1, None])", none, lambda: cr.tensor([1, None]), TypeError, ["tensor", "None"]),
    ("tensor({})", none, lambda: cr.tensor({}), TypeError, ["tensor", "dict"]),
    ("tensor('abc')", none, lambda: cr.tensor("abc"), TypeError, ["tensor", "str"]),
    ("tensor(object())", none, lambda: cr.tensor(object()), TypeError, ["tensor", "object"]),
    ("tensor(2**63): int beyond int64", none, lambda: cr.tensor(2**63),
     ValueError, ["tensor", "9223372036854775808"]),
    ("tensor(2**64): int beyond int64", none, lambda: cr.tensor(2**64),
     ValueError, ["tensor", "18446744073709551616"]),
    ("tensor(-2**63 - 1): int below int64", none, lambda: cr.tensor(-2**63 - 1),
     ValueError, ["tensor", "9223372036854775809"]),
    ("tensor([1, 2**63]): list with an int beyond int64", none, lambda: cr.tensor([1, 2**63]),
     ValueError, ["tensor", "9223372036854775808"]),
    ("from_numpy of complex64", none, lambda: cr.from_numpy(np.zeros(3, dtype=np.complex64)),
     TypeError, ["from_numpy", "complex64"]),

    # --- a float where a size is expected
    ("zeros(2.5)", none, lambda: cr.zeros(2.5), TypeError, ["zeros", "2.5"]),
    ("ones(2, 3.0)", none, lambda: cr.ones(2, 3.0), TypeError, ["ones", "3.0"]),
    ("empty((2.0, 3))", none, lambda: cr.empty((2.0, 3)), TypeError, ["empty", "2.0"]),
    ("randint(0, 5, (2.5,))", none, lambda: cr.randint(0, 5, (2.5,)), TypeError, ["randint", "2.5"]),
    ("reshape(2.5, 2)", lambda: (T(2, 3),), lambda t: t.reshape(2.5, 2),
     TypeError, ["reshape", "2.5"]),
    ("unsqueeze(1.5)", lambda: (T(2, 3),), lambda t: t.unsqueeze(1.5), TypeError, ["unsqueeze"]),

    # --- arange / randint / item
    ("arange(0, 5, 0)", none, lambda: cr.arange(0, 5, 0), ValueError, ["arange", "step"]),
    ("arange(0.0, 1.0, 0.0)", none, lambda: cr.arange(0.0, 1.0, 0.0), ValueError, ["arange", "step"]),
    ("arange(0, inf)", none, lambda: cr.arange(0, float("inf")), ValueError, ["arange", "inf"]),
    ("arange(0, 1e30): too many elements", none, lambda: cr.arange(0, 1e30), ValueError, ["arange"]),
    ("randint(5, 5, (3,))", none, lambda: cr.randint(5, 5, (3,)), ValueError, ["randint", "5"]),
    ("randint(5, 2, (3,))", none, lambda: cr.randint(5, 2, (3,)), ValueError, ["randint", "5", "2"]),
    ("item() of a (3,) tensor", lambda: (T(3),), lambda t: t.item(), ValueError, ["item", "(3,)"]),
    ("float() of a (2, 2) tensor", lambda: (T(2, 2),), lambda t: float(t), ValueError, ["(2, 2)"]),

    # --- dtypes
    ("tensor([1, 2], requires_grad=True): int64", none,
     lambda: cr.tensor([1, 2], requires_grad=True), TypeError, ["int64"]),
    ("zeros(3, dtype=bool, requires_grad=True)", none,
     lambda: cr.zeros(3, dtype=cr.bool, requires_grad=True), TypeError, ["bool"]),
    ("arange(5, requires_grad=True): int64", none,
     lambda: cr.arange(5, requires_grad=True), TypeError, ["int64"]),
    ("int64 tensor .requires_grad_()", lambda: (I(3),), lambda t: t.requires_grad_(),
     TypeError, ["int64"]),
    ("bool tensor .requires_grad = True", lambda: (B(True, False),), _set_requires_grad,
     TypeError, ["bool"]),
    ("bool - bool", lambda: (B(True, False), B(False, False)), lambda a, b: a - b,
     TypeError, ["sub", "bool"]),
    ("-bool", lambda: (B(True, False),), lambda a: -a, TypeError, ["neg", "bool"]),
    ("cr.sub(bool, bool)", lambda: (B(True, False), B(True, True)), lambda a, b: cr.sub(a, b),
     TypeError, ["sub", "bool"]),
    ("cr.neg(bool)", lambda: (B(True, False),), lambda a: cr.neg(a), TypeError, ["neg", "bool"]),
    ("bool tensor - True", lambda: (B(True, False),), lambda a: a - True,
     TypeError, ["sub", "bool"]),

    # --- losses
    ("MSELoss input (3,) target (3, 1)", lambda: (T(3), T(3, 1)),
     lambda a, b: nn.MSELoss()(a, b), ValueError, ["mse_loss", "(3,)", "(3, 1)"]),
    ("F.mse_loss input (2,3) target (3,) (broadcastable, still an error)",
     lambda: (T(2, 3, rg=True), T(3)), lambda a, b: F.mse_loss(a, b),
     ValueError, ["mse_loss", "(2, 3)", "(3,)"]),
    ("BCELoss input (3,) target (4,)", lambda: (P(3), P(4)),
     lambda a, b: nn.BCELoss()(a, b), ValueError, ["binary_cross_entropy", "(3,)", "(4,)"]),
    ("BCEWithLogitsLoss input (3,) target (2,3)", lambda: (T(3), P(2, 3)),
     lambda a, b: nn.BCEWithLogitsLoss()(a, b), ValueError,
     ["binary_cross_entropy_with_logits", "(3,)", "(2, 3)"]),
    ("CrossEntropyLoss logits (4,3) targets (5,)", lambda: (T(4, 3), cr.tensor([0, 1, 2, 0, 1])),
     lambda a, b: nn.CrossEntropyLoss()(a, b), ValueError, ["cross_entropy", "(4, 3)", "(5,)"]),
    ("MSELoss on int64 tensors", lambda: (I(3), I(3)), lambda a, b: nn.MSELoss()(a, b),
     TypeError, ["mse_loss", "int64"]),
    ("MSELoss with an int64 target", lambda: (T(3), I(3)), lambda a, b: nn.MSELoss()(a, b),
     TypeError, ["mse_loss", "int64"]),
    ("BCELoss with an int64 target", lambda: (P(2), cr.tensor([1, 0])),
     lambda a, b: nn.BCELoss()(a, b), TypeError, ["binary_cross_entropy", "int64"]),
    ("BCELoss with an int64 input", lambda: (cr.tensor([0, 1]), P(2)),
     lambda a, b: nn.BCELoss()(a, b), TypeError, ["binary_cross_entropy", "int64"]),
    ("cross_entropy with float32 targets", lambda: (T(2, 3), cr.tensor([0.0, 1.0])),
     lambda a, b: F.cross_entropy(a, b), TypeError, ["cross_entropy", "float32"]),
    ("cross_entropy with a class index 5 of 3", lambda: (T(2, 3), cr.tensor([0, 5])),
     lambda a, b: F.cross_entropy(a, b), IndexError, ["cross_entropy", "5"]),

    # --- autograd misuse
    ("backward of a (3,) output without gradient", lambda: (lambda x: (x, x * 2.0))(T(3, rg=True)),
     lambda x, y: y.backward(), RuntimeError, ["backward", "(3,)"]),
    ("backward with gradient (4,) for a (3,) output",
     lambda: (lambda x: (x, x * 2.0, T(4)))(T(3, rg=True)),
     lambda x, y, g: y.backward(g), ValueError, ["backward", "(4,)", "(3,)"]),
    ("backward with gradient (3,1) for a (3,) output (broadcastable, still an error)",
     lambda: (lambda x: (x, x * 2.0, T(3, 1)))(T(3, rg=True)),
     lambda x, y, g: y.backward(g), ValueError, ["backward", "(3, 1)", "(3,)"]),
    ("second backward through a freed graph", _freed_graph, lambda x, y: y.backward(),
     RuntimeError, ["mul", "retain_graph"]),
    ("backward on a tensor that does not require grad", lambda: (T(3),),
     lambda t: t.sum().backward(), RuntimeError, ["backward"]),
    ("autograd.grad of a (3,) output without grad_outputs",
     lambda: (lambda x: (x, x * 2.0))(T(3, rg=True)),
     lambda x, y: cr.autograd.grad(y, x), RuntimeError, ["(3,)"]),
    # RuntimeError, as PyTorch raises (tests/test_robustness.py compares with it)
    ("assigning a (4,) grad to a (3,) tensor", lambda: (T(3, rg=True), T(4)), _assign_grad,
     RuntimeError, ["(4,)", "(3,)"]),
    ("saved operand changed in place, then backward", _saved_operand_changed,
     lambda x, w, y: y.backward(), RuntimeError, ["mul", "version"]),
    ("saved output of exp changed in place under no_grad, then backward", _saved_output_changed,
     lambda x, y: y.backward(), RuntimeError, ["exp", "version"]),
    ("leaf saved by x*x changed under no_grad, then backward", _saved_leaf_changed,
     lambda x, y: y.backward(), RuntimeError, ["mul", "version"]),

    # --- in place on a tensor that requires grad, outside no_grad
    ("add_ on a leaf requiring grad", lambda: (T(3, rg=True),), lambda t: t.add_(1.0),
     RuntimeError, ["add_"]),
    ("sub_ on a leaf requiring grad", lambda: (T(3, rg=True),), lambda t: t.sub_(1.0),
     RuntimeError, ["sub_"]),
    ("mul_ on a leaf requiring grad", lambda: (T(3, rg=True),), lambda t: t.mul_(2.0),
     RuntimeError, ["mul_"]),
    ("div_ on a leaf requiring grad", lambda: (T(3, rg=True),), lambda t: t.div_(2.0),
     RuntimeError, ["div_"]),
    ("zero_ on a leaf requiring grad", lambda: (T(3, rg=True),), lambda t: t.zero_(),
     RuntimeError, ["zero_"]),
    ("fill_ on a leaf requiring grad", lambda: (T(3, rg=True),), lambda t: t.fill_(7.0),
     RuntimeError, ["fill_"]),
    ("copy_ into a leaf requiring grad", lambda: (T(3, rg=True), T(3) + 10.0),
     lambda t, s: t.copy_(s), RuntimeError, ["copy_"]),
    ("+= on a leaf requiring grad", lambda: (T(3, rg=True),), _iadd, RuntimeError, ["add"]),
    ("-= on a leaf requiring grad", lambda: (T(3, rg=True),), _isub, RuntimeError, ["sub"]),
    ("*= on a leaf requiring grad", lambda: (T(3, rg=True),), _imul, RuntimeError, ["mul"]),
    ("t[0] = 5.0 on a leaf requiring grad", lambda: (T(3, rg=True),), _setitem_scalar,
     RuntimeError, ["requires grad"]),
    # (in place on a non-leaf, or of a tensor requiring grad into a plain one, is recorded, as in
    # PyTorch: tests/test_double_backward.py)
    ("add_ on a view of a leaf requiring grad", lambda: (T(3, rg=True),), lambda x: x[1:].add_(1.0),
     RuntimeError, ["add_", "view of a leaf", "(3,)"]),
    ("mul_ on a transposed view of a non-leaf", lambda: (T(2, 3, rg=True),),
     lambda x: (x * 2.0).T.mul_(2.0), RuntimeError, ["mul_", "view", "(3, 2)"]),

    # --- indexing
    ("t[5] on a length-3 dim", lambda: (T(3),), lambda t: t[5], IndexError, ["5", "3"]),
    ("t[-4] on a length-3 dim", lambda: (T(3),), lambda t: t[-4], IndexError, ["-4", "3"]),
    ("t[0, 5] on (2,3)", lambda: (T(2, 3),), lambda t: t[0, 5], IndexError, ["5", "3"]),
    ("t[0, 0, 0] on (2,3): too many indices", lambda: (T(2, 3),), lambda t: t[0, 0, 0],
     IndexError, ["(2, 3)"]),
    ("t[5] with grad on a length-3 dim", lambda: (T(3, rg=True),), lambda t: t[5],
     IndexError, ["5", "3"]),
    ("t[int64 tensor [0, 5]] on (2,3)", lambda: (T(2, 3), cr.tensor([0, 5])), lambda t, i: t[i],
     IndexError, ["5", "2"]),
    ("t[float32 tensor] on (2,3)", lambda: (T(2, 3), cr.tensor([0.0, 1.0])), lambda t, i: t[i],
     IndexError, ["float32"]),
    ("t[bool mask of shape (1,)] on (2,3)", lambda: (T(2, 3), B(True)), lambda t, i: t[i],
     IndexError, ["(1,)", "2"]),

    # --- devices
    ("zeros(2, device='cuda')", none, lambda: cr.zeros(2, device="cuda"), ValueError, ["cuda"]),
    ("tensor([1.0], device='cuda:0')", none, lambda: cr.tensor([1.0], device="cuda:0"),
     ValueError, ["cuda"]),
    ("t.to('cuda')", lambda: (T(3),), lambda t: t.to("cuda"), ValueError, ["cuda"]),

    # --- modules
    ("load_state_dict with a bias of the wrong shape",
     lambda: (nn.Linear(3, 2), {"weight": T(2, 3) + 100.0, "bias": T(5)}),
     lambda m, sd: m.load_state_dict(sd), ValueError, ["bias", "(5,)", "(2,)"]),
    ("load_state_dict missing the bias (strict)",
     lambda: (nn.Linear(3, 2), {"weight": T(2, 3) + 100.0}),
     lambda m, sd: m.load_state_dict(sd), RuntimeError, ["bias"]),
]

# Calls that break the contract today. Strict: the day one is fixed, its xfail turns into a failure
# and the entry must be moved out of this dict.
BUGS: dict[str, str] = {
}

CASE_BY_DESC = {case[0]: case for case in CASES}
assert len(CASE_BY_DESC) == len(CASES), "descriptions must be unique"
assert set(BUGS) <= set(CASE_BY_DESC)


# ------------------------------------------------------------------ the check
def _snapshot(obj):
    """What must survive a failed call: values, shape, dtype, grad flags and .grad."""
    if isinstance(obj, cr.Tensor):
        grad = obj.grad
        return ("tensor", obj.shape, obj.dtype, obj.requires_grad, obj.grad_fn,
                np.array(obj.detach().numpy(), copy=True),
                None if grad is None else (grad.shape, np.array(grad.numpy(), copy=True)))
    if isinstance(obj, nn.Module):
        return ("module", {name: np.array(t.detach().numpy(), copy=True)
                           for name, t in obj.state_dict().items()})
    if isinstance(obj, dict):
        return ("dict", {k: _snapshot(v) for k, v in obj.items()})
    return ("other", None)


def _assert_same(before, after, where):
    assert before[0] == after[0], where
    if before[0] == "tensor":
        _, shape, dtype, rg, fn, values, grad = before
        _, shape2, dtype2, rg2, fn2, values2, grad2 = after
        assert (shape2, dtype2, rg2) == (shape, dtype, rg), f"{where}: shape/dtype/requires_grad changed"
        assert fn2 is fn, f"{where}: grad_fn changed"
        assert values2.dtype == values.dtype
        np.testing.assert_array_equal(values2, values, err_msg=f"{where}: values changed")
        assert (grad is None) == (grad2 is None), f"{where}: .grad appeared or vanished"
        if grad is not None:
            assert grad2[0] == grad[0]
            np.testing.assert_array_equal(grad2[1], grad[1], err_msg=f"{where}: .grad changed")
    elif before[0] == "module":
        assert before[1].keys() == after[1].keys(), f"{where}: parameters changed"
        for name in before[1]:
            np.testing.assert_array_equal(after[1][name], before[1][name],
                                          err_msg=f"{where}: parameter {name} changed")
    elif before[0] == "dict":
        assert before[1].keys() == after[1].keys()
        for k in before[1]:
            _assert_same(before[1][k], after[1][k], f"{where}[{k!r}]")


def check_case(case):
    desc, setup, call, exc, substrings = case
    inputs = setup()
    before = [_snapshot(obj) for obj in inputs]
    with pytest.raises(exc) as info:
        call(*inputs)
    message = str(info.value)
    for s in substrings:
        assert s.lower() in message.lower(), (
            f"{desc}: {type(info.value).__name__} message lacks {s!r}: {message!r}")
    for i, (obj, snap) in enumerate(zip(inputs, before)):
        _assert_same(snap, _snapshot(obj), f"{desc}: input {i}")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PYTHON_DIR, env.get("PYTHONPATH", "")) if p)
    return env


def _params():
    params = []
    for case in CASES:
        marks = []
        if case[0] in BUGS:
            marks.append(pytest.mark.xfail(reason=BUGS[case[0]], strict=True))
        params.append(pytest.param(case, id=case[0], marks=marks))
    return params


def test_table_is_large_enough():
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", _params())
def test_bad_call_raises(case):
    check_case(case)


def test_cat_of_mixed_dtypes_promotes():
    """cr.cat([float32, int64]) promotes as PyTorch does (never an internal error)."""
    a, b = T(2, 3), I(2, 3)
    before = [_snapshot(a), _snapshot(b)]
    out = cr.cat([a, b])
    assert out.shape == (4, 3) and out.dtype == cr.float32
    np.testing.assert_array_equal(out.numpy(), np.concatenate([a.numpy(), b.numpy()]).astype(np.float32))
    for snap, t in zip(before, (a, b)):
        _assert_same(snap, _snapshot(t), "cat input")


# ------------------------------------------------------------------ the interpreter survives
NASTY_BATCH = r"""
import numpy as np
import chainrule as cr
import chainrule.nn as nn

def freed():
    x = cr.ones(3, requires_grad=True); y = (x * x).sum(); y.backward(); y.backward()

def saved_changed():
    x = cr.ones(3, requires_grad=True); w = cr.ones(3); y = (x * w).sum(); w.add_(1.0); y.backward()

def saved_output_changed():
    x = cr.ones(3, requires_grad=True); e = x.exp()
    with cr.no_grad():
        e.mul_(2.0)
    e.sum().backward()

def inplace_leaf():
    x = cr.ones(3, requires_grad=True); x += 1

calls = [
    lambda: cr.empty(2**46),
    lambda: cr.zeros(2**45, dtype=cr.float64),
    lambda: cr.randn(2**23, 2**23),
    lambda: cr.eye(2**23),
    lambda: cr.ones(2**23, 1) @ cr.ones(1, 2**23),
    lambda: cr.ones(1, 1).expand(2**23, 2**23).contiguous(),
    lambda: cr.zeros(2**40, 2**40),
    lambda: cr.empty(2**62),
    lambda: cr.empty(2**62, 4),
    lambda: cr.empty(2**63),
    lambda: cr.full((2**40, 2**40), 1.0),
    lambda: cr.arange(0, 2**62),
    lambda: cr.arange(0, float("inf")),
    lambda: cr.arange(0, 1e30),
    lambda: cr.ones(1).expand(2**62).contiguous(),
    lambda: cr.ones(2, 3).reshape(2**40, 2**40),
    lambda: cr.zeros(-1),
    lambda: cr.ones(2, 3).reshape(-2, 3),
    freed,
    saved_changed,
    saved_output_changed,
    inplace_leaf,
    lambda: cr.ones(2, 3).T.view(6),
    lambda: cr.ones(2, 3).view(-1, -1),
    lambda: cr.ones(2, 3).expand(4, 3),
    lambda: cr.ones(2, 3, 4).permute(0, 0, 1),
    lambda: cr.ones(2, 3).transpose(0, -2**63),
    lambda: cr.ones(2, 3).unsqueeze(2**62),
    lambda: cr.ones(2, 3).sum(99),
    lambda: cr.ones(2, 3).softmax(-99),
    lambda: cr.ones(2, 3).argmax(7),
    lambda: cr.ones(3)[2**62],
    lambda: cr.ones(3)[-2**62],
    lambda: cr.ones(2, 3)[cr.tensor([0, 2**62])],
    lambda: cr.ones(2, 3)[cr.tensor([-2**63])],
    lambda: cr.ones(3).add_(cr.ones(2, 3)),
    lambda: cr.ones(3).copy_(cr.ones(4)),
    lambda: cr.tensor([[1, 2], [3]]),
    lambda: cr.tensor([[[1], [2]], [[3]]]),
    lambda: cr.tensor([1, None]),
    lambda: cr.tensor(2**64),
    lambda: cr.from_numpy(np.zeros(3, dtype=np.complex64)),
    lambda: nn.Linear(3, 2)(cr.ones(4, 5)),
]
no_raise = []
for i, call in enumerate(calls):
    try:
        call()
    except Exception:
        pass
    else:
        no_raise.append(i)
print("calls that did not raise:", no_raise)
print("survived")
"""

# Nasty calls on zero-element shapes, each in its own subprocess (some kill the interpreter today).
CRASHERS = [
    pytest.param("cr.ones(2**62, 2**62, 0)", id="ones-zero-size-with-overflowing-dims"),
    pytest.param("cr.full((2**40, 0), 1.0)", id="full-zero-size"),
    pytest.param("cr.zeros(0)", id="zeros-0-a-valid-call"),
    pytest.param("cr.tensor([]).reshape(-1, 0)", id="empty-reshape-ambiguous-infer"),
    pytest.param("cr.tensor([]).view(3, -1)", id="empty-view-infer"),
]


def _run_survival(code):
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                          text=True, timeout=300)
    return proc


def test_interpreter_survives_nasty_calls():
    proc = _run_survival(NASTY_BATCH)
    assert proc.returncode == 0, (
        f"the interpreter died (exit {proc.returncode}; negative = signal)\n"
        f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}")
    assert "survived" in proc.stdout
    assert "calls that did not raise: []" in proc.stdout, proc.stdout


@pytest.mark.parametrize("call", CRASHERS)
def test_interpreter_survives_crasher(call):
    code = textwrap.dedent(f"""
        import chainrule as cr
        try:
            {call}
        except Exception as error:
            print(type(error).__name__, error)
        print("survived")
    """)
    proc = _run_survival(code)
    assert proc.returncode == 0, (
        f"{call}: the interpreter died (exit {proc.returncode}; negative = signal)\n"
        f"stderr: {proc.stderr[-4000:]}")
    assert "survived" in proc.stdout
