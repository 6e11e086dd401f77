"""cr.compile: a replayed step gives eager's results bit for bit, guards record again, what a
replay cannot express falls back to eager with one warning, and nothing leaks."""
from __future__ import annotations

import gc
import warnings
import weakref

import numpy as np
import pytest

import chainrule as cr

def same(a: cr.Tensor | None, b: cr.Tensor | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and np.array_equal(a.numpy(), b.numpy())


def run_both(make, inputs, compile_kwargs=None):
    """Builds the same step twice (same seed), runs one eagerly and one compiled on `inputs`
    (a list of argument tuples); returns (eager results, compiled results, eager tensors,
    compiled tensors, the compiled function)."""
    eager_step, eager_state = make()
    compiled_step, compiled_state = make()
    compiled = cr.compile(compiled_step, **(compile_kwargs or {}))
    eager_out = [eager_step(*args) for args in inputs]
    compiled_out = [compiled(*args) for args in inputs]
    return eager_out, compiled_out, eager_state, compiled_state, compiled


def assert_all_same(eager_out, compiled_out, eager_state, compiled_state):
    for a, b in zip(eager_out, compiled_out):
        assert same(a, b)
    for a, b in zip(eager_state, compiled_state):
        assert same(a, b)
        assert same(a.grad, b.grad)


# ---------------------------------------------------------------- bit for bit

def make_xor(lr: float = 0.1):
    cr.manual_seed(0)
    X = cr.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Y = cr.tensor([[0.0], [1.0], [1.0], [0.0]])
    params = [cr.randn(2, 2, requires_grad=True), cr.randn(2, requires_grad=True),
              cr.randn(2, 1, requires_grad=True), cr.randn(1, requires_grad=True)]
    W1, b1, W2, b2 = params
    opt = cr.optim.SGD(params, lr=lr)

    def step():
        opt.zero_grad()
        h = cr.sigmoid(cr.sigmoid(X @ W1 + b1) @ W2 + b2)
        cost = -cr.mean(Y * cr.log(h) + (1 - Y) * cr.log(1 - h))
        cost.backward()
        opt.step()
        return cost

    step.opt = opt
    return step, params


def test_xor_sgd_matches_eager_bit_for_bit():
    eager, compiled, pe, pc, fn = run_both(make_xor, [()] * 40)
    assert_all_same(eager, compiled, pe, pc)
    assert len(fn.programs) == 1 and fn.eager_reason is None
    # the losses the caller kept are its own: later replays did not overwrite them
    assert len({id(t) for t in compiled}) == 40
    assert eager[0].item() != eager[-1].item()


def make_mlp(optimizer="adam", **layers):
    def make():
        cr.manual_seed(1)
        model = cr.nn.Sequential(cr.nn.Linear(64, 32), cr.nn.ReLU(), cr.nn.Linear(32, 10))
        opt = (cr.optim.Adam(model.parameters(), lr=1e-2) if optimizer == "adam"
               else cr.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True))
        loss_fn = cr.nn.CrossEntropyLoss()

        def step(x, y):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return loss

        return step, list(model.parameters())
    return make


def batches(sizes, seed=0, features=64):
    rng = np.random.default_rng(seed)
    return [(cr.tensor(rng.standard_normal((n, features)).astype(np.float32)),
             cr.tensor(rng.integers(0, 10, n))) for n in sizes]


@pytest.mark.parametrize("optimizer", ["adam", "sgd-momentum"])
def test_mlp_matches_eager_with_a_short_last_batch(optimizer):
    data = batches([16] * 6 + [7] + [16] * 3)
    eager, compiled, pe, pc, fn = run_both(make_mlp(optimizer), data)
    assert_all_same(eager, compiled, pe, pc)
    assert len(fn.programs) == 2  # one per batch shape; the first call was the optimizer's warm-up


