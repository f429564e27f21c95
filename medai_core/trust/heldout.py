"""A model's shipped held-out results (``assets/<model>.heldout.json``) and the views pages read from them.

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

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medai_core.errors import InputError, ModelError
from medai_core.trust.alarms import Alarm, Coverage

if TYPE_CHECKING:
    from medai_core.models.spec import ModelSpec

HELDOUT_SUFFIX = ".heldout.json"
TOP_LABEL = "top label correct"  # the "positive class" of a multi-class model without a threshold (notes)


class HeldOutError(ModelError):
    """A model's held-out results are missing, unreadable, or were computed from other weights."""


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
    from medai_core.models.spec import assets_dir

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
    """Load a registered model's held-out results (a user model: its folder's ``heldout.csv``).

    Args:
        name: registry name (unknown names raise ``UnknownName`` with suggestions).
        verify: check that the results were computed from the weights the model card names (shipped models;
            a user model's ``heldout.csv`` is taken as computed from the model file beside it).

    Raises:
        HeldOutError: the file is missing, unreadable, or (``verify``) stale.
    """
    from medai_core.models.spec import get_spec, read_card

    spec = get_spec(name)
    if spec.extra.get("user_model"):
        return _user_heldout(spec)
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _user_heldout(spec: ModelSpec) -> HeldOut:
    """A user model's ``HeldOut`` from its folder's ``heldout.csv`` (``heldout_user``), shaped like the shipped
    image models' results: ``probs`` = P(positive label), ``outcomes`` = the true label is the positive label."""
    from medai_core.trust.heldout_user import (
        HELDOUT_CSV,
        NO_HELDOUT,
        HeldOutCsvError,
        parse_heldout_csv,
    )

    folder = Path(spec.extra["folder"])
    path = folder / HELDOUT_CSV
    if not path.is_file():
        raise HeldOutError(f"{NO_HELDOUT} for the user model {spec.name!r}: add a {HELDOUT_CSV} to its folder (each "
                           "held-out case's true label and every label's probability; see README, 'Your own "
                           "model') to see its reliability here.")
    try:
        table = parse_heldout_csv(path.read_bytes(), spec.labels)
        sha = _sha256(Path(spec.weights))
    except OSError as exc:
        raise HeldOutError(f"User model {spec.name!r}: {path.name} or its model file cannot be read "
                           f"({exc.strerror or type(exc).__name__}).") from None
    except HeldOutCsvError as exc:
        raise HeldOutError(f"User model {spec.name!r}: {exc}") from None
    pos, aside = spec.labels.index(spec.positive_label), table.set_aside
    listed = list(aside[:20]) + ([f"... and {len(aside) - 20} more"] if len(aside) > 20 else [])
    note = (f"{len(aside)} of {table.n_rows} rows set aside: {'; '.join(aside[:3])}{' ...' if len(aside) > 3 else ''}"
            if aside else f"all {table.n_rows} rows used")
    return HeldOut(
        model=spec.name, kind="classifier", split="test", n=len(table.y), weights_sha256=sha,
        threshold=float(spec.extra.get("threshold", 0.5)), threshold_source="the model folder's medai-model.json",
        positive_label=spec.positive_label, probs=table.class_probs[:, pos].copy(), outcomes=table.y == pos,
        labels=tuple(spec.labels), class_probs=table.class_probs, y=table.y,
        meta={"source": f"{HELDOUT_CSV} in the model folder {folder}", "rows": table.n_rows,
              "set_aside": len(aside), "set_aside_rows": listed, "note": f"{HELDOUT_CSV}: {note}"})


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
    if held.class_probs.size and held.positive_label == TOP_LABEL:  # multi-class: "is the top label right?"
        return ReliabilityView(held.probs, held.outcomes, held.threshold, held.positive_label, held.threshold_source,
                               "top-1 confidence", "share correct")
    return ReliabilityView(held.probs, held.outcomes, held.threshold, held.positive_label, held.threshold_source)
