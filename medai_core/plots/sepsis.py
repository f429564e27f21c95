"""Plotly figures of the sepsis early warning: the risk over the stay with its alarm threshold, the attention
of one hour over the past hours, (hour x variable) attributions in each variable's units, and the held-out
operating point. Pages only display them."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from medai_core.io.series_spec import Signal
from medai_core.plots.marks import Marks, add_marks, hline, vline


def _threshold_mark(threshold: float) -> Marks:
    marks = Marks()
    vline(marks, threshold, row=1, col=2, cols=2, color="#c0392b", dash="dash")
    return marks


def risk_figure(hours: np.ndarray, risk: np.ndarray, threshold: float, alarm: np.ndarray, chosen: int | None = None,
                recorded_label: np.ndarray | None = None) -> go.Figure:
    """The hourly risk as a line, the threshold dashed, the alarming hours marked; the chosen hour and the
    file's recorded SepsisLabel (for comparison only) where given."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=hours, y=risk, mode="lines", name="risk of sepsis within 6 h",
                             line=dict(color="#2c3e50", width=2),
                             hovertemplate="ICU hour %{x:g}: risk %{y:.1%}<extra></extra>"))
    al = np.asarray(alarm, bool)
    if al.any():
        fig.add_trace(go.Scatter(x=hours[al], y=risk[al], mode="markers", name="alarm fires",
                                 marker=dict(color="#c0392b", size=7, symbol="triangle-up"),
                                 hovertemplate="alarm at ICU hour %{x:g} (risk %{y:.1%})<extra></extra>"))
    marks = Marks()
    hline(marks, threshold, color="#c0392b", dash="dash", text=f"alarm threshold {threshold:.1%}")
    if recorded_label is not None and np.asarray(recorded_label).any():
        first = float(hours[int(np.argmax(recorded_label))])
        vline(marks, first, color="#8e44ad", dash="dot")
        fig.add_annotation(x=first, y=1, yref="paper", showarrow=False, xanchor="left", font=dict(color="#8e44ad"),
                           text="recorded SepsisLabel = 1 (onset - 6 h)")
    if chosen is not None:
        vline(marks, float(hours[chosen]), color="#7f8c8d", width=1)
    add_marks(fig, marks)
    top = max(float(np.max(risk)) if len(risk) else 0.0, threshold) * 1.15
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.12),
                      xaxis_title="hours since ICU admission (ICULOS)",
                      yaxis=dict(title="risk", tickformat=".0%", range=[0, min(1.0, max(top, 0.05))]))
    return fig


def attention_figure(hours: np.ndarray, weights: np.ndarray, hour: int) -> go.Figure:
    """Hour ``hour``'s attention over the past hours it could see (a bar per hour)."""
    w = np.asarray(weights)[: hour + 1]
    fig = go.Figure(go.Bar(x=hours[: hour + 1], y=w, marker_color="#2980b9",
                           hovertemplate="ICU hour %{x:g}: weight %{y:.3f}<extra></extra>"))
    fig.update_layout(height=200, margin=dict(l=10, r=10, t=30, b=10), title=f"Attention at ICU hour {hours[hour]:g}",
                      xaxis_title="past hours", yaxis_title="weight")
    return fig


def sepsis_attribution_heatmap(attributions: np.ndarray, values: np.ndarray, hours: np.ndarray,
                               variables: Sequence[Signal], title: str, max_rows: int = 20) -> go.Figure:
    """(hours x variables) attributions as a heatmap of the ``max_rows`` variables with the most total
    attribution; hovering shows each value in its unit ("not measured" where it was carried forward)."""
    a = np.asarray(attributions)
    v = np.asarray(values)[: len(a)]
    order = np.argsort(-np.abs(a).sum(0))[:max_rows][::-1]
    labels = [f"{variables[j].label}" + (f" ({variables[j].unit})" if variables[j].unit else "") for j in order]
    text = [[("not measured" if np.isnan(v[i, j]) else f"{v[i, j]:g} {variables[j].unit}".strip()) for i in range(len(a))]
            for j in order]
    lim = float(np.abs(a).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=a[:, order].T, x=hours[: len(a)], y=labels, customdata=text, zmin=-lim, zmax=lim,
                               colorscale="RdBu_r", colorbar=dict(title="logit"),
                               hovertemplate="%{y}, ICU hour %{x:g}: %{customdata}<br>contribution %{z:.3f}<extra></extra>"))
    fig.update_layout(height=120 + 22 * len(order), margin=dict(l=10, r=10, t=40, b=10), title=title,
                      xaxis_title="hours since ICU admission")
    return fig


def operating_figure(op: dict[str, Any]) -> go.Figure:
    """Held-out calibration (risk deciles) and the threshold table (utility, patient sensitivity, PPV)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Calibration on held-out hours", "Utility against the threshold"))
    bins = op.get("calibration", {}).get("bins", [])
    if bins:
        x = [b["mean_risk"] for b in bins]
        fig.add_trace(go.Scatter(x=x, y=[b["observed"] for b in bins], mode="lines+markers", name="observed share",
                                 customdata=[b["n"] for b in bins],
                                 hovertemplate="mean risk %{x:.1%}: observed %{y:.1%} of %{customdata} hours<extra></extra>"),
                      row=1, col=1)
        top = max(max(x), max(b["observed"] for b in bins))
        fig.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", line=dict(dash="dot", color="#95a5a6"),
                                 name="perfect calibration"), row=1, col=1)
    table = op.get("table", [])
    if table:
        t = [r["threshold"] for r in table]
        for key, name, color in (("utility", "normalized utility", "#2c3e50"),
                                 ("sensitivity_patients", "patients warned", "#27ae60"),
                                 ("ppv_patients", "PPV (patients)", "#e67e22")):
            fig.add_trace(go.Scatter(x=t, y=[r[key] for r in table], mode="lines+markers", name=name,
                                     line=dict(color=color)), row=1, col=2)
        add_marks(fig, _threshold_mark(op["threshold"]))
    fig.update_xaxes(tickformat=".0%", title_text="risk", row=1, col=1)
    fig.update_yaxes(tickformat=".0%", row=1, col=1)
    fig.update_xaxes(tickformat=".0%", title_text="alarm threshold", row=1, col=2)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig
