"""XOR by backpropagation: the lecture's two-layer sigmoid network, line by line.

    X = [[0, 0], [0, 1], [1, 0], [1, 1]]    Y = [[0], [1], [1], [0]]
    layer1     = sigmoid(X @ W1 + b1)            2 -> hidden
    hypothesis = sigmoid(layer1 @ W2 + b2)       hidden -> 1
    cost       = -mean(Y log(hypothesis) + (1 - Y) log(1 - hypothesis))
    W <- W - learning_rate * d cost / d W        (cost.backward() applies the chain rule)

Run: python examples/xor.py [--hidden 2] [--lr 0.1] [--steps 10001] [--seed 0] [--optimizer sgd]
                           [--graph xor.svg] [--logdir runs/xor] [--compile]

--compile records the training step once and replays it in C++ (cr.compile): the same numbers,
bit for bit, several times faster.

--graph draws the graph of the cost (its ops, the inputs X and Y, the constants, the weights with
their values and gradients) with Graphviz; --logdir writes the cost, the weight histograms and
the same graph for TensorBoard (`tensorboard --logdir runs`: Scalars, Histograms and Graphs), as
in the lecture's TensorBoard lab.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import chainrule as cr
from chainrule.utils.extras import require


def build_parameters(hidden: int) -> list[cr.Tensor]:
    # Like the lecture's tf.random_normal weights: standard normal draws from cr's generator.
    W1 = cr.randn(2, hidden, requires_grad=True)
    b1 = cr.randn(hidden, requires_grad=True)
    W2 = cr.randn(hidden, 1, requires_grad=True)
    b2 = cr.randn(1, requires_grad=True)
    return [W1, b1, W2, b2]


def train(hidden: int = 2, lr: float = 0.1, steps: int = 10001, seed: int = 0,
          optimizer_name: str = "sgd", report_every: int = 1000, verbose: bool = True,
          graph: str | Path | None = None, logdir: str | Path | None = None,
          compile: bool = False) -> dict[str, Any]:
    """Trains the network and returns its final cost, hypothesis, predictions and accuracy.

    With `graph`, draws the graph of the last training step's cost into that file (see
    save_graph); with `logdir`, logs the cost every 100 steps and histograms of W1 and W2
    every 1000 steps for TensorBoard, and the graph of the last step's cost at the end (needs
    tensorboardX). With `compile`, the step runs through cr.compile.
    """
    cr.manual_seed(seed)
    X = cr.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Y = cr.tensor([[0.0], [1.0], [1.0], [0.0]])
    W1, b1, W2, b2 = params = build_parameters(hidden)
    optimizer: cr.optim.Optimizer
    if optimizer_name == "sgd":
        optimizer = cr.optim.SGD(params, lr=lr)  # plain gradient descent, as in the lecture
    elif optimizer_name == "adam":
        optimizer = cr.optim.Adam(params, lr=lr)
    else:
        raise ValueError(f"unknown optimizer {optimizer_name!r} (expected sgd or adam)")

    def forward() -> tuple[cr.Tensor, cr.Tensor]:
        layer1 = cr.sigmoid(X @ W1 + b1)
        hypothesis = cr.sigmoid(layer1 @ W2 + b2)
        cost = -cr.mean(Y * cr.log(hypothesis) + (1 - Y) * cr.log(1 - hypothesis))
        return hypothesis, cost

    writer = None
    if logdir is not None:
        from chainrule.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(logdir))
    def train_step() -> cr.Tensor:
        optimizer.zero_grad()
        _, cost = forward()
        cost.backward()      # d cost / d W1, b1, W2, b2 by the chain rule
        optimizer.step()     # W <- W - lr * grad
        return cost

    if compile:
        train_step = cr.compile(train_step)  # recorded at the first call, replayed in C++ after
    cost = None
    start = time.perf_counter()
    for step in range(steps):
        cost = train_step()
        if verbose and report_every and step % report_every == 0:
            print(f"step {step:6d}  cost {cost.item():.6f}")
        if writer is not None:
            if step % 100 == 0:
                writer.add_scalar("cost", cost, step)
            if step % 1000 == 0:
                writer.add_histogram("W1", W1, step)
                writer.add_histogram("W2", W2, step)
    seconds = time.perf_counter() - start
    names = {"X": X, "Y": Y, "W1": W1, "b1": b1, "W2": W2, "b2": b2}
    if compile and cost is not None and (graph is not None or writer is not None):
        _, cost = forward()  # a replayed step keeps no graph: draw one from an eager forward
    if cost is not None:
        names["cost"] = cost
    if writer is not None:
        if cost is not None:
            writer.add_graph(cost, names=names)  # TensorBoard's Graphs tab
        writer.close()
    if graph is not None and cost is not None:
        written = save_graph(cost, graph, names)
        if verbose:
            print(f"graph of the cost written to {written}")

    with cr.no_grad():
        hypothesis, cost = forward()
        predicted = (hypothesis > 0.5).float()
        accuracy = (predicted == Y).float().mean().item()
    if verbose:
        print("\nHypothesis:\n", hypothesis.numpy().round(6))
        print("Predicted:\n", predicted.numpy())
        print("Y:\n", Y.numpy())
        print(f"Accuracy: {accuracy}")
        print(f"({steps} steps in {seconds:.2f} s, {1e6 * seconds / max(steps, 1):.0f} us per step)")
    return {"cost": cost.item(), "hypothesis": hypothesis, "predicted": predicted,
            "accuracy": accuracy, "seconds": seconds}


def save_graph(cost: cr.Tensor, path: str | Path, names: dict[str, cr.Tensor]) -> Path:
    """Draws the graph of `cost` into `path` (its suffix picks SVG, PNG, ...); without
    Graphviz, writes the DOT text next to it with a .dot suffix instead. Returns the file."""
    try:
        return cr.viz.render(cost, path, names=names)
    except (ImportError, cr.viz.GraphvizNotFoundError) as error:
        dot_path = Path(path).with_suffix(".dot")
        print(f"Graphviz is not available ({error.__class__.__name__}); writing the DOT text "
              f"to {dot_path} instead (pip install graphviz, and install the dot program)")
        dot_path.parent.mkdir(parents=True, exist_ok=True)
        dot_path.write_text(cr.viz.to_dot(cost, names=names))
        return dot_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=2, help="hidden units (default 2)")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    parser.add_argument("--steps", type=int, default=10001, help="training steps (default 10001)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    parser.add_argument("--graph", metavar="PATH",
                        help="draw the graph of the cost into PATH (e.g. xor.svg or xor.png)")
    parser.add_argument("--logdir", metavar="DIR",
                        help="write TensorBoard logs (cost, W1/W2 histograms, the graph) to DIR")
    parser.add_argument("--compile", action="store_true",
                        help="record the training step once and replay it in C++ (cr.compile)")
    args = parser.parse_args()
    if args.logdir:  # one line saying what to install, before training, instead of a traceback
        require("tensorboardX", install='pip install ".[tensorboard]" (or pip install tensorboardX)')
    train(args.hidden, args.lr, args.steps, args.seed, args.optimizer,
          graph=args.graph, logdir=args.logdir, compile=args.compile)


if __name__ == "__main__":
    main()
