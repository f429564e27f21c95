"""The Imaging page's composed views: a map over the displayed scan as a figure.

The browser blends the map: the scan and the coloured map travel as two pictures, the map's as RGBA (colour from
the colour map, alpha the square root of the map's [0, 1] value) drawn over the scan at the chosen opacity. That
is ``explain.overlay``'s blend, ``scan * (1 - a) + colour * a`` with ``a = opacity * sqrt(heat)``, computed by
the browser, so a new opacity encodes nothing and a new window encodes only the scan (issue 18). Reports keep
``overlay``'s blended pixels."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from medai_core.explain import normalise_map
from medai_core.explain.overlay import colorize, resize_map
from medai_core.plots.encode import png_data_uri
from medai_core.plots.image import Picture, display_side, image_figure, picture


def heat_picture(attributions: np.ndarray, signed: bool, mode: str, cmap: str, shape: tuple[int, int],
                 side: int) -> Picture:
    """A map as the RGBA layer drawn over a scan of ``shape`` (H, W) sent at most ``side`` pixels on its longest
    side: scaled to [0, 1] (``normalise_map``: signed maps by ``mode``, positive or absolute), resized to the
    size the scan is sent at, coloured by ``cmap``, with alpha ``sqrt(heat)`` (cold regions leave the scan
    readable)."""
    h, w = int(shape[0]), int(shape[1])
    s = min(1.0, side / max(h, w, 1))
    sent = (max(1, round(h * s)), max(1, round(w * s)))
    heat = np.clip(resize_map(normalise_map(attributions, signed=signed, mode=mode), sent), 0, 1)
    rgba = np.concatenate([colorize(heat, cmap), np.sqrt(heat)[..., None]], axis=-1)
    return Picture(png_data_uri(rgba), (h, w), sent)


def map_figure(display: np.ndarray | Picture, attributions: np.ndarray | Picture, signed: bool, mode: str,
               opacity: float, cmap: str, title: str, zoom: float = 1.0, width_hint: int = 460) -> go.Figure:
    """An attribution or attention map over the displayed scan, blended at ``opacity`` by the browser.

    Args:
        display: the scan as the viewer shows it, (H, W) or (H, W, 3) in [0, 1]; or its ``picture`` at
            ``display_side(width_hint, zoom)``.
        attributions: the map, any size (resized to the scan); or its ``heat_picture`` (then ``signed``,
            ``mode`` and ``cmap`` were applied when it was made).
    """
    side = display_side(width_hint, zoom)
    scan = display if isinstance(display, Picture) else picture(display, side)
    heat = (attributions if isinstance(attributions, Picture)
            else heat_picture(attributions, signed, mode, cmap, scan.shape, side))
    return image_figure(scan, title, zoom, width_hint, layer=heat, layer_opacity=opacity)
