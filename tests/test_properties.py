"""Property-based tests (hypothesis): broadcasting, reductions, view chains and gradients of
random expression graphs, each against NumPy (forward) or float64 central differences (backward).

Every test runs a bounded, derandomized search (`derandomize=True`, `deadline=None`), so the
file is repeatable in CI and finishes in well under a minute. Array values come from a NumPy
generator seeded by a drawn integer: hypothesis chooses shapes, dims and programs, the seed
chooses the numbers (cheaper than drawing every element, and still reproducible).
"""
from __future__ import annotations

import operator

import chainrule as cr
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

SETTINGS = {"deadline": None, "derandomize": True, "database": None,
            "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much]}

NP_OF = {cr.float32: np.float32, cr.float64: np.float64, cr.int64: np.int64, cr.bool: np.bool_}
CR_OF = {np.dtype(v): k for k, v in NP_OF.items()}
RANK = {np.bool_: 0, np.int64: 1, np.float32: 2, np.float64: 3}

seeds = st.integers(0, 2**32 - 1)


def promoted(da, db):
    """API.md's promotion between tensors: bool < int64 < float32 < float64."""
    return da if RANK[da] >= RANK[db] else db


def values(rng, shape, dtype, kind="any"):
    """Random values of `dtype`; `kind` keeps them inside an op's domain."""
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype == np.int64:
        if kind == "nonzero":
            v = rng.integers(1, 6, shape) * rng.choice([-1, 1], shape)
        elif kind == "exponent":
            v = rng.integers(0, 4, shape)
        else:
            v = rng.integers(-5, 6, shape)
        return v.astype(np.int64)
    if kind == "nonzero":
        v = rng.uniform(0.25, 3.0, shape) * rng.choice([-1.0, 1.0], shape)
    elif kind == "positive":
        v = rng.uniform(0.25, 3.0, shape)
    elif kind == "exponent":
        v = rng.uniform(-2.0, 2.0, shape)
    else:
        v = rng.standard_normal(shape) * 2.0
    return np.asarray(v, dtype=dtype)


def layout(array, how):
    """The same values as a contiguous, transposed or step-2 strided tensor (`how`)."""
    if how == "contiguous" or array.ndim == 0:
        return cr.tensor(array)
    if how == "transposed":
        order = tuple(reversed(range(array.ndim)))
        return cr.tensor(np.ascontiguousarray(array.transpose(order))).permute(*order)
    wide = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), array.dtype)
    wide[..., ::2] = array
    return cr.tensor(wide)[..., ::2]


def check(got, expected, rtol=None, atol=0.0):
    """`got` (a Tensor) has `expected`'s shape, dtype and values (NaN equal to NaN)."""
    assert isinstance(got, cr.Tensor)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert NP_OF[got.dtype] == expected.dtype.type, (got.dtype, expected.dtype)
    array = got.numpy()
    if rtol is None:
        rtol = {np.float32: 2e-6, np.float64: 1e-13}.get(expected.dtype.type, 0)
    if rtol == 0 and atol == 0:
        np.testing.assert_array_equal(array, expected)
    else:
        np.testing.assert_allclose(array, expected, rtol=rtol, atol=atol, equal_nan=True)


# ------------------------------------------------------------------ binary ops and broadcasting
# name -> (chainrule call, numpy call on promoted arrays, value domain of b, float rtol factor)
BINARY = {
    "add": (operator.add, np.add, "any"),
    "sub": (operator.sub, np.subtract, "any"),
    "mul": (operator.mul, np.multiply, "any"),
    "div": (operator.truediv, np.true_divide, "nonzero"),
    "pow": (operator.pow, np.power, "exponent"),
    "maximum": (cr.maximum, np.maximum, "any"),
    "minimum": (cr.minimum, np.minimum, "any"),
    "eq": (operator.eq, np.equal, "any"),
    "ne": (operator.ne, np.not_equal, "any"),
    "lt": (operator.lt, np.less, "any"),
    "le": (operator.le, np.less_equal, "any"),
    "gt": (operator.gt, np.greater, "any"),
    "ge": (operator.ge, np.greater_equal, "any"),
}
COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge"}
NUMERIC = [np.int64, np.float32, np.float64]
LAYOUTS = ["contiguous", "transposed", "strided"]


