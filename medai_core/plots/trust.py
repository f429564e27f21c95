"""Plotly figures for held-out reliability (every model page); pages only display them.

Colours follow the other figure modules: red for the model / positive side, blue for neutral data,
grey for references, orange (dotted) for operating thresholds.
"""
from __future__ import annotations

import functools
import json
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from medai_core.plots.marks import Marks, add_marks, hrect, vline
from medai_core.trust.alarms import Coverage
from medai_core.trust.calibration import ReliabilityCurve, ThresholdSweep

MODEL, NEUTRAL, REFERENCE, THRESHOLD, CURRENT = "#c0392b", "#2e86c1", "#7f8c8d", "#e67e22", "#34495e"
RATE_COLOURS = {"sensitivity": "#c0392b", "specificity": "#2e86c1", "PPV": "#8e44ad", "NPV": "#27ae60"}
SIGNAL_COLOURS = ("#c0392b", "#2e86c1", "#27ae60", "#8e44ad", "#e67e22", "#34495e")


def _none(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def _vline(marks: Marks, x: float, text: str, position: str, **line: object) -> None:
    """A vertical line through both panels, labelled once (in the top panel)."""
    vline(marks, x, row=1, text=text, position=position, **line)
    vline(marks, x, row=2, **line)


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
    ok = curve.counts > 0
    x, y = curve.mean_predicted[ok], curve.observed[ok]
    lo, hi, n = curve.ci_low[ok], curve.ci_high[ok], curve.counts[ok]
    centres = (curve.edges[:-1] + curve.edges[1:]) / 2
    traces = [
        dict(type="scatter", x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
             line=dict(color=REFERENCE, dash="dash", width=1), hoverinfo="skip", xaxis="x", yaxis="y"),
        dict(type="scatter", x=x, y=y, mode="lines+markers", name=f"held-out (ECE {curve.ece:.3f})",
             line=dict(color=MODEL, width=2), marker=dict(size=7),
             error_y=dict(type="data", symmetric=False, array=hi - y, arrayminus=y - lo, color=MODEL, thickness=1.2,
                          width=3),
             customdata=np.stack([lo, hi, n], -1), xaxis="x", yaxis="y",
             hovertemplate="predicted %{x:.2f}: observed %{y:.2f} (95% CI %{customdata[0]:.2f}-%{customdata[1]:.2f}), "
                           "n = %{customdata[2]}<extra></extra>"),
        dict(type="bar", x=centres, y=curve.counts, width=np.diff(curve.edges) * 0.9, name="cases per bin",
             marker=dict(color=NEUTRAL), opacity=0.6, showlegend=False, xaxis="x2", yaxis="y2",
             hovertemplate="%{x:.2f}: %{y} cases<extra></extra>")]
    marks = Marks()
    if threshold is not None:
        # the threshold's label sits low in the panel, the case's label at the top: they never collide
        _vline(marks, float(threshold), f"threshold {threshold:.2f}",
               "bottom right" if threshold < 0.5 else "bottom left", dash="dot", color=THRESHOLD, width=2)
    if current_prob is not None:
        b = curve.bin_index(current_prob)
        seen = (f"; observed {curve.observed[b]:.0%} of {curve.counts[b]} in its bin" if curve.counts[b] else
                "; no held-out case in its bin")
        _vline(marks, float(current_prob), f"this case {current_prob:.2f}{seen}",
               "top right" if current_prob < 0.5 else "top left", color=CURRENT, width=2)
    layout = json.loads(_two_rows())
    layout["xaxis"].update(range=[0, 1])
    layout["xaxis2"].update(range=[0, 1], title=dict(text=x_title))
    layout["yaxis"].update(range=[0, 1.02], title=dict(text=y_title))
    layout["yaxis2"].update(title=dict(text="cases"))
    layout.update(title=dict(text=title), height=480, margin=dict(l=10, r=10, t=50 if title else 30, b=40),
                  legend=dict(orientation="h", y=-0.18, x=0, yanchor="top"), bargap=0, shapes=marks.shapes,
                  annotations=marks.annotations)
    # built from dicts on a grid validated once, not validated again (tests/plots validates the result)
    return go.Figure(data=traces, layout=layout, _validate=False)


@functools.lru_cache(maxsize=1)
def _two_rows() -> str:
    """The reliability diagram's grid (curve above, counts below, shared x), validated once, as JSON."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.75, 0.25], vertical_spacing=0.04)
    return json.dumps(fig.layout.to_plotly_json())


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
        marks = Marks()
        vline(marks, float(threshold), dash="dot", color=THRESHOLD, width=2, text=f"threshold {threshold:.2f}")
        add_marks(fig, marks)
    fig.update_layout(title=title, height=480, margin=dict(l=10, r=10, t=50 if title else 30, b=40),
                      xaxis=dict(range=[0, 1], title=x_title), yaxis=dict(range=[0, 1.02], title="rate on held-out split"),
                      legend=dict(orientation="h", y=-0.18, x=0, yanchor="top"), hovermode="x unified")
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
                      legend=dict(orientation="h", y=-0.2, x=0, yanchor="top"))
    return fig


def cascade_figure(stages: Sequence, pass_threshold: float, fail_threshold: float, title: str = "") -> go.Figure:
    """Rank correlation between the trained map and the map of each cascade stage (layers randomised from the
    output down), signed and of magnitudes, with the verdict bands. ``stages``: ``trust.CascadeStage``s."""
    names = ["trained", *(f"{i + 1}. + {s.group}" for i, s in enumerate(stages))]
    signed = [1.0, *(s.rank_correlation for s in stages)]
    mags = [1.0, *(s.abs_rank_correlation for s in stages)]
    fig = go.Figure()
    marks = Marks()
    hrect(marks, -pass_threshold, pass_threshold, fillcolor="#27ae60", opacity=0.12,
          text="passes: map no longer tracks the learned weights", position="bottom left")
    hrect(marks, fail_threshold, 1.05, fillcolor=MODEL, opacity=0.08, text="fails: map survives randomisation")
    add_marks(fig, marks)
    fig.add_trace(go.Scatter(x=names, y=signed, mode="lines+markers", name="rank correlation (signed map)",
                             line=dict(color=MODEL, width=3), hovertemplate="%{x}: %{y:.2f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=names, y=mags, mode="lines+markers", name="rank correlation of |map|",
                             line=dict(color=REFERENCE, dash="dot"), hovertemplate="%{x}: %{y:.2f}<extra></extra>"))
    fig.update_layout(title=title, height=340, margin=dict(l=10, r=10, t=50 if title else 30, b=40),
                      yaxis=dict(range=[-1.05, 1.05], title="Spearman with the trained map"),
                      xaxis=dict(title="layers randomised, output first (cumulative)"),
                      legend=dict(orientation="h", y=-0.35))
    return fig


def faithfulness_figure(curves, title: str = "") -> go.Figure:  # noqa: ANN001 - a trust.FaithfulnessCurves
    """Deletion and insertion curves of the shown map (most-attributed units first) against random orders."""
    c = curves
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        f"Deletion (lower is better)<br>AUC {c.deletion_auc:.3f}, random {c.deletion_auc_random:.3f}",
        f"Insertion (higher is better)<br>AUC {c.insertion_auc:.3f}, random {c.insertion_auc_random:.3f}"))
    for col, (ours, rnd) in enumerate(((c.deletion, c.deletion_random), (c.insertion, c.insertion_random)), 1):
        fig.add_trace(go.Scatter(x=c.fractions, y=ours, mode="lines", name="map order", legendgroup="map",
                                 showlegend=col == 1, line=dict(color=MODEL, width=3)), row=1, col=col)
        fig.add_trace(go.Scatter(x=c.fractions, y=rnd, mode="lines", name=f"random order (mean of {c.n_random})",
                                 legendgroup="rnd", showlegend=col == 1, line=dict(color=REFERENCE, dash="dash")),
                      row=1, col=col)
        fig.update_xaxes(title_text=f"share of {c.unit} {'removed' if col == 1 else 'restored'}", tickformat=".0%",
                         range=[0, 1], row=1, col=col)
    fig.update_yaxes(title_text=c.score, row=1, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(title=title, height=340, margin=dict(l=10, r=10, t=70 if title else 40, b=40),
                      legend=dict(orientation="h", y=-0.3))
    return fig


def maps_side_by_side(trained: np.ndarray, randomised: np.ndarray, names: Sequence[str] | None = None,
                      title: str = "") -> go.Figure:
    """The trained model's map and the fully randomised model's map, each scaled to its own largest magnitude,
    as two heatmap rows (1-D maps: features, words, steps) or panels (2-D maps: step x signal)."""
    t, r = np.asarray(trained, dtype=float), np.asarray(randomised, dtype=float)

    def scale(a: np.ndarray) -> np.ndarray:
        m = np.nanmax(np.abs(a)) if a.size else 0.0
        return a / m if m > 0 else a

    if t.ndim == 1:
        fig = go.Figure(go.Heatmap(z=np.stack([scale(t), scale(r)]), x=list(names) if names is not None else None,
                                   y=["trained model", "randomised model"], zmin=-1, zmax=1, colorscale="RdBu_r",
                                   colorbar=dict(title="share of max")))
        fig.update_layout(height=240)
    else:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("trained model", "fully randomised model"))
        for col, a in enumerate((t, r), 1):
            fig.add_trace(go.Heatmap(z=scale(a).T, y=list(names) if names is not None else None, zmin=-1, zmax=1,
                                     colorscale="RdBu_r", showscale=col == 2), row=1, col=col)
        fig.update_layout(height=320)
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=50 if title else 30, b=30))
    return fig
