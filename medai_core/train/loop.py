"""The minibatch loop with early stopping shared by the forecaster trainers."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn


def fit_early_stopping(model: nn.Module, loss_on: Callable[[np.ndarray], torch.Tensor], val_loss: Callable[[], float],
                       n: int, *, opt: torch.optim.Optimizer, epochs: int, batch_size: int, patience: int,
                       rng: np.random.Generator, sched: Any = None, log: Callable[[str], None] | None = print
                       ) -> tuple[list[dict[str, float]], int]:
    """Train on shuffled minibatches of ``n`` rows (``loss_on(sorted indices)``), clip gradients at 1,
    keep the weights of the epoch with the lowest ``val_loss()``, stop after ``patience`` epochs without
    improvement. Leaves the best weights loaded, in eval mode. Returns (history, best epoch)."""
    best: tuple[float, int, dict | None] = (np.inf, 0, None)
    history = []
    for epoch in range(epochs):
        model.train()
        perm = rng.permutation(n)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = np.sort(perm[i:i + batch_size])
            loss = loss_on(idx)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            vl = val_loss()
        history.append({"epoch": epoch + 1, "train_loss": total / n, "val_loss": vl})
        if vl < best[0]:
            best = (vl, epoch + 1, {k: t.clone() for k, t in model.state_dict().items()})
        if log:
            log(f"epoch {epoch + 1} train {total / n:.4f} val {vl:.4f} (best {best[0]:.4f} @ {best[1]})")
        if epoch + 1 - best[1] >= patience:
            break
    model.load_state_dict(best[2])
    model.eval()
    return history, best[1]
