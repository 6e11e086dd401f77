"""Neural-network building blocks, in PyTorch's spelling."""
from chainrule.nn import functional, init, parallel
from chainrule.nn.layers import (Dropout, Identity, Linear, LogSoftmax, ReLU, Sequential, Sigmoid,
                                 Softmax, Tanh)
from chainrule.nn.losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from chainrule.nn.module import Module
from chainrule.nn.parameter import Parameter

__all__ = ["functional", "init", "parallel", "Dropout", "Identity", "Linear", "LogSoftmax", "ReLU", "Sequential",
           "Sigmoid", "Softmax", "Tanh", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss",
           "MSELoss", "Module", "Parameter"]
