"""Held-out reliability files: run the SHIPPED weights on each model's exact test split.

Run: ``python -m medai_core.train.heldout [--models busi_cnn support_ftt ...] [--data ../shared/data]
[--out assets]``. Writes ``<out>/<name>.heldout.json`` (read by ``medai_core.trust.heldout.load_heldout``)
and a "Reliability on the held-out split" section in each model card. Deterministic: no randomness
beyond the training modules' own seeded splits; floats rounded to 4 decimals.

The test split of every model comes from its training module's own loader and split function, with
the seed recorded in the model card, and is checked against the ids the card lists (BUSI file names,
SUPPORT2 ``sno``, PhysioNet RecordIDs, CGM people) where the card lists them. The metrics the card
reports are recomputed from the new predictions and stored under ``meta.reproduced`` beside the
card's values; a mismatch beyond 0.0015 stops the run.

Re-run after retraining any model: ``load_heldout`` refuses results computed from other weights.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch

from medai_core.io.series_spec import Signal
from medai_core.models.spec import assets_dir, get_spec, read_card
from medai_core.trust.heldout import HELDOUT_SUFFIX
from medai_core.trust.alarms import LOW, HIGH, alarm_events, alarm_probability, quantile_coverage
from medai_core.train.heldout_common import TOLERANCE, _base, _check, _r, _same_ids  # noqa: F401 (re-exported)
from medai_core.train.heldout_image import heldout_effnet
from medai_core.train.heldout_sepsis import heldout_sepsis

HELDOUT_MODELS = ("busi_cnn", "busi_effnet", "cxr_pneumonia", "support_ftt", "notes_tfm", "icu_gru", "icu_pool_gru", "cgm_gru",
                  "sepsis_gru")
DATA_ENV = "MEDAI_DATA_DIR"
# the layout of ../shared/data (see its README); each training module's --data argument
DATA_PATHS = {"busi_cnn": "busi", "busi_effnet": "busi", "cxr_pneumonia": "cxr_pneumonia", "support_ftt": "support2/support2.csv", "notes_tfm": "mtsamples/mtsamples.csv.gz",
              "icu_gru": "physionet2012/set-a", "icu_pool_gru": ".", "cgm_gru": "cgm_hall/example_data_hall.csv",
              "sepsis_gru": "physionet2019/training_setB"}
ALARM_THRESHOLD = 0.1  # score >= 0.1 <=> the 80% interval reaches the limit: the vitals page's warning
CGM_ALARM_STRIDE = 12  # every 12th test window (about one per hour: horizons barely overlap)
CGM_EXTRA_ALARMS = (("Glucose", "high", 180.0, "top of the spec's normal range 70-180 mg/dL (time above range)"),)
MIN_CALIBRATION_EVENTS = 5
SECTION = "## Reliability on the held-out split"
from medai_core.trust.heldout import TOP_LABEL  # noqa: E402  (the confidence view of a multi-class model)


def default_data_dir() -> Path:
    """``$MEDAI_DATA_DIR`` or ``../shared/data`` beside the repository (as in the data README)."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


# ---------------------------------------------------------------- classifiers
def heldout_busi(path: Path) -> dict[str, Any]:
    from sklearn.metrics import f1_score, roc_auc_score

    from medai_core.workspaces.imaging.pipeline import decide_indices
    from medai_core.models import load_model
    from medai_core.train.busi import SEED, _logits_feats, load_busi, split_indices
    from medai_core.train.metrics import softmax

    card = read_card("busi_cnn")
    spec = get_spec("busi_cnn")
    data = load_busi(path)
    split = split_indices(data.y, data.groups, card["training"].get("seed", SEED))
    te = split["test"]
    _same_ids("busi_cnn", [data.paths[i] for i in te], card.get("test_files"))
    model = load_model("busi_cnn")
    logits, _ = _logits_feats(model, data.x[te])
    p = softmax(logits, float(model.temperature))
    y = data.y[te]
    mal = spec.labels.index(spec.positive_label)
    thr = float(model.decision_threshold)
    pred = decide_indices(p, mal, thr)
    out = _base("busi_cnn", "classifier", len(te), "BUSI (Al-Dhabyani et al. 2020), busi/{benign,malignant,normal}",
                "near-duplicate groups (pHash) split stratified by label, StratifiedGroupKFold, "
                "seed from the card (medai_core.train.busi.split_indices)")
    rep = out["meta"]["reproduced"]
    _check("busi_cnn", "accuracy", float((pred == y).mean()), card["test"]["accuracy"], rep)
    _check("busi_cnn", "malignant_auroc", roc_auc_score(y == mal, p[:, mal]), card["test"]["malignant_auroc"], rep)
    _check("busi_cnn", "macro_f1", f1_score(y, pred, average="macro", labels=[0, 1, 2], zero_division=0),
           card["test"]["macro_f1"], rep)
    out |= {"threshold": thr, "threshold_source": "the model's decision threshold on P(malignant), fitted on validation",
            "positive_label": "malignant", "labels": list(spec.labels),
            "probs": p[:, mal], "outcomes": (y == mal).astype(int), "class_probs": p, "y": y}
    return out


