"""Losses fused into one op each, so that their edges (h = 0 or 1, large logits) keep finite
gradients: cross-entropy (native), binary cross-entropy with and without logits; and the
per-element forms of the negative log-likelihood and the Huber (smooth L1) loss, whose weights
and reductions nn.functional applies."""
from __future__ import annotations

from typing import Any

from chainrule import _core
from chainrule.ops.kernels import K
from chainrule.autograd.function import OpNode
from chainrule.ops.table import Case, native, op

C = _core
Array = _core.Tensor


def _functional() -> Any:
    from chainrule.nn import functional  # the cases call the public spelling, long after import

    return functional


def _cross_entropy_case(x: Any) -> Any:
    import chainrule as cr

    return _functional().cross_entropy(x, cr.tensor([1, 0, 3]), reduction="none")


@native("cross_entropy", "CrossEntropy", saves="the logits and the target classes",
        names=("F.cross_entropy", "nn.CrossEntropyLoss"),
        cases=[Case("cross_entropy", _cross_entropy_case, [(3, 4)])])
def cross_entropy_backward(saved: Any, g: Array) -> tuple[Any, ...]:
    """Per sample i: d loss_i / d logits_i = g_i (softmax(logits_i) - one_hot(class_i)), one
    fused kernel; the class indices take no gradient."""
    logits, target = saved.arrays
    return K.cross_entropy_backward(g, logits, target), None


@op("binary_cross_entropy", saves="h and y", names=("F.binary_cross_entropy", "nn.BCELoss"),
    cases=[Case("binary_cross_entropy", lambda h, y: _functional().binary_cross_entropy(h, y),
                [(3, 4), (3, 4)], "probability")])
class BinaryCrossEntropy(OpNode):
    """-(y log h + (1 - y) log(1 - h)) elementwise, logs clamped at -100 (PyTorch's rule), as one
    op so that h = 0 or 1 has a finite gradient: d/dh = g (h - y) / max(h (1 - h), 1e-12),
    d/dy = g (log(1 - h) - log h)."""

    @staticmethod
    def forward(ctx: Any, h: Array, y: Array) -> Array:
        ctx.save_for_backward(h, y)
        log_h = C.clamp(C.log(h), -100.0, None)
        log_not_h = C.clamp(C.log(C.sub(1.0, h)), -100.0, None)
        return C.neg(C.add(C.mul(y, log_h), C.mul(C.sub(1.0, y), log_not_h)))

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        h, y = ctx.saved_tensors
        gh = K.div(K.mul(g, K.sub(h, y)), K.maximum(K.mul(h, K.sub(1.0, h)), K.full((), 1e-12, h.dtype)))
        gy = K.mul(g, K.sub(K.clamp(K.log(K.sub(1.0, h)), -100.0, None), K.clamp(K.log(h), -100.0, None)))
        return gh, gy


def _softplus_of_minus(x: Array) -> Array:
    """softplus(-x) = log(1 + e^-|x|) + max(-x, 0), without overflow."""
    return K.add(K.log(K.add(K.exp(K.neg(K.abs(x))), 1.0)), K.relu(K.neg(x)))


def _bce_logits_case(x: Any, y: Any, pw: Any) -> Any:
    return _functional().binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="sum")


@op("binary_cross_entropy_with_logits", saves="x, y and pos_weight",
    names=("F.binary_cross_entropy_with_logits", "nn.BCEWithLogitsLoss"),
    cases=[Case("binary_cross_entropy_with_logits",
                lambda x, y: _functional().binary_cross_entropy_with_logits(x, y), [(3, 4), (3, 4)],
                ("any", "probability")),
           Case("binary_cross_entropy_with_logits_pos_weight", _bce_logits_case,
                [(3, 4), (3, 4), (4,)], ("any", "probability", "positive"))])
