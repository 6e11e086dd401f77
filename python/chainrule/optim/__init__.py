"""Optimizers, with PyTorch's update arithmetic."""
from chainrule.optim.adam import Adam, AdamW
from chainrule.optim.optimizer import Optimizer
from chainrule.optim.sgd import SGD

__all__ = ["Adam", "AdamW", "Optimizer", "SGD"]
