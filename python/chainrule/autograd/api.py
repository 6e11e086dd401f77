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


def backward(tensors: Any, grad_tensors: Any = None, retain_graph: bool | None = None) -> None:
    """Accumulates gradients of `tensors` into the leaves' `.grad`."""
    outputs = _as_tuple(tensors)
    grads = _as_tuple(grad_tensors) or (None,) * len(outputs)
    run_backward(outputs, grads, bool(retain_graph))


def grad(outputs: Any, inputs: Any, grad_outputs: Any = None,
         retain_graph: bool | None = None) -> tuple[Tensor | None, ...]:
    """The gradients of outputs with respect to inputs, as a tuple; `.grad` is untouched.

    >>> import chainrule as cr
    >>> x = cr.tensor(3.0, requires_grad=True)
    >>> cr.autograd.grad(x * x, x)
    (tensor(6.0000),)
    """
    outs = _as_tuple(outputs)
    ins = _as_tuple(inputs)
    grads = _as_tuple(grad_outputs) or (None,) * len(outs)
    result = run_backward(outs, grads, bool(retain_graph), inputs=ins)
    assert result is not None
    return result


class GradcheckError(RuntimeError):
    """Raised by gradcheck when backward disagrees with finite differences."""


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor] | Tensor, eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3) -> bool:
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
        return _compare_jacobians(fn, ins, differentiable, eps, atol, rtol)


def _compare_jacobians(fn: Callable[..., Tensor], ins: tuple[Any, ...],
                       differentiable: list[Tensor], eps: float, atol: float, rtol: float) -> bool:
    output = fn(*ins)
    out_flat_size = output.numel()
    # Analytical Jacobian, one output element at a time: J[o, :] = d out[o] / d inputs.
    analytical = [np.zeros((out_flat_size, t.numel())) for t in differentiable]
    for o in range(out_flat_size):
        seed = np.zeros(out_flat_size)
        seed[o] = 1.0
        upstream = _core.wrap(_core.from_numpy(seed.reshape(output.shape)).to(output.dtype))
        grads = grad(fn(*ins), differentiable, upstream, retain_graph=False)
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
