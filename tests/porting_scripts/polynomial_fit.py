"""Fit a cubic to sin(x) with autograd and a hand-written gradient step (the first script of
many PyTorch tutorials, in the old style: Variable, .data, no_grad, formatted losses)."""
import math

import numpy as np
import torch
from torch.autograd import Variable

dtype = torch.float
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

x = torch.linspace(-math.pi, math.pi, 200, device=device, dtype=dtype)
y = torch.sin(x)

rng = np.random.default_rng(0)
start = rng.standard_normal(4) * 0.1
a, b, c, d = (Variable(torch.tensor(float(v), device=device, dtype=dtype), requires_grad=True)
              for v in start)

learning_rate = 5e-3
log = []
losses = []
for step in range(1500):
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    loss = (y_pred - y).pow(2).mean()
    losses.append(loss.item())
    if step % 300 == 299:
        log.append(f"step {step}: loss {loss:.4f}")
    loss.backward()
    with torch.no_grad():
        for p in (a, b, c, d):
            p -= learning_rate * p.grad
            p.grad = None

# the old spelling of an update outside the graph, once more
d.data = d.data * 1.0
fitted = f"y = {a.item():.3f} + {b.item():.3f} x + {c.item():.3f} x^2 + {d.item():.4f} x^3"
results = {"coefficients": [a.item(), b.item(), c.item(), d.item()], "losses": losses[::100],
           "final_loss": losses[-1], "log": log, "fitted": fitted}
