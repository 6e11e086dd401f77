"""Elementwise ops: arithmetic, the activations, and the other pointwise functions.

Each entry reads as the lecture draws a gate: the forward, what it saves, and the backward as
the upstream gradient `g` times the local derivative. The native ones (+ - * /, neg, exp, log,
sigmoid, tanh, relu) run in C++ (csrc/python/native_elementwise.cpp); their formulas here are
the same, kernel for kernel, and are what the reference engine runs.
"""
from __future__ import annotations

from typing import Any

from chainrule import _core
from chainrule.ops.kernels import K
from chainrule.autograd.function import OpNode
from chainrule.ops.table import Case, native, op

C = _core
Array = _core.Tensor


def _is_array(x: Any) -> bool:
    """An array operand (a Tensor too: a backward recorded with create_graph runs on Tensors)."""
    return isinstance(x, (Array, C.TensorBase))


# ---------------------------------------------------------------- native arithmetic
@native("add", "Add", saves="nothing", cases=[Case("add", lambda a, b: a + b, [(3, 4), (3, 1)])],
        names=("+", "Tensor.add", "cr.add"))
def add_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """d(a + b) = g, g (the engine sums each down to its input's shape)."""
    return g, g


@native("sub", "Sub", saves="nothing", cases=[Case("sub", lambda a, b: a - b, [(3, 1), (4,)])],
        names=("-", "Tensor.sub", "cr.sub"))
def sub_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """d(a - b) = g, -g."""
    return g, K.neg(g)


@native("mul", "Mul", saves="both operands (a number operand as the scalar)",
        cases=[Case("mul", lambda a, b: a * b, [(3, 4), (4,)]),
               Case("mul_scalar", lambda a: 2.5 * a * 3, [(3, 4)])],
        names=("*", "Tensor.mul", "cr.mul"))
def mul_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """d(a * b) = g * b, g * a."""
    if saved.scalar_side == 1:
        return K.mul(g, saved.scalar), None
    if saved.scalar_side == 0:
        return None, K.mul(g, saved.scalar)
    a, b = saved.arrays
    return K.mul(g, b), K.mul(g, a)


@native("div", "Div", saves="b and the output (a number b as the scalar)",
        cases=[Case("div", lambda a, b: a / b, [(3, 4), (4,)], ("any", "nonzero")),
               Case("div_scalar", lambda a: 1.5 / a / 3, [(3, 4)], "nonzero")],
        names=("/", "Tensor.div", "cr.div"))
def div_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """d(a / b) = g / b, -(g / b) * out (that is -g a / b^2)."""
    if saved.scalar_side == 1:
        return K.div(g, saved.scalar), None
    b, out = saved.arrays
    ga = K.div(g, b)
    return ga, K.neg(K.mul(ga, out))


@native("neg", "Neg", saves="nothing", cases=[Case("neg", lambda a: -a, [(3, 4)])],
        names=("unary -", "Tensor.neg", "cr.neg"))
def neg_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """d(-a) = -g."""
    return (K.neg(g),)


# ---------------------------------------------------------------- native functions
@native("exp", "Exp", saves="the output y", method=True, function=True,
        cases=[Case("exp", lambda a: a.exp(), [(3, 4)])])
def exp_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """d e^x = g * y: e^x is its own derivative."""
    (y,) = saved.arrays
    return (K.mul(g, y),)


@native("log", "Log", saves="the input x", method=True, function=True,
        cases=[Case("log", lambda a: a.log(), [(3, 4)], "positive")])
def log_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """d log x = g / x."""
    (x,) = saved.arrays
    return (K.div(g, x),)


@native("sigmoid", "Sigmoid", saves="the output y", method=True, function=True, functional=True,
        cases=[Case("sigmoid", lambda a: a.sigmoid(), [(3, 4)])])
def sigmoid_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """sigmoid(x) = 1 / (1 + e^-x); d sigmoid = g * y * (1 - y), the lecture's g(z)(1 - g(z)),
    from the saved output (one fused kernel, as in C++)."""
    (y,) = saved.arrays
    return (K.sigmoid_backward(g, y),)


@native("tanh", "Tanh", saves="the output y", method=True, function=True, functional=True,
        cases=[Case("tanh", lambda a: a.tanh(), [(3, 4)])])
def tanh_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """d tanh = g * (1 - y^2) (one fused kernel)."""
    (y,) = saved.arrays
    return (K.tanh_backward(g, y),)


@native("relu", "Relu", saves="the input x", method=True, function=True, functional=True,
        cases=[Case("relu", lambda a: a.relu(), [(3, 4)], "nonzero")])
def relu_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """d max(x, 0) = 0 where x <= 0, else g (one fused kernel; at a NaN, g passes, as in
    PyTorch)."""
    (x,) = saved.arrays
    return (K.relu_backward(g, x),)


