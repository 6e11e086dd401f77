"""The smoke test of an installed chainrule wheel (tools/check_wheel.sh, tests/test_wheel.py).

Run from a folder outside the repository, with the wheel installed in a fresh virtualenv: it
checks that the installed copy is the one imported, that its OpenMP runtime is the bundled
one (a repaired wheel needs no libgomp on the machine), prints show_config, and trains a
little: a backward through f = w*x + b and the lecture's XOR network for a few hundred steps.
"""
import pathlib

import chainrule as cr

package = pathlib.Path(cr.__file__).resolve().parent
assert "site-packages" in package.parts, package  # the installed copy, not a checkout
assert (package / "py.typed").is_file() and (package / "_core.pyi").is_file()
bundled = sorted(p.name for p in (package.parent / "chainrule.libs").glob("libgomp*"))
maps = pathlib.Path("/proc/self/maps").read_text()
assert bundled and bundled[0] in maps, (bundled, "the bundled libgomp is not the one loaded")
print(f"bundled OpenMP runtime: {bundled[0]} (loaded)")

cr.show_config()

a = cr.tensor([[1.0, 2.0], [3.0, 4.0]])
assert (a @ cr.ones(2, 2)).tolist() == [[3.0, 3.0], [7.0, 7.0]]
assert cr.arange(5).dtype == cr.int64 and (cr.arange(5) * 0.5).dtype == cr.float32

w = cr.tensor(-2.0, requires_grad=True)
x = cr.tensor(5.0, requires_grad=True)
b = cr.tensor(3.0, requires_grad=True)
f = w * x + b
f.backward()
assert (f.item(), w.grad.item(), x.grad.item(), b.grad.item()) == (-7.0, 5.0, -2.0, 1.0)

# The lecture's XOR network, a few hundred steps of plain gradient descent (2 threads: the
# OpenMP team starts too).
cr.set_num_threads(2)
cr.manual_seed(0)
X = cr.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y = cr.tensor([[0.0], [1.0], [1.0], [0.0]])
model = cr.nn.Sequential(cr.nn.Linear(2, 8), cr.nn.Sigmoid(), cr.nn.Linear(8, 1), cr.nn.Sigmoid())
optimizer = cr.optim.SGD(model.parameters(), lr=1.0)
costs = []
for step in range(500):
    optimizer.zero_grad()
    cost = cr.nn.BCELoss()(model(X), Y)
    cost.backward()
    optimizer.step()
    costs.append(cost.item())
assert costs[-1] < 0.5 * costs[0], (costs[0], costs[-1])
print(f"XOR: cost {costs[0]:.4f} -> {costs[-1]:.4f} in {len(costs)} steps")
print("smoke test passed")
