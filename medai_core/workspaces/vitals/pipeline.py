"""Vital-sign forecasting: model inputs from a ``VitalSeries``, forecasts, attention and attributions.

Works for any registered ``series`` model (its ``ModelSpec.extra`` carries the ``SeriesSpec``, the
history length, the horizon and the number of target signals).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from medai_core.explain.base import Explanation, ProgressFn, explainer_for, thread_copy
from medai_core.io.vitals import Signal, VitalSeries
from medai_core.models.forecaster import static_vector
from medai_core.models.spec import ModelSpec


def locf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Last observation carried forward along axis -2 (steps); returns (filled, observed mask).
    Steps before a signal's first observation stay NaN."""
    obs = ~np.isnan(values)
    idx = np.where(obs, np.arange(values.shape[-2])[:, None], -1)
    idx = np.maximum.accumulate(idx, axis=-2)
    filled = np.take_along_axis(np.where(obs, values, np.nan), np.maximum(idx, 0), axis=-2)
    filled[idx < 0] = np.nan
    return filled, obs


def window_arrays(values: np.ndarray, end: int, history: int, mean: np.ndarray, std: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One model window ending before step ``end`` from a (T, S) grid: (x, m, pad) as numpy.

    ``x`` is standardised LOCF (carried from anywhere before ``end``), the training mean (0) before a
    signal's first observation; ``pad`` marks steps before the record starts.
    """
    filled, obs = locf(values[:end])
    start = end - history
    x = np.zeros((history, values.shape[1]), np.float32)
    m = np.zeros((history, values.shape[1]), np.float32)
    pad = np.ones(history, bool)
    lo = max(start, 0)
    k = lo - start
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant signal (MechVent) has std 0: mask only
        z = (filled[lo:end] - mean) / std
    x[k:] = np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
    m[k:] = obs[lo:end]
    pad[k:] = False
    return x, m, pad


@dataclass(frozen=True)
class Forecast:
    """Quantile forecasts for the target signals after the series' last step.

    ``quantiles[h, t, q]``: step h (1-based ahead = h + 1), target t, quantile q (10/50/90%): the
    forecast of the signal's mean over that step. ``times``: minutes from the series start to each
    forecast step's start.
    """

    signals: tuple[str, ...]
    quantiles: np.ndarray
    times: np.ndarray
    attention: np.ndarray  # (history,) over the input window's steps
    window_times: np.ndarray  # minutes of each input step (NaN where padded)
    last_observed: np.ndarray  # (targets,) persistence reference, NaN if never observed

    def to_json(self, origin=None) -> dict[str, dict[str, list]]:  # noqa: ANN001 - a Timestamp or None
        def stamp(t: float) -> str:
            if origin is not None:
                return (origin + pd.Timedelta(minutes=float(t))).isoformat()
            return f"{int(t) // 60:02d}:{int(t) % 60:02d}"  # elapsed HH:MM, as in PhysioNet files

        return {s: {"time": [stamp(t) for t in self.times],
                    "p10": [round(float(v), 3) for v in self.quantiles[:, i, 0]],
                    "p50": [round(float(v), 3) for v in self.quantiles[:, i, 1]],
                    "p90": [round(float(v), 3) for v in self.quantiles[:, i, 2]]}
                for i, s in enumerate(self.signals)}


def model_inputs(model: nn.Module, spec: ModelSpec, series: VitalSeries, end: int | None = None
                 ) -> tuple[torch.Tensor, ...]:
    """(x, m, pad, static) tensors with batch 1 for the window ending at ``end`` (default: all history)."""
    end = series.n_steps if end is None else end
    x, m, pad = window_arrays(series.values, end, spec.extra["history"], model.mean.numpy(), model.std.numpy())
    st = torch.tensor([static_vector(series.static, spec, end)], dtype=torch.float32)
    return torch.from_numpy(x)[None], torch.from_numpy(m)[None], torch.from_numpy(pad)[None], st


def forecast(model: nn.Module, spec: ModelSpec, series: VitalSeries, horizon: int | None = None) -> Forecast:
    """Forecast the next ``horizon`` steps (at most the model's) after the last step of ``series``."""
    hmax = spec.extra["horizon"]
    horizon = hmax if horizon is None else max(1, min(int(horizon), hmax))
    x, m, pad, st = model_inputs(model, spec, series)
    with torch.inference_mode():
        q, w = model.forward_with_attention(x, m, pad, st)
    n_t = spec.extra["n_targets"]
    step = series.step_minutes
    last = series.n_steps
    wt = window_minutes(last, spec.extra["history"], step)
    filled, _ = locf(series.values)
    return Forecast(series.signals[:n_t], q[0, :horizon].double().numpy(),
                    (np.arange(last, last + horizon) * float(step)), w[0].double().numpy(), wt, filled[-1, :n_t])


def window_minutes(n_steps: int, history: int, step_minutes: int) -> np.ndarray:
    """Minutes from the series start to each input step of the window ending at the last step (NaN where the
    window reaches back before the record began)."""
    t = (np.arange(n_steps - history, n_steps) * float(step_minutes)).astype(float)
    t[t < 0] = np.nan
    return t


def forecast_target(spec: ModelSpec, series: VitalSeries, signal: str, step_ahead: int) -> int:
    """Index ``h * n_targets + t`` of the median forecast of ``signal`` ``step_ahead`` steps on (1-based),
    in the flattened (horizon x targets) output the explainers attribute.

    Raises:
        InputError: not a target signal of the model, or a step outside its horizon.
    """
    from medai_core.errors import InputError

    targets = series.signals[: spec.extra["n_targets"]]
    if signal not in targets:
        raise InputError(f"Unknown signal {signal!r}; choose one of {', '.join(targets)}.")
    if not 1 <= step_ahead <= spec.extra["horizon"]:
        raise InputError(f"Choose a step between 1 and {spec.extra['horizon']}.")
    return (step_ahead - 1) * len(targets) + targets.index(signal)


def explain_forecast(model: nn.Module, spec: ModelSpec, series: VitalSeries, signal: str, step_ahead: int,
                     method: str = "integrated_gradients", progress: ProgressFn | None = None, *,
                     copy_model: bool = True, **params: object) -> Explanation:
    """Attributions over (input step x signal) for the median forecast of ``signal`` ``step_ahead`` steps on
    (on this thread's private model copy; on ``model`` itself with ``copy_model=False``)."""
    target = forecast_target(spec, series, signal, step_ahead)
    fn, _ = explainer_for(method, spec.modality)
    return fn(thread_copy(model) if copy_model else model, model_inputs(model, spec, series), target, progress=progress, **params)


def alarm_score(alarm, fc: Forecast) -> float | None:  # noqa: ANN001 - a reliability.Alarm
    """This forecast's score for a held-out alarm (same scale as the alarm's held-out scores), or None
    when the forecast does not cover the alarm's signal or horizon."""
    if alarm.signal not in fc.signals or fc.quantiles.shape[0] < alarm.horizon_steps:
        return None
    return float(alarm.score(fc.quantiles[:, fc.signals.index(alarm.signal), :]))


def threshold_warnings(fc: Forecast, signals: Sequence[Signal]) -> list[str]:
    """Plain-language warnings where a forecast's median or 80% interval crosses a clinical threshold."""
    out = []
    by_name = {s.name: s for s in signals}
    for i, name in enumerate(fc.signals):
        s = by_name[name]
        if not s.alarm:
            continue
        lo_t, hi_t = s.alarm
        q = fc.quantiles[:, i]
        for h in range(len(q)):
            p10, p50, p90 = q[h]
            if hi_t is not None and p50 > hi_t:
                out.append(f"{s.label}: median forecast {p50:.0f} {s.unit} exceeds {hi_t:g} at +{h + 1} step(s).")
                break
            if lo_t is not None and p50 < lo_t:
                out.append(f"{s.label}: median forecast {p50:.0f} {s.unit} falls below {lo_t:g} at +{h + 1} step(s).")
                break
            if (hi_t is not None and p90 > hi_t) or (lo_t is not None and p10 < lo_t):
                out.append(f"{s.label}: the 80% interval reaches beyond {hi_t if hi_t is not None and p90 > hi_t else lo_t:g} "
                           f"{s.unit} at +{h + 1} step(s).")
                break
    return out
