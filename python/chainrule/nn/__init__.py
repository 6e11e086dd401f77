"""Neural-network building blocks, in PyTorch's spelling."""
from chainrule.nn import functional, init, parallel, utils
from chainrule.nn.layers import (Dropout, Identity, Linear, LogSoftmax, ReLU, Sequential, Sigmoid,
                                 Softmax, Tanh)
from chainrule.nn.losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from chainrule.nn.module import Module
from chainrule.nn.parameter import Parameter
from chainrule.nn.conv import Conv2d
from chainrule.nn.layers import Dropout2d, Flatten
from chainrule.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from chainrule.nn.pooling import AvgPool2d, MaxPool2d
from chainrule.nn.rnn import GRU, LSTM, RNN
from chainrule.nn.sparse import Embedding

__all__ = ["functional", "init", "parallel", "Dropout", "Identity", "Linear", "LogSoftmax", "ReLU", "Sequential",
           "Sigmoid", "Softmax", "Tanh", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss",
           "MSELoss", "Module", "Parameter"]
__all__ += ["Conv2d", "Dropout2d", "Flatten", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "AvgPool2d", "MaxPool2d", "GRU",
            "LSTM", "RNN", "Embedding"]
from chainrule.nn.activations import ELU, GELU, LeakyReLU, Softplus
from chainrule.nn.containers import ModuleDict, ModuleList
from chainrule.nn.losses import HuberLoss, L1Loss, NLLLoss, SmoothL1Loss

__all__ += ["utils", "ELU", "GELU", "LeakyReLU", "Softplus", "ModuleDict", "ModuleList", "HuberLoss",
            "L1Loss", "NLLLoss", "SmoothL1Loss"]