def expected_binary(name, a, b):
    npf = BINARY[name][1]
    out = promoted(a.dtype.type, b.dtype.type)
    if name == "div" and out in (np.int64, np.bool_):
        out = np.float32  # true division of integers gives float32
    result = npf(a.astype(out), b.astype(out))
    return result if name in COMPARISONS else result.astype(out)


def binary_inputs(rng, name, shapes, da, db):
    a_kind = "positive" if name == "pow" and da != np.int64 else "any"
    a = values(rng, shapes[0], da, a_kind)
    b = values(rng, shapes[1], db, BINARY[name][2])
    if name == "pow" and promoted(da, db) == np.int64:
        a = np.clip(a, -3, 3)
    # a few equal elements, so == and the ties of maximum/minimum are exercised too
    if a.size and b.size and name in COMPARISONS | {"maximum", "minimum"}:
        a_flat = a.reshape(-1)
        a_flat[: max(1, a.size // 3)] = b.reshape(-1)[0]
    return a, b


SIDES = [0, 1, 1, 2, 3, 4, 5, 17, 33, 257]  # long sides reach the vector loops and their tails


@st.composite
def broadcast_shapes(draw, num_shapes):
    """Shapes that broadcast together; around a base shape that may have long sides."""
    base = draw(st.lists(st.sampled_from(SIDES), max_size=4))
    while int(np.prod(base)) > 50_000:
        base[base.index(max(base))] = 3
    shapes = draw(mutually_broadcastable_shapes(num_shapes=num_shapes, base_shape=tuple(base),
                                                min_dims=0, max_dims=max(len(base), 1),
                                                min_side=0, max_side=max([4] + base)))
    assume(int(np.prod(shapes.result_shape)) <= 100_000)
    return shapes


@settings(max_examples=1000, **SETTINGS)
@given(name=st.sampled_from(sorted(BINARY)),
       shapes=broadcast_shapes(2),
       da=st.sampled_from(NUMERIC + [np.bool_]), db=st.sampled_from(NUMERIC + [np.bool_]),
       la=st.sampled_from(LAYOUTS), lb=st.sampled_from(LAYOUTS), seed=seeds)
def test_binary_broadcast_matches_numpy(name, shapes, da, db, la, lb, seed):
    rng = np.random.default_rng(seed)
    a, b = binary_inputs(rng, name, shapes.input_shapes, da, db)
    if name == "sub" and np.bool_ in (da, db):  # as in PyTorch: subtracting a bool is an error
        with pytest.raises(TypeError):
            layout(a, la) - layout(b, lb)
        return
    if name == "pow" and da == db == np.bool_:
        return  # bool ** bool: not specified
    expected = expected_binary(name, a, b)
    got = BINARY[name][0](layout(a, la), layout(b, lb))
    rtol = {np.float32: 1e-5, np.float64: 1e-13}.get(expected.dtype.type, 0) if name == "pow" \
        else None
    check(got, expected, rtol=rtol)


@settings(max_examples=400, **SETTINGS)
@given(name=st.sampled_from(sorted(BINARY)),
       shape=st.lists(st.integers(0, 4), max_size=3).map(tuple),
       dtype=st.sampled_from(NUMERIC), scalar_kind=st.sampled_from(["int", "float"]),
       reflected=st.booleans(), seed=seeds)
def test_binary_with_python_scalar_matches_numpy(name, shape, dtype, scalar_kind, reflected,
                                                  seed):
    """A Python scalar never changes a float tensor's dtype; a float with an int64 tensor gives
    float32; the reflected forms (`2 - t`) compute scalar-op-tensor."""
    if name in ("maximum", "minimum"):
        return  # these take tensors only
    rng = np.random.default_rng(seed)
    array = values(rng, shape, dtype, "positive" if name == "pow" else "nonzero")
    if name == "pow":
        scalar = 2 if scalar_kind == "int" else 1.5
        if reflected:
            scalar = 3 if scalar_kind == "int" else 1.5
            if dtype == np.int64:
                array = np.abs(array) % 4
    else:
        scalar = 3 if scalar_kind == "int" else -1.75
    if dtype == np.int64:
        out = np.float32 if (scalar_kind == "float" or name == "div") else np.int64
    else:
        out = dtype
    scalar_array = np.asarray(scalar, dtype=out)
    a, b = (scalar_array, array.astype(out)) if reflected else (array.astype(out), scalar_array)
    expected = BINARY[name][1](a, b)
    if name not in COMPARISONS:
        expected = np.asarray(expected, dtype=out)
    t = cr.tensor(array)
    op = BINARY[name][0]
    got = op(scalar, t) if reflected else op(t, scalar)
    check(got, np.asarray(expected), rtol=1e-5 if name == "pow" and out == np.float32 else None)


@settings(max_examples=400, **SETTINGS)
@given(shapes=broadcast_shapes(3),
       da=st.sampled_from(NUMERIC), db=st.sampled_from(NUMERIC),
       lc=st.sampled_from(LAYOUTS), la=st.sampled_from(LAYOUTS), seed=seeds)
def test_where_broadcast_matches_numpy(shapes, da, db, lc, la, seed):
    rng = np.random.default_rng(seed)
    sc, sa, sb = shapes.input_shapes
    cond = rng.random(sc) < 0.5
    a, b = values(rng, sa, da), values(rng, sb, db)
    out = promoted(da, db)
    expected = np.where(cond, a.astype(out), b.astype(out))
    got = cr.where(layout(cond, lc), layout(a, la), cr.tensor(b))
    check(got, expected, rtol=0)


# ------------------------------------------------------------------ reductions
REDUCTIONS = {
    "sum": (lambda t, d, k: t.sum(d, keepdim=k), np.sum),
    "mean": (lambda t, d, k: t.mean(d, keepdim=k), np.mean),
    "amax": (lambda t, d, k: t.amax(d, keepdim=k), np.amax),
    "amin": (lambda t, d, k: t.amin(d, keepdim=k), np.amin),
}


@st.composite
def reduction_case(draw):
    ndim = draw(st.integers(0, 4))
    sides = draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim))
    if ndim and draw(st.booleans()):  # one long dim: the vectorized and threaded paths
        sides[draw(st.integers(0, ndim - 1))] = draw(st.sampled_from([17, 64, 257, 4099, 40000]))
    if int(np.prod(sides)) > 400_000:
        sides = [min(s, 5) for s in sides]
    how = draw(st.sampled_from(["none", "int", "tuple"])) if ndim else "none"
    if how == "none":
        dim = None
    else:
        chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
        chosen = [d - ndim if draw(st.booleans()) else d for d in chosen]
        dim = chosen[0] if how == "int" else tuple(chosen)
    return tuple(sides), dim


