"""Generators of random numbers, as PyTorch's `torch.Generator` and `torch.random`.

Every random function (`rand`, `randn`, `randint`, `randperm`, `nn.init`'s fills, a tensor's
`uniform_`/`normal_`, DataLoader shuffling) draws from `cr.default_generator`, seeded by
`cr.manual_seed`, unless given a `generator=` of its own: a separate stream that other draws do
not disturb, which its seed alone decides.

>>> import chainrule as cr
>>> g = cr.Generator().manual_seed(7)
>>> a = cr.rand(3, generator=g)
>>> cr.rand(5).shape  # draws from the default generator leave g's stream alone
(5,)
>>> b = cr.rand(3, generator=cr.Generator().manual_seed(7))
>>> bool((a == b).all())
True
"""
from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import _core
from chainrule._device import CPU
from chainrule.tensor import Tensor, _wrap, check_device

__all__ = ["Generator", "default_generator", "get_rng_state", "initial_seed", "manual_seed",
           "seed", "set_rng_state"]


class Generator:
    """A Mersenne Twister (mt19937-64) of its own. Seeded with PyTorch's default seed until
    `manual_seed` or `seed`; `get_state`/`set_state` save and restore where it stands.

    >>> import chainrule as cr
    >>> g = cr.Generator()
    >>> state = g.manual_seed(1).get_state()
    >>> first = cr.randperm(5, generator=g).tolist()
    >>> cr.randperm(5, generator=g.set_state(state)).tolist() == first
    True
    """

    __slots__ = ("_native",)

    def __init__(self, device: Any = "cpu") -> None:
        check_device(device)
        self._native = _core.Generator()

    @classmethod
    def _around(cls, native: Any) -> Generator:
        g = cls.__new__(cls)
        g._native = native
        return g

    @property
    def device(self) -> Any:
        """`cr.device("cpu")`, as PyTorch's CPU generator answers (it also equals "cpu")."""
        return CPU

    def manual_seed(self, seed: int) -> Generator:
        """Seeds the generator (any int; negative ones wrap to 64 bits); returns it."""
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"manual_seed: expected an int seed, got {seed!r}")
        self._native.manual_seed(int(seed) % 2**64)
        return self

    def seed(self) -> int:
        """Seeds from the operating system's entropy; returns the seed."""
        return int(self._native.seed())

    def initial_seed(self) -> int:
        """The seed last set."""
        return int(self._native.initial_seed())

    def get_state(self) -> Tensor:
        """The whole state as a 1-D int64 tensor, for `set_state`."""
        return _wrap(self._native.get_state())

    def set_state(self, new_state: Tensor) -> Generator:
        """Restores a state from `get_state` (ValueError for anything else); returns self."""
        if not isinstance(new_state, Tensor):
            raise TypeError(f"set_state: expected a Tensor from get_state, got "
                            f"{type(new_state).__name__}")
        self._native.set_state(new_state._data)
        return self

    def __repr__(self) -> str:
        return f"<chainrule.Generator seeded {self.initial_seed()}>"


default_generator = Generator._around(_core.default_generator())


def native(generator: Generator | None, op: str) -> Any:
    """The `_core` generator behind `generator=` (None: the default one)."""
    if generator is None:
        return None
    if not isinstance(generator, Generator):
        raise TypeError(f"{op}: generator must be a chainrule.Generator, got "
                        f"{type(generator).__name__}")
    return generator._native


def manual_seed(seed: int) -> Generator:
    """Seeds the default generator, behind all of chainrule's randomness; returns it.

    >>> import chainrule as cr
    >>> _ = cr.manual_seed(0); a = cr.rand(3)
    >>> _ = cr.manual_seed(0); bool((a == cr.rand(3)).all())
    True
    """
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Seeds the default generator from the operating system's entropy; returns the seed."""
    return default_generator.seed()


def initial_seed() -> int:
    """The default generator's seed."""
    return default_generator.initial_seed()


def get_rng_state() -> Tensor:
    """The default generator's state (`set_rng_state` restores it)."""
    return default_generator.get_state()


def set_rng_state(new_state: Tensor) -> None:
    default_generator.set_state(new_state)
