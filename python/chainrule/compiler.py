"""cr.compile: record a step once, replay it in C++.

The first call of a compiled function runs it eagerly while the C++ core records every op it
executes: the forward, the backward (either engine), the optimizer's fused step, whatever a
Python op computes with _core. Later calls that pass the guards replay that program in C++: no
Python per op, no graph objects, buffers allocated once; the same kernels in the same order on
the same thread count, so the results are bit-identical to eager. See docs/compile.md.

>>> import chainrule as cr
>>> w = cr.tensor([1.0, 2.0], requires_grad=True)
>>> opt = cr.optim.SGD([w], lr=0.5)
>>> @cr.compile
... def step(x):
...     opt.zero_grad()
...     loss = (w * x).sum()
...     loss.backward()
...     opt.step()
...     return loss
>>> [round(step(cr.tensor([1.0, 1.0])).item(), 2) for _ in range(3)]
[3.0, 2.0, 1.0]
"""
from __future__ import annotations

import functools
import operator
import threading
import warnings
from typing import Any, Callable

from chainrule import _core
from chainrule.tensor import Tensor

#: Programs kept per compiled function (torch.compile's recompile limit is 8 too); a call
#: that matches none of them and would record a ninth runs eagerly from then on.
CACHE_LIMIT = 8

_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_BACKENDS = (None, "inductor", "chainrule")


class _Watch:
    """What a recording call touched beyond the core's ops: optimizers (whose hyperparameters
    and state become guards) and modules (whose training flag does)."""

    def __init__(self, recording: Any) -> None:
        self.recording = recording
        self.optimizers: dict[int, tuple[Any, Any]] = {}  # id -> (optimizer, state before the call)
        self.modules: dict[int, Any] = {}


class _ThreadState(threading.local):
    watch: _Watch | None = None


_state = _ThreadState()


def note_optimizer(optimizer: Any) -> None:
    """Called by every optimizer's step(): while recording, its settings become guards."""
    watch = _state.watch
    if watch is not None and id(optimizer) not in watch.optimizers:
        watch.optimizers[id(optimizer)] = (optimizer, _optimizer_state(optimizer))


def note_module(module: Any, hooks: bool) -> None:
    """Called by Module.__call__: while recording, its training flag becomes a guard."""
    watch = _state.watch
    if watch is not None:
        watch.modules[id(module)] = module
        if hooks:
            watch.recording.unsupported("a forward hook of a module runs Python code")


def _optimizer_state(optimizer: Any) -> tuple[Any, ...]:
    # Which state each parameter has, by identity: a first step that makes state (momentum
    # buffers, Adam's moments) is a warm-up, and a load_state_dict replaces the objects.
    if not optimizer.state:
        return ()  # plain SGD: no generator to set up
    return tuple((id(p), tuple((k, id(v) if isinstance(v, Tensor) else v) for k, v in s.items()))
                 for p, s in optimizer.state.items())


_GROUP_GETTERS: dict[tuple[Any, ...], Callable[[dict[str, Any]], Any]] = {}


def _group_getter(group: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
    """A getter of a param group's hyperparameters (all its keys but "params"), made once per
    layout of keys: a recording then costs a dict lookup instead of a set difference."""
    layout = tuple(group)
    get = _GROUP_GETTERS.get(layout)
    if get is None:
        keys = tuple(k for k in layout if k != "params")
        get = operator.itemgetter(*keys) if keys else (lambda g: ())
        _GROUP_GETTERS[layout] = get
    return get


class _OptimizerGuard:
    """An optimizer as a recording saw it: each group's hyperparameters (lr may change between
    calls: then the guard fails) and parameters, and the objects of its state."""

    def __init__(self, optimizer: Any) -> None:
        self.optimizer = optimizer
        self.groups = []
        for group in optimizer.param_groups:
            get = _group_getter(group)  # read back with the same getter
            params = group["params"]
            self.groups.append((group, get, get(group), params, list(params)))
        self.state_size = len(optimizer.state)
        self.state = [(s, len(s), k, v) for s in optimizer.state.values() for k, v in s.items()] if self.state_size else []

    def holds(self) -> bool:
        opt = self.optimizer
        if len(opt.state) != self.state_size:
            return False
        for group, get, values, params, seen in self.groups:
            if (get(group) != values or group["params"] is not params or len(params) != len(seen)
                    or not all(map(operator.is_, params, seen))):
                return False
        for s, size, k, v in self.state:
            if len(s) != size or s.get(k) is not v:
                return False
        return True


def _flatten(value: Any, tensors: list[Tensor]) -> Any:
    """The structure of `value` with each Tensor replaced by its index in `tensors`."""
    if isinstance(value, Tensor):
        tensors.append(value)
        return _TensorAt(len(tensors) - 1)
    if type(value) in (tuple, list):
        return (type(value), tuple(_flatten(v, tensors) for v in value))
    if type(value) is dict:
        return (dict, tuple((k, _flatten(v, tensors)) for k, v in value.items()))
    return _Constant(value)


def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Tensor], Any]:
    """The tensors among a call's arguments and the structure of the rest (its guard); the
    usual call, tensors alone by position, is its count."""
    if not kwargs:
        for a in args:
            if not isinstance(a, Tensor):
                break
        else:
            return list(args), len(args)
    tensors: list[Tensor] = []
    return tensors, _flatten((args, kwargs), tensors)