class BinaryCrossEntropyWithLogits(OpNode):
    """Sigmoid then binary cross-entropy, stably, as one op. With l = 1 + (pw - 1) y (l = 1
    without pos_weight): loss = (1 - y) x + l softplus(-x), and d/dx = g (l sigmoid(x) - pw y),
    exact at x = 0 too (piecewise forms like relu(x) would give a subgradient there)."""

    @staticmethod
    def forward(ctx: Any, x: Array, y: Array, pos_weight: Any) -> Array:
        ctx.save_for_backward(*[a for a in (x, y, pos_weight) if a is not None])
        ctx.has_pos_weight = pos_weight is not None
        # softplus(-x) = log(1 + e^-|x|) + max(-x, 0), without overflow
        softplus = _softplus_of_minus(x)
        scale = C.add(C.mul(C.sub(pos_weight, 1.0), y), 1.0) if pos_weight is not None else None
        return C.add(C.mul(C.sub(1.0, y), x), softplus if scale is None else C.mul(scale, softplus))

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        saved = ctx.saved_tensors
        x, y = saved[0], saved[1]
        s = K.sigmoid(x)
        if not ctx.has_pos_weight:
            return K.mul(g, K.sub(s, y)), K.mul(g, K.neg(x)), None
        pw = saved[2]
        scale = K.add(K.mul(K.sub(pw, 1.0), y), 1.0)
        gx = K.mul(g, K.sub(K.mul(scale, s), K.mul(pw, y)))
        softplus = _softplus_of_minus(x)  # recomputed from x: a backward recorded with
        gy = K.mul(g, K.add(K.neg(x), K.mul(K.sub(pw, 1.0), softplus)))  # create_graph needs it in terms of x
        gpw = K.mul(g, K.mul(y, softplus))
        return gx, gy, gpw


def _nll_case(x: Any) -> Any:
    import chainrule as cr

    return _functional().nll_loss(x, cr.tensor([1, 0, 3]), reduction="none")


def _nll_spatial_case(x: Any) -> Any:
    import chainrule as cr

    return _functional().nll_loss(x, cr.tensor([[0, 2], [1, 1]]), weight=cr.tensor([0.5, 2.0, 1.0],
                                  dtype=cr.float64), ignore_index=2)


@op("nll_loss", saves="which class each sample picks (a mask over dim 1)",
    names=("F.nll_loss", "nn.NLLLoss"),
    cases=[Case("nll_loss", _nll_case, [(3, 4)]),
           Case("nll_loss_spatial_weighted", _nll_spatial_case, [(2, 3, 2)])])
class NllLoss(OpNode):
    """-input[n, target[n], ...] per sample: the negative log-likelihood of the picked class,
    taken through a mask over the class dim (1, or 0 for an unbatched input) so that it is one
    `where` and one `sum`; d/d input = -g at the picked class, 0 elsewhere."""

    @staticmethod
    def forward(ctx: Any, input: Array, target: Array) -> Array:
        dim = 0 if input.ndim == 1 else 1
        classes = C.arange_int64(0, input.shape[dim], 1)
        # classes laid along `dim`, target given a size-1 dim there: they broadcast to input's shape
        classes = classes.reshape([input.shape[dim]] + [1] * (input.ndim - dim - 1))
        picked = C.eq(target.unsqueeze(dim), classes)
        ctx.dim = dim
        ctx.save_for_backward(picked)
        return C.neg(C.sum(C.where(picked, input, C.full((), 0, input.dtype)), [dim], False))

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        (picked,) = ctx.saved_tensors
        return K.where(picked, K.neg(g.unsqueeze(ctx.dim)), K.full((), 0, g.dtype)), None


@op("huber_loss", saves="the input and the target", names=("F.huber_loss", "F.smooth_l1_loss",
    "nn.HuberLoss", "nn.SmoothL1Loss"),
    cases=[Case("huber_loss", lambda x, y: _functional().huber_loss(x, y, reduction="none", delta=0.5),
                [(3, 4), (3, 4)]),
           Case("smooth_l1_loss", lambda x, y: _functional().smooth_l1_loss(x, y, beta=0.7),
                [(3, 4), (3, 4)])])
class HuberLoss(OpNode):
    """With d = input - target: 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta); the
    derivative is d clamped to [-delta, delta] (continuous at |d| = delta). SmoothL1 with beta is
    this divided by beta."""

    @staticmethod
    def forward(ctx: Any, input: Array, target: Array, delta: float) -> Array:
        d = C.sub(input, target)
        ctx.save_for_backward(input, target)
        ctx.delta = delta
        size = C.abs(d)
        linear = C.mul(C.sub(size, 0.5 * delta), delta)
        return C.where(C.lt(size, delta), C.mul(C.square(d), 0.5), linear)

    @staticmethod
    def backward(ctx: Any, g: Array) -> tuple[Any, ...]:
        input, target = ctx.saved_tensors
        gd = K.mul(g, K.clamp(K.sub(input, target), -ctx.delta, ctx.delta))
        return gd, K.neg(gd), None
