"""The Imaging page's scan and map figures, from this session's cached pictures (issue 18).

A scan is encoded once per view (upload, frame, window) and size; a map's coloured layer once per map, style and
size. A figure for another opacity, title or zoom step then reuses both pictures: moving the opacity slider
encodes nothing, and a new window encodes the scan once for every figure that shows it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ui.memo import Keyed, figure, picture

__all__ = ["map_view", "scan_view"]


def scan_view(display: Keyed, title: str, zoom: float, width_hint: int) -> Any:  # noqa: ANN401 - a go.Figure
    """``image_figure`` of the displayed scan (``display``: the rendered view, keyed by what determines it)."""
    from medai_core.workspaces import imaging as W

    pic = picture(W.picture, display, W.display_side(width_hint, zoom))
    return figure(W.image_figure, pic, title, zoom, width_hint)


def map_view(display: Keyed, attributions: np.ndarray, signed: bool, mode: str, opacity: float, cmap: str,
             title: str, zoom: float, width_hint: int) -> Any:  # noqa: ANN401 - a go.Figure
    """``map_figure``: the map over the displayed scan, both from cached pictures."""
    from medai_core.workspaces import imaging as W

    side = W.display_side(width_hint, zoom)
    pic = picture(W.picture, display, side)
    heat = picture(W.heat_picture, attributions, signed, mode, cmap, tuple(display.value.shape[:2]), side)
    return figure(W.map_figure, pic, heat, signed, mode, opacity, cmap, title, zoom, width_hint)