def heldout_support(path: Path) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    from medai_core.models import load_model
    from medai_core.models.support_ftt import encode_records
    from medai_core.train.metrics import binary_ece
    from medai_core.train.support import SEED, load_support, split_indices

    card = read_card("support_ftt")
    data = load_support(path)
    te = split_indices(data.y, card["data"].get("seed", SEED))["test"]
    _same_ids("support_ftt", data.sno[te].tolist(), card["data"].get("test_sno"))
    model = load_model("support_ftt")
    with torch.inference_mode():
        x = encode_records(data.frame.iloc[te])
        p = torch.cat([model.predict_proba(x[i:i + 1024]) for i in range(0, len(x), 1024)]).double().numpy()
    y = data.y[te]
    out = _base("support_ftt", "classifier", len(te), "SUPPORT2 (Knaus et al. 1995), support2/support2.csv",
                "rows (sno) stratified by hospdead, 70/15/15, seed from the card "
                "(medai_core.train.support.split_indices)")
    rep = out["meta"]["reproduced"]
    thr = float(model.decision_threshold)
    _check("support_ftt", "auroc", roc_auc_score(y, p), card["test"]["auroc"], rep)
    _check("support_ftt", "ece", binary_ece(p, y), card["test"]["ece"], rep)
    _check("support_ftt", "threshold", thr, card["test"]["threshold"], rep)
    flag = p >= thr
    _check("support_ftt", "sensitivity", flag[y == 1].mean(), card["test"]["sensitivity"], rep)
    _check("support_ftt", "specificity", (~flag[y == 0]).mean(), card["test"]["specificity"], rep)
    out |= {"threshold": thr, "threshold_source": "the model's decision threshold, Youden's J on validation",
            "positive_label": "in-hospital death", "labels": list(get_spec("support_ftt").labels),
            "probs": p, "outcomes": y.astype(int)}
    return out


def heldout_notes(path: Path) -> dict[str, Any]:
    from sklearn.metrics import f1_score

    from medai_core.models import load_model
    from medai_core.workspaces.notes.pipeline import load_vocab
    from medai_core.workspaces.notes.text import CLS
    from medai_core.train.metrics import expected_calibration_error, softmax
    from medai_core.train.notes import SEED, encode, load_mtsamples, split_indices, window_logits

    card = read_card("notes_tfm")
    spec = get_spec("notes_tfm")
    data = load_mtsamples(path)
    te = split_indices(data.y, card["data"].get("seed", SEED))["test"]
    vocab = load_vocab(spec)  # the shipped vocabulary (sha256 checked)
    model = load_model("notes_tfm")
    logits = window_logits(model, [encode(vocab, data.texts[i]) for i in te], vocab.stoi[CLS])
    p = softmax(logits, float(model.temperature))
    y = data.y[te]
    pred = p.argmax(1)
    out = _base("notes_tfm", "classifier", len(te), "MTSamples via clinspacy, mtsamples/mtsamples.csv.gz",
                "de-duplicated notes labelled by the card's rule, stratified by label, 70/15/15, seed from the card "
                "(medai_core.train.notes.split_indices)")
    rep = out["meta"]["reproduced"]
    _check("notes_tfm", "macro_f1", f1_score(y, pred, average="macro", labels=np.arange(len(spec.labels)), zero_division=0),
           card["test"]["macro_f1"], rep)
    _check("notes_tfm", "accuracy", float((pred == y).mean()), card["test"]["accuracy"], rep)
    _check("notes_tfm", "ece", expected_calibration_error(p, y), card["test"]["ece"], rep)
    out |= {"threshold": 0.5,
            "threshold_source": "none shipped: the top label is always shown; 0.5 on the top-1 confidence is a "
                                "neutral default separating confident answers from ones to check against the top 3",
            "positive_label": TOP_LABEL, "labels": list(spec.labels),
            "probs": p.max(1), "outcomes": (pred == y).astype(int), "class_probs": p, "y": y}
    return out