# ---------------------------------------------------------------- Python binary ops
@op("pow", saves="a, b and the output",
    cases=[Case("pow", lambda a, b: a ** b, [(3, 1), (4,)], ("positive", "any")),
           Case("pow_scalar", lambda a: a ** 2.5, [(3, 4)], "positive"),
           Case("rpow_scalar", lambda a: 0.7 ** a, [(3, 4)])],
    names=("**", "Tensor.pow", "cr.pow"))
class Pow(OpNode):
    """d(a^b)/da = b a^(b-1), d(a^b)/db = a^b log a (0 where it is a limit)."""

    @staticmethod
    def forward(ctx: Any, a: Any, b: Any) -> Array:
        out = C.pow(a, b)
        ctx.a, ctx.b, ctx.out = a, b, out
        ctx.save_for_backward(*[x for x in (a, b, out) if _is_array(x)])
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        ctx.saved_tensors  # noqa: B018  (the in-place and freed-graph checks)
        a, b = ctx.a, ctx.b
        ga = gb = None
        zero = K.full((), 0, g.dtype)
        if _is_array(a):
            # d(a^b)/da = b * a^(b-1), taken as 0 where b == 0 (a^0 is constant, even at a = 0)
            ga = K.mul(g, K.mul(b, K.pow(a, K.sub(b, 1) if _is_array(b) else b - 1)))
            if _is_array(b):
                ga = K.where(K.eq(b, 0), zero, ga)
            elif b == 0:
                ga = K.full(list(g.shape), 0, g.dtype)
        if _is_array(b):
            # d(a^b)/db = a^b * log(a), taken as 0 where a == 0 and b >= 0 (the limit from b's side)
            log_a = K.log(a) if _is_array(a) else K.log(K.full((), a, b.dtype))
            gb = K.mul(g, K.mul(ctx.out, log_a))
            gb = K.where(K.mul(K.eq(a, 0) if _is_array(a) else K.full((), a == 0, C.DType.bool),
                               K.ge(b, 0)), zero, gb)
        return ga, gb


def _split_by_winner(g: Array, a_wins: Array, tie: Array) -> tuple[Array, Array]:
    # The gradient goes to the winner; a tie splits it evenly (as PyTorch does).
    share_a = K.add(K.mul(a_wins, 1.0), K.mul(tie, 0.5))
    ga = K.mul(g, share_a)
    return ga, K.sub(g, ga)


@op("maximum", saves="a and b", names=("cr.maximum", "Tensor.max(other)"),
    cases=[Case("maximum", lambda a, b: a.max(b), [(3, 1), (4,)], ok="apart")])
class Maximum(OpNode):
    """The gradient goes to the larger input; a tie splits it."""

    @staticmethod
    def forward(ctx: Any, a: Array, b: Array) -> Array:
        ctx.save_for_backward(a, b)
        return C.maximum(a, b)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        a, b = ctx.saved_tensors
        return _split_by_winner(g, K.gt(a, b), K.eq(a, b))


@op("minimum", saves="a and b", names=("cr.minimum", "Tensor.min(other)"),
    cases=[Case("minimum", lambda a, b: a.min(b), [(3, 4), (3, 4)], ok="apart")])
class Minimum(OpNode):
    """The gradient goes to the smaller input; a tie splits it."""

    @staticmethod
    def forward(ctx: Any, a: Array, b: Array) -> Array:
        ctx.save_for_backward(a, b)
        return C.minimum(a, b)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        a, b = ctx.saved_tensors
        return _split_by_winner(g, K.lt(a, b), K.eq(a, b))


def _where_case(a: Any, b: Any) -> Any:
    import chainrule as cr  # cases run long after import; the condition is a constant of a

    return cr.where((a > 0.0).detach(), a, b)


@op("where", saves="the condition", names=("cr.where",),
    cases=[Case("where", _where_case, [(3, 4), (3, 1)], ("nonzero", "any"))])
class Where(OpNode):
    """g flows to a where the condition holds, to b elsewhere."""

    @staticmethod
    def forward(ctx: Any, condition: Array, a: Array, b: Array) -> Array:
        ctx.save_for_backward(condition)
        return C.where(condition, a, b)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (condition,) = ctx.saved_tensors
        zero = K.full((), 0, g.dtype)
        return None, K.where(condition, g, zero), K.where(condition, zero, g)


# ---------------------------------------------------------------- Python unary ops
@op("sqrt", saves="the output", method=True, function=True,
    cases=[Case("sqrt", lambda a: a.sqrt(), [(3, 4)], "positive")])
class Sqrt(OpNode):
    """d sqrt(x) = g / (2 sqrt(x))."""

    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        out = C.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (out,) = ctx.saved_tensors
        return (K.div(g, K.mul(out, 2.0)),)


@op("abs", saves="the input", method=True, function=True, names=("abs()",),
    cases=[Case("abs", lambda a: abs(a), [(3, 4)], "nonzero")])
