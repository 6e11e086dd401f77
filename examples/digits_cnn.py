"""Handwritten digits (scikit-learn's bundled 8x8 images, no download) with a small CNN.

conv 3x3 (1 -> 16) ReLU maxpool 2 -> conv 3x3 (16 -> 32) ReLU maxpool 2 -> linear (128 -> 10),
cross-entropy, Adam (lr 3e-3), batch 32, 15 epochs; pixels standardised with the training set's
mean and deviation, the data split 80/20 with a fixed seed (the same split as digits.py).

Run: pip install ".[examples]" && python examples/digits_cnn.py [--epochs 15] [--seed 0]
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
    """Images as (N, 1, 8, 8) float32, standardised; labels int64."""
    datasets = require("sklearn.datasets", package="scikit-learn")
    train_test_split = require("sklearn.model_selection", package="scikit-learn").train_test_split

    digits = datasets.load_digits()
    x = digits.images.astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed,
                                                        stratify=y)
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, (x_test - mean) / std, y_train, y_test


def make_model() -> cr.nn.Module:
    return cr.nn.Sequential(
        cr.nn.Conv2d(1, 16, 3, padding=1), cr.nn.ReLU(), cr.nn.MaxPool2d(2),   # 16 x 4 x 4
        cr.nn.Conv2d(16, 32, 3, padding=1), cr.nn.ReLU(), cr.nn.MaxPool2d(2),  # 32 x 2 x 2
        cr.nn.Flatten(), cr.nn.Linear(32 * 2 * 2, 10))


def train(epochs: int = 15, seed: int = 0, lr: float = 3e-3, batch_size: int = 32,
          show_progress: bool = True, verbose: bool = True) -> dict[str, Any]:
    """Trains the CNN; returns the final test accuracy and the median seconds per epoch."""
    cr.manual_seed(seed)
    x_train, x_test, y_train, y_test = load_data(seed)
    loader = cr.utils.data.DataLoader(
        cr.utils.data.TensorDataset(cr.tensor(x_train), cr.tensor(y_train)),
        batch_size=batch_size, shuffle=True)
    model = make_model()
    loss_fn = cr.nn.CrossEntropyLoss()
    optimizer = cr.optim.Adam(model.parameters(), lr=lr)
    test_x, test_y = cr.tensor(x_test), cr.tensor(y_test)

    epoch_seconds = []
    accuracy = 0.0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        total, batches = 0.0, 0
        for xb, yb in progress(loader, desc=f"epoch {epoch:2d}", enabled=show_progress):
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
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
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args()
    train(args.epochs, args.seed, args.lr, args.batch_size, show_progress=not args.no_progress)


if __name__ == "__main__":
    main()