# ---------------------------------------------------------------- forecasters
def _coverage_rows(pred: np.ndarray, y: np.ndarray, ok: np.ndarray, signals: tuple[Signal, ...], step: int) -> list[dict[str, Any]]:
    from medai_core.models.catalog import QUANTILES

    rows = []
    for t, s in enumerate(signals):
        by_step = [quantile_coverage(y[:, h, t], pred[:, h, t], ok[:, h, t]) for h in range(y.shape[1])]
        rows.append({"signal": s.name, "label": s.label, "unit": s.unit, "nominal": list(QUANTILES),
                     "observed": quantile_coverage(y[..., t], pred[..., t, :], ok[..., t]), "n": int(ok[..., t].sum()),
                     "by_step": by_step, "step_minutes": step})
    return rows


class AlarmDef(NamedTuple):
    column: int  # the signal's target index in the forecast
    signal: Signal
    direction: str
    limit: float
    source: str


def alarm_definitions(signals: tuple[Signal, ...], extra: tuple[tuple[str, str, float, str], ...] = ()
                      ) -> list[AlarmDef]:
    """Every limit in the target signals' ``alarm`` (the limits the vitals page warns at), then ``extra``
    (signal name, direction, limit, source)."""
    out = [AlarmDef(i, s, d, float(lim), "the signal's alarm limit in the model spec (the vitals page's warnings)")
           for i, s in enumerate(signals) if s.alarm for d, lim in zip((LOW, HIGH), s.alarm) if lim is not None]
    col = {s.name: i for i, s in enumerate(signals)}
    return out + [AlarmDef(col[n], signals[col[n]], d, float(lim), why) for n, d, lim, why in extra]


def fit_alarm_calibration(raw: np.ndarray, events: np.ndarray, min_events: int = MIN_CALIBRATION_EVENTS
                          ) -> tuple[float, float]:
    """Platt (a, b) on logit(raw score) -> event, from validation windows; (1, 0) (no change) when there
    are fewer than ``min_events`` events or non-events, or the fit does not increase with the score."""
    from medai_core.trust.alarms import PLATT_EPS
    from medai_core.train.metrics import fit_platt

    events = np.asarray(events, bool)
    if min(events.sum(), (~events).sum()) < min_events:
        return 1.0, 0.0
    r = np.clip(raw, PLATT_EPS, 1 - PLATT_EPS)
    a, b = fit_platt(np.log(r / (1 - r)), events.astype(float))
    return (a, b) if a > 0 else (1.0, 0.0)


