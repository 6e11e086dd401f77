"""Run by test_kernels.py in a subprocess with CHAINRULE_ISA set: checks the GEMM and the
elementwise and reduction kernels of that ISA against NumPy, printing one line per failure."""
import itertools
import sys

import numpy as np

import chainrule as cr
from chainrule import _core

failures = []


def check(label, got, want, rtol):
    if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=rtol * 10):
        err = np.max(np.abs(got - want)) if got.shape == want.shape else "shape"
        failures.append(f"{label}: max error {err}")


rng = np.random.default_rng(0)
sizes = [1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 33, 48, 63, 64, 65, 70]
grid = [(m, n, k) for m, n, k in itertools.product(sizes, sizes, sizes) if (m + n + k) % 3 == 0 or max(m, n, k) == 70]
for dtype, rtol in ((np.float32, 1e-4), (np.float64, 1e-11)):
    for m, n, k in grid:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        want = a.astype(np.float64) @ b.astype(np.float64)
        check(f"{dtype.__name__} {m}x{k}@{k}x{n}", (cr.tensor(a) @ cr.tensor(b)).numpy(), want, rtol)
    # transposed and strided operands, sizes past the blocking (KC: 128 to 1024 by the L2 size,
    # MC, NC), k split into two blocks and more
    for m, n, k in [(300, 520, 700), (129, 1100, 257), (7, 2100, 300), (65, 70, 1300), (40, 50, 2500)]:
        a = rng.standard_normal((k, m)).astype(dtype)
        b = rng.standard_normal((n, k)).astype(dtype)
        want = a.T.astype(np.float64) @ b.T.astype(np.float64)
        check(f"{dtype.__name__} transposed {m},{n},{k}", (cr.tensor(a).T @ cr.tensor(b).T).numpy(), want, rtol * 10)
        big = rng.standard_normal((2 * m, 3 * k)).astype(dtype)
        check(f"{dtype.__name__} strided {m},{n},{k}",
              (cr.tensor(big)[::2, ::3] @ cr.tensor(b).T).numpy(),
              big[::2, ::3].astype(np.float64) @ b.T.astype(np.float64), rtol * 10)
    # the small-product paths (no packing, narrow outputs, matrix times vector) with transposed
    # and strided operands
    for m, n, k in [(64, 64, 64), (33, 16, 70), (70, 1, 65), (20, 10, 300), (7, 32, 9), (100, 96, 40)]:
        at = rng.standard_normal((k, m)).astype(dtype)
        big_b = rng.standard_normal((2 * k, 3 * n)).astype(dtype)
        want = at.T.astype(np.float64) @ big_b[::2, ::3].astype(np.float64)
        check(f"{dtype.__name__} small transposed/strided {m},{n},{k}",
              (cr.tensor(at).T @ cr.tensor(big_b)[::2, ::3]).numpy(), want, rtol * 10)
        big_a = rng.standard_normal((3 * m, 2 * k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        check(f"{dtype.__name__} small strided A {m},{n},{k}", (cr.tensor(big_a)[::3, ::2] @ cr.tensor(b)).numpy(),
              big_a[::3, ::2].astype(np.float64) @ b.astype(np.float64), rtol * 10)
    # A and B read in place up to k = 1024: tiles walking down the rows (A the smaller operand;
    # each strip's first tile copying B's strip, or a thread's first tile inside a strip copying
    # it alone) or along them (B the smaller), edge rows, A transposed, on the team
    for m, n, k, transposed in [(300, 384, 512, False), (1000, 64, 100, False), (256, 256, 256, True),
                                (37, 4096, 200, False), (128, 256, 784, False), (130, 96, 700, False),
                                (130, 48, 1024, True), (64, 128, 1000, False)]:
        a = rng.standard_normal((k, m) if transposed else (m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        ta = cr.tensor(a).T if transposed else cr.tensor(a)
        na = a.T if transposed else a
        check(f"{dtype.__name__} in place {m}x{k}@{k}x{n}{' a.T' if transposed else ''}", (ta @ cr.tensor(b)).numpy(),
              na.astype(np.float64) @ b, rtol * 10)
    # a Linear layer's x @ W.t(): B with contiguous columns, packed whole into panels by the
    # vector transpose when small (k * n <= 2^15), by the blocked GEMM when not; k past and
    # short of a vector's width, n a multiple of every NR and not, A transposed too
    for m, n, k in [(32, 128, 64), (5, 96, 17), (67, 64, 130), (1, 32, 7), (128, 256, 128), (64, 192, 300),
                    (33, 48, 33), (40, 200, 64)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        w = rng.standard_normal((n, k)).astype(dtype)
        check(f"{dtype.__name__} x @ W.t() {m},{n},{k}", (cr.tensor(a) @ cr.tensor(w).T).numpy(),
              a.astype(np.float64) @ w.T.astype(np.float64), rtol * 10)
        check(f"{dtype.__name__} x.T @ W.t() {m},{n},{k}",
              (cr.tensor(np.ascontiguousarray(a.T)).T @ cr.tensor(w).T).numpy(),
              a.astype(np.float64) @ w.T.astype(np.float64), rtol * 10)
    # batched with broadcast batch dims; then batches large enough for the blocked GEMM, run
    # one product per OpenMP thread (each packing into its own space)
    a = rng.standard_normal((3, 1, 40, 50)).astype(dtype)
    b = rng.standard_normal((4, 50, 30)).astype(dtype)
    check(f"{dtype.__name__} batched", (cr.tensor(a) @ cr.tensor(b)).numpy(), a.astype(np.float64) @ b, rtol * 10)
    a = rng.standard_normal((4, 200, 200)).astype(dtype)
    b = rng.standard_normal((4, 200, 200)).astype(dtype)
    check(f"{dtype.__name__} batched blocked", (cr.tensor(a) @ cr.tensor(b)).numpy(),
          a.astype(np.float64) @ b, rtol * 10)
    # the team's paths (2 threads from 2 x 4M multiply-adds): C split by columns (few rows),
    # B wider than one NC block with k in two blocks, k in three blocks
    for m, n, k in [(8, 4096, 512), (16, 1100, 2048), (64, 200, 2100)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        check(f"{dtype.__name__} team {m}x{k}@{k}x{n}", (cr.tensor(a) @ cr.tensor(b)).numpy(),
              a.astype(np.float64) @ b, rtol * 10)
    # k crossing the blocks of k (kc: 64-1024 from the cache sizes; test_kernels.py also runs this
    # file with tiny forced caches, where kc is 64-128 and MC, NC a few tiles), one row or one
    # column of C, m and n one past and one short of the tiles, batched
    for m, n, k in [(1, 200, 515), (200, 1, 515), (1, 1, 700), (25, 47, 129), (97, 33, 1031), (7, 65, 257),
                    (49, 130, 390), (130, 49, 1500)]:
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        check(f"{dtype.__name__} k blocks {m}x{k}@{k}x{n}", (cr.tensor(a) @ cr.tensor(b)).numpy(),
              a.astype(np.float64) @ b, rtol * 10)
        check(f"{dtype.__name__} k blocks transposed {m}x{k}@{k}x{n}",
              (cr.tensor(a.T.copy()).T @ cr.tensor(b.T.copy()).T).numpy(), a.astype(np.float64) @ b, rtol * 10)
    a = rng.standard_normal((3, 37, 300)).astype(dtype)
    b = rng.standard_normal((300, 70)).astype(dtype)
    check(f"{dtype.__name__} batched k blocks", (cr.tensor(a) @ cr.tensor(b)).numpy(), a.astype(np.float64) @ b,
          rtol * 10)
    # a B whose packed copy would pass 64 MiB: C made in slabs of columns. B is one column
    # expanded (stride 0), so every column of C is a @ v.
    a = rng.standard_normal((8, 1024)).astype(dtype)
    v = rng.standard_normal((1024, 1)).astype(dtype)
    got = (cr.tensor(a) @ cr.tensor(v).expand(1024, 17000)).numpy()
    want = np.repeat(a.astype(np.float64) @ v, 17000, axis=1)
    check(f"{dtype.__name__} slabs of B", got, want, rtol * 10)

# elementwise and reductions on odd sizes and misaligned views
for n in (1, 3, 15, 16, 17, 1023, 40001, 100003):
    x = rng.standard_normal(n + 1).astype(np.float32)
    y = rng.standard_normal(n + 1).astype(np.float32)
    tx, ty = cr.tensor(x)[1:], cr.tensor(y)[:-1]  # misaligned by one element
    check(f"add {n}", (tx + ty).numpy(), x[1:] + y[:-1], 1e-6)
    check(f"sigmoid {n}", tx.sigmoid().numpy(), 1 / (1 + np.exp(-x[1:])), 1e-6)
    check(f"sum {n}", np.array(tx.sum().item()), np.array(x[1:].astype(np.float64).sum()), 1e-5)

# the ISA-compiled elementwise loops (elementwise_ops.h slots): contiguous, misaligned and with a
# scalar operand on either side, float32 and float64, with NaN and signed zeros among the
# values; IEEE arithmetic, so the results must equal NumPy's bit for bit.
def exact(label, got, want):
    if got.shape != want.shape or not np.array_equal(got, want, equal_nan=True) or \
            not np.array_equal(np.signbit(got), np.signbit(want)):
        failures.append(f"{label}: differs from NumPy")


BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
          "maximum": np.maximum, "minimum": np.minimum,
          "sigmoid_backward": lambda g, y: g * y * (1 - y), "tanh_backward": lambda g, y: g * (1 - y * y),
          "relu_backward": lambda g, y: np.where(y > 0, g, 0).astype(g.dtype)}
UNARY = {"neg": np.negative, "abs": np.abs, "relu": lambda v: np.where(v < 0, 0, v).astype(v.dtype),
         "square": np.square, "sqrt": np.sqrt}
with np.errstate(all="ignore"):
    for dtype in (np.float32, np.float64):
        for n in (1, 7, 16, 33, 1001):
            x = rng.standard_normal(n + 1).astype(dtype)
            y = rng.standard_normal(n + 1).astype(dtype)
            x[::5], y[::7], x[1::11] = np.nan, -0.0, 0.0
            cx, cy = _core.from_numpy(x), _core.from_numpy(y)
            xa, ya = x[1:], y[:-1]  # misaligned by one element
            txa, tya = _core.from_numpy(xa), _core.from_numpy(ya)
            one = _core.from_numpy(y[1:2].reshape(()))
            for name, ref in BINARY.items():
                fn = getattr(_core, name)
                exact(f"{name} {dtype.__name__} {n}", fn(cx, cy).numpy(), ref(x, y))
                exact(f"{name} {dtype.__name__} {n} misaligned", fn(txa, tya).numpy(), ref(xa, ya))
                if name in ("add", "sub", "mul", "div", "maximum", "minimum"):
                    exact(f"{name} {dtype.__name__} {n} scalar right", fn(cx, one).numpy(), ref(x, y[1]))
                    exact(f"{name} {dtype.__name__} {n} scalar left", fn(one, cx).numpy(), ref(y[1], x))
            for name, ref in UNARY.items():
                fn = getattr(_core, name)
                exact(f"{name} {dtype.__name__} {n}", fn(cx).numpy(), ref(x))
                exact(f"{name} {dtype.__name__} {n} misaligned", fn(txa).numpy(), ref(xa))

wide = rng.standard_normal((70, 4500)).astype(np.float32)  # column sums past one 2048-column strip
check("sum axis 0, 4500 columns", cr.tensor(wide).sum(0).numpy(), wide.astype(np.float64).sum(0), 1e-5)
m = rng.standard_normal((513, 1027)).astype(np.float32)
for axis in (0, 1):
    check(f"sum axis {axis}", cr.tensor(m).sum(axis).numpy(), m.astype(np.float64).sum(axis), 1e-5)
    check(f"amax axis {axis}", cr.tensor(m).amax(axis).numpy(), m.max(axis), 0)

# vectorized exp / sigmoid / tanh: documented maximum relative error 1e-6 (float32), measured on
# a dense sweep, where the true result is a normal float; special values as NumPy gives them.
sweep = np.concatenate([np.linspace(-104, 89, 400_001, dtype=np.float32),
                        rng.standard_normal(100_001).astype(np.float32) * 5])
for name, ref_fn in (("exp", np.exp), ("sigmoid", lambda v: 1 / (1 + np.exp(-v))), ("tanh", np.tanh)):
    for view in (sweep, sweep[1:], sweep[::3]):  # contiguous, misaligned, strided
        got = getattr(_core, name)(_core.from_numpy(np.ascontiguousarray(view) if view.base is None else view))
        got = got.numpy().astype(np.float64)
        want = ref_fn(view.astype(np.float64))
        normal = (np.abs(want) > 1.2e-38) & (np.abs(want) < 3.4e38)  # normal float32 results
        worst = np.max(np.abs(got[normal] - want[normal]) / np.abs(want[normal]))
        if worst > 1e-6:
            failures.append(f"{name}: max relative error {worst:.3g} > 1e-6")
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 200.0, -200.0], np.float32)
    got = getattr(_core, name)(_core.from_numpy(special)).numpy()
    with np.errstate(over="ignore"):
        want = ref_fn(special.astype(np.float64)).astype(np.float32)
    if not np.array_equal(got, want, equal_nan=True):
        failures.append(f"{name} special values: got {got}, want {want}")

# the recurrent layers' time loops (their products read weights packed once per sequence,
# gemm::PackedB): forward against NumPy on sizes across the tile widths, both directions
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def recurrent_reference(kind, x, h0, c0, w_ih, w_hh, b, reverse):
    hs, h, c = [None] * len(x), h0, c0
    for t in (range(len(x) - 1, -1, -1) if reverse else range(len(x))):
        gx, gh = x[t] @ w_ih.T + b, h @ w_hh.T
        if kind == "lstm":
            i, f, g, o = np.split(gx + gh, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
        elif kind == "gru":
            (xr, xz, xn), (hr, hz, hn) = np.split(gx, 3, axis=1), np.split(gh, 3, axis=1)
            r, z = sigmoid(xr + hr), sigmoid(xz + hz)
            n = np.tanh(xn + r * hn)
            h = n + z * (h - n)
        else:
            h = np.tanh(gx + gh)
        hs[t] = h
    return np.stack(hs)


for dtype, rtol in ((np.float32, 1e-4), (np.float64, 1e-11)):
    for kind, gates in (("lstm", 4), ("gru", 3), ("rnn", 1)):
        for steps, batch, inputs, hidden in ((5, 3, 4, 5), (4, 9, 7, 33), (3, 17, 2, 70)):
            x = rng.standard_normal((steps, batch, inputs)).astype(dtype)
            h0, c0 = (0.5 * rng.standard_normal((2, batch, hidden))).astype(dtype)
            w_ih = (rng.standard_normal((gates * hidden, inputs)) / 3).astype(dtype)
            w_hh = (rng.standard_normal((gates * hidden, hidden)) / 3).astype(dtype)
            b = rng.standard_normal(gates * hidden).astype(dtype)
            for reverse in (False, True):
                want = recurrent_reference(kind, *(a.astype(np.float64) for a in (x, h0, c0, w_ih, w_hh, b)), reverse)
                T = [_core.from_numpy(np.ascontiguousarray(a)) for a in (x, h0, c0, w_ih, w_hh, b)]
                if kind == "lstm":
                    got = _core.lstm_sequence(T[0], T[1], T[2], T[3], T[4], T[5], None, reverse)[0].numpy()[:-1]
                else:
                    projected = _core.from_numpy(np.ascontiguousarray(x @ w_ih.T + b))
                    got = (_core.gru_sequence(projected, T[1], T[4], None, reverse)[0] if kind == "gru"
                           else _core.rnn_sequence(projected, T[1], T[4], None, False, reverse)).numpy()
                check(f"{dtype.__name__} {kind} {steps}x{batch}x{inputs}->{hidden} reverse={reverse}", got, want,
                      rtol * 10)

print(f"isa={_core.active_isa()} caches={_core.cache_sizes()} checks failed={len(failures)}")
for line in failures[:20]:
    print(line)
sys.exit(1 if failures else 0)