def test_every_recordable_layer_type_matches_eager():
    def make():
        cr.manual_seed(2)
        conv = cr.nn.Sequential(cr.nn.Conv2d(1, 3, 3, padding=1), cr.nn.BatchNorm2d(3), cr.nn.Tanh(),
                                cr.nn.MaxPool2d(2), cr.nn.AvgPool2d(2))
        head = cr.nn.Sequential(cr.nn.Linear(12, 8), cr.nn.LayerNorm(8), cr.nn.Sigmoid(), cr.nn.Linear(8, 4))
        embed = cr.nn.Embedding(10, 4)
        lstm = cr.nn.LSTM(4, 4, batch_first=True)
        gru = cr.nn.GRU(4, 4, batch_first=True)
        rnn = cr.nn.RNN(4, 4, batch_first=True, nonlinearity="relu")
        params = [*conv.parameters(), *head.parameters(), *embed.parameters(), *lstm.parameters(),
                  *gru.parameters(), *rnn.parameters()]
        opt = cr.optim.AdamW(params, lr=1e-2)

        def step(images, tokens, target, labels):
            opt.zero_grad()
            features = conv(images).flatten(1)
            logits = head(features)
            seq, _ = rnn(gru(lstm(embed(tokens))[0])[0])
            loss = (cr.nn.functional.cross_entropy(logits, labels)
                    + cr.nn.functional.mse_loss(seq.mean(1), target)
                    + cr.nn.functional.binary_cross_entropy_with_logits(logits[:, :2], target[:, :2].sigmoid())
                    + cr.nn.functional.binary_cross_entropy(logits[:, 2:].sigmoid(), target[:, 2:].sigmoid()))
            loss.backward()
            opt.step()
            return loss

        return step, params

    rng = np.random.default_rng(3)
    inputs = [(cr.tensor(rng.standard_normal((5, 1, 8, 8)).astype(np.float32)),
               cr.tensor(rng.integers(0, 10, (5, 6))), cr.tensor(rng.standard_normal((5, 4)).astype(np.float32)),
               cr.tensor(rng.integers(0, 4, 5))) for _ in range(5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every one of these layers records
        eager, compiled, pe, pc, fn = run_both(make, inputs)
    assert_all_same(eager, compiled, pe, pc)
    assert fn.programs and fn.eager_reason is None


def test_dropout_replays_the_same_random_draws():
    def make():
        cr.manual_seed(4)
        model = cr.nn.Sequential(cr.nn.Linear(8, 8), cr.nn.Dropout(0.5), cr.nn.Linear(8, 1))
        opt = cr.optim.SGD(model.parameters(), lr=0.1)

        def step(x):
            opt.zero_grad()
            loss = model(x).square().mean()
            loss.backward()
            opt.step()
            return loss

        return step, list(model.parameters())

    x = cr.ones(4, 8)
    eager_step, pe = make()
    eager = [eager_step(x) for _ in range(6)]
    compiled_step, pc = make()  # reseeds: the compiled run draws the same numbers in the same order
    compiled_fn = cr.compile(compiled_step)
    compiled = [compiled_fn(x) for _ in range(6)]
    assert_all_same(eager, compiled, pe, pc)
    assert compiled_fn.eager_reason is None


def test_gradient_accumulation_without_zero_grad():
    def make():
        cr.manual_seed(5)
        w = cr.randn(3, requires_grad=True)

        def step(x):
            (w * x).sum().backward()  # .grad adds up over calls, as in eager
            return w.grad * 1.0

        return step, [w]

    inputs = [(cr.tensor([1.0, 2.0, 3.0]),)] * 5
    eager, compiled, pe, pc, _ = run_both(make, inputs)
    assert_all_same(eager, compiled, pe, pc)
    assert same(pc[0].grad, cr.tensor([5.0, 10.0, 15.0]))


# ---------------------------------------------------------------- guards

def test_new_shape_dtype_or_requires_grad_records_again():
    fn = cr.compile(lambda x: (x * 2).sum())
    for x in [cr.ones(3), cr.ones(3), cr.ones(4), cr.ones(3, dtype=cr.float64), cr.ones(3, requires_grad=True)]:
        with cr.no_grad():
            assert fn(x).item() == 2 * x.numel()
    assert len(fn.programs) == 4


def test_grad_mode_and_thread_count_are_guards():
    fn = cr.compile(lambda x: x.exp())
    x = cr.ones(2)
    fn(x)
    with cr.no_grad():
        fn(x)
    threads = cr.get_num_threads()
    cr.set_num_threads(1 if threads != 1 else 2)
    try:
        fn(x)
    finally:
        cr.set_num_threads(threads)
    assert len(fn.programs) == 3


def test_a_new_learning_rate_records_again_and_is_used():
    eager_step, pe = make_xor()
    compiled_step, pc = make_xor()
    compiled = cr.compile(compiled_step)
    for lr in [0.1, 0.1, 0.5, 0.5, 0.1]:
        for step in (eager_step, compiled_step):
            step.opt.param_groups[0]["lr"] = lr
        assert same(eager_step(), compiled())
    assert_all_same([], [], pe, pc)
    assert len(compiled.programs) == 2


def test_train_and_eval_are_guards():
    def make():
        cr.manual_seed(6)
        model = cr.nn.Sequential(cr.nn.Linear(4, 4), cr.nn.BatchNorm1d(4))
        return (lambda x: model(x)), model

    eager_fn, eager_model = make()
    compiled_model_fn, compiled_model = make()
    compiled = cr.compile(compiled_model_fn)
    x = cr.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    with cr.no_grad():
        for training in [True, True, False, False, True]:
            eager_model.train(training)
            compiled_model.train(training)
            assert same(eager_fn(x), compiled(x))
    assert same(eager_model[1].running_mean, compiled_model[1].running_mean)
    assert len(compiled.programs) == 2


def test_new_memory_for_a_parameter_records_again():
    w = cr.tensor([1.0, 2.0])
    fn = cr.compile(lambda x: x * w)
    x = cr.ones(2)
    assert same(fn(x), cr.tensor([1.0, 2.0]))
    w._data = cr.tensor([5.0, 6.0])._data  # as model.to(...) does: the same object, new memory
    assert same(fn(x), cr.tensor([5.0, 6.0]))
    assert len(fn.programs) == 2


def test_a_value_the_function_branches_on_is_checked_at_each_replay():
    def relu_or_double(x):
        return x * 2 if bool(x.sum() > 0) else x.relu()

    fn = cr.compile(relu_or_double)
    for values in ([1.0, 2.0], [3.0, -1.0], [-5.0, 1.0], [-2.0, -2.0], [1.0, 1.0]):
        x = cr.tensor(values)
        assert same(fn(x), relu_or_double(x))
    assert len(fn.programs) == 2 and fn.eager_reason is None


def test_too_many_recordings_fall_back_to_eager_with_one_warning():
    fn = cr.compile(lambda x: x + 1)
    with pytest.warns(RuntimeWarning, match="recorded 8 times") as caught:
        for n in range(1, 12):
            assert same(fn(cr.ones(n)), cr.full((n,), 2.0))
    assert len(caught) == 1 and fn.eager_reason is not None


# ---------------------------------------------------------------- what breaks a recording

def _numpy_inside(x):
    return x * float(np.asarray(x.numpy()).sum())


def _hook_inside(x):
    y = x * 2
    y.register_hook(lambda g: g * 3)
    y.sum().backward()
    return x.grad * 1.0


def _python_data_inside(x):
    return x * cr.tensor([1.0, 2.0])


def _generator_inside(x):
    generator = cr.Generator()
    generator.manual_seed(1)
    return x + cr.rand(2, generator=generator)


_counter = cr.zeros(())


def _reads_a_changing_value(x):
    with cr.no_grad():
        _counter.add_(1.0)
    return x * _counter.item()  # a new value at every call: no replay can use its recording


def _returns_a_graph(x):
    return x * 2


@pytest.mark.parametrize("fn, reason, requires_grad", [
    (_numpy_inside, "numpy", False),
    (_hook_inside, "hook", True),
    (_python_data_inside, "Python data", False),
    (_generator_inside, "Generator", False),
    (_reads_a_changing_value, "came out different", False),
    (_returns_a_graph, "requires grad", True),
])
def test_what_the_replay_cannot_express_runs_eagerly_with_one_warning(fn, reason, requires_grad):
    compiled = cr.compile(fn)
    with pytest.warns(RuntimeWarning, match=reason) as caught:
        for _ in range(12):
            a = cr.tensor([1.0, 2.0], requires_grad=requires_grad)
            b = cr.tensor([1.0, 2.0], requires_grad=requires_grad)
            out = compiled(a)
            if fn is _reads_a_changing_value:
                _counter.sub_(1.0)  # the eager call below sees the same count
            expected = fn(b)
            assert same(out.detach(), expected.detach())
    assert len(caught) == 1
    assert reason.lower() in compiled.eager_reason.lower()


def test_in_place_updates_of_arguments_replay():
    @cr.compile
    def bump(x):
        with cr.no_grad():
            x.mul_(2.0)
        return x.sum().item()  # the same value at every call here: checked, and replayed

    for _ in range(4):
        x = cr.tensor([1.0, 2.0])
        assert bump(x) == 6.0 and same(x, cr.tensor([2.0, 4.0]))
    assert len(bump.programs) == 1 and bump.eager_reason is None


def test_fullgraph_raises_instead_of_falling_back():
    compiled = cr.compile(_numpy_inside, fullgraph=True)
    with pytest.raises(RuntimeError, match="fullgraph"):
        compiled(cr.ones(2))


# ---------------------------------------------------------------- the API

def test_decorator_forms_and_torch_compile_keywords():
    @cr.compile
    def a(x):
        return x + 1

    @cr.compile(mode="reduce-overhead", fullgraph=False, dynamic=False, backend="inductor", options={})
    def b(x):
        return x + 2

    assert same(a(cr.ones(1)), cr.full((1,), 2.0)) and same(b(cr.ones(1)), cr.full((1,), 3.0))
    assert a.__name__ == "a"

    def c(x):
        return x

    assert cr.compile(c, disable=True) is c
    with pytest.raises(ValueError, match="dynamic"):
        cr.compile(c, dynamic=True)
    with pytest.raises(ValueError, match="mode"):
        cr.compile(c, mode="fast")
    with pytest.raises(ValueError, match="backend"):
        cr.compile(c, backend="xla")
    with pytest.raises(TypeError):
        cr.compile(42)


def test_structured_results_and_returned_arguments_and_parameters():
    w = cr.tensor([1.0], requires_grad=True)

    @cr.compile
    def f(x, scale, *, bias):
        with cr.no_grad():
            return {"y": (x * scale + bias, x), "w": w, "n": 3}

    for k in range(3):
        x = cr.tensor([float(k)])
        out = f(x, 2.0, bias=1.0)
        assert same(out["y"][0], cr.tensor([2.0 * k + 1])) and out["y"][1] is x
        assert out["w"] is w and out["n"] == 3
    assert len(f.programs) == 1
    f(cr.tensor([1.0]), 3.0, bias=1.0)  # another number: another program
    assert len(f.programs) == 2


def test_a_compiled_function_and_its_program_are_freed():
    step, params = make_xor()
    compiled = cr.compile(step)
    for _ in range(3):
        compiled()
    function, program = weakref.ref(compiled), weakref.ref(compiled.programs[0])
    del compiled
    gc.collect()
    assert function() is None and program() is None
    # the parameters are the caller's: still alive and usable
    assert all(np.isfinite(p.numpy()).all() for p in params)


# ---------------------------------------------------------------- the examples' --compile

def _example(name):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"compile_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_xor_example_compiled_gives_the_eager_numbers(optimizer):
    xor = _example("xor")
    eager = xor.train(steps=300, optimizer_name=optimizer, verbose=False)
    compiled = xor.train(steps=300, optimizer_name=optimizer, verbose=False, compile=True)
    assert compiled["cost"] == eager["cost"]
    assert same(compiled["hypothesis"], eager["hypothesis"])


def test_digits_example_compiled_gives_the_eager_numbers():
    pytest.importorskip("sklearn")
    digits = _example("digits")
    eager = digits.train(epochs=2, show_progress=False, verbose=False)
    compiled = digits.train(epochs=2, show_progress=False, verbose=False, compile=True)
    assert compiled["accuracy"] == eager["accuracy"]


def test_an_argument_that_is_also_reached_otherwise_runs_eagerly():
    w = cr.tensor([1.0, 2.0])
    compiled = cr.compile(lambda x: x * w)
    with pytest.warns(RuntimeWarning, match="shares memory"):
        assert same(compiled(w.detach()), cr.tensor([1.0, 4.0]))  # w's memory, another object
    assert same(compiled(cr.tensor([3.0, 3.0])), cr.tensor([3.0, 6.0]))


def test_threads_replaying_one_function_get_eager_numbers():
    import threading

    threads_before = cr.get_num_threads()
    cr.set_num_threads(1)
    try:
        w = cr.tensor(np.linspace(-1, 1, 1 << 16, dtype=np.float32))  # large: replays release the GIL
        compiled = cr.compile(lambda x: ((x * w).exp() * x).sum(0, keepdim=True))
        inputs = [cr.tensor(np.full(1 << 16, k / 10, dtype=np.float32)) for k in range(8)]
        expected = [((x * w).exp() * x).sum(0, keepdim=True) for x in inputs]
        with cr.no_grad():
            compiled(inputs[0])
            results = {}

            def work(k):
                for _ in range(20):
                    results[k] = compiled(inputs[k])

            threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        for k in range(8):
            assert same(results[k], expected[k])
    finally:
        cr.set_num_threads(threads_before)


# ---------------------------------------------------------------- fused elementwise chains

def fused_steps(fn):
    return [s for s in fn.programs[-1].steps if s.startswith("fused(")]


def test_xor_step_fuses_its_elementwise_chains_and_matches_eager():
    eager, compiled, pe, pc, fn = run_both(make_xor, [()] * 40)
    assert_all_same(eager, compiled, pe, pc)
    steps = fn.programs[0].steps
    assert fused_steps(fn) and not any(s in ("binary", "unary") for s in steps), steps
    # unfused, the same program runs each op alone: the same bits again
    _, unfused, _, pu, plain = run_both(make_xor, [()] * 40, {"options": {"fuse": False}})
    assert_all_same(eager, unfused, pe, pu)
    assert not fused_steps(plain) and len(plain.programs[0].steps) > len(steps)


def chain(x, bias):
    """mul by a number, add a broadcast row, sigmoid, mul, tanh, sub of an earlier result, mul:
    one chain; `b` (inside it) is returned, the rest is only read inside the chain."""
    a = x * 0.5 + bias
    b = cr.sigmoid(a) * x
    c = cr.tanh(b) - a
    return (c * c).sum(), b


@pytest.mark.parametrize("dtype", [cr.float32, cr.float64])
@pytest.mark.parametrize("shape,threads", [((5, 7), 1), ((1000, 1000), 1), ((1000, 1000), 2)])
def test_a_chain_with_a_broadcast_row_and_a_number_fuses_bit_for_bit(dtype, shape, threads):
    rng = np.random.default_rng(5)
    bias = cr.tensor(rng.standard_normal(shape[1:]), dtype=dtype)
    inputs = [cr.tensor(rng.standard_normal(shape), dtype=dtype) for _ in range(3)]
    before = cr.get_num_threads()
    cr.set_num_threads(threads)
    try:
        compiled = cr.compile(chain)
        got = [compiled(x, bias) for x in inputs]  # new memory for x at each call
        expected = [chain(x, bias) for x in inputs]
    finally:
        cr.set_num_threads(before)
    assert compiled.programs[0].steps == ["fused(mul,add,sigmoid,mul,tanh,sub,mul)", "reduce"]
    for (total, b), (total_e, b_e) in zip(got, expected):
        assert same(total, total_e) and same(b, b_e)
    # NumPy agrees to rounding (the bits are eager's, checked above)
    x = inputs[-1].numpy().astype(np.float64)
    a = x * 0.5 + bias.numpy()
    np.testing.assert_allclose(got[-1][1].numpy(), 1 / (1 + np.exp(-a)) * x, rtol=1e-5, atol=1e-6)


def test_what_breaks_a_chain():
    def f(x, column, other):
        a = x + 1.0                  # a chain of 5 x 4 elements, ended by
        b = a * column               # a column broadcast (runs alone),
        c = b.t() * 2.0              # a transposed operand (alone too),
        d = (c.t() + a).exp()        # the same, then exp: a chain again
        e = d.sum(0) + other         # a reduction; then 4 elements: a chain of its own
        return e * e, d
    rng = np.random.default_rng(6)
    x, column = cr.tensor(rng.standard_normal((5, 4))), cr.tensor(rng.standard_normal((5, 1)))
    other = cr.tensor(rng.standard_normal(4))
    compiled = cr.compile(f)
    for _ in range(3):
        got, expected = compiled(x, column, other), f(x, column, other)
        assert all(same(g, e) for g, e in zip(got, expected))
    assert compiled.programs[0].steps == ["fused(add)", "binary", "binary", "binary", "fused(exp)", "reduce",
                                          "fused(add,mul)"]


@pytest.mark.parametrize("rows", [4, 128])  # one block, several blocks
@pytest.mark.parametrize("read", ["last row", "first row", "last value", "shifted"])
def test_a_member_result_read_other_than_elementwise_ends_the_chain(rows, read):
    # A chain runs block by block: a later member reading an earlier member's result broadcast
    # (a row, one value) or at another offset would see stale memory. Fresh inputs at every
    # call show it: the last call's values would still be there.
    pick = {"last row": lambda y: y[-1], "first row": lambda y: y[0], "last value": lambda y: y[-1, -1],
            "shifted": None}[read]

    def f(x):
        y = x * 2.0
        if read == "shifted":
            flat = y.flatten()
            return flat[1:] + flat[:-1]
        return y + pick(y)
    compiled = cr.compile(f)
    rng = np.random.default_rng(8)
    for _ in range(4):
        x = cr.tensor(rng.standard_normal((rows, 64)).astype(np.float32))
        assert same(compiled(x), f(x))
    assert len(compiled.programs[0].steps) == 2, compiled.programs[0].steps


def make_gelu_mlp(dtype, batch=64):
    def make():
        cr.manual_seed(7)
        model = cr.nn.Sequential(cr.nn.Linear(16, 32), cr.nn.GELU(), cr.nn.Linear(32, 32),
                                 cr.nn.Sigmoid(), cr.nn.Linear(32, 1)).to(dtype)
        opt = cr.optim.Adam(model.parameters(), lr=1e-2)

        def step(x, y):
            opt.zero_grad()
            loss = cr.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            return loss

        return step, list(model.parameters())
    return make


@pytest.mark.parametrize("dtype", [cr.float32, cr.float64])
def test_a_training_step_whose_fused_intermediates_are_saved_for_backward(dtype):
    rng = np.random.default_rng(8)
    data = [(cr.tensor(rng.standard_normal((64, 16)), dtype=dtype), cr.tensor(rng.standard_normal((64, 1)), dtype=dtype))
            for _ in range(8)]
    eager, compiled, pe, pc, fn = run_both(make_gelu_mlp(dtype), data)
    assert_all_same(eager, compiled, pe, pc)
    assert fused_steps(fn)