def _alarm_rows(test: tuple[np.ndarray, ...], val: tuple[np.ndarray, ...], defs: list[AlarmDef], step: int, what: str
                ) -> list[dict[str, Any]]:
    """Per alarm: calibration fitted on every validation window, then score and outcome of each (subsampled)
    test window with an observed value in the horizon. ``test`` / ``val``: (pred (N, H, T, 3), y (N, H, T),
    ymask (N, H, T), last (N, T) the last observed value before the horizon, NaN where there is none)."""
    from medai_core.trust.alarms import platt

    rows = []
    for t, s, direction, limit, source in defs:
        scored, at_start = {}, None
        for part, (pred, y, ok, last) in (("test", test), ("val", val)):
            keep = ~np.isnan(last[:, t]) & ok[:, :, t].any(1)
            scored[part] = (alarm_probability(pred[keep, :, t, :], limit, direction),
                            alarm_events(y[keep, :, t], ok[keep, :, t], limit, direction))
            if part == "test":  # already past the limit when the forecast starts: not a new event
                at_start = alarm_events(last[keep, t:t + 1], np.ones((int(keep.sum()), 1), bool), limit, direction)
        cal = fit_alarm_calibration(*scored["val"])
        raw, event = scored["test"]
        horizon = test[1].shape[1]
        sign = "<" if direction == LOW else ">"
        calibrated = cal != (1.0, 0.0)
        rows.append({
            "key": f"{s.name}_{direction}_{limit:g}", "signal": s.name, "label": s.label, "unit": s.unit,
            "direction": direction, "limit": limit, "limit_source": source, "horizon_steps": horizon,
            "step_minutes": step, "calibration": list(cal),
            "threshold": float(platt(ALARM_THRESHOLD, cal)),
            "description": (
                f"Event: an observed {s.label.lower()} {sign} {limit:g} {s.unit} in the next {horizon} steps of {step} min "
                f"({what}). Score: the probability of crossing the limit read from the forecast's 10/50/90% quantiles "
                "(two-piece normal per step, the largest step)"
                + (", recalibrated (Platt) on the validation windows" if calibrated else
                   ", not recalibrated (too few validation events)")
                + "; the default threshold is the vitals page's warning, the 80% interval reaching the limit. Windows "
                  "with no observed value in the horizon are left out."),
            "n_events": int(event.sum()), "n_val_events": int(scored["val"][1].sum()),
            "n_new_events": int((event & ~at_start).sum()), "n_at_start": int(at_start.sum()),
            "scores": platt(raw, cal) if calibrated else raw, "outcomes": event.astype(int),
            "at_start": at_start.astype(int)})
    return rows


