"""Handwritten digits (scikit-learn's bundled 8x8 images, no download) with an MLP.

64 -> 128 ReLU -> 10, cross-entropy, Adam (lr 1e-3), batch 32, 20 epochs; the pixels are
standardised with the training set's statistics and the data split 80/20 with a fixed seed.

Run: pip install ".[examples]" && python examples/digits.py [--epochs 20] [--seed 0] [--compile]
(--compile records the training step once per batch shape and replays it in C++: cr.compile.)
(scikit-learn provides the data; tqdm, if installed, draws progress bars.)
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import chainrule as cr
from chainrule.utils.extras import progress, require


def load_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    datasets = require("sklearn.datasets", package="scikit-learn")
    train_test_split = require("sklearn.model_selection", package="scikit-learn").train_test_split

    digits = datasets.load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed,
                                                        stratify=y)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0) + 1e-6  # some border pixels are always 0
    return (x_train - mean) / std, (x_test - mean) / std, y_train, y_test


def train(epochs: int = 20, seed: int = 0, lr: float = 1e-3, batch_size: int = 32,
          show_progress: bool = True, verbose: bool = True, compile: bool = False) -> dict[str, Any]:
    """Trains the MLP; returns the final test accuracy and seconds per epoch. With `compile`, the
    training step runs through cr.compile (the same numbers, bit for bit)."""
    cr.manual_seed(seed)
    x_train, x_test, y_train, y_test = load_data(seed)
    loader = cr.utils.data.DataLoader(
        cr.utils.data.TensorDataset(cr.tensor(x_train), cr.tensor(y_train)),
        batch_size=batch_size, shuffle=True)
    model = cr.nn.Sequential(cr.nn.Linear(64, 128), cr.nn.ReLU(), cr.nn.Linear(128, 10))
    loss_fn = cr.nn.CrossEntropyLoss()
    optimizer = cr.optim.Adam(model.parameters(), lr=lr)
    test_x, test_y = cr.tensor(x_test), cr.tensor(y_test)

    def train_step(xb: cr.Tensor, yb: cr.Tensor) -> cr.Tensor:
        optimizer.zero_grad()
        loss: cr.Tensor = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss

    if compile:
        train_step = cr.compile(train_step)  # one recording per batch shape (the last is short)
    epoch_seconds = []
    accuracy = 0.0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        total, batches = 0.0, 0
        for xb, yb in progress(loader, desc=f"epoch {epoch:2d}", enabled=show_progress):
            loss = train_step(xb, yb)
            total += loss.item()
            batches += 1
        epoch_seconds.append(time.perf_counter() - start)
        model.eval()
        with cr.no_grad():
            accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
        if verbose:
            print(f"epoch {epoch:2d}  loss {total / batches:.4f}  test accuracy {accuracy:.4f}  "
                  f"({epoch_seconds[-1]:.3f} s)")
    per_epoch = float(np.median(epoch_seconds))
    if verbose:
        print(f"test accuracy {accuracy:.4f}; median {per_epoch:.3f} s per epoch")
    return {"accuracy": accuracy, "seconds_per_epoch": per_epoch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument("--compile", action="store_true", help="replay the training step in C++ (cr.compile)")
    args = parser.parse_args()
    train(args.epochs, args.seed, args.lr, args.batch_size, show_progress=not args.no_progress,
          compile=args.compile)


if __name__ == "__main__":
    main()