def _rebuild(spec: Any, leaf: Callable[[int], Any]) -> Any:
    if isinstance(spec, _TensorAt):
        return leaf(spec.index)
    if isinstance(spec, _Constant):
        return spec.value
    kind, items = spec
    if kind is dict:
        return {k: _rebuild(v, leaf) for k, v in items}
    return kind(_rebuild(v, leaf) for v in items)


class _TensorAt:
    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _TensorAt) and other.index == self.index

    def __hash__(self) -> int:
        return hash(self.index)


class _Constant:
    """A non-tensor argument: part of the guard, compared by type and value (numbers, strings,
    None) or by identity (any other object)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Constant) or type(other.value) is not type(self.value):
            return False
        if isinstance(self.value, (int, float, str, bytes, bool, type(None))):
            return bool(self.value == other.value)
        return other.value is self.value


class _Entry:
    """One recorded program with the guards the C++ side does not check."""

    def __init__(self, spec: Any, program: Any, watch: _Watch, outputs: Any, kinds: list[tuple[str, Any]]) -> None:
        self.spec = spec
        self.program = program
        self.optimizers = [_OptimizerGuard(opt) for opt, _ in watch.optimizers.values()]
        self.modules = [(m, m.training) for m in watch.modules.values()]
        self.outputs = outputs  # the result's structure
        self.kinds = kinds      # per returned tensor: ("out", k), ("arg", i) or ("object", tensor)
        # The usual result, one fresh tensor, is returned without rebuilding a structure.
        self.single = isinstance(outputs, _TensorAt) and kinds[0][0] == "out"

    def python_guards_hold(self) -> bool:
        for guard in self.optimizers:
            if not guard.holds():
                return False
        for m, flag in self.modules:
            if m.training is not flag:
                return False
        return True

    def result(self, fresh: list[Tensor], arguments: list[Tensor]) -> Any:
        if self.single:
            return fresh[0]

        def leaf(i: int) -> Any:
            kind, where = self.kinds[i]
            return fresh[where] if kind == "out" else arguments[where] if kind == "arg" else where

        return _rebuild(self.outputs, leaf)


class CompiledFunction:
    """A function whose calls replay a recorded program (see `compile`)."""

    def __init__(self, fn: Callable[..., Any], fullgraph: bool = False, fuse: bool = True) -> None:
        self._fn = fn
        self._fullgraph = fullgraph
        self._fuse = fuse
        self._entries: list[_Entry] = []
        self._recordings = 0
        self._eager_reason: str | None = None
        functools.update_wrapper(self, fn)

    @property
    def programs(self) -> list[Any]:
        """The recorded programs (their `.steps` name the ops, in order)."""
        return [e.program for e in self._entries]

    @property
    def eager_reason(self) -> str | None:
        """Why the function runs eagerly from now on, or None while it is compiled."""
        return self._eager_reason

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        # As a decorator on a method: bind like a function would.
        return self if obj is None else functools.partial(self.__call__, obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._eager_reason is not None or _state.watch is not None:
            return self._fn(*args, **kwargs)  # given up, or inside another recording (recorded there)
        tensors, spec = _arguments(args, kwargs)
        failure = None
        for entry in self._entries:
            if entry.spec == spec and entry.python_guards_hold():
                fresh = entry.program.run(tensors)
                if fresh is not None:
                    return fresh[0] if entry.single else entry.result(fresh, tensors)
                failure = entry.program.guard_failure
                if failure.startswith("busy"):  # another thread replays it: this call runs eagerly
                    return self._fn(*args, **kwargs)
            elif failure is None:
                failure = "an argument, an optimizer setting or a module's training flag changed"
        if self._recordings >= CACHE_LIMIT:
            self._give_up(f"recorded {CACHE_LIMIT} times (the last guard that failed: {failure})")
            return self._fn(*args, **kwargs)
        return self._record(args, kwargs, tensors, spec)

    def _record(self, args: tuple[Any, ...], kwargs: dict[str, Any], tensors: list[Tensor], spec: Any) -> Any:
        self._recordings += 1
        recording = _core.Recording(tensors)
        watch = _state.watch = _Watch(recording)
        recording.start()
        try:
            result = self._fn(*args, **kwargs)
        finally:
            recording.stop()
            _state.watch = None
        if any(_optimizer_state(opt) != before for opt, before in watch.optimizers.values()):
            return result  # a warm-up: the optimizer made its state; the next call records again
        outputs: list[Tensor] = []
        structure = _flatten(result, outputs)
        kinds: list[tuple[str, Any]] = []
        fresh: list[Tensor] = []
        for t in outputs:
            at = next((i for i, a in enumerate(tensors) if a is t), None)
            if at is not None:
                kinds.append(("arg", at))
            elif t.is_leaf and t.requires_grad:
                kinds.append(("object", t))  # a parameter: the same object, as eager returns it
            else:
                if t.requires_grad and not recording.backward_ran:
                    recording.unsupported("the function returns a tensor that requires grad and no backward "
                                          "ran in it (compile the whole training step, or call it under "
                                          "cr.no_grad())")
                kinds.append(("out", len(fresh)))
                fresh.append(t)
        program = recording.finish(fresh, self._fuse)
        if program is None:
            self._give_up("; ".join(recording.reasons))
        else:
            self._entries.append(_Entry(spec, program, watch, structure, kinds))
        return result

    def _give_up(self, reason: str) -> None:
        if self._fullgraph:
            raise RuntimeError(f"cr.compile(fullgraph=True): {self.__name__} cannot be recorded: {reason}")
        self._eager_reason = reason
        self._entries.clear()
        warnings.warn(f"cr.compile: {getattr(self, '__name__', 'the function')} runs eagerly from now on: {reason}",
                      RuntimeWarning, stacklevel=3)


def compile(model: Callable[..., Any] | None = None, *, fullgraph: bool = False, dynamic: bool | None = None,
            backend: str | None = None, mode: str | None = None, options: dict[str, Any] | None = None,
            disable: bool = False) -> Any:
    """Compiles `model` (a function or a Module) into a `CompiledFunction`; as `@cr.compile` or
    `@cr.compile(...)` it decorates. torch.compile's keywords are accepted: `mode` does not
    change what is recorded, `options={"fuse": False}` replays each elementwise op alone instead
    of fusing chains of them (the same results; for measuring), `dynamic=True` is refused (each new shape records anew),
    `backend` may be None, "inductor" or "chainrule", `fullgraph=True` raises where a call would
    otherwise fall back to eager, and `disable=True` returns `model` itself.

    >>> import chainrule as cr
    >>> double = cr.compile(lambda x: x * 2)
    >>> double(cr.tensor([1.0, 2.0])).tolist()
    [2.0, 4.0]
    """
    if mode not in _MODES:
        raise ValueError(f"compile: unknown mode {mode!r} (expected one of {_MODES[1:]})")
    if backend not in _BACKENDS:
        raise ValueError(f"compile: unknown backend {backend!r} (expected one of {_BACKENDS})")
    if dynamic:
        raise ValueError("compile: dynamic=True is not supported: each new shape is recorded anew")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"compile: options must be a dict, got {type(options).__name__}")
    if model is None:
        return lambda fn: compile(fn, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode,
                                  options=options, disable=disable)
    if not callable(model):
        raise TypeError(f"compile: expected a function or a Module, got {type(model).__name__}")
    if disable:
        return model
    return CompiledFunction(model, fullgraph=fullgraph, fuse=bool((options or {}).get("fuse", True)))
