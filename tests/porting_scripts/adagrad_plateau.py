"""A linear model with an L1 loss, Adagrad, a warm-up through LambdaLR and a plateau scheduler
on the validation loss; gradients clipped by value; the parameters read as one vector."""
import numpy as np
import torch
import torch.nn as nn  # noqa: PLR0402  (the spelling PyTorch scripts use)

rng = np.random.default_rng(3)
true_w = np.array([[1.5], [-2.0], [0.5], [0.0]], dtype=np.float32)
x_train = rng.standard_normal((160, 4)).astype(np.float32)
x_valid = rng.standard_normal((40, 4)).astype(np.float32)
noise = rng.laplace(0, 0.1, size=(200, 1)).astype(np.float32)
y_train = x_train @ true_w + 0.3 + noise[:160]
y_valid = x_valid @ true_w + 0.3 + noise[160:]

model = nn.Linear(4, 1)
with torch.no_grad():
    model.weight.fill_(0.0)
    model.bias.fill_(0.0)
optimizer = torch.optim.Adagrad(model.parameters(), lr=0.5, lr_decay=1e-3)
warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: min(1.0, (epoch + 1) / 5))
criterion = nn.L1Loss()

xt, yt = torch.tensor(x_train), torch.tensor(y_train)
xv, yv = torch.tensor(x_valid), torch.tensor(y_valid)
valid_losses, rates = [], []
for epoch in range(60):
    optimizer.zero_grad()
    loss = criterion(model(xt), yt)
    loss.backward()
    nn.utils.clip_grad_value_(model.parameters(), clip_value=0.5)
    optimizer.step()
    warmup.step()
    with torch.no_grad():
        valid_losses.append(criterion(model(xv), yv).item())
    rates.append(optimizer.param_groups[0]["lr"])

plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
for epoch in range(40):
    optimizer.zero_grad()
    criterion(model(xt), yt).backward()
    optimizer.step()
    with torch.no_grad():
        valid = criterion(model(xv), yv).item()
    plateau.step(valid)
    valid_losses.append(valid)
    rates.append(plateau.get_last_lr()[0])

vector = nn.utils.parameters_to_vector(model.parameters()).detach()
results = {"valid_losses": valid_losses[::5], "rates": rates, "parameters": vector.tolist(),
           "true": true_w.ravel().tolist() + [0.3]}
