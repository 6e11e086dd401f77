"""All parameters as one flat vector, and back (PyTorch's convert_parameters)."""
from __future__ import annotations

from collections.abc import Iterable

from chainrule.tensor import Tensor, cat


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """The parameters flattened and joined into one 1-D tensor (a copy, in the graph).

    >>> import chainrule as cr
    >>> cr.nn.utils.parameters_to_vector(cr.nn.Linear(3, 2).parameters()).shape
    (8,)
    """
    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Gives each parameter its slice of `vec` as its data (a view of vec, as in PyTorch)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected a Tensor, got {type(vec).__name__}")
    parameters = list(parameters)
    total = sum(p.numel() for p in parameters)
    if vec.ndim != 1 or vec.numel() != total:
        raise ValueError(f"vector_to_parameters: expected a 1-D vector of {total} elements (the "
                         f"parameters' total), got shape {vec.shape}")
    start = 0
    for p in parameters:
        n = p.numel()
        p.data = vec[start:start + n].view(*p.shape).data
        start += n