@settings(max_examples=1000, **SETTINGS)
@given(name=st.sampled_from(sorted(REDUCTIONS)), case=reduction_case(),
       keepdim=st.booleans(), dtype=st.sampled_from(NUMERIC),
       lay=st.sampled_from(LAYOUTS + ["expanded"]),
       seed=seeds)
def test_reduction_matches_numpy(name, case, keepdim, dtype, lay, seed):
    shape, dim = case
    rng = np.random.default_rng(seed)
    array = values(rng, shape, dtype)
    if lay == "expanded":  # stride 0 along the first dim: the values repeat
        array = np.broadcast_to(array[:1], shape).copy() if array.ndim else array
        tensor = cr.tensor(array[:1]).expand(*shape) if array.ndim else cr.tensor(array)
    else:
        tensor = layout(array, lay)
    call, npf = REDUCTIONS[name]
    got = call(tensor, dim, keepdim)
    if name in ("sum", "mean") and not (name == "sum" and dtype == np.int64):
        # float results: within a few ulps of the float64 result, relative to sum(|x|)
        out = np.float32 if dtype == np.int64 else dtype
        wide = array.astype(np.float64)
        npw = np.sum if name == "sum" else np.mean
        expected = npw(wide, axis=dim, keepdims=keepdim)
        scale = npw(np.abs(wide), axis=dim, keepdims=keepdim)
        assert got.shape == np.shape(expected), (got.shape, np.shape(expected))
        assert NP_OF[got.dtype] == out, got.dtype
        err = np.abs(got.numpy().astype(np.float64) - expected)
        eps = 1e-6 if out == np.float32 else 1e-12
        assert np.all(err <= eps * scale + 1e-300), float(np.max(err - eps * scale))
    else:
        check(got, np.asarray(npf(array, axis=dim, keepdims=keepdim), dtype))


