"""A small residual CNN for breast ultrasound (benign / malignant / normal), trained from scratch.

The module carries its own calibration and out-of-distribution statistics as buffers, so one
state_dict (one sha256) holds everything a prediction needs:

* ``pixel_mean``/``pixel_std``: input normalisation from the training split;
* ``temperature``: temperature scaling fitted on the validation split (Guo et al. 2017);
* ``decision_threshold``: the malignant-vs-rest operating point chosen on validation;
* ``ood_mean``/``ood_precision``/``ood_threshold``: a Mahalanobis detector on pooled features
  (Lee et al. 2018), threshold at the 95th percentile of validation scores.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medai_core.models.catalog import BUSI_LABELS, BUSI_SPEC  # noqa: F401  (re-exported)

FEATURE_DIM = 96 + 192


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )
        # not inplace: Captum's hooks need the activations intact
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.act(y + self.short(x))


class BusiNet(nn.Module):
    """Input: (N, 1, 128, 128) grayscale in [0, 1]. Output: (N, 3) logits (uncalibrated)."""

    def __init__(self, n_classes: int = 3, width: int = 32, dropout: float = 0.3) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.layer1 = ResBlock(w, w)
        self.layer2 = ResBlock(w, 2 * w, 2)
        self.layer3 = ResBlock(2 * w, 3 * w, 2)
        self.layer4 = ResBlock(3 * w, 6 * w, 2)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(6 * w, n_classes)
        self.register_buffer("pixel_mean", torch.tensor(0.5))
        self.register_buffer("pixel_std", torch.tensor(0.25))
        self.register_buffer("temperature", torch.tensor(1.0))
        self.register_buffer("decision_threshold", torch.tensor(0.5))
        feat = 3 * w + 6 * w
        self.register_buffer("ood_mean", torch.zeros(feat))
        self.register_buffer("ood_precision", torch.eye(feat))
        self.register_buffer("ood_threshold", torch.tensor(float("inf")))

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x - self.pixel_mean) / self.pixel_std
        x = self.layer2(self.layer1(self.stem(x)))
        f3 = self.layer3(x)
        f4 = self.layer4(f3)
        return f3, f4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, f4 = self._trunk(x)
        return self.fc(self.dropout(F.adaptive_avg_pool2d(f4, 1).flatten(1)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled layer3 + layer4 features, (N, FEATURE_DIM), used by the OOD detector."""
        f3, f4 = self._trunk(x)
        return torch.cat([F.adaptive_avg_pool2d(f3, 1).flatten(1), F.adaptive_avg_pool2d(f4, 1).flatten(1)], 1)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f3, f4 = self._trunk(x)
        p4 = F.adaptive_avg_pool2d(f4, 1).flatten(1)
        feats = torch.cat([F.adaptive_avg_pool2d(f3, 1).flatten(1), p4], 1)
        return self.fc(self.dropout(p4)), feats

    def prepare_for_attribution(self) -> "BusiNet":
        """This (eval-mode, private) copy made cheaper for the many forward + backward passes of attribution:
        every BatchNorm folded into the convolution before it (exact in eval mode up to float rounding) and
        the weights in channels-last layout. Profiled on IG (64 steps): convolutions are ~70% of the time,
        BatchNorm forward + backward ~9%; channels-last speeds the convolutions up on this CPU (oneDNN).
        Module names (``layer4`` for Grad-CAM) are kept; folded BatchNorms become ``nn.Identity``."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        def fold(parent: nn.Module, conv: str, bn: str) -> None:
            setattr(parent, conv, fuse_conv_bn_eval(getattr(parent, conv), getattr(parent, bn)))
            setattr(parent, bn, nn.Identity())

        self.eval()
        if isinstance(self.stem[1], nn.Identity):  # already prepared
            return self
        fold(self.stem, "0", "1")
        for block in (self.layer1, self.layer2, self.layer3, self.layer4):
            fold(block, "conv1", "bn1")
            fold(block, "conv2", "bn2")
            if isinstance(block.short, nn.Sequential):
                fold(block.short, "0", "1")
        return self.to(memory_format=torch.channels_last)

    def ood_score(self, feats: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance of pooled features to the training distribution, (N,)."""
        d = feats - self.ood_mean
        return torch.sqrt(torch.clamp(((d @ self.ood_precision) * d).sum(1), min=0))


def build_busi_cnn() -> nn.Module:
    return BusiNet(n_classes=len(BUSI_LABELS))
