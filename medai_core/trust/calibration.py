"""Calibration and operating points on a held-out split: reliability curves with Wilson intervals, the
sensitivity / specificity / PPV / NPV at a threshold, and the rates against every threshold.

Every function takes a case "positive" when its probability or score is **at or above** the threshold,
as the models' own decision rules do. Pure numpy (no torch, no streamlit).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from medai_core.errors import InputError

Z95 = 1.959963984540054

# ---------------------------------------------------------------- intervals and input checks
def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion (Wilson 1927); ``None`` when ``n`` is 0.

    Better than the normal approximation at small ``n`` and near 0 or 1 (Brown, Cai & DasGupta 2001).
    """
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise InputError(f"successes must lie between 0 and n ({successes} of {n}).")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # the bounds at 0 and n are exactly 0 and 1 (rounding would leave 1e-16 off)
    return (0.0 if successes == 0 else max(0.0, centre - half)), (1.0 if successes == n else min(1.0, centre + half))


def _check(probs: Sequence[float] | np.ndarray, outcomes: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    y = np.asarray(outcomes).reshape(-1)
    if len(p) != len(y):
        raise InputError(f"{len(p)} probabilities but {len(y)} outcomes.")
    if not np.all(np.isfinite(p)) or (len(p) and (p.min() < 0 or p.max() > 1)):
        raise InputError("Probabilities must be finite numbers between 0 and 1.")
    if len(y) and not np.all(np.isin(y, (0, 1))):
        raise InputError("Outcomes must be 0 or 1 (or booleans).")
    return p, y.astype(bool)


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not (math.isfinite(t) and 0.0 <= t <= 1.0):
        raise InputError(f"The threshold must lie between 0 and 1 (got {threshold}).")
    return t


# ---------------------------------------------------------------- reliability diagram
@dataclass(frozen=True)
class ReliabilityCurve:
    """Equal-width bins of predicted probability; bin i covers [edges[i], edges[i+1]) (the last bin
    includes 1). Arrays have one entry per bin; empty bins hold NaN (and count 0).

    Attributes:
        edges: (n_bins + 1,) bin edges on [0, 1].
        mean_predicted: mean predicted probability of the cases in each bin.
        observed: share of positive outcomes in each bin.
        counts: cases per bin (int).
        ci_low, ci_high: Wilson 95% interval of ``observed``.
        ece: expected calibration error, sum over bins of count/n x |observed - mean predicted|.
        n: cases in all.
    """

    edges: np.ndarray
    mean_predicted: np.ndarray
    observed: np.ndarray
    counts: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    ece: float
    n: int

    @property
    def n_bins(self) -> int:
        return len(self.counts)

    def bin_index(self, prob: float) -> int:
        """The bin a probability falls in (e.g. to highlight the current prediction's bin)."""
        return int(np.clip(np.searchsorted(self.edges, float(prob), side="right") - 1, 0, self.n_bins - 1))


def reliability_curve(probs: Sequence[float] | np.ndarray, outcomes: Sequence[int] | np.ndarray,
                      n_bins: int = 10) -> ReliabilityCurve:
    """Reliability diagram data with Wilson 95% intervals per bin and the ECE.

    Args:
        probs: (N,) predicted probabilities in [0, 1].
        outcomes: (N,) 0/1 (or bool) observed outcomes.
        n_bins: number of equal-width bins on [0, 1].

    Returns:
        A ``ReliabilityCurve``. Its ECE equals the model cards' (``binary_ece``; for top-1 confidence,
        the cards' top-label ECE).

    Raises:
        InputError: mismatched lengths, probabilities outside [0, 1], outcomes not 0/1, n_bins < 1.
    """
    p, y = _check(probs, outcomes)
    if int(n_bins) < 1:
        raise InputError("n_bins must be at least 1.")
    n_bins = int(n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    pos = np.bincount(idx, weights=y.astype(float), minlength=n_bins)
    psum = np.bincount(idx, weights=p, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.where(counts > 0, psum / counts, np.nan)
        observed = np.where(counts > 0, pos / counts, np.nan)
    lo = np.full(n_bins, np.nan)
    hi = np.full(n_bins, np.nan)
    for i in np.nonzero(counts)[0]:
        lo[i], hi[i] = wilson_interval(int(pos[i]), int(counts[i]))  # type: ignore[misc]
    n = int(len(p))
    ece = float(np.nansum(counts / max(n, 1) * np.abs(observed - mean_pred))) if n else 0.0
    return ReliabilityCurve(edges, mean_pred, observed, counts.astype(int), lo, hi, ece, n)


# ---------------------------------------------------------------- operating point
@dataclass(frozen=True)
class OperatingPoint:
    """The confusion matrix at a threshold (positive when probability >= threshold) and its rates.

    A rate whose denominator is zero (e.g. PPV when nothing is flagged) is ``None``, as is its interval.
    Intervals are Wilson 95% intervals.
    """

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    n: int
    prevalence: float | None
    sensitivity: float | None
    specificity: float | None
    ppv: float | None
    npv: float | None
    sensitivity_ci: tuple[float, float] | None
    specificity_ci: tuple[float, float] | None
    ppv_ci: tuple[float, float] | None
    npv_ci: tuple[float, float] | None

    @property
    def flagged(self) -> int:
        """Cases at or above the threshold."""
        return self.tp + self.fp


def _rate(k: int, n: int) -> tuple[float | None, tuple[float, float] | None]:
    return (k / n if n else None), wilson_interval(k, n)


def operating_point(probs: Sequence[float] | np.ndarray, outcomes: Sequence[int] | np.ndarray,
                    threshold: float) -> OperatingPoint:
    """Sensitivity, specificity, PPV and NPV (with Wilson 95% intervals) at ``threshold``.

    Args:
        probs: (N,) probabilities or scores in [0, 1].
        outcomes: (N,) 0/1 observed outcomes.
        threshold: in [0, 1]; a case is flagged when its probability is >= threshold.

    Raises:
        InputError: bad arrays (see ``reliability_curve``) or a threshold outside [0, 1].
    """
    p, y = _check(probs, outcomes)
    t = _check_threshold(threshold)
    flag = p >= t
    tp, fp = int((flag & y).sum()), int((flag & ~y).sum())
    fn, tn = int((~flag & y).sum()), int((~flag & ~y).sum())
    sens, sens_ci = _rate(tp, tp + fn)
    spec, spec_ci = _rate(tn, tn + fp)
    ppv, ppv_ci = _rate(tp, tp + fp)
    npv, npv_ci = _rate(tn, tn + fn)
    n = int(len(p))
    return OperatingPoint(t, tp, fp, tn, fn, n, (tp + fn) / n if n else None, sens, spec, ppv, npv,
                          sens_ci, spec_ci, ppv_ci, npv_ci)


@dataclass(frozen=True)
class ThresholdSweep:
    """Sensitivity, specificity, PPV and NPV at each of ``thresholds`` (NaN where undefined)."""

    thresholds: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    ppv: np.ndarray
    npv: np.ndarray
    n: int


def threshold_sweep(probs: Sequence[float] | np.ndarray, outcomes: Sequence[int] | np.ndarray,
                    thresholds: Sequence[float] | np.ndarray | None = None) -> ThresholdSweep:
    """The four rates across thresholds (default 0, 0.01, ..., 1), for the threshold figure.

    Raises:
        InputError: bad arrays, or a threshold outside [0, 1].
    """
    p, y = _check(probs, outcomes)
    ts = np.linspace(0.0, 1.0, 101) if thresholds is None else np.asarray(thresholds, dtype=np.float64).reshape(-1)
    for t in ts:
        _check_threshold(t)
    pos, neg = np.sort(p[y]), np.sort(p[~y])
    # flagged (>= t) = count - number strictly below t
    tp = len(pos) - np.searchsorted(pos, ts, side="left")
    fp = len(neg) - np.searchsorted(neg, ts, side="left")
    fn, tn = len(pos) - tp, len(neg) - fp

    def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(b > 0, a / np.maximum(b, 1), np.nan)

    return ThresholdSweep(ts, div(tp, tp + fn), div(tn, tn + fp), div(tp, tp + fp), div(tn, tn + fn), int(len(p)))
