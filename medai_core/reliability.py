"""Reliability on the held-out split: calibration curves, operating points and interval coverage.

Pure numpy (no torch, no streamlit): pages load a model's held-out results once (``load_heldout``) and
recompute the operating point as the user moves the threshold.

What ``assets/<model>.heldout.json`` holds (written by ``python -m medai_core.train.heldout``):

* classifiers: per test case the calibrated probability of the positive class (busi_cnn: malignant,
  support_ftt: in-hospital death) or, for the multi-class notes model, the top-1 confidence with
  "the top label was right" as the outcome, plus every class's probability for one-vs-rest views;
* forecasters: the observed coverage of the 10/50/90% quantiles per signal (every test window), and
  per clinical alarm (a signal crossing a limit from ``Signal.alarm`` within the horizon) one score
  per test window with the observed outcome (a subsample of windows, see the file's ``note``). The
  score is the crossing probability read from the quantiles, recalibrated on validation windows
  (``alarm_probability``); ``Alarm.score`` gives the same number for a live forecast.

Every function takes a case "positive" when its probability or score is **at or above** the
threshold, as the models' own decision rules do.

A page, for example::

    ho = load_heldout("support_ftt")                      # once (cache it)
    curve = reliability_curve(ho.probs, ho.outcomes)
    t = slider(0.0, 1.0, ho.threshold)                    # the shipped threshold by default
    op = operating_point(ho.probs, ho.outcomes, t)        # sensitivity, specificity, PPV, NPV + CIs
    reliability_figure(curve, current_prob=risk, threshold=t)
    threshold_figure(threshold_sweep(ho.probs, ho.outcomes), t)

    alarm = load_heldout("icu_gru").alarm("MAP_low_65")   # forecasters: one alarm at a time
    score = float(alarm.score(forecast.quantiles[:, signal_index]))
    op = alarm_operating_point(alarm, t)
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np

from .errors import InputError, ModelError

Z95 = 1.959963984540054
HELDOUT_SUFFIX = ".heldout.json"
LOW, HIGH = "low", "high"
_erf = np.vectorize(math.erf, otypes=[float])
PLATT_EPS = 1e-4


class HeldOutError(ModelError):
    """A model's held-out results are missing, unreadable, or were computed from other weights."""


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


# ---------------------------------------------------------------- the held-out file
@dataclass(frozen=True)
class HeldOut:
    """One model's results on its held-out (test) split, as shipped in ``assets/<name>.heldout.json``.

    Attributes:
        model: registry name.
        kind: "classifier" or "forecaster".
        split: the split's name ("test").
        n: test cases (classifiers) or test windows (forecasters, all of them).
        weights_sha256: sha256 of the weights file the results were computed from.
        threshold: the default operating threshold on ``probs`` (classifiers; NaN for forecasters).
        threshold_source: where that threshold comes from, in words.
        positive_label: what ``probs`` is the probability of, in words.
        probs: (n,) calibrated probability of the positive class (multi-class: the top-1 confidence).
        outcomes: (n,) bool, the positive class observed (multi-class: the top label was right).
        labels: class names (classifiers) or target signals (forecasters).
        class_probs: (n, K) every class's calibrated probability (multi-class only, else empty).
        y: (n,) true class index (multi-class and busi_cnn; else empty).
        coverage: per-signal quantile coverage (forecasters).
        alarms: per-alarm scores and outcomes (forecasters).
        meta: provenance (data, split rule, script, subsampling note, metrics reproduced).
    """

    model: str
    kind: str
    split: str
    n: int
    weights_sha256: str
    threshold: float
    threshold_source: str
    positive_label: str
    probs: np.ndarray
    outcomes: np.ndarray
    labels: tuple[str, ...]
    class_probs: np.ndarray
    y: np.ndarray
    coverage: tuple[Coverage, ...] = ()
    alarms: tuple[Alarm, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def one_vs_rest(self, label: str) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities of ``label``, outcome "the true class is ``label``") for a class-wise view."""
        if label not in self.labels or not self.class_probs.size:
            raise InputError(f"No class-wise results for {label!r}; choose one of {', '.join(self.labels)}.")
        k = self.labels.index(label)
        return self.class_probs[:, k], self.y == k

    def alarm(self, key: str) -> Alarm:
        """The alarm ``key`` (e.g. ``"MAP_low_65"``)."""
        for a in self.alarms:
            if a.key == key:
                return a
        raise InputError(f"No alarm {key!r}; choose one of {', '.join(a.key for a in self.alarms)}.")


def heldout_path(name: str) -> Path:
    """Where ``name``'s held-out results live (beside its weights; ``$MEDAI_ASSETS_DIR`` honoured)."""
    from .models.spec import assets_dir

    return assets_dir() / f"{name}{HELDOUT_SUFFIX}"


def _arr(v: Any, dtype: Any) -> np.ndarray:
    return np.asarray(v if v is not None else [], dtype=dtype)


