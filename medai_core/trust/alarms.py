"""Forecasters on a held-out split: quantile coverage per signal, and clinical alarms (a signal crossing
a limit within the horizon) scored from the forecast quantiles and recalibrated on validation windows."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Sequence

import numpy as np

from medai_core.errors import InputError

from medai_core.trust.calibration import OperatingPoint, operating_point

LOW, HIGH = "low", "high"
_erf = np.vectorize(math.erf, otypes=[float])
PLATT_EPS = 1e-4

# ---------------------------------------------------------------- forecasters
@dataclass(frozen=True)
class Coverage:
    """How often observed values fell at or below each forecast quantile on the held-out split.

    Attributes:
        signal, label, unit: the target signal.
        nominal: the quantile levels, (0.1, 0.5, 0.9).
        observed: share of observed values <= each quantile (ideal: equal to ``nominal``).
        n: observed (window, step) values counted.
        by_step: (horizon, len(nominal)) the same per step ahead.
        step_minutes: minutes per step.
    """

    signal: str
    label: str
    unit: str
    nominal: tuple[float, ...]
    observed: tuple[float, ...]
    n: int
    by_step: np.ndarray
    step_minutes: int

    @property
    def interval_coverage(self) -> float:
        """Share inside the outer quantiles (the 80% interval for 10/90%)."""
        return float(self.observed[-1] - self.observed[0])


def quantile_coverage(y: np.ndarray, quantiles: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Share of observed values at or below each quantile forecast.

    Args:
        y: observed values, any shape S.
        quantiles: forecasts of shape S + (Q,).
        mask: bool of shape S, True where ``y`` was observed (default: all).

    Returns:
        (Q,) shares; NaN where nothing is observed.
    """
    y = np.asarray(y, dtype=np.float64)
    q = np.asarray(quantiles, dtype=np.float64)
    if q.shape[:-1] != y.shape:
        raise InputError(f"quantiles of shape {q.shape} do not match values of shape {y.shape}.")
    m = np.ones(y.shape, bool) if mask is None else np.asarray(mask, bool)
    if not m.any():
        return np.full(q.shape[-1], np.nan)
    return (y[m][:, None] <= q[m]).mean(0)


