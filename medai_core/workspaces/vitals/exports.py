"""CSV exports of a forecast, its attention and attributions (see ``medai_core.report.csv``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from medai_core.errors import InputError
from medai_core.explain.base import Explanation
from medai_core.report.csv import to_csv

if TYPE_CHECKING:
    from medai_core.io.vitals import VitalSeries
    from medai_core.workspaces.vitals.pipeline import Forecast


def series_attributions_csv(exp: Explanation, series: VitalSeries) -> bytes:
    """One row per (input step, signal): ``step, minutes, signal, value, attribution``.

    ``step`` counts back from the forecast start (-1 = the last hour read), ``minutes`` is the time from
    the series start (blank for padding before the record began), ``value`` the recorded mean in that
    step (blank if nothing was recorded). Real timestamps of an upload are never written.

    Args:
        exp: ``vitals.explain_forecast`` (attributions: history steps x input signals).
        series: the series the forecast was made from.
    """
    a = np.asarray(exp.attributions, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != len(series.signals):
        raise InputError(f"Series attributions must be (steps, {len(series.signals)}); got {a.shape}.")
    hist = a.shape[0]
    from medai_core.workspaces.vitals.pipeline import window_minutes

    minutes = window_minutes(series.n_steps, hist, series.step_minutes)
    vals = np.full(a.shape, np.nan)
    lo = max(series.n_steps - hist, 0)
    vals[hist - (series.n_steps - lo):] = series.values[lo:]
    steps = np.arange(-hist, 0)
    s_idx, k_idx = np.indices(a.shape)
    return to_csv(pd.DataFrame({"step": steps[s_idx.ravel()], "minutes": minutes[s_idx.ravel()],
                              "signal": np.asarray(series.signals, dtype=object)[k_idx.ravel()],
                              "value": vals.ravel(), "attribution": a.ravel()}))


def series_attention_csv(forecast: Forecast) -> bytes:
    """The forecaster's temporal attention over the steps it read: ``step, minutes, weight``.

    Args:
        forecast: ``vitals.forecast`` (attention: one weight per input step; padding steps, before the
            record began, have blank minutes).
    """
    w = np.asarray(forecast.attention, dtype=np.float64).ravel()
    return to_csv(pd.DataFrame({"step": np.arange(-len(w), 0), "minutes": np.asarray(forecast.window_times, float),
                              "weight": w}))


def series_forecast_csv(forecast: Forecast) -> bytes:
    """The forecast itself: ``signal, step_ahead, minutes, p10, p50, p90`` (minutes from the series start)."""
    q = np.asarray(forecast.quantiles, dtype=np.float64)
    h, t = np.indices(q.shape[:2])
    return to_csv(pd.DataFrame({"signal": np.asarray(forecast.signals, dtype=object)[t.ravel()], "step_ahead": h.ravel() + 1,
                              "minutes": np.asarray(forecast.times, float)[h.ravel()],
                              "p10": q[..., 0].ravel(), "p50": q[..., 1].ravel(), "p90": q[..., 2].ravel()}))
