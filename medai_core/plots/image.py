"""Plotly figures the pages render (the core builds them; pages only display them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
# Imported here, fully, before any figure is built: plotly's validators look pandas up in sys.modules
# and use it even while another thread is still importing it ("partially initialized module 'pandas'
# has no attribute 'Series'"). Under 10 concurrent sessions on a fresh server that failed the first
# Grad-CAM overlays of 5 sessions (benchmarks/load_protocol.py). An import statement waits for the
# other thread's import to finish.
import pandas  # noqa: F401
import plotly.graph_objects as go

from medai_core.plots.encode import png_data_uri, to_uint8
from medai_core.plots.marks import Marks, add_marks, vline

MAX_DISPLAY_SIDE = 1024


class ClassProbabilities(Protocol):
    """What ``probability_figure`` reads of a prediction (``workspaces.imaging.ImagePrediction``)."""

    labels: tuple[str, ...]
    probabilities: dict[str, float]
    label: str
    positive_label: str | None
    threshold: float
    positive_group: tuple[str, ...]
    positive_probability: float


def display_side(width_hint: int, zoom: float = 1.0) -> int:
    """The longest side an image is sent at: twice the width it is shown at (sharp on high-density screens),
    times the zoom, at most ``MAX_DISPLAY_SIDE``. The model input is unaffected."""
    return int(min(MAX_DISPLAY_SIDE, max(256, round(2 * width_hint * max(zoom, 1.0)))))


def downsample_for_display(img: np.ndarray, max_side: int = MAX_DISPLAY_SIDE) -> np.ndarray:
    """Shrink large images for the browser (the model input is unaffected); grey stays grey."""
    from PIL import Image

    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    s = max_side / max(h, w)
    return np.asarray(Image.fromarray(to_uint8(img)).resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS))


@dataclass(frozen=True)
class Picture:
    """An image as the browser gets it: a PNG data URI at display size, and the (H, W) of the image it stands
    for (figures keep that image's pixel coordinates on their axes, whatever size was sent)."""

    uri: str
    shape: tuple[int, int]
    sent: tuple[int, int]  # (H, W) of the PNG


def picture(img: np.ndarray, side: int = MAX_DISPLAY_SIDE) -> Picture:
    """``img`` ((H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA; [0, 1] floats or uint8) as a fast PNG, shrunk to at
    most ``side`` pixels on its longest side (``display_side``)."""
    u8 = downsample_for_display(img, side)
    return Picture(png_data_uri(u8), tuple(img.shape[:2]), tuple(u8.shape[:2]))


def _image_trace(pic: Picture, **kw: object) -> dict:
    scale = pic.shape[1] / pic.sent[1]  # the axes keep the full image's pixel coordinates
    return dict(type="image", source=pic.uri, dx=scale, dy=scale, x0=scale / 2 - 0.5, y0=scale / 2 - 0.5,
                hovertemplate="x %{x:.0f}, y %{y:.0f}<extra></extra>", **kw)


def image_figure(img: np.ndarray | Picture, title: str = "", zoom: float = 1.0, width_hint: int = 460,
                 layer: Picture | None = None, layer_opacity: float = 1.0) -> go.Figure:
    """A zoomable image, PNG-encoded at the size it is shown (so large scans stay light).

    One ``go.Image`` trace with the PNG as its source (what ``px.imshow(binary_string=True)`` makes, without
    its subplot grid and template work), built from plain dicts and not validated again (12 -> 1 ms; the
    tests validate it). Pixel coordinates on the axes; y points down.

    Args:
        img: (H, W) or (H, W, 3) in [0, 1], or uint8; or a ``picture`` of it, encoded before.
        zoom: >1 zooms into the centre (drag and scroll zoom also work in the browser).
        width_hint: expected display width, to size the figure's height to the image's aspect and the PNG.
        layer: an RGBA picture drawn over the image at ``layer_opacity`` (the browser blends them: a new
            opacity sends the same two pictures, with nothing encoded again).
    """
    pic = img if isinstance(img, Picture) else picture(img, display_side(width_hint, zoom))
    h0, w0 = pic.shape
    traces = [_image_trace(pic)]
    if layer is not None:
        traces.append(_image_trace(layer, opacity=float(layer_opacity)))
    x_range, y_range = [-0.5, w0 - 0.5], [h0 - 0.5, -0.5]
    if zoom > 1:
        cw, ch = w0 / zoom, h0 / zoom
        x_range, y_range = [(w0 - cw) / 2, (w0 + cw) / 2], [(h0 + ch) / 2, (h0 - ch) / 2]
    height = int(min(760, max(220, width_hint * h0 / max(w0, 1)))) + (30 if title else 0)
    bare = dict(showticklabels=False, ticks="", showgrid=False, zeroline=False, showline=False, constrain="domain")
    layout = dict(title=dict(text=title), height=height, margin=dict(l=0, r=0, t=30 if title else 0, b=0),
                  dragmode="pan", plot_bgcolor="black", xaxis=dict(range=x_range, **bare),
                  yaxis=dict(range=y_range, scaleanchor="x", **bare))
    return go.Figure(data=traces, layout=layout, _validate=False)  # tests/plots validates it


def probability_figure(pred: ClassProbabilities, muted: bool = False) -> go.Figure:
    """Calibrated class probabilities as horizontal bars with the decision threshold."""
    labels = list(pred.labels)
    probs = [pred.probabilities[k] for k in labels]
    group = tuple(getattr(pred, "positive_group", ()) or ())
    colors = []
    for k in labels:
        if muted:
            colors.append("#b0b0b0")
        elif k == pred.label:
            colors.append("#c0392b" if k == pred.positive_label or k in group else "#2e86c1")
        else:
            colors.append("#aab7c4")
    if len(group) > 1:  # the threshold applies to the group's sum: show that sum as its own bar, first
        labels.insert(0, f"{pred.positive_label} ({' + '.join(group)})")
        probs.insert(0, float(pred.positive_probability))
        colors.insert(0, "#b0b0b0" if muted else ("#c0392b" if pred.label in group else "#aab7c4"))
    fig = go.Figure(go.Bar(x=probs, y=labels, orientation="h", marker_color=colors,
                           text=[f"{p:.1%}" for p in probs], textposition="outside",
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    marks = Marks()
    vline(marks, pred.threshold, dash="dash", color="#c0392b", text=f"{pred.positive_label} threshold {pred.threshold:.2f}")
    add_marks(fig, marks)
    fig.update_xaxes(range=[0, 1.12], tickformat=".0%", title="calibrated probability")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=230 + 30 * (len(labels) - 3), margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
    return fig