def parse_heldout(d: dict[str, Any]) -> HeldOut:
    """A ``HeldOut`` from the file's JSON object (raises ``HeldOutError`` when fields are missing)."""
    try:
        cov = tuple(Coverage(c["signal"], c["label"], c["unit"], tuple(c["nominal"]), tuple(c["observed"]), int(c["n"]),
                             _arr(c["by_step"], float), int(c["step_minutes"])) for c in d.get("coverage", []))
        alarms = tuple(Alarm(a["key"], a["signal"], a["label"], a["unit"], a["direction"], float(a["limit"]),
                             int(a["horizon_steps"]), int(a["step_minutes"]), _arr(a["scores"], float),
                             _arr(a["outcomes"], bool), float(a["threshold"]), a["description"],
                             tuple(a.get("calibration", (1.0, 0.0))), _arr(a.get("at_start"), bool))
                       for a in d.get("alarms", []))
        thr = d.get("threshold")
        return HeldOut(
            model=d["model"], kind=d["kind"], split=d["split"], n=int(d["n"]), weights_sha256=d["weights_sha256"],
            threshold=float("nan") if thr is None else float(thr), threshold_source=d.get("threshold_source", ""),
            positive_label=d.get("positive_label", ""), probs=_arr(d.get("probs"), float),
            outcomes=_arr(d.get("outcomes"), bool), labels=tuple(d.get("labels", ())),
            class_probs=_arr(d.get("class_probs"), float), y=_arr(d.get("y"), int),
            coverage=cov, alarms=alarms, meta=d.get("meta", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise HeldOutError(f"Held-out results for {d.get('model', '?')!r} are malformed ({exc}).") from exc


def load_heldout(name: str, *, verify: bool = True) -> HeldOut:
    """Load a registered model's held-out results.

    Args:
        name: registry name (unknown names raise ``UnknownName`` with suggestions).
        verify: check that the results were computed from the weights the model card names.

    Raises:
        HeldOutError: the file is missing, unreadable, or (``verify``) stale.
    """
    from .models.spec import get_spec, read_card

    get_spec(name)
    path = heldout_path(name)
    if not path.exists():
        raise HeldOutError(f"Held-out results for {name!r} not found at {path}. "
                           f"Create them with `python -m medai_core.train.heldout --models {name}`.")
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HeldOutError(f"Held-out results {path} cannot be read ({exc}).") from exc
    ho = parse_heldout(d)
    if verify:
        want = read_card(name).get("weights_sha256")
        if want and want != ho.weights_sha256:
            raise HeldOutError(f"Held-out results {path} were computed from other weights than {name!r} ships "
                               f"({ho.weights_sha256[:12]} != {want[:12]}); regenerate them with "
                               f"`python -m medai_core.train.heldout --models {name}`.")
    return ho


@dataclass(frozen=True)
class ReliabilityView:
    """What one reliability panel shows: the held-out scores and outcomes, the default threshold, and words.

    Attributes:
        probs, outcomes: the held-out cases (or windows) the panel's figures and rates use.
        default_threshold: the shipped operating threshold on ``probs`` (0.5 for a class-wise view).
        what: what a positive is, in words (e.g. "in-hospital death", "alarm: MAP < 65 mmHg within 6 h").
        threshold_source: where the default threshold comes from.
        x_title, y_title: the reliability diagram's axis titles.
    """

    probs: np.ndarray
    outcomes: np.ndarray
    default_threshold: float
    what: str
    threshold_source: str
    x_title: str = "predicted probability"
    y_title: str = "observed frequency"


def reliability_view(held: HeldOut, view: str | None = None, new_only: bool = False) -> ReliabilityView:
    """The panel's data for a model's held-out results.

    Args:
        view: forecasters: the alarm key (default: the first alarm); multi-class models: a class label for
            that class against the rest, or None for "is the top label right?"; binary models: ignored.
        new_only: forecasters: leave out the windows already past the limit when the forecast starts.
    """
    if held.kind == "forecaster":
        alarm = held.alarm(view) if view else held.alarms[0]
        probs, outcomes = alarm.new_events_only() if new_only else (alarm.scores, alarm.outcomes)
        return ReliabilityView(probs, outcomes, alarm.threshold,
                               f"alarm: {alarm.title}" + (", new crossings only" if new_only else ""),
                               "the vitals page's warning (the 80% interval reaches the limit)",
                               "predicted probability of the alarm event", "share with the event")
    if view and held.class_probs.size:
        probs, outcomes = held.one_vs_rest(view)
        return ReliabilityView(probs, outcomes, 0.5, f"'{view}' vs the other classes",
                               "no shipped threshold for one class against the rest: 0.5")
    if held.class_probs.size and held.positive_label not in held.labels:  # multi-class: "is the top label right?"
        return ReliabilityView(held.probs, held.outcomes, held.threshold, held.positive_label, held.threshold_source,
                               "top-1 confidence", "share correct")
    return ReliabilityView(held.probs, held.outcomes, held.threshold, held.positive_label, held.threshold_source)
