"""`cr.linalg`: the norms PyTorch's torch.linalg offers that need no factorization.

>>> import chainrule as cr
>>> cr.linalg.vector_norm(cr.tensor([3.0, 4.0])).item()
5.0
"""
from __future__ import annotations

from chainrule.composites import linalg_norm as norm
from chainrule.composites import vector_norm

__all__ = ["norm", "vector_norm"]
