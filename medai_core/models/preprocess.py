"""Turn a displayable grayscale image into a model input, from the model's spec only."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from medai_core.models.spec import ModelSpec


def to_model_input(gray: np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """Resize a 2-D grayscale image in [0, 1] to the spec's input size.

    The same path (8-bit, PIL bilinear) is used in training and at inference, so uploads are
    seen exactly as training images were.

    Args:
        gray: (H, W) float array in [0, 1].
        spec: the model spec (``input_size``).

    Returns:
        (1, 1, h, w) float32 tensor in [0, 1].
    """
    arr = resize_gray(gray, spec.input_size).astype(np.float32) / 255.0
    return torch.from_numpy(arr)[None, None]


def resize_gray(gray: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) grayscale in [0, 1] -> (h, w) uint8, stretch-resized (8-bit, PIL bilinear): the one resize path of
    training and inference. Raises ``ValueError`` for an array that is not 2-D."""
    if gray.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {gray.shape}")
    u8 = np.clip(np.nan_to_num(gray) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    h, w = size
    return np.asarray(Image.fromarray(u8, mode="L").resize((w, h), Image.BILINEAR), dtype=np.uint8).copy()
