"""examples/digits.py with PyTorch in chainrule's place: the same data, split, standardisation,
model (64 -> 128 ReLU -> 10), loss, Adam (lr 1e-3), batch 32 and 20 epochs, so the two
libraries' accuracy and seconds per epoch compare one to one.

Run: python bench/digits_torch.py   (and python examples/digits.py --no-progress beside it)
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from digits import load_data  # noqa: E402  (the very same data preparation)


def main(epochs: int = 20, seed: int = 0) -> None:
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    x_train, x_test, y_train, y_test = load_data(seed)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train)),
        batch_size=32, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    test_x, test_y = torch.from_numpy(x_test), torch.from_numpy(y_test)
    seconds = []
    accuracy = 0.0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
        model.eval()
        with torch.no_grad():
            accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
    print(f"torch: test accuracy {accuracy:.4f}; median {statistics.median(seconds):.4f} s per epoch")


if __name__ == "__main__":
    main()
