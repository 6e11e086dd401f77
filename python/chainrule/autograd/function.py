"""A node of the recorded graph: one op's backward, with what it saved from its forward.

An op is a subclass with two static methods side by side, as the lecture draws a gate:
`forward(ctx, *inputs)` computes the output from raw `_core` arrays (and Python numbers),
and `backward(ctx, grad)` returns one gradient per input: the upstream grad times the local
derivative. Gradients come back in the output's shape; the engine sums them down to each
input's shape (`sum_to`) in one place, so no op handles broadcasting itself.

A node never holds the Tensor it produced, only raw arrays, so a graph is freed by reference
counting alone (no cycles for the garbage collector).
"""
from __future__ import annotations

from typing import Any, Callable

from chainrule import _core


class OpNode(_core.Node):
    """Base of every op defined in Python; an instance is the graph node of one call.

    The C base (`_core.Node`) holds what the engine reads: `edges` (one (target, shape, dtype)
    per input: the input's grad_fn or, for a leaf, the leaf Tensor itself, and the shape and
    dtype its gradient must have; None for inputs that take no gradient), `hooks`, `retained`
    and `name()` ("MulBackward"). The native ops' nodes are instances of this class too.
    """

    __slots__ = ()

    # Defaults live on the class, so creating a node (once per recorded op) sets nothing;
    # an instance gets its own value only when one is set.
    _saved: tuple[Any, ...] = ()
    _versions: list[int] = []
    _freed = False

    @staticmethod
    def forward(ctx: Any, *args: Any) -> _core.Tensor:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Any, grad: _core.Tensor) -> tuple[Any, ...]:
        raise NotImplementedError

    def save_for_backward(self, *arrays: _core.Tensor) -> None:
        """Keeps arrays for backward, with the version each has now (see saved_tensors)."""
        self._saved = arrays
        self._versions = [a.version for a in arrays]

    @property
    def saved_tensors(self) -> tuple[_core.Tensor, ...]:
        """The saved arrays; RuntimeError when freed or changed in place since saving."""
        if self._freed:
            raise RuntimeError(
                f"{self.name()}: trying to backward through the graph a second time (its saved "
                "tensors were freed after the first backward); pass retain_graph=True to the first "
                "backward if you need to run it twice")
        for array, version in zip(self._saved, self._versions):
            if array.version != version:
                raise RuntimeError(
                    f"{self.name()}: a tensor of shape {array.shape} and dtype {array.dtype.name} "
                    f"saved for backward was modified by an in-place operation: it was saved at "
                    f"version {version} and is now at version {array.version}")
        return self._saved

    def release(self) -> None:
        """Frees what the op saved (arrays, and attributes that may reference arrays) after a
        backward without retain_graph; the graph's structure and the user's hooks stay."""
        if self._saved:
            self.__dict__.clear()
            self._freed = True


class _NoRecord:
    """The ctx of a forward that records nothing (no_grad, or no input requires grad)."""

    __slots__ = ()

    def save_for_backward(self, *arrays: Any) -> None:
        pass

    def __setattr__(self, name: str, value: Any) -> None:
        pass  # nothing is kept: there will be no backward


NO_RECORD = _NoRecord()


# ---------------------------------------------------------------- native ops' nodes
# A native op's node (recorded by C++) is an OpNode too, whose backward is C++. The op table
# (chainrule/ops) registers the same formula in Python here, by the C++ unit's name, for the
# reference engine; reading what the node saved goes through Node.native_saved().
NATIVE_BACKWARD: dict[str, Callable[..., Any]] = {}


class NativeSaved:
    """What a native node saved, as its backward formula reads it."""

    __slots__ = ("arrays", "dims", "input_shape", "scalar", "scalar_side", "has_bias")

    def __init__(self, node: _core.Node) -> None:
        (self.arrays, self.dims, self.input_shape, self.scalar, self.scalar_side,
         self.has_bias) = node.native_saved()


def native_backward(node: _core.Node, grad: _core.Tensor) -> Any:
    """The backward of a node a native op recorded, by the op table's Python formula."""
    return NATIVE_BACKWARD[node.native_op](NativeSaved(node), grad)
