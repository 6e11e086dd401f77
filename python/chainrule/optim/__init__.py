"""Optimizers, with PyTorch's update arithmetic."""
from chainrule.optim.adam import Adam, AdamW
from chainrule.optim.optimizer import Optimizer
from chainrule.optim.sgd import SGD
from chainrule.optim.adaptive import Adagrad, RMSprop
from chainrule.optim import lr_scheduler

__all__ = ["Adam", "AdamW", "Optimizer", "SGD", "Adagrad", "RMSprop", "lr_scheduler"]
