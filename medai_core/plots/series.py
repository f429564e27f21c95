"""Plotly figures of time series: a forecast with its intervals and attention, and attributions over
(time step x signal). Pages only display them."""
from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from medai_core.plots.marks import Marks, axes, hline, hrect, vline

if TYPE_CHECKING:
    from medai_core.io.vitals import Signal, VitalSeries


class ForecastLike(Protocol):
    """What the figures read of a forecast (``workspaces.vitals.Forecast``): per step ahead and target
    signal the 10/50/90% quantiles, the steps' times and the attention over the input window."""

    signals: tuple[str, ...]
    quantiles: np.ndarray  # (horizon, signals, 3)
    times: np.ndarray  # minutes from the series start, per step ahead
    window_times: np.ndarray  # minutes of each input step (NaN before the record began)
    attention: np.ndarray  # one weight per input step


def _x(minutes: np.ndarray, origin) -> list:  # noqa: ANN001 - a Timestamp or None
    if origin is not None:
        import pandas as pd

        return [origin + pd.Timedelta(minutes=float(m)) for m in minutes]
    return list(np.asarray(minutes, float) / 60.0)


@functools.lru_cache(maxsize=32)
def _grid_layout(titles: tuple[str, ...], spacing: float) -> str:
    """The layout of a column of subplots (the signals, then a short attention row), built and validated by
    ``make_subplots`` once per set of titles and kept as JSON."""
    n = len(titles) - 1
    fig = make_subplots(rows=n + 1, cols=1, shared_xaxes=True, vertical_spacing=spacing,
                        row_heights=[1.0] * n + [0.35], subplot_titles=list(titles))
    return json.dumps(fig.layout.to_plotly_json())


def forecast_figure(series: VitalSeries, fc: ForecastLike, signals: Sequence[Signal], show_steps: int) -> go.Figure:
    """One panel per target signal (history, median, shaded 10-90% band, normal range, forecast start),
    and the temporal attention as a heatmap row aligned under them on the same time axis.

    Built from plain dicts on a cached, validated subplot grid, and not validated again (plotly's validation
    was 80% of its 0.5 s; ``tests/plots`` validates the result instead)."""
    n = len(fc.signals)
    by_name = {s.name: s for s in signals}
    titles = tuple(f"{by_name[s].label} ({by_name[s].unit})" if by_name[s].unit else by_name[s].label
                   for s in fc.signals) + ("Attention over past steps",)
    layout = json.loads(_grid_layout(titles, 0.025 if n > 2 else 0.1))
    start = max(0, series.n_steps - show_steps)
    hx = _x(series.times[start:], series.origin)
    fx = _x(fc.times, series.origin)
    marks, traces = Marks(), []
    for i, name in enumerate(fc.signals):
        s, r = by_name[name], i + 1
        xa, ya = axes(r)
        y = series.column(name)[start:]
        ok = ~np.isnan(y)
        q = fc.quantiles[:, i]
        traces += [
            dict(type="scatter", x=[x for x, k in zip(hx, ok) if k], y=y[ok], mode="lines+markers", name="observed",
                 line=dict(color="#34495e", width=1.5), marker=dict(size=4), showlegend=i == 0, legendgroup="obs",
                 xaxis=xa, yaxis=ya),
            dict(type="scatter", x=fx + fx[::-1], y=list(q[:, 2]) + list(q[::-1, 0]), fill="toself", mode="lines",
                 line=dict(width=0), fillcolor="rgba(192,57,43,0.18)", name="80% interval", showlegend=i == 0,
                 legendgroup="band", hoverinfo="skip", xaxis=xa, yaxis=ya),
            dict(type="scatter", x=fx, y=q[:, 1], mode="lines+markers", line=dict(color="#c0392b", width=2),
                 marker=dict(size=5), name="median forecast", showlegend=i == 0, legendgroup="med",
                 customdata=np.stack([q[:, 0], q[:, 2]], -1),
                 hovertemplate="%{y:.1f} (80%: %{customdata[0]:.1f} to %{customdata[1]:.1f})<extra></extra>",
                 xaxis=xa, yaxis=ya)]
        if s.normal and s.normal[1] > s.normal[0]:
            hrect(marks, s.normal[0], s.normal[1], row=r, fillcolor="rgba(39,174,96,0.08)")
        if s.alarm:
            for thr in s.alarm:
                if thr is not None:
                    hline(marks, thr, row=r, dash="dot", color="#e67e22", width=1)
    wx = _x(np.nan_to_num(fc.window_times, nan=-1.0), series.origin)
    keep = ~np.isnan(fc.window_times)
    xa, ya = axes(n + 1)
    traces.append(dict(type="heatmap", x=[x for x, k in zip(wx, keep) if k], y=["attention"], z=[fc.attention[keep]],
                       colorscale="Blues", showscale=False, hovertemplate="%{x}: %{z:.3f}<extra></extra>",
                       xaxis=xa, yaxis=ya))
    for r in range(1, n + 2):
        vline(marks, fx[0] if series.origin is not None else float(fc.times[0]) / 60.0, row=r, dash="dash",
              color="#7f8c8d")
    layout.update(height=max(190 * n + 160, 520), margin=dict(l=10, r=10, t=40, b=40), hovermode="x unified",
                  legend=dict(orientation="h", y=1.03, x=0), shapes=marks.shapes,
                  annotations=layout.get("annotations", []) + marks.annotations)
    layout[f"xaxis{n + 1}"]["title"] = dict(text="time" if series.origin is not None else "hours since the record began")
    return go.Figure(data=traces, layout=layout, _validate=False)


def attribution_heatmap(attr: np.ndarray, series: VitalSeries, window_times: np.ndarray, signals: Sequence[Signal],
                        title: str) -> go.Figure:
    """(step x signal) attributions as a diverging heatmap: red raised the forecast, blue lowered it."""
    keep = ~np.isnan(window_times)
    labels = [s.label for s in signals]
    z = attr[keep].T
    lim = float(np.abs(z).max()) or 1.0
    x = _x(window_times[keep], series.origin)
    fig = go.Figure(go.Heatmap(x=x, y=labels, z=z, colorscale="RdBu_r", zmin=-lim, zmax=lim,
                               colorbar=dict(title="effect"), hovertemplate="%{y} at %{x}: %{z:+.2f}<extra></extra>"))
    fig.update_layout(title=title, height=max(240, 90 + 34 * len(labels)), margin=dict(l=10, r=10, t=50, b=40),
                      xaxis_title="time" if series.origin is not None else "hours since the record began",
                      yaxis=dict(autorange="reversed"))
    return fig