@settings(max_examples=600, **SETTINGS)
@given(case=reduction_case(), keepdim=st.booleans(), largest=st.booleans(),
       dtype=st.sampled_from(NUMERIC), lay=st.sampled_from(LAYOUTS + ["expanded"]), seed=seeds)
def test_argmax_argmin_match_numpy(case, keepdim, largest, dtype, lay, seed):
    """With an int dim or None; ties (int64 values in [-5, 5]) give the first index, as in NumPy
    and PyTorch."""
    shape, dim = case
    if isinstance(dim, tuple):
        dim = dim[0]
    rng = np.random.default_rng(seed)
    array = values(rng, shape, dtype)
    if lay == "expanded":  # stride 0 along the first dim: ties everywhere along it
        array = np.broadcast_to(array[:1], shape).copy() if array.ndim else array
        t = cr.tensor(array[:1]).expand(*shape) if array.ndim else cr.tensor(array)
    else:
        t = layout(array, lay)
    got = t.argmax(dim, keepdim) if largest else t.argmin(dim, keepdim)
    npf = np.argmax if largest else np.argmin
    check(got, np.asarray(npf(array, axis=dim, keepdims=keepdim), np.int64))
    if dim is not None:  # max(dim) / min(dim): values and indices
        values_, indices = t.max(dim, keepdim) if largest else t.min(dim, keepdim)
        check(indices, np.asarray(npf(array, axis=dim, keepdims=keepdim), np.int64))
        ext = np.amax if largest else np.amin
        check(values_, np.asarray(ext(array, axis=dim, keepdims=keepdim), dtype))


