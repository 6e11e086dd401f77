"""Automatic differentiation: the recorded graph, the backward engine, grad mode."""
from __future__ import annotations

from chainrule.autograd.custom_function import Function, FunctionCtx
from chainrule.autograd.grad_mode import (
    enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad, set_grad_enabled,
)
from chainrule.autograd.api import GradcheckError, backward, grad, gradcheck, gradgradcheck
from chainrule.autograd.variable import Variable

__all__ = ["Function", "FunctionCtx", "enable_grad", "inference_mode", "is_grad_enabled",
           "is_inference_mode_enabled", "no_grad", "set_grad_enabled", "grad",
           "backward", "gradcheck", "gradgradcheck", "GradcheckError", "Variable"]
