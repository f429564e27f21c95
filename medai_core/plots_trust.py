"""Plotly figures for held-out reliability (every model page); pages only display them.

Colours follow the other figure modules: red for the model / positive side, blue for neutral data,
grey for references, orange (dotted) for operating thresholds.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .reliability import Coverage, ReliabilityCurve, ThresholdSweep

MODEL, NEUTRAL, REFERENCE, THRESHOLD, CURRENT = "#c0392b", "#2e86c1", "#7f8c8d", "#e67e22", "#34495e"
RATE_COLOURS = {"sensitivity": "#c0392b", "specificity": "#2e86c1", "PPV": "#8e44ad", "NPV": "#27ae60"}
SIGNAL_COLOURS = ("#c0392b", "#2e86c1", "#27ae60", "#8e44ad", "#e67e22", "#34495e")


def _none(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def _vline(fig: go.Figure, x: float, text: str, position: str, **line: object) -> None:
    """A vertical line through both panels, labelled once (in the top panel)."""
    fig.add_vline(x=x, row=1, col=1, annotation_text=text, annotation_position=position, **line)
    fig.add_vline(x=x, row=2, col=1, **line)


def reliability_figure(curve: ReliabilityCurve, current_prob: float | None = None, threshold: float | None = None,
                       title: str = "", x_title: str = "predicted probability",
                       y_title: str = "observed frequency") -> go.Figure:
    """Reliability diagram: observed frequency per bin (Wilson 95% bars) against the diagonal, the number
    of cases per bin as bars underneath, and vertical lines for the current prediction and the threshold.

    Args:
        curve: from ``reliability_curve``.
        current_prob: the prediction on screen (a solid line, its bin's observed rate in the hover).
        threshold: the operating threshold (a dotted line).
        title, x_title, y_title: labels (e.g. "top-1 confidence" / "share correct" for multi-class).
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.04)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line=dict(color=REFERENCE, dash="dash", width=1), hoverinfo="skip"), row=1, col=1)
    ok = curve.counts > 0
    x, y = curve.mean_predicted[ok], curve.observed[ok]
    lo, hi, n = curve.ci_low[ok], curve.ci_high[ok], curve.counts[ok]
    fig.add_trace(go.Scatter(
        x=x, y=y, mode="lines+markers", name=f"held-out (ECE {curve.ece:.3f})", line=dict(color=MODEL, width=2),
        marker=dict(size=7), error_y=dict(type="data", symmetric=False, array=hi - y, arrayminus=y - lo,
                                          color=MODEL, thickness=1.2, width=3),
        customdata=np.stack([lo, hi, n], -1),
        hovertemplate="predicted %{x:.2f}: observed %{y:.2f} (95% CI %{customdata[0]:.2f}-%{customdata[1]:.2f}), "
                      "n = %{customdata[2]}<extra></extra>"), row=1, col=1)
    centres = (curve.edges[:-1] + curve.edges[1:]) / 2
    fig.add_trace(go.Bar(x=centres, y=curve.counts, width=np.diff(curve.edges) * 0.9, name="cases per bin",
                         marker_color=NEUTRAL, opacity=0.6, showlegend=False,
                         hovertemplate="%{x:.2f}: %{y} cases<extra></extra>"), row=2, col=1)
    if threshold is not None:
        _vline(fig, float(threshold), f"threshold {threshold:.2f}", "top left", line_dash="dot",
               line_color=THRESHOLD, line_width=2)
    if current_prob is not None:
        b = curve.bin_index(current_prob)
        seen = (f"; observed {curve.observed[b]:.0%} of {curve.counts[b]} in its bin" if curve.counts[b] else
                "; no held-out case in its bin")
        _vline(fig, float(current_prob), f"this case {current_prob:.2f}{seen}", "top right", line_color=CURRENT,
               line_width=2)
    fig.update_xaxes(range=[0, 1], row=1, col=1)
    fig.update_xaxes(range=[0, 1], title_text=x_title, row=2, col=1)
    fig.update_yaxes(range=[0, 1.02], title_text=y_title, row=1, col=1)
    fig.update_yaxes(title_text="cases", row=2, col=1)
    fig.update_layout(title=title, height=460, margin=dict(l=10, r=10, t=50 if title else 30, b=40),
                      legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"), bargap=0)
    return fig


def threshold_figure(sweep: ThresholdSweep, threshold: float | None = None, title: str = "",
                     x_title: str = "threshold") -> go.Figure:
    """Sensitivity, specificity, PPV and NPV against the threshold on [0, 1], with the current one marked
    (undefined rates, e.g. PPV when nothing is flagged, leave gaps)."""
    fig = go.Figure()
    for name, vals in (("sensitivity", sweep.sensitivity), ("specificity", sweep.specificity),
                       ("PPV", sweep.ppv), ("NPV", sweep.npv)):
        fig.add_trace(go.Scatter(x=sweep.thresholds, y=[_none(v) for v in vals], mode="lines", name=name,
                                 line=dict(color=RATE_COLOURS[name], width=2),
                                 hovertemplate=f"threshold %{{x:.2f}}: {name} %{{y:.3f}}<extra></extra>"))
    if threshold is not None:
        fig.add_vline(x=float(threshold), line_dash="dot", line_color=THRESHOLD, line_width=2,
                      annotation_text=f"threshold {threshold:.2f}", annotation_position="top")
    fig.update_layout(title=title, height=340, margin=dict(l=10, r=10, t=50 if title else 30, b=40),
                      xaxis=dict(range=[0, 1], title=x_title), yaxis=dict(range=[0, 1.02], title="rate on held-out split"),
                      legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"), hovermode="x unified")
    return fig


def coverage_figure(coverage: Sequence[Coverage], title: str = "") -> go.Figure:
    """Nominal against observed quantile level per signal: the share of held-out values at or below each
    forecast quantile; on the diagonal the quantiles mean what they say."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", hoverinfo="skip",
                               line=dict(color=REFERENCE, dash="dash", width=1)))
    for i, c in enumerate(coverage):
        fig.add_trace(go.Scatter(
            x=list(c.nominal), y=list(c.observed), mode="lines+markers", name=c.label,
            line=dict(color=SIGNAL_COLOURS[i % len(SIGNAL_COLOURS)], width=2), marker=dict(size=8),
            hovertemplate=f"{c.label}: %{{y:.1%}} of {c.n:,} values at or below the %{{x:.0%}} quantile<extra></extra>"))
    fig.update_layout(title=title, height=360, margin=dict(l=10, r=10, t=50 if title else 30, b=40),
                      xaxis=dict(range=[0, 1], title="forecast quantile (nominal)", tickformat=".0%"),
                      yaxis=dict(range=[0, 1], title="observed values at or below it", tickformat=".0%"),
                      legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"))
    return fig
