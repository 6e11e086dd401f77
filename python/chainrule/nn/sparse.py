"""Embedding: a lookup table of trainable vectors, with PyTorch's arguments, and F.embedding, which
checks them and calls the op table's entry (chainrule/ops/normalization.py)."""
from __future__ import annotations

from typing import Any

from chainrule import ops
from chainrule.autograd.grad_mode import no_grad
from chainrule.creation import empty
from chainrule.nn import init
from chainrule.nn.module import Module
from chainrule.nn.normalization import _check_tensor
from chainrule.nn.parameter import Parameter
from chainrule.tensor import Tensor

_embedding = ops.forward("embedding")


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of weight (num_embeddings, embedding_dim) at the int64 indices in input, as
    torch.nn.functional.embedding; the row at padding_idx takes no gradient.

    >>> import chainrule as cr
    >>> cr.nn.functional.embedding(cr.tensor([2, 0]), cr.arange(6.0).reshape(3, 2)).tolist()
    [[4.0, 5.0], [0.0, 1.0]]
    """
    _check_tensor(input, "input", "embedding")
    _check_tensor(weight, "weight", "embedding")
    if input.dtype.name != "int64":
        raise TypeError(f"embedding: expected int64 indices, got dtype {input.dtype.name}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: expected a 2-D weight (num_embeddings, embedding_dim), got shape {weight.shape}")
    if padding_idx is not None:
        if not -weight.shape[0] <= padding_idx < weight.shape[0]:
            raise IndexError(f"embedding: padding_idx {padding_idx} is out of range for {weight.shape[0]} embeddings")
        padding_idx %= weight.shape[0]
    return _embedding(weight, input, padding_idx)




class Embedding(Module):
    """Vectors of size embedding_dim for indices 0 .. num_embeddings - 1, weight initialised
    N(0, 1) as in PyTorch; the row at padding_idx starts at zero and takes no gradient.

    >>> import chainrule as cr
    >>> cr.nn.Embedding(10, 3)(cr.tensor([[1, 2], [3, 4]])).shape
    (2, 2, 3)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 _weight: Tensor | None = None, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within num_embeddings "
                                 f"({num_embeddings})")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        if _weight is not None:
            if _weight.shape != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight of shape {_weight.shape} is not ({num_embeddings}, "
                                 f"{embedding_dim})")
            self.weight = Parameter(_weight.detach())
        else:
            self.weight = Parameter(empty(num_embeddings, embedding_dim, dtype=dtype))
            self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx].fill_(0)

    def forward(self, input: Tensor) -> Tensor:
        return embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        return text + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")
