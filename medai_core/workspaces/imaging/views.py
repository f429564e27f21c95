"""The Imaging page's composed views: a map blended over the scan as a figure (one call, so a page can cache
the result under all of its arguments)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from medai_core.explain import normalise_map, overlay
from medai_core.plots.image import image_figure


def map_figure(display: np.ndarray, attributions: np.ndarray, signed: bool, mode: str, opacity: float, cmap: str,
               title: str, zoom: float = 1.0, width_hint: int = 460) -> go.Figure:
    """An attribution or attention map over the displayed scan: scaled to [0, 1] (``normalise_map``: signed maps
    by ``mode``, positive or absolute), coloured by ``cmap`` and blended at ``opacity`` (``overlay``).

    Args:
        display: the scan as the viewer shows it, (H, W) or (H, W, 3) in [0, 1].
        attributions: the map, any size (resized to the scan).
    """
    heat = normalise_map(attributions, signed=signed, mode=mode)
    return image_figure(overlay(display, heat, opacity, cmap), title, zoom, width_hint)
