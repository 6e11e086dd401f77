"""Module: the base of layers and models, registering parameters and sub-modules by attribute."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator

from chainrule._device import check_device, is_device
from chainrule._dtype import float32, float64
from chainrule.autograd.grad_mode import no_grad
from chainrule.compiler import _state as _compile_state
from chainrule.compiler import note_module
from chainrule.creation import as_tensor
from chainrule.nn.parameter import Parameter
from chainrule.tensor import Tensor
from chainrule.utils.hooks import RemovableHandle


class Module:
    """Subclass it, assign Parameters and Modules as attributes, and define forward().

    >>> import chainrule as cr
    >>> class Affine(cr.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = cr.nn.Parameter(cr.ones(2))
    ...     def forward(self, x):
    ...         return x * self.w
    >>> [name for name, _ in Affine().named_parameters()]
    ['w']
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)
        # id -> (hook, with_kwargs); see register_forward_pre_hook / register_forward_hook
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _compile_state.watch is not None:  # cr.compile records: the training flag is a guard
            note_module(self, bool(self._forward_pre_hooks or self._forward_hooks))
        if not (self._forward_pre_hooks or self._forward_hooks):
            return self.forward(*args, **kwargs)
        return self._call_with_hooks(args, kwargs)

    # ---------------------------------------------------------------- forward hooks
    def _call_with_hooks(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # PyTorch's rules: a pre-hook's non-None result replaces the positional inputs (a
        # non-tuple becomes a 1-tuple), or with_kwargs both (args, kwargs); a forward hook's
        # non-None result replaces the output. Hooks run in registration order, over a copy
        # of the dict, so a hook may remove itself.
        for hook, with_kwargs in list(self._forward_pre_hooks.values()):
            if with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError("forward pre-hook must return None or a tuple of "
                                           f"(new_args, new_kwargs), but got {result!r}")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook, with_kwargs in list(self._forward_hooks.values()):
            result = hook(self, args, kwargs, output) if with_kwargs else hook(self, args, output)
            if result is not None:
                output = result
        return output

    def _add_hook(self, hooks: OrderedDict[int, Any], hook: Any, prepend: bool,
                  with_kwargs: bool) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        handle = RemovableHandle(hooks)
        hooks[handle.id] = (hook, with_kwargs)
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    def register_forward_pre_hook(self, hook: Any, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """Calls `hook(module, args)` before each forward; a result other than None replaces
        the inputs. With `with_kwargs`, `hook(module, args, kwargs)` returns None or
        `(args, kwargs)`. Returns a handle whose `remove()` unregisters it.

        >>> import chainrule as cr
        >>> layer = cr.nn.Identity()
        >>> handle = layer.register_forward_pre_hook(lambda m, args: args[0] * 10)
        >>> layer(cr.tensor(2.0)).item()
        20.0
        >>> handle.remove(); layer(cr.tensor(2.0)).item()
        2.0
        """
        return self._add_hook(self._forward_pre_hooks, hook, prepend, with_kwargs)

    def register_forward_hook(self, hook: Any, *, prepend: bool = False,
                              with_kwargs: bool = False) -> RemovableHandle:
        """Calls `hook(module, args, output)` after each forward (`hook(module, args, kwargs,
        output)` with `with_kwargs`); a result other than None replaces the output.

        >>> import chainrule as cr
        >>> seen = []
        >>> layer = cr.nn.ReLU()
        >>> handle = layer.register_forward_hook(lambda m, args, out: seen.append(out.shape))
        >>> _ = layer(cr.zeros(2, 3)); seen
        [(2, 3)]
        """
        return self._add_hook(self._forward_hooks, hook, prepend, with_kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError("call super().__init__() before assigning attributes of a Module")
        if name in self._parameters and not isinstance(value, Parameter) and value is not None:
            raise TypeError(f"cannot assign a {type(value).__name__} as parameter {name!r} "
                            "(a chainrule.nn.Parameter or None is expected)")
        if name in self._buffers and (value is None or isinstance(value, Tensor)):
            self._buffers[name] = value  # a buffer stays a buffer (running statistics, say)
            object.__setattr__(self, name, value)
            return
        was_parameter = name in self._parameters
        if isinstance(value, Parameter):
            target = self._parameters
        elif isinstance(value, Module):
            target = self._modules
        else:  # None keeps a parameter's slot (Linear(bias=False)); anything else is plain
            target = self._parameters if value is None and was_parameter else None
        for registry in (self._parameters, self._modules, self._buffers):
            if registry is not target:
                registry.pop(name, None)
        if target is not None:
            target[name] = value  # a name assigned again keeps its place in the order, as in PyTorch
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: Tensor | None) -> None:
        """A tensor that belongs to the state (state_dict) but is not trained."""
        self._buffers[name] = value
        object.__setattr__(self, name, value)

    def register_parameter(self, name: str, value: Parameter | None) -> None:
        if value is None:
            self._parameters[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, value)

    def add_module(self, name: str, module: Module) -> None:
        setattr(self, name, module)

    # ---------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        # Depth-first, parents before children, in assignment order (PyTorch's order).
        stack = [(prefix, self)]
        seen = set()
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs, each parameter once: `0.weight`, `0.bias`, ..."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, p in module._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for module_name, module in self.named_modules():
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{module_name}.{name}" if module_name else name), b

    # ---------------------------------------------------------------- dtype and device
    def _convert(self, dtype: Any) -> Module:
        # Floating-point parameters, their grads and buffers take the dtype; integer and bool
        # buffers keep theirs (as in PyTorch). The Parameter objects stay the same, so an
        # optimizer made before still holds them.
        for module in self.modules():
            for registry in (module._parameters, module._buffers):
                for t in registry.values():
                    if t is None or not t.dtype.is_floating_point or t.dtype == dtype:
                        continue
                    t._data = t._data.to(dtype)
                    if t.grad is not None:
                        t.grad = t.grad.detach().to(dtype)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Casts the floating-point parameters and buffers to a dtype, in place, and returns
        self: `model.to(cr.float64)`, `model.to("cpu")` (the only device), `model.to("cpu",
        cr.float64)`, `model.to(tensor)` (its dtype), `model.to(dtype=...)`.

        >>> import chainrule as cr
        >>> cr.nn.Linear(2, 1).to(cr.float64).weight.dtype
        chainrule.float64
        """
        from chainrule._dtype import dtype as dtype_class
        from chainrule._dtype import to_dtype

        target = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"Module.to: unexpected arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, Tensor):
                target = arg.dtype
            elif isinstance(arg, dtype_class):
                target = arg
            elif is_device(arg):
                device = arg
            else:
                target = arg
        check_device(device)
        if target is None:
            return self
        target = to_dtype(target)
        if not target.is_floating_point:
            raise TypeError(f"Module.to: only floating point dtypes are accepted, got "
                            f"{target.name}")
        return self._convert(target)

    def float(self) -> Module:
        """Casts the floating-point parameters and buffers to float32; returns self."""
        return self.to(float32)

    def double(self) -> Module:
        """Casts the floating-point parameters and buffers to float64; returns self."""
        return self.to(float64)

    def cpu(self) -> Module:
        return self

    def cuda(self, device: Any = None) -> Module:
        """Raises: chainrule has no CUDA backend (see `cr.cuda.is_available()`)."""
        check_device("cuda" if device is None else f"cuda:{device}" if isinstance(device, int) else device)
        return self

    def apply(self, fn: Any) -> Module:
        """Calls `fn` on every sub-module, children before their parent, then on self; returns
        self. The usual use: custom initialisation.

        >>> import chainrule as cr
        >>> def init(m):
        ...     if isinstance(m, cr.nn.Linear):
        ...         cr.nn.init.zeros_(m.bias)
        >>> net = cr.nn.Sequential(cr.nn.Linear(2, 2), cr.nn.ReLU()).apply(init)
        >>> net[0].bias.tolist()
        [0.0, 0.0]
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---------------------------------------------------------------- modes and grads
    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears the gradients of every parameter (sets them to None)."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                with no_grad():
                    p.grad.zero_()

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # ---------------------------------------------------------------- state
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """name -> tensor for every parameter and buffer (detached, sharing memory)."""
        state: OrderedDict[str, Tensor] = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.detach()
        for name, b in self.named_buffers():
            state[name] = b.detach()
        return state

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> Any:
        """Copies tensors into the parameters and buffers. With strict, missing or unexpected
        keys raise RuntimeError; a shape mismatch raises ValueError; nothing changes on error."""
        own = dict(self.named_parameters())
        own.update(dict(self.named_buffers()))
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise RuntimeError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        pending = []
        for name, target in own.items():
            if name not in state_dict:
                continue
            value = as_tensor(state_dict[name])
            if value.shape != target.shape:
                raise ValueError(f"load_state_dict: {name} has shape {value.shape} in the state dict "
                                 f"but {target.shape} in the module")
            pending.append((target, value))
        with no_grad():
            for target, value in pending:
                target.copy_(value)
        return _IncompatibleKeys(missing, unexpected)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + ("\n)" if len(lines) > 1 else ")")


class _IncompatibleKeys(tuple):
    def __new__(cls, missing: list[str], unexpected: list[str]) -> _IncompatibleKeys:
        self = super().__new__(cls, (missing, unexpected))
        return self

    @property
    def missing_keys(self) -> list[str]:
        return self[0]

    @property
    def unexpected_keys(self) -> list[str]:
        return self[1]