# ------------------------------------------------------------------ chains of views
@st.composite
def view_chain(draw):
    """A start shape and a list of view steps that are valid for the shapes they meet."""
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    steps = []
    current = list(shape)
    for _ in range(draw(st.integers(1, 6))):
        ndim = len(current)
        kinds = ["unsqueeze", "squeeze", "reshape", "newaxis"]
        if ndim >= 1:
            kinds += ["slice", "index", "expand", "ellipsis_index", "flatten"]
        if ndim >= 2:
            kinds += ["transpose", "permute"]
        if ndim >= 5:
            kinds.remove("unsqueeze")
            kinds.remove("newaxis")
        kind = draw(st.sampled_from(kinds))
        if kind == "transpose":
            d0, d1 = draw(st.integers(-ndim, ndim - 1)), draw(st.integers(-ndim, ndim - 1))
            steps.append(("transpose", (d0, d1)))
            current[d0], current[d1] = current[d1], current[d0]
        elif kind == "permute":
            perm = draw(st.permutations(range(ndim)))
            steps.append(("permute", tuple(perm)))
            current = [current[p] for p in perm]
        elif kind == "slice":
            d = draw(st.integers(0, ndim - 1))
            n = current[d]
            start = draw(st.integers(-n - 1, n))
            stop = draw(st.one_of(st.none(), st.integers(-n - 1, n + 2)))
            step = draw(st.integers(1, 3))
            steps.append(("slice", (d, slice(start, stop, step))))
            current[d] = len(range(*slice(start, stop, step).indices(n)))
        elif kind == "index":
            d = draw(st.integers(0, ndim - 1))
            if current[d] == 0:
                continue
            i = draw(st.integers(-current[d], current[d] - 1))
            steps.append(("index", (d, i)))
            del current[d]
        elif kind == "expand":
            new = [s if s != 1 else draw(st.sampled_from([1, 2, 3])) for s in current]
            lead = draw(st.lists(st.integers(1, 3), max_size=1 if ndim < 4 else 0))
            target = lead + new
            # -1 keeps a size, as in PyTorch
            spelled = [t if (i < len(lead) or t != current[i - len(lead)] or
                             not draw(st.booleans())) else -1 for i, t in enumerate(target)]
            steps.append(("expand", tuple(spelled)))
            current = target
        elif kind == "newaxis":   # t[:, :, None]
            d = draw(st.integers(0, ndim))
            steps.append(("newaxis", (d,)))
            current.insert(d, 1)
        elif kind == "ellipsis_index":   # t[..., i] or t[..., a:b:c]
            n = current[-1]
            if n == 0:
                continue
            if draw(st.booleans()):
                i = draw(st.integers(-n, n - 1))
                steps.append(("ellipsis_index", (i,)))
                current.pop()
            else:
                s_ = slice(draw(st.integers(0, n)), None, draw(st.integers(1, 3)))
                steps.append(("ellipsis_index", (s_,)))
                current[-1] = len(range(*s_.indices(n)))
        elif kind == "flatten":
            start = draw(st.integers(-ndim, ndim - 1))
            end = draw(st.integers(-ndim, ndim - 1))
            s0, e0 = start % ndim, end % ndim
            if s0 > e0:
                continue
            steps.append(("flatten", (start, end)))
            current = current[:s0] + [int(np.prod(current[s0:e0 + 1]))] + current[e0 + 1:]
        elif kind == "unsqueeze":
            d = draw(st.integers(-ndim - 1, ndim))
            steps.append(("unsqueeze", (d,)))
            current.insert(d if d >= 0 else d + ndim + 1, 1)
        elif kind == "squeeze":
            if ndim == 0 or draw(st.booleans()):
                steps.append(("squeeze", (None,)))
                current = [s for s in current if s != 1]
            else:
                d = draw(st.integers(-ndim, ndim - 1))
                steps.append(("squeeze", (d,)))
                if current[d] == 1:
                    del current[d]
        elif kind == "reshape":
            options = [(-1,)]
            if ndim >= 2:
                i = draw(st.integers(0, ndim - 2))
                options.append(tuple(current[:i]) + (current[i] * current[i + 1],) +
                               tuple(current[i + 2:]))
            for i, s in enumerate(current):
                for f in (2, 3):
                    if s % f == 0 and s > f:
                        options.append(tuple(current[:i]) + (f, s // f) + tuple(current[i + 1:]))
            target = draw(st.sampled_from(options))
            steps.append(("reshape", target))
            current = list(np.empty(current).reshape(target).shape)
    return shape, steps


def apply_chain_cr(t, steps):
    for kind, args in steps:
        if kind == "transpose":
            t = t.transpose(*args)
        elif kind == "permute":
            t = t.permute(*args)
        elif kind == "slice":
            d, s = args
            t = t[(slice(None),) * d + (s,)]
        elif kind == "index":
            d, i = args
            t = t[(slice(None),) * d + (i,)]
        elif kind == "expand":
            t = t.expand(*args)
        elif kind == "newaxis":
            t = t[(slice(None),) * args[0] + (None,)]
        elif kind == "ellipsis_index":
            t = t[..., args[0]]
        elif kind == "flatten":
            t = t.flatten(*args)
        elif kind == "unsqueeze":
            t = t.unsqueeze(args[0])
        elif kind == "squeeze":
            t = t.squeeze() if args[0] is None else t.squeeze(args[0])
        elif kind == "reshape":
            t = t.reshape(*args)
    return t


def apply_chain_np(a, steps):
    for kind, args in steps:
        if kind == "transpose":
            a = np.swapaxes(a, *args)
        elif kind == "permute":
            a = np.transpose(a, args)
        elif kind in ("slice", "index"):
            d, s = args
            a = a[(slice(None),) * d + (s,)]
        elif kind == "expand":
            lead = len(args) - a.ndim
            target = [a.shape[i - lead] if s == -1 else s for i, s in enumerate(args)]
            a = np.broadcast_to(a, target)
        elif kind == "newaxis":
            a = a[(slice(None),) * args[0] + (None,)]
        elif kind == "ellipsis_index":
            a = a[..., args[0]]
        elif kind == "flatten":
            s0, e0 = args[0] % a.ndim, args[1] % a.ndim
            a = a.reshape(a.shape[:s0] + (int(np.prod(a.shape[s0:e0 + 1])),) + a.shape[e0 + 1:])
        elif kind == "unsqueeze":
            a = np.expand_dims(a, args[0])
        elif kind == "squeeze":
            if args[0] is None:
                a = np.squeeze(a)
            elif a.shape[args[0]] == 1:
                a = np.squeeze(a, args[0])
        elif kind == "reshape":
            a = np.reshape(a, args)
    return a


FINAL_OPS = {
    "values": (lambda t: t, lambda a: a),
    "contiguous": (lambda t: t.contiguous(), lambda a: np.array(a, copy=True)),
    "affine": (lambda t: t * 3.0 - 1.0, lambda a: a * 3.0 - 1.0),
    "exp": (lambda t: t.exp(), np.exp),
    "sum_last": (lambda t: t.sum(-1) if t.ndim else t.sum(),
                 lambda a: a.sum(-1) if a.ndim else a.sum()),
    "sum_all": (lambda t: t.sum(), lambda a: a.sum()),
    "add_self_flipped": (lambda t: t + t.permute(*reversed(range(t.ndim))).contiguous()
                         .permute(*reversed(range(t.ndim))),
                         lambda a: a + a),
    "matmul_own_transpose": (lambda t: t @ t.transpose(-1, -2) if t.ndim >= 2 else
                             (t @ t if t.ndim else t * t),
                             lambda a: a @ np.swapaxes(a, -1, -2) if a.ndim >= 2 else
                             (a @ a if a.ndim else a * a)),
}


@settings(max_examples=1200, **SETTINGS)
@given(chain=view_chain(), final=st.sampled_from(sorted(FINAL_OPS)),
       dtype=st.sampled_from([np.float32, np.float64]), seed=seeds)
def test_view_chain_then_op_matches_numpy(chain, final, dtype, seed):
    shape, steps = chain
    rng = np.random.default_rng(seed)
    base_np = values(rng, shape, dtype)
    base = cr.tensor(base_np)
    view = apply_chain_cr(base, steps)
    view_np = apply_chain_np(base_np, steps)
    check(view, np.asarray(view_np), rtol=0)
    cr_op, np_op = FINAL_OPS[final]
    expected = np.asarray(np_op(view_np), dtype)
    check(cr_op(view), expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    if not any(kind in ("reshape", "flatten") for kind, _ in steps):
        # every step is a view (API.md): writing into the base shows through the view
        base.add_(1000.0)
        check(view, np.asarray(view_np + dtype(1000.0)), rtol=0)


@settings(max_examples=700, **SETTINGS)
@given(chain=view_chain(), seed=seeds)
def test_view_chain_backward_scatters_gradient(chain, seed):
    """d/dx sum(w * chain(x)): every element of the view adds its weight to the base element it
    reads (several times where expand repeats it), found by running the chain on indices."""
    shape, steps = chain
    rng = np.random.default_rng(seed)
    x = cr.tensor(values(rng, shape, np.float64), requires_grad=True)
    view = apply_chain_cr(x, steps)
    w = rng.standard_normal(view.shape)
    (view * cr.tensor(w)).sum().backward()
    index = apply_chain_np(np.arange(int(np.prod(shape))).reshape(shape), steps)
    expected = np.zeros(int(np.prod(shape)))
    np.add.at(expected, np.asarray(index).reshape(-1), np.asarray(w).reshape(-1))
    assert x.grad is not None and x.grad.shape == shape
    np.testing.assert_allclose(x.grad.numpy(), expected.reshape(shape), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ gradients of random graphs
# Each op: (arity, chainrule form, numpy form). Domains are kept safe by construction
# (log(1 + x^2), a / (1 + b^2), ...) so central differences see smooth functions.
UNARY_OPS = {
    "exp": (lambda x: (x.tanh() * 2.0).exp(), lambda x: np.exp(np.tanh(x) * 2.0)),
    "log": (lambda x: (x * x + 1.0).log(), lambda x: np.log(x * x + 1.0)),
    "sqrt": (lambda x: (x * x + 0.5).sqrt(), lambda x: np.sqrt(x * x + 0.5)),
    "tanh": (lambda x: x.tanh(), np.tanh),
    "sigmoid": (lambda x: x.sigmoid(), lambda x: 1.0 / (1.0 + np.exp(-x))),
    "relu": (lambda x: x.relu(), lambda x: np.maximum(x, 0.0)),
    "abs": (lambda x: x.abs(), np.abs),
    "neg": (lambda x: -x, np.negative),
    "square": (lambda x: x ** 2, lambda x: x ** 2),
    "pow_scalar": (lambda x: (x * x + 1.0) ** 1.5, lambda x: (x * x + 1.0) ** 1.5),
    "rsub": (lambda x: 1.0 - x * 0.5, lambda x: 1.0 - x * 0.5),
    "clamp": (lambda x: x.clamp(-0.7, 0.9), lambda x: np.clip(x, -0.7, 0.9)),
    "softmax": (lambda x: x.softmax(-1) if x.ndim else x.exp(),
                lambda x: (np.exp(x - x.max(-1, keepdims=True)) /
                           np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True))
                if x.ndim else np.exp(x)),
    "log_softmax": (lambda x: x.log_softmax(-1) if x.ndim else x * 1.0,
                    lambda x: (x - x.max(-1, keepdims=True) -
                               np.log(np.exp(x - x.max(-1, keepdims=True))
                                      .sum(-1, keepdims=True))) if x.ndim else x * 1.0),
    "sum0": (lambda x: x.sum(0, keepdim=True) if x.ndim else x,
             lambda x: x.sum(0, keepdims=True) if x.ndim else x),
    "mean_last": (lambda x: x.mean(-1) if x.ndim else x, lambda x: x.mean(-1) if x.ndim else x),
    "amax_last": (lambda x: x.amax(-1, keepdim=True) if x.ndim else x,
                  lambda x: x.max(-1, keepdims=True) if x.ndim else x),
    "amin_first": (lambda x: x.amin(0) if x.ndim else x, lambda x: x.min(0) if x.ndim else x),
    "transpose": (lambda x: x.transpose(0, -1) if x.ndim else x,
                  lambda x: np.swapaxes(x, 0, -1) if x.ndim else x),
    "slice": (lambda x: x[..., ::2] if x.ndim else x, lambda x: x[..., ::2] if x.ndim else x),
    "gram": (lambda x: x @ x.transpose(-1, -2) if x.ndim >= 2 else x * x,
             lambda x: x @ np.swapaxes(x, -1, -2) if x.ndim >= 2 else x * x),
}
BINARY_OPS = {
    "add": (operator.add, operator.add),
    "sub": (operator.sub, operator.sub),
    "mul": (operator.mul, operator.mul),
    "div": (lambda a, b: a / (b * b + 1.0), lambda a, b: a / (b * b + 1.0)),
    "pow": (lambda a, b: (a * a + 0.5) ** b.tanh(), lambda a, b: (a * a + 0.5) ** np.tanh(b)),
    "maximum": (cr.maximum, np.maximum),
    "minimum": (cr.minimum, np.minimum),
    "where": (lambda a, b: cr.where(a > b, a * 2.0, b), lambda a, b: np.where(a > b, a * 2.0, b)),
}


@st.composite
def expression_graph(draw):
    """1-3 leaves with mutually broadcastable shapes and a program of 1-5 ops over them."""
    n_leaves = draw(st.integers(1, 3))
    shapes = draw(mutually_broadcastable_shapes(num_shapes=n_leaves, min_dims=0, max_dims=3,
                                                min_side=1, max_side=3)).input_shapes
    program = []
    n_values = n_leaves
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.booleans()):
            program.append((draw(st.sampled_from(sorted(UNARY_OPS))),
                            (draw(st.integers(0, n_values - 1)),)))
        else:
            op = draw(st.sampled_from(sorted(BINARY_OPS)))
            i = draw(st.integers(0, n_values - 1))
            j = draw(st.integers(0, n_values - 1))
            if i == j and op not in ("add", "mul"):  # x - x, max(x, x): kinks and ties
                op = "mul"
            program.append((op, (i, j)))
        n_values += 1
    return shapes, program


def run_graph(leaves, program, numpy):
    vals = list(leaves)
    for op, args in program:
        fn = (UNARY_OPS.get(op) or BINARY_OPS[op])[1 if numpy else 0]
        try:
            vals.append(fn(*[vals[i] for i in args]))
        except (ValueError, IndexError):
            return None  # shapes no longer broadcast (after a reduction): skip the example
    return vals[-1]


@settings(max_examples=800, **SETTINGS)
@given(graph=expression_graph(), seed=seeds)
def test_random_graph_gradients_match_finite_differences(graph, seed):
    shapes, program = graph
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1.5, 1.5, s) for s in shapes]
    expected_out = run_graph(arrays, program, numpy=True)
    assume(expected_out is not None)
    expected_out = np.asarray(expected_out, np.float64)
    assume(np.all(np.isfinite(expected_out)) and np.max(np.abs(expected_out), initial=0) < 1e4)
    weights = rng.standard_normal(expected_out.shape)

    leaves = [cr.tensor(a, requires_grad=True) for a in arrays]
    out = run_graph(leaves, program, numpy=False)
    assert out is not None, "chainrule rejected shapes NumPy accepts"
    check(out, expected_out, rtol=1e-10, atol=1e-12)
    used = {i for _, args in program for i in args}
    (out * cr.tensor(weights)).sum().backward()

    def loss(values_):
        return float(np.sum(np.asarray(run_graph(values_, program, numpy=True)) * weights))

    eps = 1e-6
    for k, a in enumerate(arrays):
        numeric = np.zeros_like(a)
        flat = numeric.reshape(-1)
        for idx in range(a.size):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[k].reshape(-1)[idx] += eps
            minus[k].reshape(-1)[idx] -= eps
            flat[idx] = (loss(plus) - loss(minus)) / (2 * eps)
        grad = leaves[k].grad
        if grad is None:
            # a leaf the program never reaches gets no gradient at all
            assert k not in used or not np.any(numeric), (k, numeric)
            continue
        assert grad.shape == a.shape and grad.dtype == cr.float64
        np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-5, atol=1e-6,
                                   err_msg=f"leaf {k} of {program}")
