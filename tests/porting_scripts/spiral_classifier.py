"""A classifier of three spiral arms: layers kept in a ModuleList and a ModuleDict, custom
initialisation through Module.apply, log-softmax with NLLLoss, SGD with momentum under a
one-cycle schedule, gradients clipped by their norm each step."""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
rng = np.random.default_rng(2)


def spirals(per_class, classes=3):
    radius = np.linspace(0.05, 1.0, per_class)
    points, labels = [], []
    for k in range(classes):
        angle = np.linspace(k * 4.0, (k + 1) * 4.0, per_class) + rng.normal(0, 0.15, per_class)
        points.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        labels.append(np.full(per_class, k))
    return np.concatenate(points).astype(np.float32), np.concatenate(labels).astype(np.int64)


class Classifier(nn.Module):
    def __init__(self, sizes, classes):
        super().__init__()
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.heads = nn.ModuleDict({"logits": nn.Linear(sizes[-1], classes)})
        self.activation = nn.LeakyReLU(0.1)

    def forward(self, x):
        for layer in self.hidden:
            x = self.activation(layer(x))
        return F.log_softmax(self.heads["logits"](x), dim=1)


def init_weights(module):
    if isinstance(module, nn.Linear):
        fan_in = module.weight.shape[1]
        with torch.no_grad():
            drawn = rng.normal(0.0, (2.0 / fan_in) ** 0.5, size=tuple(module.weight.shape))
            module.weight.copy_(torch.from_numpy(drawn.astype(np.float32)))
            module.bias.zero_()


X_np, Y_np = spirals(100)
X, Y = torch.from_numpy(X_np).to(device), torch.from_numpy(Y_np).to(device)
loader = DataLoader(TensorDataset(X, Y), batch_size=50, shuffle=False)

model = Classifier([2, 32, 32], 3).to(device)
model.apply(init_weights)
epochs = 30
optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.2, epochs=epochs, steps_per_epoch=len(loader))
criterion = nn.NLLLoss()

losses, norms = [], []
for epoch in range(epochs):
    model.train()
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        norms.append(nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0).item())
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())

model.eval()
with torch.no_grad():
    predictions = model(X).argmax(dim=1)
    accuracy = (predictions == Y).float().mean().item()
summary = f"accuracy {accuracy:.3f}, last loss {losses[-1]:.4f}"
results = {"losses": losses[::6], "norms": norms[::6], "accuracy": accuracy,
           "parameters": len(list(model.parameters())), "keys": list(model.state_dict())}
