"""Plotly figures for the Records workspace (structured records and notes); pages only display them."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from medai_core.plots.marks import Marks, add_marks, vline

RAISE, LOWER, NEUTRAL = "#c0392b", "#27ae60", "#2e86c1"


def _zero_line() -> Marks:
    marks = Marks()
    vline(marks, 0, color="#333", width=1)
    return marks


def risk_figure(risk: float, threshold: float, risk_of: str, reference: float | None = None) -> go.Figure:
    """One horizontal bar of calibrated risk on 0-100%, with the decision threshold (and reference risk)."""
    fig = go.Figure(go.Bar(x=[risk * 100], y=[""], orientation="h", marker_color=RAISE if risk >= threshold else NEUTRAL,
                           text=[f"{risk:.1%}"], textposition="outside", hoverinfo="skip"))
    marks = Marks()
    vline(marks, threshold * 100, dash="dash", color="#555", text=f"threshold {threshold:.0%}")
    if reference is not None:
        vline(marks, reference * 100, dash="dot", color="#888", text=f"reference {reference:.0%}", position="bottom")
    add_marks(fig, marks)
    fig.update_layout(height=150, margin=dict(l=10, r=10, t=30, b=30), xaxis=dict(range=[0, 105], title=f"risk of {risk_of} (%)"),
                      showlegend=False)
    return fig


def attribution_figure(frame: pd.DataFrame, title: str, top: int = 15, unit: str = "risk, percentage points") -> go.Figure:
    """Signed horizontal bars: red raised the output, green lowered it; labels carry the record's values.

    Args:
        frame: columns ``shown`` (label with value and unit) and ``attribution``, sorted by |attribution|.
    """
    f = frame.head(top).iloc[::-1]
    vals = f["attribution"].to_numpy(dtype=float) * (100 if "percentage" in unit else 1)
    fig = go.Figure(go.Bar(x=vals, y=f["shown"], orientation="h", marker_color=[RAISE if v > 0 else LOWER for v in vals],
                           text=[f"{v:+.1f}" if abs(v) >= 0.05 else f"{v:+.2f}" for v in vals], textposition="auto",
                           hovertemplate="%{y}: %{x:+.3f}<extra></extra>"))
    add_marks(fig, _zero_line())
    fig.update_layout(title=title, height=max(260, 26 * len(f) + 90), margin=dict(l=10, r=10, t=50, b=40),
                      xaxis_title=f"contribution ({unit}); red raises, green lowers", yaxis=dict(automargin=True))
    return fig


def attention_heatmap(att: np.ndarray, names: Sequence[str], title: str) -> go.Figure:
    """CLS-to-feature attention for every layer and head: rows ``L1 H1 ...``, columns features.

    Args:
        att: (layers, heads, features), each row summing to at most 1 (the rest goes to CLS itself).
    """
    layers, heads, _ = att.shape
    z = att.reshape(layers * heads, -1)
    rows = [f"layer {l + 1} head {h + 1}" for l in range(layers) for h in range(heads)]
    fig = go.Figure(go.Heatmap(z=z, x=list(names), y=rows, colorscale="Blues", zmin=0,
                               colorbar=dict(title="weight"), hovertemplate="%{y}, %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, height=90 + 22 * len(rows), margin=dict(l=10, r=10, t=50, b=10),
                      yaxis=dict(autorange="reversed"), xaxis=dict(tickangle=-45))
    return fig


def attention_bar(weights: np.ndarray, names: Sequence[str], title: str, top: int = 24) -> go.Figure:
    """One head's (or the heads' mean) attention over features or words, largest first."""
    order = np.argsort(-weights)[:top][::-1]
    fig = go.Figure(go.Bar(x=weights[order], y=[names[i] for i in order], orientation="h", marker_color=NEUTRAL,
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(title=title, height=max(260, 22 * len(order) + 90), margin=dict(l=10, r=10, t=50, b=40),
                      xaxis_title="attention weight from CLS", yaxis=dict(automargin=True))
    return fig


def importance_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Global importance: mean |attribution| per feature with the mean signed value as hover text."""
    f = frame.iloc[::-1]
    fig = go.Figure(go.Bar(x=f["mean_abs"] * 100, y=f["label"], orientation="h", marker_color=NEUTRAL,
                           customdata=f["mean_signed"] * 100,
                           hovertemplate="%{y}: mean |contribution| %{x:.2f} pp, mean signed %{customdata:+.2f} pp<extra></extra>"))
    fig.update_layout(title=title, height=max(300, 22 * len(f) + 90), margin=dict(l=10, r=10, t=50, b=40),
                      xaxis_title="mean |contribution| to risk (percentage points)", yaxis=dict(automargin=True))
    return fig


def class_probability_figure(top: Sequence[tuple[str, float]], title: str = "") -> go.Figure:
    """Horizontal bars of the top classes' calibrated probabilities."""
    labels = [k for k, _ in top][::-1]
    vals = [v * 100 for _, v in top][::-1]
    fig = go.Figure(go.Bar(x=vals, y=labels, orientation="h", marker_color=[NEUTRAL] * (len(vals) - 1) + [RAISE],
                           text=[f"{v:.1f}%" for v in vals], textposition="auto"))
    fig.update_layout(title=title, height=60 + 40 * len(vals), margin=dict(l=10, r=10, t=40 if title else 10, b=30),
                      xaxis=dict(range=[0, 100], title="probability (%)"), yaxis=dict(automargin=True))
    return fig


def word_bar(words: Sequence[tuple[str, float]], title: str) -> go.Figure:
    """Signed bars of the words that moved the class's logit most (summed over occurrences)."""
    w = list(words)[::-1]
    vals = [v for _, v in w]
    fig = go.Figure(go.Bar(x=vals, y=[k for k, _ in w], orientation="h", marker_color=[RAISE if v > 0 else LOWER for v in vals],
                           hovertemplate="%{y}: %{x:+.3f}<extra></extra>"))
    add_marks(fig, _zero_line())
    fig.update_layout(title=title, height=max(260, 22 * len(w) + 90), margin=dict(l=10, r=10, t=50, b=40),
                      xaxis_title="contribution to the class logit; red for, green against", yaxis=dict(automargin=True))
    return fig