def heldout_icu(path: Path) -> dict[str, Any]:
    from medai_core.models import load_model
    from medai_core.models.forecaster import ICU_SIGNALS, ICU_TARGETS
    from medai_core.train.icu import SEED, evaluate, load_stays, make_windows, predict_windows, split_ids

    card = read_card("icu_gru")
    data = load_stays(path, log=None)
    split = split_ids(len(data["ids"]), card["data"].get("seed", SEED))
    te = split["test"]
    _same_ids("icu_gru", data["ids"][te].tolist(), card["data"].get("test_ids"))
    model = load_model("icu_gru")
    mean, std = model.mean.numpy(), model.std.numpy()
    win = {k: make_windows(data["values"][split[k]], data["static"][split[k]], range(12, 43), mean, std)
           for k in ("test", "val")}
    pred = {k: predict_windows(model, w) for k, w in win.items()}
    w, p = win["test"], pred["test"]
    res = evaluate(p, w)
    targets = ICU_SIGNALS[:ICU_TARGETS]
    out = _base("icu_gru", "forecaster", len(w["x"]), "PhysioNet/CinC 2012 set-a, physionet2012/set-a",
                "stays (RecordID) permuted with the card's seed, 70/15/15 (medai_core.train.icu.split_ids); "
                "windows end at every hour 12-42, as in the card")
    rep = out["meta"]["reproduced"]
    _check("icu_gru", "mean_ratio", res["mean_ratio"], card["test"]["mean_ratio"], rep)
    _check("icu_gru", "mean_coverage80", res["mean_coverage80"], card["test"]["mean_coverage80"], rep)
    for s in targets:
        _check("icu_gru", f"{s.name}_coverage80", res["signals"][s.name]["coverage80"],
               card["test"]["signals"][s.name]["coverage80"], rep)

    def parts(k: str, sub: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, ...]:
        return pred[k][sub], win[k]["y"][sub], win[k]["ymask"][sub], win[k]["last"][sub]

    # every other 6 h block of each stay, alternating between stays: non-overlapping horizons, all hours
    sub = ((w["end"] - 12) % 6 == 0) & ((((w["end"] - 12) // 6) + w["stay"]) % 2 == 0)
    ok = w["ymask"] & ~np.isnan(w["last"])[:, None, :]  # as the card: a previous value exists
    out |= {"labels": [s.name for s in targets], "coverage": _coverage_rows(p, w["y"], ok, targets, 60),
            "alarms": _alarm_rows(parts("test", sub), parts("val"), alarm_definitions(targets), 60,
                                  "hourly means"),
            "n_stays": int(len(te)), "n_alarm_windows": int(sub.sum())}
    out["meta"]["note"] = (
        f"Coverage: every test window ({len(w['x']):,}; ends at hours 12-42 of {len(te)} stays). Alarms: "
        f"{int(sub.sum()):,} test windows, every other 6-hour block of each stay (ends at hours 12, 24, 36 or 18, 30, "
        "42, alternating between stays), so horizons never overlap; per alarm, windows whose signal has no earlier "
        "value or no value in the horizon are left out. Calibration fitted on all validation windows.")
    return out


def heldout_icu_pool(path: Path, name: str = "icu_pool_gru") -> dict[str, Any]:
    """Both sources' test windows (``path``: the shared data folder); alarms on one 6 h block in 8 of each stay."""
    from medai_core.models import load_model
    from medai_core.train.icu_data import subset
    from medai_core.train.icu_pool import EVAL, SEED, Windows, evaluate, load_sources, predict, split_sources

    card, spec, model = read_card(name), get_spec(name), load_model(name)
    stays = load_sources(path, spec, tuple(card["data"]), log=None)
    split = split_sources(stays, card["training"].get("seed", SEED))
    out = _base(name, "forecaster", 0, "PhysioNet/CinC 2012 set-a and 2019 training set B (physionet2012/set-a, "
                "physionet2019/training_setB)", "patients permuted per source with the card's seed, 70/15/15 "
                "(medai_core.train.icu_pool.split_sources); windows as in the card")
    got: dict[str, list] = {"test": [], "val": [], "sub": []}
    for s, st in stays.items():
        _same_ids(name, st["ids"][split[s]["test"]].tolist(), card["data"][s].get("test_ids"))
        for k in ("test", "val"):
            w = Windows(subset(st, split[s][k]), spec, model.mean.numpy(), model.std.numpy(), EVAL[s], True, s)
            t, p = w.targets(), predict(model, w)
            got[k].append((p, t["y"], t["ymask"], t["last"]))
            if k == "test":
                res = evaluate(p, t, w.stay, spec.labels, n_boot=0)
                for key in ("mean_ratio_model", "mean_coverage80"):
                    _check(name, f"{s}_{key}", res[key], card["test"][s][key], out["meta"]["reproduced"])
                rel = w.end - EVAL[s] - st["first"][split[s]["test"]][w.stay]  # hours since the first cut point
                got["sub"].append((rel % 6 == 0) & (((rel // 6) + w.stay) % 8 == 0))  # one block in 8: a small file
    test, val = (tuple(np.concatenate(c) for c in zip(*got[k])) for k in ("test", "val"))
    sub = np.concatenate(got["sub"])
    targets = spec.extra["series"].signals[:spec.extra["n_targets"]]
    n_stays = sum(len(split[s]["test"]) for s in stays)
    out |= {"n": int(len(sub)), "labels": [s.name for s in targets], "n_stays": int(n_stays), "n_alarm_windows": int(sub.sum()),
            "coverage": _coverage_rows(test[0], test[1], test[2] & ~np.isnan(test[3])[:, None, :], targets, 60),
            "alarms": _alarm_rows(tuple(a[sub] for a in test), val, alarm_definitions(targets), 60, "hourly means")}
    out["meta"]["note"] = (
        f"Coverage: every test window of both sources ({len(sub):,}; {n_stays:,} patients). Alarms: {int(sub.sum()):,} "
        "test windows, one 6-hour block in every 8 of each stay (staggered between stays), so horizons never overlap; "
        "per alarm, windows whose signal has no earlier value or no value in the horizon are left out. Calibration "
        "fitted on all validation windows of both sources.")
    return out


def heldout_cgm(path: Path) -> dict[str, Any]:
    from medai_core.models import load_model
    from medai_core.models.forecaster import CGM_SIGNALS
    from medai_core.train.cgm import SEED, evaluate, load_people, make_windows, predict, split_people

    card = read_card("cgm_gru")
    data = load_people(path)
    split = split_people(len(data["ids"]), card["data"].get("seed", SEED))
    te = split["test"]
    _same_ids("cgm_gru", [data["ids"][i] for i in te], card["data"]["split"].get("test"))
    model = load_model("cgm_gru")
    win = {k: make_windows([data["grids"][i] for i in split[k]], float(model.mean[0]), float(model.std[0]))
           for k in ("test", "val")}
    pred = {k: predict(model, w) for k, w in win.items()}
    w, p = win["test"], pred["test"]
    res = evaluate(p, w)
    out = _base("cgm_gru", "forecaster", len(w["x"]), "Hall et al. 2018 CGM, cgm_hall/example_data_hall.csv",
                "people permuted with the card's seed, 3 test people (medai_core.train.cgm.split_people); "
                "windows as in the card")
    rep = out["meta"]["reproduced"]
    for k in ("ratio_30", "ratio_60", "coverage80_30", "coverage80_60"):
        _check("cgm_gru", k, res[k], card["test"][k], rep)

    def parts(k: str, sub: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, ...]:
        return pred[k][sub], win[k]["y"][sub], win[k]["ymask"][sub], win[k]["last"][sub]

    sub = np.arange(0, len(w["x"]), CGM_ALARM_STRIDE)
    defs = alarm_definitions(CGM_SIGNALS, CGM_EXTRA_ALARMS)
    out |= {"labels": [s.name for s in CGM_SIGNALS], "coverage": _coverage_rows(p, w["y"], w["ymask"], CGM_SIGNALS, 5),
            "alarms": _alarm_rows(parts("test", sub), parts("val"), defs, 5, "5-minute means of sensor readings"),
            "n_people": int(len(te)), "n_alarm_windows": int(len(sub))}
    out["meta"]["note"] = (f"Coverage: every test window ({len(w['x']):,}, {len(te)} people). Alarms: every "
                           f"{CGM_ALARM_STRIDE}th test window ({len(sub):,}), so horizons barely overlap. Calibration "
                           "fitted on all validation windows.")
    return out


BUILDERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "busi_cnn": heldout_busi, "busi_effnet": lambda p: heldout_effnet("busi_effnet", p),
    "cxr_pneumonia": lambda p: heldout_effnet("cxr_pneumonia", p), "support_ftt": heldout_support, "notes_tfm": heldout_notes,
    "icu_gru": heldout_icu, "icu_pool_gru": heldout_icu_pool, "cgm_gru": heldout_cgm, "sepsis_gru": heldout_sepsis}


# ---------------------------------------------------------------- model-card section
def card_section(d: dict[str, Any]) -> str:
    """The card's "Reliability on the held-out split" section, from a held-out file's JSON."""
    import textwrap

    from sklearn.metrics import roc_auc_score

    from medai_core.trust.calibration import operating_point, reliability_curve
    from medai_core.trust.heldout import parse_heldout

    def para(text: str) -> str:
        return textwrap.fill(text, 110, break_long_words=False, break_on_hyphens=False)

    ho = parse_heldout(d)
    name = f"`{ho.model}{HELDOUT_SUFFIX}`"
    how = para(
        f"Produced by `python -m medai_core.train.heldout --models {ho.model}`: it rebuilds the test split with the "
        f"training module's own loader, split function and seed, runs the shipped weights (sha256 "
        f"`{ho.weights_sha256[:16]}…`; a test fails when the file is stale) and recomputes this card's test metrics, "
        "which it reproduces: " + ", ".join(f"{k} {v['heldout']:.3f}" for k, v in d["meta"]["reproduced"].items()) + ".")
    if ho.kind == "classifier":
        curve = reliability_curve(ho.probs, ho.outcomes)
        op = operating_point(ho.probs, ho.outcomes, ho.threshold)
        if ho.positive_label == TOP_LABEL:
            body = (f"{name} holds, for each of the {ho.n} test notes, every specialty's calibrated probability and the "
                    f"true specialty. The app's reliability diagram is that of the top-1 confidence against \"the top "
                    f"label was right\" (10 bins, Wilson 95% intervals; ECE {curve.ece:.3f}), or of one specialty against "
                    f"the rest. No operating threshold is shipped (the top label is always shown); at a confidence of "
                    f"{ho.threshold:.2f}, {op.flagged} of {ho.n} notes reach it and {_fmt(op.ppv)} of those are right, "
                    f"against {_fmt(1 - op.npv if op.npv is not None else None)} of the others.")
        else:
            body = (f"{name} holds, for each of the {ho.n:,} test cases, the calibrated probability of {ho.positive_label} "
                    f"and the true outcome: the app draws the reliability diagram (10 bins, Wilson 95% intervals; ECE "
                    f"{curve.ece:.3f}) and the sensitivity, specificity, PPV and NPV at an adjustable threshold. At the "
                    f"shipped threshold {ho.threshold:.3f} ({ho.threshold_source}): sensitivity {_fmt(op.sensitivity)}, "
                    f"specificity {_fmt(op.specificity)}, PPV {_fmt(op.ppv)}, NPV {_fmt(op.npv)}. " + d["meta"].get("note", ""))
        return f"{SECTION}\n{para(body)}\n\n{how}\n"
    cov = "; ".join(f"{c.signal} {', '.join(f'{o:.2f}' for o in c.observed)}" for c in ho.coverage)
    rows = []
    for a in ho.alarms:
        op = operating_point(a.scores, a.outcomes, a.threshold)
        auc = f"{roc_auc_score(a.outcomes, a.scores):.3f}" if 0 < a.outcomes.sum() < len(a.outcomes) else "-"
        rows.append(f"| {a.title} | {len(a.outcomes):,} | {int(a.outcomes.sum())} | {auc} | {a.threshold:.3f} | "
                    f"{_fmt(op.sensitivity)} | {_fmt(op.specificity)} | {_fmt(op.ppv)} |")
    body = para(
        f"{name} holds the observed coverage of the 10/50/90% quantiles on the test split (share of observed values at "
        f"or below each: {cov}) and, for each clinical alarm (the limits the vitals page warns at), one score per test "
        "window with the observed outcome. The score is the probability of crossing the limit within the horizon read "
        "from the quantiles (two-piece normal per step, the largest step), recalibrated (Platt) on the validation "
        "windows where they hold at least 5 events; the default threshold is the page's own warning, the 80% interval "
        "reaching the limit, on that scale. " + d["meta"].get("note", ""))
    table = ("| alarm | windows | events | AUROC | default threshold | sensitivity | specificity | PPV |\n"
             "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows))
    return f"{SECTION}\n{body}\n\n{how}\n\n{table}\n"


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def update_card(md: str, section: str) -> str:
    """Put ``section`` into a card: replace an existing one, else insert it before the intended-use or
    limits section (or append)."""
    pat = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(md):
        return pat.sub(lambda _: section + "\n", md, count=1)
    m = re.search(r"^## (Intended use|Limits)", md, re.M)
    if m:
        return md[:m.start()] + section + "\n" + md[m.start():]
    return md.rstrip("\n") + "\n\n" + section


def write_heldout(name: str, data_dir: Path, out_dir: Path | None = None, card: bool = True) -> Path:
    """Compute and write ``<out_dir>/<name>.heldout.json`` (and the card section); returns the path."""
    out_dir = Path(out_dir) if out_dir is not None else assets_dir()
    d = _r(BUILDERS[name](Path(data_dir) / DATA_PATHS[name]))
    path = out_dir / f"{name}{HELDOUT_SUFFIX}"
    path.write_text(json.dumps(d, separators=(",", ":")) + "\n")
    if card:
        md_path = out_dir / get_spec(name).card
        if md_path.exists():
            md_path.write_text(update_card(md_path.read_text(), card_section(d)))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medai_core.train.heldout", description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(HELDOUT_MODELS), choices=HELDOUT_MODELS)
    ap.add_argument("--data", type=Path, default=None, help=f"the shared data folder (default ${DATA_ENV} or ../shared/data)")
    ap.add_argument("--out", type=Path, default=None, help="where to write (default: the assets folder)")
    ap.add_argument("--no-card", action="store_true", help="do not update the model cards")
    ap.add_argument("--cards-only", action="store_true", help="only rewrite the cards' section from existing files")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = args.data or default_data_dir()
    for name in args.models:
        if args.cards_only:
            out = Path(args.out) if args.out is not None else assets_dir()
            d = json.loads((out / f"{name}{HELDOUT_SUFFIX}").read_text())
            md_path = out / get_spec(name).card
            md_path.write_text(update_card(md_path.read_text(), card_section(d)))
            continue
        t0 = time.perf_counter()
        path = write_heldout(name, data, args.out, card=not args.no_card)
        print(f"{name}: {path} ({path.stat().st_size / 1024:.1f} KiB, {time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
