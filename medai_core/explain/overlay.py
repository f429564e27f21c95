"""Heatmap overlays: attributions resized to the scan and blended with a colour map."""
from __future__ import annotations

import numpy as np
from PIL import Image

COLORMAPS = ("jet", "inferno", "viridis", "turbo", "hot")


def normalise_map(attr: np.ndarray, signed: bool = False, mode: str = "positive") -> np.ndarray:
    """Scale a map to [0, 1] for display (99th percentile clip, robust to single hot pixels).

    Args:
        attr: (H, W) attributions.
        signed: whether the method's attributions carry a sign.
        mode: for signed maps, "positive" (evidence for the target) or "absolute".
    """
    a = np.nan_to_num(attr.astype(np.float32))
    if signed and mode == "positive":
        a = np.clip(a, 0, None)
    else:
        a = np.abs(a)
    top = float(np.percentile(a, 99.5)) if a.size else 0.0
    if top <= 0:
        top = float(a.max()) if a.size and a.max() > 0 else 1.0
    return np.clip(a / top, 0, 1)


def resize_map(heat: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    img = Image.fromarray(heat.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def colorize(heat: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) float RGB in [0, 1]."""
    from matplotlib import colormaps

    if cmap not in COLORMAPS:
        cmap = "jet"
    return colormaps[cmap](np.clip(heat, 0, 1))[..., :3].astype(np.float32)


def overlay(display: np.ndarray, heat: np.ndarray, opacity: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """Blend a [0, 1] heatmap onto a display image; returns (H, W, 3) uint8.

    The heatmap is resized to the display image; its opacity scales with the heat itself so
    cold regions leave the scan readable.
    """
    base = display if display.ndim == 3 else np.repeat(display[..., None], 3, -1)
    heat = resize_map(heat, base.shape[:2])
    alpha = (opacity * np.clip(heat, 0, 1) ** 0.5)[..., None]
    out = base * (1 - alpha) + colorize(heat, cmap) * alpha
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
