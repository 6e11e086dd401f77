"""cr.Generator: seeded streams of their own, usable by every random function and nn.init."""
from __future__ import annotations

import chainrule as cr
import numpy as np
import pytest


def draws(generator: cr.Generator | None) -> list[list[float]]:
    return [cr.rand(3, generator=generator).tolist(), cr.randn(2, 2, generator=generator).tolist(),
            cr.randint(0, 100, (4,), generator=generator).tolist(),
            cr.randperm(6, generator=generator).tolist()]


def test_same_seed_same_numbers_and_streams_independent():
    g = cr.Generator().manual_seed(11)
    first = draws(g)
    h = cr.Generator().manual_seed(11)
    cr.manual_seed(0)
    cr.rand(100)  # draws from the default generator do not move h
    assert draws(h) == first
    assert draws(cr.Generator().manual_seed(12)) != first
    # without generator=, the functions draw from the default generator, as before
    cr.manual_seed(5)
    a = draws(None)
    b = draws(cr.default_generator.manual_seed(5))
    assert a == b


def test_seeding_and_state_round_trip():
    g = cr.Generator()
    assert g.initial_seed() == 67280421310721  # PyTorch's default seed
    assert g.manual_seed(3) is g and g.initial_seed() == 3
    state = g.get_state()
    assert state.dtype == cr.int64 and state.ndim == 1
    expected = draws(g)
    assert draws(g) != expected           # the stream moved on
    assert g.set_state(state) is g
    assert draws(g) == expected           # and came back
    assert g.initial_seed() == 3
    chosen = g.seed()
    assert isinstance(chosen, int) and g.initial_seed() == chosen
    assert g.manual_seed(-1).initial_seed() == 2**64 - 1  # negative seeds wrap, as in PyTorch
    assert g.device == "cpu"


def test_global_helpers():
    assert cr.manual_seed(4) is cr.default_generator
    assert cr.initial_seed() == 4
    state = cr.get_rng_state()
    x = cr.rand(5)
    cr.set_rng_state(state)
    assert cr.rand(5).tolist() == x.tolist()
    assert isinstance(cr.seed(), int)


def test_bad_arguments():
    g = cr.Generator()
    with pytest.raises(TypeError, match="Generator"):
        cr.rand(2, generator=np.random.default_rng(0))
    with pytest.raises(TypeError, match="seed"):
        g.manual_seed(1.5)
    with pytest.raises(ValueError, match="get_state"):
        g.set_state(cr.zeros(5, dtype=cr.int64))
    with pytest.raises(TypeError, match="int64"):
        g.set_state(cr.zeros(g.get_state().shape[0]))
    with pytest.raises(TypeError, match="Tensor"):
        g.set_state([1, 2, 3])
    with pytest.raises(ValueError, match="cpu"):
        cr.Generator(device="cuda")


def test_uniform_values_in_range():
    x = cr.rand(10_000, generator=cr.Generator().manual_seed(1)).numpy()
    assert x.min() >= 0 and x.max() < 1 and abs(x.mean() - 0.5) < 0.02
    y = cr.randn(10_000, dtype=cr.float64, generator=cr.Generator().manual_seed(1)).numpy()
    assert abs(y.mean()) < 0.05 and abs(y.std() - 1) < 0.05


def test_init_and_in_place_fills_take_a_generator():
    def fill(init, *args):
        t = cr.empty(4, 3)
        init(t, *args, generator=cr.Generator().manual_seed(9))
        return t.tolist()

    inits = [(cr.nn.init.uniform_, -1.0, 1.0), (cr.nn.init.normal_, 0.0, 2.0),
             (cr.nn.init.xavier_uniform_,), (cr.nn.init.xavier_normal_,),
             (cr.nn.init.kaiming_uniform_,), (cr.nn.init.kaiming_normal_,)]
    for init, *args in inits:
        assert fill(init, *args) == fill(init, *args), init.__name__
    cr.manual_seed(0)
    t = cr.empty(3).uniform_(generator=cr.Generator().manual_seed(2))
    assert t.tolist() == cr.rand(3, generator=cr.Generator().manual_seed(2)).tolist()
    u = cr.empty(3).normal_(1.0, 0.5, generator=cr.Generator().manual_seed(2))
    assert u.tolist() == cr.empty(3).normal_(1.0, 0.5, generator=cr.Generator().manual_seed(2)).tolist()


def test_the_same_signatures_as_pytorch(torch):
    import inspect

    # generator= is a keyword of the same functions in both libraries
    for name in ("rand", "randn", "randint", "randperm"):
        ours = inspect.signature(getattr(cr, name)).parameters
        assert "generator" in ours, name
    for name in ("uniform_", "normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                 "kaiming_normal_"):
        theirs = inspect.signature(getattr(torch.nn.init, name)).parameters
        ours = inspect.signature(getattr(cr.nn.init, name)).parameters
        assert list(ours) == list(theirs), name
    for method in ("manual_seed", "seed", "initial_seed", "get_state", "set_state"):
        assert hasattr(torch.Generator(), method) and hasattr(cr.Generator(), method)
    assert isinstance(torch.Generator().manual_seed(1), torch.Generator)