class Abs(OpNode):
    """d |x| = g * sign(x)."""

    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        ctx.save_for_backward(a)
        return C.abs(a)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        return (K.mul(g, K.sign(a)),)


@op("sin", saves="the input", method=True, function=True,
    cases=[Case("sin", lambda a: a.sin(), [(3, 4)])])
class Sin(OpNode):
    """d sin x = g * cos x."""

    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        ctx.save_for_backward(a)
        return C.sin(a)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        return (K.mul(g, K.cos(a)),)


@op("cos", saves="the input", method=True, function=True,
    cases=[Case("cos", lambda a: a.cos(), [(3, 4)])])
class Cos(OpNode):
    """d cos x = -g * sin x."""

    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        ctx.save_for_backward(a)
        return C.cos(a)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        return (K.neg(K.mul(g, K.sin(a))),)


@op("square", saves="the input", method=True, function=True,
    cases=[Case("square", lambda a: a.square(), [(3, 4)])])
class Square(OpNode):
    """d x^2 = g * 2x."""

    @staticmethod
    def forward(ctx: Any, a: Array) -> Array:
        ctx.save_for_backward(a)
        return C.square(a)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        return (K.mul(g, K.mul(a, 2.0)),)


@op("clamp", saves="the input and the bounds", names=("Tensor.clamp", "cr.clamp", "clip"),
    cases=[Case("clamp", lambda a: a.clamp(-0.5, 0.5), [(3, 4)], "clamp"),
           Case("clamp_min", lambda a: a.clamp(min=-0.5), [(3, 4)], "clamp")])
class Clamp(OpNode):
    """g passes where the input was inside [low, high], else 0."""

    @staticmethod
    def forward(ctx: Any, a: Array, low: Any, high: Any) -> Array:
        ctx.save_for_backward(a)
        ctx.low, ctx.high = low, high
        return C.clamp(a, low, high)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (a,) = ctx.saved_tensors
        inside = None
        if ctx.low is not None:
            inside = K.ge(a, ctx.low)
        if ctx.high is not None:
            below = K.le(a, ctx.high)
            inside = below if inside is None else K.mul(inside, below)
        return K.mul(g, inside), None, None


def _log1p(u: Array) -> Array:
    """log(1 + u), accurate for tiny u too (where 1 + u rounds to 1): log(w) u / (w - 1) with
    w = 1 + u corrects the rounding of w (Goldberg's trick)."""
    w = K.add(u, 1.0)
    d = K.sub(w, 1.0)
    return K.where(K.eq(d, 0), u, K.div(K.mul(K.log(w), u), d))


@op("softplus", saves="the input", method=True, function=True, functional=True,
    params=(("beta", 1.0), ("threshold", 20.0)),
    cases=[Case("softplus", lambda a: a.softplus(), [(3, 4)]),
           Case("softplus_beta", lambda a: a.softplus(beta=2.0, threshold=1.0), [(3, 4)], "clamp")])
class Softplus(OpNode):
    """softplus(x) = log(1 + e^(beta x)) / beta, and x itself where beta x > threshold (PyTorch's
    rule); d softplus = g * sigmoid(beta x), and g where linear."""

    @staticmethod
    def forward(ctx: Any, x: Array, beta: float, threshold: float) -> Array:
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        z = C.mul(x, beta)
        # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no overflow for large z
        soft = C.add(C.relu(z), _log1p(C.exp(C.neg(C.abs(z)))))
        return C.where(C.gt(z, threshold), x, C.div(soft, beta))

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (x,) = ctx.saved_tensors
        z = K.mul(x, ctx.beta)
        return K.where(K.gt(z, ctx.threshold), g, K.mul(g, K.sigmoid(z))), None, None


def _masked_fill_case(a: Any, v: Any) -> Any:
    mask = (a > 0.0).detach()
    return a.masked_fill(mask, v.sum()) + a.masked_fill(mask[0], -2.0)


@op("masked_fill", saves="the mask", names=("Tensor.masked_fill", "Tensor.masked_fill_"),
    cases=[Case("masked_fill", _masked_fill_case, [(3, 4), (2,)], ("nonzero", "any"))])
class MaskedFill(OpNode):
    """value where the bool mask holds (broadcast), else the input: g flows to the input where
    the mask is False, and its sum where it is True to a 0-d tensor value."""

    @staticmethod
    def forward(ctx: Any, a: Array, mask: Array, value: Any) -> Array:
        ctx.save_for_backward(mask)
        ctx.value_is_array = _is_array(value)
        fill = value.to(a.dtype) if _is_array(value) else C.full((), value, a.dtype)
        return C.where(mask, fill, a)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (mask,) = ctx.saved_tensors
        zero = K.full((), 0, g.dtype)
        g_value = K.sum(K.where(mask, g, zero), [], False) if ctx.value_is_array else None
        return K.where(mask, zero, g), None, g_value
