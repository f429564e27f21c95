"""Reference lines and bands (thresholds, normal ranges, the forecast start) added to a figure in one step.

Plotly's ``add_vline`` / ``add_hline`` / ``add_hrect`` re-validate every shape already in the layout on each call
and look the subplot grid up again, so a figure with twenty of them took half a second to build (the vital-signs
forecast: 474 ms, of which 90% was these calls; profiled under load, issue 18). Here each mark is a plain
dict and ``add_marks`` hands them all to the layout at once: the same shapes and labels, built once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import plotly.graph_objects as go

# annotation_position as plotly's add_vline / add_hline read it: (xanchor, yanchor, where on the line)
_V_POSITIONS = {"top": ("center", "bottom", 1.0), "top right": ("left", "top", 1.0), "top left": ("right", "top", 1.0),
                "bottom": ("center", "top", 0.0), "bottom right": ("left", "bottom", 0.0),
                "bottom left": ("right", "bottom", 0.0)}


@dataclass
class Marks:
    """Shapes and annotations to add to one figure; ``add_marks`` adds them in one layout update."""

    shapes: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)


def axes(row: int = 1, col: int = 1, cols: int = 1) -> tuple[str, str]:
    """The x and y axis names of a subplot of ``make_subplots(rows, cols)`` (row-major: x, x2, x3...)."""
    k = (row - 1) * cols + col
    return (f"x{k}", f"y{k}") if k > 1 else ("x", "y")


def _line(line: dict | None, color: str | None, dash: str | None, width: float | None) -> dict:
    out = dict(line or {})
    for key, value in (("color", color), ("dash", dash), ("width", width)):
        if value is not None:
            out[key] = value
    return out


def vline(marks: Marks, x: float, *, row: int = 1, col: int = 1, cols: int = 1, text: str | None = None,
          position: str = "top", line: dict | None = None, color: str | None = None, dash: str | None = None,
          width: float | None = None) -> None:
    """A vertical line at ``x`` across one subplot (optionally labelled, as ``add_vline(annotation_text=...)``)."""
    xa, ya = axes(row, col, cols)
    marks.shapes.append(dict(type="line", xref=xa, x0=x, x1=x, yref=f"{ya} domain", y0=0, y1=1,
                             line=_line(line, color, dash, width)))
    if text:
        xanchor, yanchor, y = _V_POSITIONS[position]
        marks.annotations.append(dict(text=text, x=x, xref=xa, y=y, yref=f"{ya} domain", showarrow=False,
                                      xanchor=xanchor, yanchor=yanchor))


def hline(marks: Marks, y: float, *, row: int = 1, col: int = 1, cols: int = 1, text: str | None = None,
          position: str = "top left", line: dict | None = None, color: str | None = None, dash: str | None = None,
          width: float | None = None) -> None:
    """A horizontal line at ``y`` across one subplot (optionally labelled at its left or right end)."""
    xa, ya = axes(row, col, cols)
    marks.shapes.append(dict(type="line", xref=f"{xa} domain", x0=0, x1=1, yref=ya, y0=y, y1=y,
                             line=_line(line, color, dash, width)))
    if text:
        right = position.endswith("right")
        marks.annotations.append(dict(text=text, x=1 if right else 0, xref=f"{xa} domain", y=y, yref=ya,
                                      showarrow=False, xanchor="right" if right else "left",
                                      yanchor="bottom" if position.startswith("top") else "top"))


def hrect(marks: Marks, y0: float, y1: float, *, row: int = 1, col: int = 1, cols: int = 1, fillcolor: str,
          opacity: float = 1.0, text: str | None = None, position: str = "top left") -> None:
    """A horizontal band from ``y0`` to ``y1`` across one subplot, behind the data, without an outline."""
    xa, ya = axes(row, col, cols)
    marks.shapes.append(dict(type="rect", xref=f"{xa} domain", x0=0, x1=1, yref=ya, y0=y0, y1=y1, fillcolor=fillcolor,
                             opacity=opacity, line=dict(width=0), layer="below"))
    if text:
        top = position.startswith("top")
        marks.annotations.append(dict(text=text, x=0, xref=f"{xa} domain", y=y1 if top else y0, yref=ya,
                                      showarrow=False, xanchor="left", yanchor="top" if top else "bottom"))


def add_marks(fig: go.Figure, marks: Marks) -> go.Figure:
    """Add every shape and annotation of ``marks`` to ``fig`` in one layout update (keeps those already there,
    e.g. subplot titles)."""
    fig.update_layout(shapes=[*fig.layout.shapes, *marks.shapes],
                      annotations=[*fig.layout.annotations, *marks.annotations])
    return fig