@dataclass(frozen=True)
class Alarm:
    """A clinical alarm on a forecast signal: the signal crossing ``limit`` within the horizon.

    Attributes:
        key: ``"<signal>_<direction>_<limit>"``, e.g. ``"MAP_low_65"``.
        signal, label, unit: the signal.
        direction: ``"low"`` (event: a value < limit) or ``"high"`` (a value > limit).
        limit: the clinical threshold (from the signal's ``alarm`` in the model spec).
        horizon_steps, step_minutes: the forecast horizon the event must fall in.
        scores: (n,) the model's score per held-out window (see ``alarm_probability``).
        outcomes: (n,) True where an observed value crossed the limit within the horizon.
        threshold: default operating threshold on the score (the page's "80% interval reaches the
            limit" warning, mapped through the calibration).
        description: how events and scores were defined, in words.
        calibration: Platt (a, b) applied to the raw quantile-derived score; (1, 0) is none.
        at_start: (n,) True where the last observed value before the horizon was already past the limit
            (the "event" is then the state continuing, not a new crossing); empty when not recorded.
    """

    key: str
    signal: str
    label: str
    unit: str
    direction: str
    limit: float
    horizon_steps: int
    step_minutes: int
    scores: np.ndarray
    outcomes: np.ndarray
    threshold: float
    description: str
    calibration: tuple[float, float] = (1.0, 0.0)
    at_start: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def new_events_only(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, outcomes) without the windows already past the limit when the forecast starts, so the
        rates describe new crossings only (a forecaster gets the others mostly from the last value)."""
        if self.at_start.size != self.scores.size:
            return self.scores, self.outcomes
        keep = ~self.at_start
        return self.scores[keep], self.outcomes[keep]

    def score(self, quantiles: np.ndarray) -> np.ndarray:
        """The alarm score of a forecast, on the same scale as ``scores`` and ``threshold``.

        Args:
            quantiles: (..., H, 3) this signal's 10/50/90% forecasts, e.g. ``Forecast.quantiles[:, i]``
                of a forecast over the model's whole horizon (H >= ``horizon_steps``; later steps unused).

        Raises:
            InputError: fewer steps than the alarm's horizon (the score would mean something else).
        """
        q = np.asarray(quantiles, dtype=np.float64)
        if q.ndim < 2 or q.shape[-2] < self.horizon_steps:
            raise InputError(f"The {self.title} alarm needs a forecast over {self.horizon_steps} steps.")
        return alarm_probability(q[..., : self.horizon_steps, :], self.limit, self.direction, self.calibration)

    @property
    def title(self) -> str:
        sign = "<" if self.direction == LOW else ">"
        mins = self.horizon_steps * self.step_minutes
        span = f"{mins // 60} h" if mins % 60 == 0 else f"{mins} min"
        return f"{self.label} {sign} {self.limit:g} {self.unit} within {span}".replace("  ", " ")


def alarm_probability(quantiles: np.ndarray, limit: float, direction: str,
                      calibration: tuple[float, float] | None = None,
                      levels: Sequence[float] = (0.1, 0.5, 0.9)) -> np.ndarray:
    """Probability that the forecast crosses ``limit`` at some step, derived from its quantiles.

    Each step's forecast is read as a two-piece normal through its 10/50/90% quantiles (a separate
    spread below and above the median, so the 10% quantile sits exactly at probability 0.1); the raw
    probability of a crossing within the horizon is the largest per-step probability (errors of
    consecutive steps taken as fully dependent, which understates "any step"). A raw score >= 0.1 is
    therefore exactly "the 80% interval reaches the limit", and >= 0.5 "the median crosses it", the two
    warnings the vitals page shows. ``calibration`` (a, b), fitted on validation windows, maps the raw
    score to ``sigmoid(a * logit(raw) + b)`` (Platt 1999), a monotone map: it changes no ranking and no
    operating point, only what the number means.

    Args:
        quantiles: (..., H, 3) the 10/50/90% quantile forecasts of one signal for H steps.
        limit: the alarm limit in the signal's units.
        direction: "low" (values below the limit) or "high" (above).
        calibration: Platt (a, b), or None for the raw score.
        levels: the quantile levels of the last axis (lowest, median, highest).

    Returns:
        (...,) probabilities in [0, 1].

    Raises:
        InputError: a bad direction or quantile array.
    """
    if direction not in (LOW, HIGH):
        raise InputError(f"direction must be 'low' or 'high' (got {direction!r}).")
    q = np.asarray(quantiles, dtype=np.float64)
    if q.ndim < 2 or q.shape[-1] != 3:
        raise InputError("quantiles need shape (..., steps, 3): low, median, high per step.")
    z_lo, z_hi = NormalDist().inv_cdf(levels[0]), NormalDist().inv_cdf(levels[2])
    lo, med, hi = q[..., 0], q[..., 1], q[..., 2]
    s_lo = np.maximum((lo - med) / z_lo, 1e-9)
    s_hi = np.maximum((hi - med) / z_hi, 1e-9)
    d = limit - med
    z = np.where(d < 0, d / s_lo, d / s_hi)
    cdf = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
    per_step = cdf if direction == LOW else 1.0 - cdf
    raw = np.clip(per_step.max(-1), 0.0, 1.0)
    return raw if calibration is None else platt(raw, calibration)


def platt(raw: np.ndarray | float, calibration: tuple[float, float]) -> np.ndarray:
    """``sigmoid(a * logit(raw) + b)`` with ``raw`` clipped to [1e-4, 1 - 1e-4]."""
    a, b = calibration
    r = np.clip(np.asarray(raw, dtype=np.float64), PLATT_EPS, 1 - PLATT_EPS)
    return 1.0 / (1.0 + np.exp(-(a * np.log(r / (1 - r)) + b)))


def alarm_events(y: np.ndarray, mask: np.ndarray, limit: float, direction: str) -> np.ndarray:
    """True where an observed value crosses ``limit`` (strictly) at some step; y, mask (..., H)."""
    y = np.asarray(y, dtype=np.float64)
    m = np.asarray(mask, bool)
    hit = (y < limit) if direction == LOW else (y > limit)
    return (hit & m).any(-1)


def alarm_operating_point(alarm: Alarm, threshold: float | None = None) -> OperatingPoint:
    """The alarm's operating point at ``threshold`` (default: the alarm's own)."""
    return operating_point(alarm.scores, alarm.outcomes, alarm.threshold if threshold is None else threshold)
