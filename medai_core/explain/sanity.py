"""Model-randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", 2018).

``randomised_copy`` randomises every layer at once; ``medai_core.explain.trust`` builds the cascading
version (top layer first) on ``reinit_``.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .base import seeded

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)


def reinit_(module: nn.Module) -> None:
    """Re-initialise every parameter of ``module`` and its submodules in place, from torch's global
    generator (wrap the call in ``seeded``); buffers (input normalisation, running statistics) are kept.

    Norm layers get weights ~ N(1, 0.1) and biases ~ N(0, 0.1) (their ``reset_parameters`` would also
    reset the running statistics, and ones/zeros would hide nothing); conv, linear, embedding, GRU and our
    own modules' free parameters (feature tokenizer, CLS token, positions) use ``reset_parameters()``. A
    module with parameters of its own but no ``reset_parameters`` gets N(0, std of the trained values).
    """
    for m in module.modules():
        if isinstance(m, _NORMS):
            if m.weight is not None:
                nn.init.normal_(m.weight, 1.0, 0.1)
            if m.bias is not None:
                nn.init.normal_(m.bias, 0.0, 0.1)
        elif callable(getattr(m, "reset_parameters", None)):
            m.reset_parameters()
        else:
            for p in m.parameters(recurse=False):
                reinit_parameter_(p)


def reinit_parameter_(p: torch.Tensor) -> None:
    """A free parameter redrawn from N(0, std of its trained values) (0.1 for a single value or a constant)."""
    with torch.no_grad():
        std = float(p.std()) if p.numel() > 1 else 0.0
        p.normal_(0.0, std if std > 0 else 0.1)


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy with every conv/linear/embedding/norm layer and free parameter re-initialised (full cascading randomisation);
    buffers such as input normalisation are kept. The shared trained model is never touched."""
    rnd = copy.deepcopy(model)
    with seeded(seed):
        reinit_(rnd)
    return rnd.eval()


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two maps (Pearson correlation of their ranks, ties sharing their mean rank,
    as ``scipy.stats.spearmanr``; NumPy only, sparing the 1.5 s first import of ``scipy.stats``);
    0 when either is constant (no ranking to share)."""
    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    ra, rb = _mean_ranks(a), _mean_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    return float(np.clip((ra @ rb) / np.sqrt((ra @ ra) * (rb @ rb)), -1.0, 1.0))


def _mean_ranks(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="stable")
    s = a[order]
    new = np.concatenate(([True], s[1:] != s[:-1]))  # first element of each run of ties
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, a.size))
    ranks = np.empty(a.size)
    ranks[order] = np.repeat(starts + (counts - 1) / 2.0, counts)
    return ranks
