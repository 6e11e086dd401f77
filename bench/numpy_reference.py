"""Hand-written NumPy versions of the benchmarked models: forward, backward derived by hand
(the calculus autograd automates), and the update. The bar chainrule's autograd must meet."""
from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class XorNumpy:
    """The lecture's 2-2-1 sigmoid network, BCE cost, plain gradient descent."""

    def __init__(self, hidden: int = 2, lr: float = 0.1, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
        self.y = np.array([[0], [1], [1], [0]], dtype=np.float32)
        self.w1 = rng.standard_normal((2, hidden)).astype(np.float32)
        self.b1 = rng.standard_normal(hidden).astype(np.float32)
        self.w2 = rng.standard_normal((hidden, 1)).astype(np.float32)
        self.b2 = rng.standard_normal(1).astype(np.float32)
        self.lr = lr

    def step(self) -> float:
        x, y = self.x, self.y
        a1 = sigmoid(x @ self.w1 + self.b1)
        h = sigmoid(a1 @ self.w2 + self.b2)
        cost = -np.mean(y * np.log(h) + (1 - y) * np.log(1 - h))
        # d cost / d (pre-activation of h) for sigmoid + BCE is (h - y) / n
        dz2 = (h - y) / len(x)
        dw2 = a1.T @ dz2
        db2 = dz2.sum(0)
        dz1 = (dz2 @ self.w2.T) * a1 * (1 - a1)
        dw1 = x.T @ dz1
        db1 = dz1.sum(0)
        self.w1 -= self.lr * dw1
        self.b1 -= self.lr * db1
        self.w2 -= self.lr * dw2
        self.b2 -= self.lr * db2
        return float(cost)


class MlpNumpy:
    """in -> hidden ReLU (-> hidden ReLU ...) -> classes, softmax cross-entropy, Adam."""

    def __init__(self, sizes: list[int], lr: float = 1e-3, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.weights, self.biases = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1 / np.sqrt(fan_in)
            self.weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32))
            self.biases.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
        self.params = self.weights + self.biases
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0
        self.lr = lr

    def step(self, x: np.ndarray, labels: np.ndarray) -> float:
        activations = [x]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = activations[-1] @ w + b
            activations.append(np.maximum(z, 0) if i < len(self.weights) - 1 else z)
        logits = activations[-1]
        shifted = logits - logits.max(1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
        n = len(x)
        loss = -log_probs[np.arange(n), labels].mean()
        grad = np.exp(log_probs)
        grad[np.arange(n), labels] -= 1
        grad /= n
        grads_w, grads_b = [], []
        for i in range(len(self.weights) - 1, -1, -1):
            grads_w.append(activations[i].T @ grad)
            grads_b.append(grad.sum(0))
            if i:
                grad = (grad @ self.weights[i].T) * (activations[i] > 0)
        grads = grads_w[::-1] + grads_b[::-1]
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m += (g - m) * 0.1
            v *= 0.999
            v += 0.001 * g * g
            denom = np.sqrt(v) / np.sqrt(1 - 0.999**self.t) + 1e-8
            p -= self.lr / (1 - 0.9**self.t) * m / denom
        return float(loss)
