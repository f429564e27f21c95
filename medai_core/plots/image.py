"""Plotly figures the pages render (the core builds them; pages only display them)."""
from __future__ import annotations

from typing import Protocol

import numpy as np
# Imported here, fully, before any figure is built: plotly's validators look pandas up in sys.modules
# and use it even while another thread is still importing it ("partially initialized module 'pandas'
# has no attribute 'Series'"). Under 10 concurrent sessions on a fresh server that failed the first
# Grad-CAM overlays of 5 sessions (benchmarks/load_protocol.py). An import statement waits for the
# other thread's import to finish.
import pandas  # noqa: F401
import plotly.graph_objects as go

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


def _to_uint8_rgb(img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
    return img


def downsample_for_display(img: np.ndarray, max_side: int = MAX_DISPLAY_SIDE) -> np.ndarray:
    """Shrink very large images for the browser (the model input is unaffected)."""
    from PIL import Image

    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    s = max_side / max(h, w)
    u8 = _to_uint8_rgb(img)
    return np.asarray(Image.fromarray(u8).resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS))


def image_figure(img: np.ndarray, title: str = "", zoom: float = 1.0, width_hint: int = 460) -> go.Figure:
    """A zoomable image (PNG-encoded in the figure, so large scans stay light).

    Args:
        img: (H, W) or (H, W, 3) in [0, 1], or uint8 RGB.
        zoom: >1 zooms into the centre (drag and scroll zoom also work in the browser).
        width_hint: expected display width, to size the figure's height to the image's aspect.
    """
    import plotly.express as px

    u8 = _to_uint8_rgb(downsample_for_display(img))
    fig = px.imshow(u8, binary_string=True)
    h, w = u8.shape[:2]
    if zoom > 1:
        cw, ch = w / zoom, h / zoom
        fig.update_xaxes(range=[(w - cw) / 2, (w + cw) / 2])
        fig.update_yaxes(range=[(h + ch) / 2, (h - ch) / 2])
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, scaleanchor="x")
    fig.update_traces(hovertemplate="x %{x}, y %{y}<extra></extra>")
    height = int(min(760, max(220, width_hint * h / max(w, 1)))) + (30 if title else 0)
    fig.update_layout(title=title, height=height, margin=dict(l=0, r=0, t=30 if title else 0, b=0),
                      dragmode="pan", plot_bgcolor="black")
    return fig


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
    fig.add_vline(x=pred.threshold, line_dash="dash", line_color="#c0392b",
                  annotation_text=f"{pred.positive_label} threshold {pred.threshold:.2f}",
                  annotation_position="top")
    fig.update_xaxes(range=[0, 1.12], tickformat=".0%", title="calibrated probability")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=230 + 30 * (len(labels) - 3), margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
    return fig
