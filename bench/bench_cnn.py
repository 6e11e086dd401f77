"""Convolutional and recurrent networks (issue 18) against PyTorch, in the same run, as ratios:

- an epoch of the digits CNN (examples/digits_cnn.py: conv-relu-pool twice, linear; batch 32,
  Adam) on 1 and 2 threads;
- Conv2d forward + backward (input, weight and bias gradients) of 64 images 3x32x32 with 32
  3x3 filters, padding 1, in GFLOP/s and as a fraction of one core's FMA peak (times threads);
- one training step of the char-RNN (examples/char_rnn.py: Embedding 32, LSTM 128, Linear;
  32 windows of 64 characters, Adam), with its GFLOP/s and fraction of the FMA peak (its products
  alone: at the peak they would take 1.07 GFLOP / 270 GFLOP/s = 4.0 ms on one core).

Run: python bench/bench_cnn.py [--quick] [--threads 1 2] [--cpu-time] [--only char-rnn|char-gru] [--peak-gflops 270]
     [--json out.json]
Medians of repeated timings; the machine is shared, so compare the ratios, not the absolutes.
--cpu-time times with the process's CPU clock instead of the wall clock: on a loaded machine
(other processes taking the cores) it leaves out the time the benchmark sat descheduled, but it
adds up every thread's time, so use it with --threads 1 only.
The FMA peak defaults to the 265-273 GFLOP/s per core that `chainrule_benchmarks` measured on
this machine (bench/README.md); pass the figure of another CPU.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import chainrule as cr

try:
    import torch
except ImportError:
    torch = None

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


CLOCK = time.perf_counter  # or time.process_time (--cpu-time)


def median_seconds(fn: Callable[[], Any], min_time: float, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times: list[float] = []
    deadline = time.perf_counter() + min_time
    while len(times) < 5 or time.perf_counter() < deadline:
        start = CLOCK()
        fn()
        times.append(CLOCK() - start)
        if len(times) >= 200:
            break
    return statistics.median(times)


def set_threads(n: int) -> None:
    cr.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


# ---------------------------------------------------------------- the digits CNN epoch
def digits_epoch(min_time: float) -> dict[str, float]:
    digits = _example("digits_cnn")
    x_train, _, y_train, _ = digits.load_data(0)
    batch = 32
    order = np.random.default_rng(0).permutation(len(x_train))
    batches = [(x_train[order[i:i + batch]], y_train[order[i:i + batch]]) for i in range(0, len(x_train), batch)]

    model = digits.make_model()
    optimizer = cr.optim.Adam(model.parameters(), lr=3e-3)
    ours = [(cr.tensor(x), cr.tensor(y)) for x, y in batches]

    def epoch_ours() -> None:
        for xb, yb in ours:
            optimizer.zero_grad()
            cr.nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()

    result = {"chainrule": median_seconds(epoch_ours, min_time, warmup=1)}
    if torch is not None:
        tmodel = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(128, 10))
        toptimizer = torch.optim.Adam(tmodel.parameters(), lr=3e-3)
        theirs = [(torch.tensor(x), torch.tensor(y)) for x, y in batches]

        def epoch_torch() -> None:
            for xb, yb in theirs:
                toptimizer.zero_grad()
                torch.nn.functional.cross_entropy(tmodel(xb), yb).backward()
                toptimizer.step()

        result["torch"] = median_seconds(epoch_torch, min_time, warmup=1)
    return result


# ---------------------------------------------------------------- Conv2d forward + backward
CONV_SHAPE = (64, 3, 32, 32)
CONV_FILTERS = 32


def conv_flops() -> float:
    n, c, h, w = CONV_SHAPE
    forward = 2.0 * n * CONV_FILTERS * c * 9 * h * w  # padding 1: the output is h x w
    return 3 * forward  # forward, input gradient, weight gradient


def conv_step(min_time: float) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(CONV_SHAPE).astype(np.float32)
    g = rng.standard_normal((CONV_SHAPE[0], CONV_FILTERS) + CONV_SHAPE[2:]).astype(np.float32)
    layer = cr.nn.Conv2d(3, CONV_FILTERS, 3, padding=1)
    xc, gc = cr.tensor(x, requires_grad=True), cr.tensor(g)

    def ours() -> None:
        layer(xc).backward(gc)

    result = {"chainrule": median_seconds(ours, min_time)}
    if torch is not None:
        tlayer = torch.nn.Conv2d(3, CONV_FILTERS, 3, padding=1)
        xt, gt = torch.tensor(x, requires_grad=True), torch.tensor(g)

        def theirs() -> None:
            tlayer(xt).backward(gt)

        result["torch"] = median_seconds(theirs, min_time)
    return result


# ---------------------------------------------------------------- the char-RNN step
CHAR_RNN = dict(vocab=40, window=64, batch=32, embed=32, hidden=128)


GATES = {"lstm": 4, "gru": 3}


def char_rnn_flops(cell: str = "lstm") -> float:
    """The multiply-adds of one step, doubled: the recurrent layer's [x_t, h_{t-1}] @ [W_ih, W_hh]^T
    per step (4H columns for an LSTM, 3H for a GRU), its two products of the same size in backward
    (the inputs' and the weights' gradients), and the head's three. The pointwise work is left out:
    this is the floor the FMA peak allows."""
    c = CHAR_RNN
    rows = c["window"] * c["batch"]
    recurrent = 2.0 * rows * GATES[cell] * c["hidden"] * (c["embed"] + c["hidden"])
    head = 2.0 * rows * c["hidden"] * c["vocab"]
    return 3 * (recurrent + head)


def char_rnn_step(min_time: float, cell: str = "lstm") -> dict[str, float]:
    """One training step of examples/char_rnn.py's model (forward, backward, Adam), and PyTorch's
    of the same model."""
    char_rnn = _example("char_rnn")
    vocab, window, batch = CHAR_RNN["vocab"], CHAR_RNN["window"], CHAR_RNN["batch"]
    embed, hidden = CHAR_RNN["embed"], CHAR_RNN["hidden"]
    data = np.random.default_rng(0).integers(0, vocab, (batch, window + 1))
    model = char_rnn.CharModel(vocab, embed, hidden, cell=cell)
    optimizer = cr.optim.Adam(model.parameters(), lr=5e-3)
    x, y = cr.tensor(data[:, :-1]), cr.tensor(data[:, 1:].reshape(-1))

    def ours() -> None:
        optimizer.zero_grad()
        logits, _ = model(x)
        cr.nn.functional.cross_entropy(logits.reshape(-1, vocab), y).backward()
        optimizer.step()

    result = {"chainrule": median_seconds(ours, min_time)}
    if torch is not None:
        class TorchCharModel(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.embed = torch.nn.Embedding(vocab, embed)
                self.rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](embed, hidden, batch_first=True)
                self.head = torch.nn.Linear(hidden, vocab)

            def forward(self, x: Any) -> Any:
                return self.head(self.rnn(self.embed(x))[0])

        tmodel = TorchCharModel()
        toptimizer = torch.optim.Adam(tmodel.parameters(), lr=5e-3)
        xt, yt = torch.tensor(data[:, :-1]), torch.tensor(data[:, 1:].reshape(-1))

        def theirs() -> None:
            toptimizer.zero_grad()
            torch.nn.functional.cross_entropy(tmodel(xt).reshape(-1, vocab), yt).backward()
            toptimizer.step()

        result["torch"] = median_seconds(theirs, min_time)
    return result


def char_gru_step(min_time: float) -> dict[str, float]:
    return char_rnn_step(min_time, cell="gru")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    parser.add_argument("--peak-gflops", type=float, default=270.0, help="one core's float32 FMA peak")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpu-time", action="store_true", help="time with the process's CPU clock")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--only", choices=["digits", "conv", "char-rnn", "char-gru"], help="run one case only")
    args = parser.parse_args()
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
    min_time = 0.5 if args.quick else 2.0
    print(f"chainrule {cr.__version__} ({cr._core.active_isa()}), torch "
          f"{torch.__version__ if torch is not None else 'not installed'}; {platform.processor() or platform.machine()}; "
          f"{'CPU' if args.cpu_time else 'wall'} clock")
    figures: dict[str, Any] = {}
    for threads in args.threads:
        set_threads(threads)
        for key, name, run in (("digits", "digits CNN epoch", digits_epoch),
                               ("conv", "Conv2d 64x3x32x32, 32 3x3, fwd+bwd", conv_step),
                               ("char-rnn", "char-RNN step", char_rnn_step),
                               ("char-gru", "char-RNN step, GRU", char_gru_step)):
            if args.only is not None and key != args.only:
                continue
            result = run(min_time)
            figures[f"{name}, {threads} thread(s)"] = result
            line = f"{name:36s} {threads}T  chainrule {1000 * result['chainrule']:8.2f} ms"
            if "torch" in result:
                line += f"  torch {1000 * result['torch']:8.2f} ms  speed ratio {result['torch'] / result['chainrule']:.2f}x"
            flops = {"conv": conv_flops, "char-rnn": char_rnn_flops,
                     "char-gru": lambda: char_rnn_flops("gru")}.get(key)
            if flops is not None:
                gflops = flops() / result["chainrule"] / 1e9
                line += f"  ({gflops:.0f} GFLOP/s, {gflops / (args.peak_gflops * threads):.0%} of FMA peak)"
            print(line, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
