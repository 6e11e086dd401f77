"""The activations PyTorch scripts reach for beyond relu, sigmoid and tanh: erf (for the exact
GELU), gelu, leaky_relu, elu (softplus lives in elementwise.py). One entry each, forward and
backward side by side, written in `_core` kernels.
"""
from __future__ import annotations

import math
from typing import Any

from chainrule import _core
from chainrule.ops.kernels import K
from chainrule.autograd.function import OpNode
from chainrule.ops.table import Case, op

C = _core
Array = _core.Tensor

_SQRT_HALF = math.sqrt(0.5)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715  # the tanh approximation's cubic coefficient (Hendrycks and Gimpel)


def _functional() -> Any:
    from chainrule.nn import functional  # the cases call the public spelling, long after import

    return functional


def _expm1(x: Array) -> Array:
    """e^x - 1, accurate near 0 too (where e^x rounds to 1 and the subtraction cancels): with
    u = e^x, (u - 1) x / log(u) corrects u's rounding (Kahan's trick); u = 1 gives x and u = 0
    (x far below 0) gives -1."""
    u = K.exp(x)
    d = K.sub(u, 1.0)
    corrected = K.div(K.mul(d, x), K.log(u))
    return K.where(K.eq(d, 0), x, K.where(K.eq(u, 0), K.full((), -1.0, d.dtype), corrected))


@op("erf", saves="the input", method=True, function=True,
    cases=[Case("erf", lambda a: a.erf(), [(3, 4)])])
class Erf(OpNode):
    """erf(x) = 2/sqrt(pi) * integral of e^(-t^2) from 0 to x; d erf = g * 2/sqrt(pi) e^(-x^2)."""

    @staticmethod
    def forward(ctx: Any, x: Array) -> Array:
        ctx.save_for_backward(x)
        return C.erf(x)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (x,) = ctx.saved_tensors
        return (K.mul(g, K.mul(K.exp(K.neg(K.square(x))), _TWO_OVER_SQRT_PI)),)


@op("gelu", saves="the input", functional=True, params=(("approximate", "none"),),
    names=("F.gelu", "nn.GELU"),
    cases=[Case("gelu", lambda a: _functional().gelu(a), [(3, 4)]),
           Case("gelu_tanh", lambda a: _functional().gelu(a, approximate="tanh"), [(3, 4)])])
class Gelu(OpNode):
    """x * Phi(x), Phi the standard normal CDF: 0.5 x (1 + erf(x / sqrt 2)); d/dx = Phi(x) +
    x phi(x). approximate="tanh": 0.5 x (1 + tanh(k (x + 0.044715 x^3))), k = sqrt(2/pi), and
    d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 * 0.044715 x^2)."""

    @staticmethod
    def forward(ctx: Any, x: Array, approximate: str) -> Array:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        if approximate == "tanh":
            return C.mul(C.mul(x, 0.5), C.add(C.tanh(_tanh_inner(x)), 1.0))
        return C.mul(C.mul(x, 0.5), C.add(C.erf(C.mul(x, _SQRT_HALF)), 1.0))

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (x,) = ctx.saved_tensors
        if ctx.approximate == "tanh":
            t = K.tanh(_tanh_inner(x))
            slope = K.mul(K.add(K.mul(K.square(x), 3.0 * _GELU_CUBIC), 1.0), _SQRT_2_OVER_PI)
            local = K.add(K.mul(K.add(t, 1.0), 0.5),
                          K.mul(K.mul(K.mul(x, 0.5), K.sub(1.0, K.square(t))), slope))
        else:
            cdf = K.mul(K.add(K.erf(K.mul(x, _SQRT_HALF)), 1.0), 0.5)
            pdf = K.mul(K.exp(K.mul(K.square(x), -0.5)), _INV_SQRT_2PI)
            local = K.add(cdf, K.mul(x, pdf))
        return K.mul(g, local), None


def _tanh_inner(x: Array) -> Array:
    """k (x + 0.044715 x^3), the argument of the tanh approximation's tanh."""
    return K.mul(K.add(x, K.mul(K.mul(K.square(x), x), _GELU_CUBIC)), _SQRT_2_OVER_PI)


@op("leaky_relu", saves="the input", functional=True,
    params=(("negative_slope", 0.01), ("inplace", False)), names=("F.leaky_relu", "nn.LeakyReLU"),
    cases=[Case("leaky_relu", lambda a: _functional().leaky_relu(a, 0.2), [(3, 4)], "nonzero")])
class LeakyRelu(OpNode):
    """x where x > 0, else negative_slope * x; d/dx = 1 or negative_slope. `inplace` is taken
    for PyTorch's signature; the result is always a new tensor."""

    @staticmethod
    def forward(ctx: Any, x: Array, negative_slope: float, inplace: bool) -> Array:
        ctx.save_for_backward(x)
        ctx.negative_slope = negative_slope
        return C.where(C.gt(x, 0), x, C.mul(x, negative_slope))

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (x,) = ctx.saved_tensors
        return K.where(K.gt(x, 0), g, K.mul(g, ctx.negative_slope)), None, None


@op("elu", saves="the input", functional=True, params=(("alpha", 1.0), ("inplace", False)),
    names=("F.elu", "nn.ELU"),
    cases=[Case("elu", lambda a: _functional().elu(a), [(3, 4)], "nonzero"),
           Case("elu_alpha", lambda a: _functional().elu(a, alpha=0.5), [(3, 4)], "nonzero")])
class Elu(OpNode):
    """x where x > 0, else alpha (e^x - 1); d/dx = 1 or alpha e^x. `inplace` is taken for
    PyTorch's signature; the result is always a new tensor."""

    @staticmethod
    def forward(ctx: Any, x: Array, alpha: float, inplace: bool) -> Array:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        # expm1 of min(x, 0): the positive side never overflows in the branch not taken
        negative = C.mul(_expm1(C.minimum(x, C.full((), 0, x.dtype))), alpha)
        return C.where(C.gt(x, 0), x, negative)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (x,) = ctx.saved_tensors
        negative = K.mul(g, K.mul(K.exp(K.minimum(x, K.full((), 0, x.dtype))), ctx.alpha))
        return K.where(K.gt(x, 0), g, negative), None, None
