"""Job kinds used only by the tests: real small work (an MLP trained on digits) that reports progress.

The worker subprocesses of the tests import this file with ``--import``; the test process imports it by name.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hyperrep.datasets import load_dataset
from hyperrep.jobs.registry import JobContext, register


@register("test-train-digits")
def train_digits(params: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Train a small MLP on digits for ``params["steps"]`` minibatch steps, reporting progress every step."""
    data = load_dataset(params.get("dataset", "digits"), seed=0)
    steps = int(params["steps"])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = data.x_train.to(ctx.device), data.y_train.to(ctx.device)

    for step in range(steps):
        idx = torch.randint(0, len(x), (64,))
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ctx.progress(step + 1, steps, f"step {step + 1}/{steps}, loss {loss.item():.3f}")

    with torch.no_grad():
        val_acc = (model(data.x_val.to(ctx.device)).argmax(1) == data.y_val.to(ctx.device)).float().mean().item()
    ctx.log(f"trained {steps} steps, val acc {val_acc:.3f}")
    return {"summary": f"MLP on digits, {steps} steps, val acc {val_acc:.3f}", "val_acc": val_acc}
