"""A small regression network trained in mini-batches: Sequential with GELU and ELU, a smooth
L1 loss, RMSprop with momentum and an exponentially decaying learning rate."""
import numpy as np
import torch
import torch.nn as nn  # noqa: PLR0402  (the spelling PyTorch scripts use)
from torch.utils.data import DataLoader, TensorDataset

rng = np.random.default_rng(1)
features = rng.uniform(-2, 2, size=(256, 3)).astype(np.float32)
targets = (np.sin(features[:, :1]) + 0.5 * features[:, 1:2] ** 2 - features[:, 2:3]).astype(np.float32)
dataset = TensorDataset(torch.from_numpy(features), torch.from_numpy(targets))
loader = DataLoader(dataset, batch_size=32, shuffle=False)

model = nn.Sequential(nn.Linear(3, 32), nn.GELU(), nn.Linear(32, 32), nn.ELU(), nn.Linear(32, 1))
with torch.no_grad():  # the same start in every framework: weights drawn by NumPy
    for p in model.parameters():
        p.copy_(torch.from_numpy(rng.uniform(-0.4, 0.4, size=tuple(p.shape)).astype(np.float32)))

criterion = nn.SmoothL1Loss(beta=0.5)
optimizer = torch.optim.RMSprop(model.parameters(), lr=3e-3, momentum=0.5)
scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)

history = []
for epoch in range(8):
    model.train()
    total = 0.0
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(xb)
    scheduler.step()
    history.append(total / len(dataset))

model.eval()
with torch.no_grad():
    prediction = model(torch.from_numpy(features))
    mse = nn.functional.mse_loss(prediction, torch.from_numpy(targets)).item()
    huber = nn.HuberLoss(delta=0.5)(prediction, torch.from_numpy(targets)).item()
    l1 = nn.L1Loss()(prediction, torch.from_numpy(targets)).item()

results = {"history": history, "mse": mse, "huber": huber, "l1": l1, "lr": scheduler.get_last_lr(),
           "target_variance": float(targets.var())}
