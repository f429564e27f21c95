"""The PhysioNet/CinC Challenge 2019 normalized utility score (Reyna et al., Crit Care Med 48 (2020) 210).

Each hourly binary prediction of a patient earns a utility that depends on its time relative to sepsis
onset ``t_sepsis``. In the data, ``SepsisLabel`` is 1 from 6 hours before onset, so
``t_sepsis = (first hour with SepsisLabel 1) + 6`` (hours are row indices here). With the published
constants dt_early = -12, dt_optimal = -6, dt_late = +3 hours, U_TP max = 1, U_FN min = -2, U_FP = -0.05,
U_TN = 0, for hour t and d = t - t_sepsis:

- septic patient, alarm: d <= -6: max((d + 12) / 6, -0.05) (from 0 at -12 up to 1 at -6; an alarm earlier
  than -12 costs a false alarm's -0.05); -6 < d <= 3: (3 - d) / 9 (from 1 down to 0);
- septic patient, no alarm: d <= -6: 0; -6 < d <= 3: -2 (d + 6) / 9 (from 0 down to -2);
- septic patient, d > 3: 0 either way (after the late limit nothing counts);
- non-septic patient: alarm -0.05, no alarm 0.

Summed over every hour of every patient: U(predictions). The score is
(U(predictions) - U(no alarms)) / (U(optimal) - U(no alarms)), where "optimal" alarms exactly the hours
with -12 <= d <= 3 of septic patients. So 1 is perfect and never alarming scores 0.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

DT_EARLY, DT_OPTIMAL, DT_LATE = -12, -6, 3
MAX_U_TP, MIN_U_FN, U_FP, U_TN = 1.0, -2.0, -0.05, 0.0


def onset_hour(labels: np.ndarray) -> float:
    """t_sepsis (row index) of one patient: first SepsisLabel 1 plus 6 hours; ``inf`` if never septic."""
    labels = np.asarray(labels)
    return float(np.argmax(labels) - DT_OPTIMAL) if labels.any() else float("inf")


def row_utilities(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Utility of alarming and of not alarming at each hour of one patient: two float arrays of len(labels)."""
    labels = np.asarray(labels)
    n = len(labels)
    t_sepsis = onset_hour(labels)
    if not np.isfinite(t_sepsis):
        return np.full(n, U_FP), np.full(n, U_TN)
    d = np.arange(n) - t_sepsis
    m1, b1 = MAX_U_TP / (DT_OPTIMAL - DT_EARLY), -MAX_U_TP / (DT_OPTIMAL - DT_EARLY) * DT_EARLY
    m2, b2 = -MAX_U_TP / (DT_LATE - DT_OPTIMAL), MAX_U_TP / (DT_LATE - DT_OPTIMAL) * DT_LATE
    m3, b3 = MIN_U_FN / (DT_LATE - DT_OPTIMAL), -MIN_U_FN / (DT_LATE - DT_OPTIMAL) * DT_OPTIMAL
    early, late = d <= DT_OPTIMAL, (d > DT_OPTIMAL) & (d <= DT_LATE)
    alarm = np.where(early, np.maximum(m1 * d + b1, U_FP), np.where(late, m2 * d + b2, 0.0))
    quiet = np.where(late, m3 * d + b3, 0.0)
    return alarm, quiet


def optimal_alarms(labels: np.ndarray) -> np.ndarray:
    """The best predictions for one patient: alarm at -12 <= t - t_sepsis <= 3, nothing otherwise."""
    labels = np.asarray(labels)
    n = len(labels)
    best = np.zeros(n, bool)
    t_sepsis = onset_hour(labels)
    if np.isfinite(t_sepsis):
        best[max(0, int(t_sepsis) + DT_EARLY):min(int(t_sepsis) + DT_LATE + 1, n)] = True
    return best


class UtilityTable:
    """Row utilities of many patients, precomputed once so that scoring a threshold is one vectorised sum.

    Args:
        labels: one array of hourly ``SepsisLabel`` per patient.
    """

    def __init__(self, labels: Iterable[np.ndarray]) -> None:
        alarm, quiet, best = [], [], []
        for lab in labels:
            a, q = row_utilities(lab)
            alarm.append(a)
            quiet.append(q)
            best.append(optimal_alarms(lab))
        self.alarm = np.concatenate(alarm) if alarm else np.zeros(0)
        self.quiet = np.concatenate(quiet) if quiet else np.zeros(0)
        b = np.concatenate(best) if best else np.zeros(0, bool)
        self.u_none = float(self.quiet.sum())
        self.u_best = float(np.where(b, self.alarm, self.quiet).sum())

    def total(self, predictions: np.ndarray) -> float:
        """Unnormalised utility of 0/1 predictions (all patients' hours concatenated)."""
        return float(np.where(np.asarray(predictions, bool), self.alarm, self.quiet).sum())

    def normalized(self, predictions: np.ndarray) -> float:
        """Normalized utility: 1 for the optimal alarms, 0 for none (undefined without a septic patient)."""
        if self.u_best == self.u_none:
            raise ValueError("the normalized utility needs at least one septic patient")
        return (self.total(predictions) - self.u_none) / (self.u_best - self.u_none)

    def sweep(self, risk: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
        """Normalized utility of alarming at ``risk >= t`` for each threshold t."""
        return np.array([self.normalized(risk >= t) for t in thresholds])


def normalized_utility(labels: Sequence[np.ndarray], predictions: Sequence[np.ndarray]) -> float:
    """The challenge score of per-patient hourly 0/1 ``predictions`` against per-patient ``SepsisLabel``s."""
    if len(labels) != len(predictions) or any(len(a) != len(b) for a, b in zip(labels, predictions)):
        raise ValueError("labels and predictions must have one array per patient, of equal lengths")
    return UtilityTable(labels).normalized(np.concatenate([np.asarray(p) for p in predictions]) if len(predictions)
                                           else np.zeros(0))


def best_threshold(table: UtilityTable, risk: np.ndarray, grid: int = 200) -> tuple[float, float]:
    """The alarm threshold on ``risk`` that maximises normalized utility (quantiles of the risk as candidates)."""
    levels = np.concatenate([np.linspace(0.0, 0.9, grid // 4), np.linspace(0.9, 0.9995, grid)])  # finer in the tail
    cands = np.unique(np.quantile(risk, levels))
    scores = table.sweep(risk, cands)
    i = int(np.argmax(scores))
    return float(cands[i]), float(scores[i])
