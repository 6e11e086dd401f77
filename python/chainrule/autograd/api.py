"""autograd.backward, autograd.grad and autograd.gradcheck."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from chainrule import _core
from chainrule.autograd.engine import run_backward
from chainrule.autograd.grad_mode import enable_grad, no_grad

Tensor = _core.TensorBase  # chainrule.Tensor's base: the autograd package sits below tensor.py


def _as_tuple(x: Any) -> tuple[Any, ...]:
    if x is None:
        return ()
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def backward(tensors: Any, grad_tensors: Any = None, retain_graph: bool | None = None,
             create_graph: bool = False, inputs: Any = None) -> None:
    """Accumulates gradients of `tensors` into the leaves' `.grad` (only into `inputs`' when
    given). create_graph=True records the backward pass itself, so the gradients in `.grad` can
    be differentiated again; retain_graph defaults to create_graph."""
    outputs = _as_tuple(tensors)
    grads = _as_tuple(grad_tensors) or (None,) * len(outputs)
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        ins = _as_tuple(inputs)
        results = run_backward(outputs, grads, bool(retain_graph), ins, create_graph=create_graph)
        assert results is not None
        for t, g in zip(ins, results):
            if g is not None:
                t._grad = (g if create_graph else g.detach()) if t._grad is None else t._grad + g
        return
    run_backward(outputs, grads, bool(retain_graph), create_graph=create_graph)


def grad(outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool | None = None,
         materialize_grads: bool = False) -> tuple[Tensor | None, ...]:
    """The gradients of outputs with respect to inputs, as a tuple; `.grad` is untouched.

    create_graph=True records the backward pass, so the gradients returned can be
    differentiated again (a Hessian-vector product, a gradient penalty); retain_graph defaults
    to create_graph. An input the outputs do not depend on raises RuntimeError unless
    allow_unused=True (its gradient is then None, or zeros with materialize_grads=True).

    >>> import chainrule as cr
    >>> x = cr.tensor(3.0, requires_grad=True)
    >>> cr.autograd.grad(x * x, x)
    (tensor(6.0000),)
    >>> (g,) = cr.autograd.grad(x ** 3, x, create_graph=True)  # 3 x^2 = 27, recorded
    >>> cr.autograd.grad(g, x)  # d(3 x^2)/dx = 6 x
    (tensor(18.0000),)
    """
    outs = _as_tuple(outputs)
    ins = _as_tuple(inputs)
    grads = _as_tuple(grad_outputs) or (None,) * len(outs)
    if len(grads) != len(outs):
        raise ValueError(f"grad: got {len(grads)} grad_outputs for {len(outs)} outputs")
    if retain_graph is None:
        retain_graph = create_graph
    if allow_unused is None:
        allow_unused = materialize_grads
    result = run_backward(outs, grads, bool(retain_graph), inputs=ins, create_graph=create_graph)
    assert result is not None
    if not allow_unused:
        for i, g in enumerate(result):
            if g is None:
                raise RuntimeError(
                    f"grad: input {i} (shape {tuple(ins[i].shape)}) appears to not have been used "
                    "in the graph; set allow_unused=True if this is the desired behavior")
    if materialize_grads:
        result = tuple(_core.wrap(_core.full(list(t.shape), 0, t.dtype)) if g is None else g
                       for g, t in zip(result, ins))
    return result


class GradcheckError(RuntimeError):
    """Raised by gradcheck when backward disagrees with finite differences."""


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor] | Tensor, eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3, *, raise_exception: bool = True) -> bool:
    """Compares backward's gradients with central finite differences (float64 inputs).

    >>> import chainrule as cr
    >>> x = cr.tensor([0.5, -1.0], dtype=cr.float64, requires_grad=True)
    >>> cr.autograd.gradcheck(lambda t: t.sigmoid(), (x,))
    True
    """
    ins = _as_tuple(inputs)
    for i, t in enumerate(ins):
        if isinstance(t, Tensor) and t.requires_grad and t.dtype.name != "float64":
            raise TypeError(f"gradcheck: input {i} has dtype {t.dtype.name}; use float64 inputs")
    differentiable = [t for t in ins if isinstance(t, Tensor) and t.requires_grad]
    # fn runs with grad recording on throughout, as in PyTorch: a function may register a hook
    # on an intermediate result, which only a result that requires grad accepts
    with enable_grad():
        try:
            return _compare_jacobians(_flat_outputs(fn), ins, differentiable, eps, atol, rtol)
        except GradcheckError:
            if raise_exception:
                raise
            return False


def _flat_outputs(fn: Callable[..., Any]) -> Callable[..., Tensor]:
    """fn with its outputs (a Tensor, or a tuple of Tensors and Nones) as one flat Tensor."""

    def flat(*args: Any) -> Tensor:
        out = fn(*args)
        if isinstance(out, Tensor):
            return out
        parts = [o.reshape(-1) for o in out if o is not None]
        if not parts:
            raise GradcheckError("gradcheck: the function returned no tensor")
        import chainrule as cr

        dtype = parts[0].dtype
        return cr.cat([p if p.dtype == dtype else p.to(dtype) for p in parts])

    return flat


def gradgradcheck(fn: Callable[..., Any], inputs: Sequence[Tensor] | Tensor,
                  grad_outputs: Sequence[Tensor] | Tensor | None = None, *, eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True,
                  seed: int = 0) -> bool:
    """Checks second derivatives: gradcheck of the gradients of fn (recorded with
    create_graph=True) with respect to the inputs and to the upstream gradients (float64).
    Without grad_outputs, random ones are drawn (float64, requiring grad), as in PyTorch.

    >>> import chainrule as cr
    >>> x = cr.tensor([0.5, -1.0], dtype=cr.float64, requires_grad=True)
    >>> cr.autograd.gradgradcheck(lambda t: t.sigmoid(), (x,))
    True
    """
    ins = _as_tuple(inputs)
    differentiable = [t for t in ins if isinstance(t, Tensor) and t.requires_grad]
    with enable_grad():
        outputs = fn(*ins)
    outs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    outs = tuple(o for o in outs if isinstance(o, Tensor) and o.requires_grad)
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        given = tuple(_core.wrap(_core.from_numpy(rng.standard_normal(o.shape))) for o in outs)
        for g in given:
            g.requires_grad_()
    else:
        given = _as_tuple(grad_outputs)
    n = len(ins)

    def gradients(*args: Any) -> tuple[Any, ...]:
        current = fn(*args[:n])
        current_outs = current if isinstance(current, (tuple, list)) else (current,)
        current_outs = tuple(o for o in current_outs if isinstance(o, Tensor) and o.requires_grad)
        wrt = [t for t in args[:n] if isinstance(t, Tensor) and t.requires_grad]
        return grad(current_outs, wrt, args[n:], create_graph=True, allow_unused=True)

    return gradcheck(gradients, tuple(ins) + tuple(given), eps, atol, rtol,
                     raise_exception=raise_exception)


def _compare_jacobians(fn: Callable[..., Tensor], ins: tuple[Any, ...],
                       differentiable: list[Tensor], eps: float, atol: float, rtol: float) -> bool:
    output = fn(*ins)
    out_flat_size = output.numel()
    # Analytical Jacobian, one output element at a time: J[o, :] = d out[o] / d inputs.
    analytical = [np.zeros((out_flat_size, t.numel())) for t in differentiable]
    for o in range(out_flat_size if output.requires_grad else 0):  # else: no input reaches it
        seed = np.zeros(out_flat_size)
        seed[o] = 1.0
        upstream = _core.wrap(_core.from_numpy(seed.reshape(output.shape)).to(output.dtype))
        grads = grad(fn(*ins), differentiable, upstream, retain_graph=False, allow_unused=True)
        for j, g in enumerate(grads):
            if g is not None:
                analytical[j][o] = g.numpy().reshape(-1)
    # Numerical Jacobian: perturb each input element both ways.
    for j, t in enumerate(differentiable):
        flat = t.detach().numpy().reshape(-1) if t.is_contiguous() else None
        if flat is None:
            raise ValueError("gradcheck: inputs must be contiguous")
        for k in range(t.numel()):
            original = flat[k]
            flat[k] = original + eps
            t._data.bump_version()
            plus = fn(*ins).detach().numpy().astype(np.float64).reshape(-1).copy()
            flat[k] = original - eps
            t._data.bump_version()
            minus = fn(*ins).detach().numpy().astype(np.float64).reshape(-1).copy()
            flat[k] = original
            t._data.bump_version()
            numerical = (plus - minus) / (2 * eps)
            got = analytical[j][:, k]
            error = np.abs(got - numerical)
            bound = atol + rtol * np.abs(numerical)
            if np.any(error > bound):
                worst = int(np.argmax(error - bound))
                raise GradcheckError(
                    f"gradcheck: d output[{worst}] / d input {j}[{k}] is {got[worst]:.8g} by backward "
                    f"but {numerical[worst]:.8g} by finite differences (error {error[worst]:.3g})")
    return True
