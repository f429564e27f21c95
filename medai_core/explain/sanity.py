"""Model-randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", 2018)."""
from __future__ import annotations

import copy

import numpy as np
from torch import nn

from .base import seeded


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy with every conv/linear/embedding/norm layer and free parameter re-initialised (full cascading randomisation);
    buffers such as input normalisation are kept. The shared trained model is never touched."""
    rnd = copy.deepcopy(model)
    with seeded(seed):
        for m in rnd.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm)):
                if m.weight is not None:
                    nn.init.normal_(m.weight, 1.0, 0.1)
                    nn.init.normal_(m.bias, 0.0, 0.1)
            elif callable(getattr(m, "reset_parameters", None)):
                # conv, linear, embedding, and our own modules' free parameters (feature tokenizer,
                # CLS token, positions) define reset_parameters()
                m.reset_parameters()
    return rnd.eval()


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two maps; 0 when either is constant (no ranking to share)."""
    from scipy.stats import spearmanr

    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)
