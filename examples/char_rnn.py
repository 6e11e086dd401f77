"""A character-level LSTM that learns a short story (examples/data/tinker.txt, 3 KB written for
it) and prints samples of its own writing as it trains.

Embedding(vocab, 32) -> LSTM(32, 128) -> Linear(128, vocab) (or a GRU: --cell gru); each step
trains on a batch of 32 random windows of 64 characters (next-character cross-entropy), Adam lr
5e-3, gradients clipped to norm 1. Sampling feeds the model its own output one character at a
time, at temperature 0.8.

Run: python examples/char_rnn.py [--steps 400] [--sample-every 100] [--seed 0] [--cell lstm|gru]
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

import chainrule as cr

TEXT = Path(__file__).resolve().parent / "data" / "tinker.txt"


CELLS = {"lstm": cr.nn.LSTM, "gru": cr.nn.GRU}


class CharModel(cr.nn.Module):
    def __init__(self, vocab: int, embed: int = 32, hidden: int = 128, cell: str = "lstm") -> None:
        super().__init__()
        self.embed = cr.nn.Embedding(vocab, embed)
        self.rnn = CELLS[cell](embed, hidden, batch_first=True)
        self.head = cr.nn.Linear(hidden, vocab)

    def forward(self, x: cr.Tensor, state: Any = None) -> tuple[cr.Tensor, Any]:
        out, state = self.rnn(self.embed(x), state)
        return self.head(out), state


def sample(model: CharModel, chars: list[str], start: str, length: int, temperature: float,
           rng: np.random.Generator) -> str:
    """Continues `start` by `length` characters drawn from the model's softmax."""
    index = {c: i for i, c in enumerate(chars)}
    model.eval()
    out = list(start)
    with cr.no_grad():
        logits, state = model(cr.tensor([[index[c] for c in start]]))
        for _ in range(length):
            p = (logits[0, -1] / temperature).softmax(0).numpy().astype(np.float64)
            nxt = int(rng.choice(len(chars), p=p / p.sum()))
            out.append(chars[nxt])
            logits, state = model(cr.tensor([[nxt]]), state)
    model.train()
    return "".join(out)


def clip_grad_norm(parameters: list[cr.nn.Parameter], max_norm: float) -> float:
    total = math.sqrt(sum(float((p.grad * p.grad).sum().item()) for p in parameters if p.grad is not None))
    if total > max_norm:
        with cr.no_grad():
            for p in parameters:
                if p.grad is not None:
                    p.grad.mul_(max_norm / total)
    return total


def train(steps: int = 400, seed: int = 0, lr: float = 5e-3, batch_size: int = 32, window: int = 64,
          sample_every: int = 100, verbose: bool = True, cell: str = "lstm") -> dict[str, Any]:
    """Trains the model; returns the final training loss (nats per character, a running mean over
    the last 20 steps), milliseconds per step and the last sample."""
    cr.manual_seed(seed)
    rng = np.random.default_rng(seed)
    text = TEXT.read_text()
    chars = sorted(set(text))
    data = np.array([chars.index(c) for c in text], dtype=np.int64)
    model = CharModel(len(chars), cell=cell)
    parameters = list(model.parameters())
    optimizer = cr.optim.Adam(parameters, lr=lr)
    losses: list[float] = []
    text_sample = ""
    start = time.perf_counter()
    for step in range(1, steps + 1):
        starts = rng.integers(0, len(data) - window - 1, batch_size)
        batch = np.stack([data[s:s + window + 1] for s in starts])
        x, y = cr.tensor(batch[:, :-1]), cr.tensor(batch[:, 1:])
        optimizer.zero_grad()
        logits, _ = model(x)
        loss = cr.nn.functional.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
        loss.backward()
        clip_grad_norm(parameters, 1.0)
        optimizer.step()
        losses.append(loss.item())
        if verbose and (step % sample_every == 0 or step == steps):
            text_sample = sample(model, chars, "The ", 160, 0.8, rng)
            print(f"step {step:4d}  loss {np.mean(losses[-20:]):.3f}  "
                  f"({1000 * (time.perf_counter() - start) / step:.1f} ms/step)\n  {text_sample!r}")
    ms_per_step = 1000 * (time.perf_counter() - start) / steps
    return {"loss": float(np.mean(losses[-20:])), "first_loss": losses[0], "ms_per_step": ms_per_step,
            "sample": text_sample}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--sample-every", type=int, default=100)
    parser.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    args = parser.parse_args()
    result = train(args.steps, args.seed, args.lr, sample_every=args.sample_every, cell=args.cell)
    print(f"final loss {result['loss']:.3f} nats/char (chance {math.log(len(set(TEXT.read_text()))):.3f}); "
          f"{result['ms_per_step']:.1f} ms per step")


if __name__ == "__main__":
    main()
