"""The trainable part of a run (``TrainHead``) and the exported network (``UserNet``)."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from medai_core.models.backbones import EffNetFeatures
from medai_core.models.effnet import IMAGENET_MEAN, IMAGENET_STD, STAGES


class TrainHead(nn.Module):
    """The trained part: fine-tuned stages (none when frozen), the 1280-channel head conv, global average pooling
    and a linear classifier."""

    def __init__(self, backbone: EffNetFeatures, start: int | None, n_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.start = start
        first = len(STAGES) if start is None else next(s for s, (a, _) in enumerate(STAGES) if a == start)
        self.stages = nn.ModuleList(copy.deepcopy(list(backbone.stages[first:])))
        self.head = copy.deepcopy(backbone.head) if start is not None else None
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, n_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.head is not None:
            for s in self.stages:
                h = s(h)
            h = self.head(h).mean((2, 3))
        return self.fc(self.dropout(h))

    def train(self, mode: bool = True) -> TrainHead:  # backbone BatchNorms keep their statistics (small batches)
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self


class UserNet(nn.Module):
    """The exported network: (N, 3, H, W) ImageNet-normalised -> (N, K) logits. ``head`` is Grad-CAM's layer.

    Stages are top-level layers (``stage0`` ... ``stage6``), so the randomisation check, which cascades over a
    user model's top-level layers, randomises them one by one: fc, head, stage6 ... stage0, stem."""

    def __init__(self, feats: EffNetFeatures, fc: nn.Linear) -> None:
        super().__init__()
        self.stem = feats.stem
        self.n_stages = len(feats.stages)
        for i, stage in enumerate(feats.stages):
            self.add_module(f"stage{i}", stage)
        self.head, self.fc = feats.head, fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for i in range(self.n_stages):
            h = getattr(self, f"stage{i}")(h)
        return self.fc(self.head(h).mean((2, 3)))


def normalise(u8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(u8).float().div_(255.0)[:, None].expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


