"""Automatic differentiation: the recorded graph, the backward engine, grad mode."""
from __future__ import annotations

from chainrule.autograd.function import Function
from chainrule.autograd.grad_mode import (
    enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled,
)

__all__ = ["Function", "enable_grad", "inference_mode", "is_grad_enabled",
           "is_inference_mode_enabled", "no_grad", "set_grad_enabled", "grad",
           "backward", "gradcheck", "GradcheckError"]


def __getattr__(name: str):  # the engine needs Tensor, which needs this package: load lazily
    if name in ("grad", "backward", "gradcheck", "GradcheckError"):
        from chainrule.autograd import api

        return getattr(api, name)
    raise AttributeError(name)
