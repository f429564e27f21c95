"""Case reports: one frozen ``CaseReport`` per case, built from a workspace's results, rendered as a PDF
(fpdf2), PNG figures, or a zip of both. Everything is returned as bytes; nothing touches the disk.

Identifiers are collected into ``CaseReport.identifiers`` and printed only when the caller asks
(``include_identifiers=True``); by default the report says they were left out. What counts as an
identifier, per workspace:

* imaging: every DICOM attribute the viewer hides (names, IDs, dates, UIDs, institutions, private
  tags; ``io.deid.is_identifying``) and the file name. Scan images that may show burned-in text (the
  rule of ``io.deid.burned_in_risk``) are figures marked ``identifying`` and left out the same way.
* records: the ``id`` column and any other column that is not a model input (a name column, say).
  The record's feature values are the input itself and are printed.
* notes: the note's text (notes carry names, dates and places in free text). By default only the
  words with the largest attributions are shown, as the model read them: lower case, numbers as
  "<num>", and words outside the model's vocabulary as "<unknown word>", since the model never saw
  their spelling. A vocabulary word that happens to be a name can still appear.
* vital signs: the real date and time the series started (an upload's timestamps); charts and tables
  use hours since the record began.

The text font is DejaVu Sans, embedded from matplotlib's own copy (full Unicode for European scripts);
characters it lacks become "?". Without it (a stripped matplotlib) the core Helvetica font is used and
text is reduced to Latin-1.
"""
from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from . import __version__
from . import report_figures as F

if TYPE_CHECKING:
    from .explain.base import Explanation
    from .imaging import ImagePrediction
    from .io.records import RecordTable
    from .io.scan import Scan
    from .io.vitals import VitalSeries
    from .models.spec import ModelSpec
    from .notes import NotePrediction, TokenAttribution
    from .records import RiskTable
    from .text import Tokens, Vocab
    from .vitals import Forecast

INTENDED_USE = ("Intended use: decision support and demonstration. MedAI does not make a diagnosis; every output "
                "must be reviewed by a qualified clinician together with the full clinical picture.")
BANNER = "DECISION SUPPORT ONLY - NOT A DIAGNOSIS"
BANNER_TEXT = ("This report explains a machine-learning model's output. It is not a medical device and not a "
               "diagnosis; it must be read by a qualified clinician with the full clinical picture.")
IDENTIFIERS_LEFT_OUT = "Patient identifiers are left out of this report."
UNKNOWN_WORD = "<unknown word>"
WORKSPACES = ("Imaging", "Records", "Notes", "Vital signs")


@dataclass(frozen=True)
class ReportFigure:
    """A figure as PNG bytes; ``identifying`` figures (e.g. a scan that may show burned-in text) are
    printed only with ``include_identifiers=True``."""

    title: str
    png: bytes
    caption: str = ""
    identifying: bool = False


@dataclass(frozen=True)
class ReportTable:
    """A small table: a header and rows of text."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class CaseReport:
    """Everything a case report shows, as plain values.

    Attributes:
        workspace: "Imaging", "Records", "Notes" or "Vital signs".
        model, model_summary: registry name and a one-paragraph summary (description + test-set numbers).
        intended_use: the intended-use statement printed under the model.
        created: when the report was made (timezone-aware).
        software: component -> version (MedAI, Python, torch, captum, ...).
        input_summary: what was analysed, as label -> value (no identifiers).
        prediction: the headline result in words.
        probabilities: class -> calibrated probability (empty for forecasts).
        explanation_method: the explainer's human name ("" if no explanation was run).
        explanation_params, explanation_diagnostics: its parameters and checks (e.g. IG's convergence delta).
        explanation_reading: how to read the explanation's colours and values.
        sanity: the sanity check's results (keys such as verdict, rank_correlation, deletion_auc), or None.
        figures, tables: in print order.
        notes: warnings and statements printed under the prediction (out-of-distribution, left-out text).
        identifiers: label -> value, printed only with ``include_identifiers=True``; None when the
            input carries none.
    """

    workspace: str
    model: str
    model_summary: str
    intended_use: str
    created: datetime
    software: dict[str, str]
    input_summary: dict[str, str]
    prediction: str
    probabilities: dict[str, float] = field(default_factory=dict)
    explanation_method: str = ""
    explanation_params: dict[str, Any] = field(default_factory=dict)
    explanation_diagnostics: dict[str, float] = field(default_factory=dict)
    explanation_reading: str = ""
    sanity: dict[str, Any] | None = None
    figures: tuple[ReportFigure, ...] = ()
    tables: tuple[ReportTable, ...] = ()
    notes: tuple[str, ...] = ()
    identifiers: dict[str, str] | None = None


# ------------------------------------------------------------------------------------------ helpers
def software_versions() -> dict[str, str]:
    """Versions of MedAI and of the libraries that shape its outputs (read from package metadata)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"MedAI": __version__, "Python": platform.python_version()}
    for name, dist in (("torch", "torch"), ("captum", "captum"), ("pydicom", "pydicom"), ("fpdf2", "fpdf2")):
        try:
            out[name] = version(dist)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def model_summary(spec: ModelSpec) -> str:
    """The model's description and its card's headline test-set numbers, in one paragraph."""
    from .errors import ModelError
    from .models.spec import card_headline

    try:
        numbers = "; ".join(f"{k} {v}" for k, v in card_headline(spec.name))
    except (ModelError, KeyError):
        numbers = ""
    return f"{spec.description}." + (f" Test set: {numbers}." if numbers else "") + f" Model card: {spec.card}."


def _elapsed(minutes: float) -> str:
    """Time since the record began as h:mm (never a date)."""
    m = int(round(float(minutes)))
    return f"{m // 60}:{m % 60:02d}"


def _now(created: datetime | None) -> datetime:
    return created if created is not None else datetime.now(timezone.utc)


def _explainer_meta(method: str, modality: str) -> dict[str, Any]:
    from .errors import InputError, UnknownName
    from .explain import explainer_for

    try:
        return explainer_for(method, modality)[1]
    except (InputError, UnknownName):
        return {"label": method, "signed": True}


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def _explanation_fields(exp: Explanation | None, modality: str, labels: Sequence[str] = ()) -> dict[str, Any]:
    if exp is None:
        return {}
    meta = _explainer_meta(exp.method, modality)
    params = {k: v for k, v in exp.params.items() if not k.startswith("_")}
    # some explainers name their target by index (records: "1")
    params["target"] = labels[int(exp.target)] if exp.target.isdigit() and int(exp.target) < len(labels) else exp.target
    params["time"] = f"{exp.seconds * 1000:.0f} ms"
    return {"explanation_method": meta["label"], "explanation_params": params,
            "explanation_diagnostics": dict(exp.diagnostics)}


def _signed(exp: Explanation, modality: str) -> bool:
    return bool(_explainer_meta(exp.method, modality).get("signed", True))


# ------------------------------------------------------------------------------------------ builders
def image_report(scan: Scan, spec: ModelSpec, pred: ImagePrediction, exp: Explanation | None = None, *,
                 frame: int = 0, window: tuple[float, float] | None = None, use_voi_lut: bool = False,
                 mode: str = "positive", opacity: float = 0.5, cmap: str = "jet",
                 sanity: Mapping[str, Any] | None = None, file_name: str | None = None,
                 allow_burned_in: bool = False, created: datetime | None = None) -> CaseReport:
    """The imaging workspace's case: the scan frame, the prediction, the heatmap overlay.

    Args:
        scan, spec, pred, exp: what ``io.load_scan``, ``models.get_spec``, ``imaging.predict`` and
            ``imaging.explain`` returned (``exp`` None: no explanation section).
        frame, window, use_voi_lut: the viewer's frame and window (as ``io.render`` takes them).
        mode, opacity, cmap: the overlay settings (as ``explain.normalise_map`` / ``overlay`` take them).
        sanity: the sanity check's results, if run.
        file_name: the uploaded file's name; file names can hold names, so it is an identifier.
        allow_burned_in: the user has checked that the image shows no burned-in identifiers; otherwise a
            scan that may carry them (see ``io.deid.burned_in_risk``) is printed only with identifiers.
        created: report time (default now, UTC).
    """
    from .explain import normalise_map, overlay
    from .io.deid import scan_burned_in_risk
    from .io.scan import render

    display = render(scan, frame, window, use_voi_lut=use_voi_lut)
    notes: list[str] = []
    if pred.ood:
        notes.append(f"This scan does not look like the images the model was trained on (out-of-distribution score "
                     f"{pred.ood_score:.1f} > {pred.ood_threshold:.1f}). The prediction must not be used.")
    risk = scan_burned_in_risk(scan)
    hide_pixels = risk is not None and not allow_burned_in
    if hide_pixels:
        notes.append(f"{risk} The scan images are therefore printed only in a report with identifiers.")
    else:
        notes.append("Images are printed as they appear in the file: check them for burned-in text before sharing.")
    over, reading = None, ""
    if exp is not None:
        signed = _signed(exp, "image")
        heat = normalise_map(exp.attributions, signed=signed, mode=mode)
        over = overlay(display, heat, opacity, cmap)
        reading = (f"Heatmap ({cmap} colour map, opacity {opacity:.0%}): warm colours mark the regions that most "
                   f"{'supported' if signed and mode == 'positive' else 'influenced'} the class '{exp.target}' "
                   f"({'evidence for the class only' if signed and mode == 'positive' else 'magnitude, either direction'}). "
                   "A heatmap shows where the model looked, not why; it is not a segmentation.")
    figs = [ReportFigure("Scan and explanation", F.scan_overlay_png(
        display, over, (f"Scan, frame {frame + 1} of {scan.n_frames}",
                        f"{_explainer_meta(exp.method, 'image')['label']}: '{exp.target}'" if exp else "")),
        "Left: the frame in the viewer's window. Right: the explanation overlaid." if exp else
        "The frame in the viewer's window.", identifying=hide_pixels)]
    pos_thr = (pred.positive_label, pred.threshold) if pred.positive_label else None
    figs.append(ReportFigure("Calibrated probabilities", F.probability_bar_png(
        pred.probabilities, highlight=pred.label, threshold=pos_thr, muted=pred.ood),
        f"Dashed line: the decision threshold for '{pred.positive_label}' ({pred.threshold:.0%})." if pos_thr else ""))
    h, w = scan.shape
    summary = {"Format": scan.source, "Size": f"{w} x {h} pixels", "Frame": f"{frame + 1} of {scan.n_frames}",
               "Modality": scan.modality or "-",
               "Window": "file VOI LUT" if use_voi_lut else (f"centre {window[0]:g}, width {window[1]:g}" if window else
                                                            "the file's default"),
               "Model input": f"{spec.input_size[0]} x {spec.input_size[1]} grayscale, the file's default window"}
    if scan.pixel_spacing:
        summary["Pixel spacing"] = f"{scan.pixel_spacing[0]:g} x {scan.pixel_spacing[1]:g} mm"
    # the file meta group (0002) describes the transfer, not the image
    meta_rows = tuple((m.name, m.value) for m in scan.metadata
                      if not m.identifying and not m.tag.startswith("(0002,"))[:30]
    tables = (ReportTable("DICOM attributes (identifiers hidden)", ("Attribute", "Value"), meta_rows),) if meta_rows else ()
    # private tags are vendor data (often binary): counted, not printed
    private = [m for m in scan.metadata if int(m.tag[1:5], 16) % 2 == 1]
    ids = {m.name: m.value for m in scan.metadata
           if m.identifying and m not in private and m.value and not m.value.startswith("<")}
    if private:
        ids["Private tags"] = f"{len(private)} (vendor data, not printed)"
    if file_name:
        ids["File name"] = file_name
    head = f"{pred.label} ({pred.probabilities[pred.label]:.0%}, calibrated)"
    if pred.positive_label:
        head += f"; '{pred.positive_label}' is chosen when its probability reaches {pred.threshold:.0%}"
    if pred.ood:
        head = "NOT USABLE (out of distribution): " + head
    return CaseReport(
        workspace="Imaging", model=spec.name, model_summary=model_summary(spec), intended_use=INTENDED_USE,
        created=_now(created), software=software_versions(), input_summary=summary, prediction=head,
        probabilities=dict(pred.probabilities), explanation_reading=reading,
        sanity=dict(sanity) if sanity is not None else None, figures=tuple(figs), tables=tables, notes=tuple(notes),
        identifiers=ids or None, **_explanation_fields(exp, "image"))


def record_report(table: RecordTable, row: int, spec: ModelSpec, scores: RiskTable, exp: Explanation | None = None, *,
                  attention: np.ndarray | None = None, sanity: Mapping[str, Any] | None = None, top: int = 15,
                  created: datetime | None = None) -> CaseReport:
    """The records workspace's case: one record's risk, its feature attributions and attention.

    Args:
        table, row: the validated table and the record's index in it.
        spec, scores: the model's spec and ``records.score`` on ``table``.
        exp: ``records.explain_record`` for ``row`` (None: no explanation section).
        attention: ``records.attention`` for ``row`` (layers, heads, features), or None.
        sanity: the sanity check's results, if run.
        top: features shown in the attribution chart.
    """
    from .errors import InputError
    from .io.records import EXCLUDED, FEATURES, FIELDS, ID_COLUMN, SCHEMA
    from .records import attribution_frame

    if not 0 <= row < len(table):
        raise InputError(f"Row {row + 1} does not exist; the table has {len(table)} records.")
    risk, label, thr = float(scores.risk[row]), scores.labels[row], float(scores.threshold)
    risk_of = spec.extra.get("risk_of", spec.positive_label)
    neg, pos = spec.labels
    rec = table.frame.iloc[row]
    missing = [f.label for f in SCHEMA if rec[f.name] is None or (isinstance(rec[f.name], float) and np.isnan(rec[f.name]))]
    summary = {"Record": f"row {row + 1} of {len(table)}", "Features": f"{len(SCHEMA)} (schema of {spec.name})",
               "Missing features": ", ".join(missing) if missing else "none"}
    figs, tables, reading = [], [], ""
    figs.append(ReportFigure("Risk", F.probability_bar_png({neg: 1 - risk, pos: risk}, f"Risk of {risk_of}",
                                                           highlight=pos if label == pos else None, threshold=(pos, thr)),
                             f"Dashed line: the decision threshold ({thr:.0%})."))
    if exp is not None:
        frame = attribution_frame(exp, table, row)
        figs.append(ReportFigure(
            "Feature contributions", F.attribution_bar_png(
                [(s, a * 100) for s, a in zip(frame["shown"].head(top), frame["attribution"].head(top))],
                f"Largest contributions to the risk of {risk_of}", "contribution (percentage points of risk)"),
            "Red raised the risk, green lowered it, each compared with the reference patient."))
        tables.append(ReportTable("The record and each feature's contribution",
                                  ("Feature", "Value", "Contribution (pp)"),
                                  tuple((FIELDS[f].label, _value_text(FIELDS[f], rec[f]), f"{float(a) * 100:+.2f}")
                                        for f, a in zip(FEATURES, exp.attributions))))
        reading = ("Contributions are in percentage points of risk, measured against a reference patient (every "
                   "feature at its training median or most common value); they add up to the difference between "
                   "this record's risk and the reference's.")
    else:
        tables.append(ReportTable("The record", ("Feature", "Value"),
                                  tuple((f.label, _value_text(f, rec[f.name])) for f in SCHEMA)))
    if attention is not None:
        att = np.asarray(attention)
        figs.append(ReportFigure("Attention", F.heatmap_png(
            att.mean(1), [f"layer {i + 1}" for i in range(att.shape[0])], list(FEATURES),
            "CLS-to-feature attention (mean of heads)", signed=False, colorbar="weight"),
            "Where the classifier token looked in each layer; not a direction of evidence."))
    ids: dict[str, str] = {}
    src = table.source
    if ID_COLUMN in src.columns:
        ids["Record ID"] = str(table.ids[row])
    for col in src.columns:
        if col not in FIELDS and col != ID_COLUMN and col not in EXCLUDED:
            val = src[col].iloc[row]
            if val is not None and str(val).strip() and str(val) != "nan":
                ids[f"Column '{col}'"] = str(val)
    return CaseReport(
        workspace="Records", model=spec.name, model_summary=model_summary(spec), intended_use=INTENDED_USE,
        created=_now(created), software=software_versions(), input_summary=summary,
        prediction=f"{label}: risk of {risk_of} {risk:.0%} (calibrated; '{pos}' from {thr:.0%})",
        probabilities={neg: 1 - risk, pos: risk}, explanation_reading=reading,
        sanity=dict(sanity) if sanity is not None else None, figures=tuple(figs), tables=tuple(tables),
        notes=tuple(table.notices), identifiers=ids or None, **_explanation_fields(exp, "tabular", spec.labels))


def _value_text(f: Any, value: object) -> str:
    """A record's value as ``Field.describe`` words it, without the label ("67 years", "male", "missing")."""
    text = f.describe(value)
    for sep in (" = ", ": "):
        if text.startswith(f.label + sep):
            return text[len(f.label) + len(sep):]
    return text


def model_words(tokens: Tokens, values: np.ndarray, vocab: Vocab, k: int = 15) -> list[tuple[str, float]]:
    """The ``k`` words with the largest summed values, as the model read them: normalised words of the
    vocabulary, and every other word pooled as "<unknown word>" (the model never saw its spelling, and
    names are mostly outside the vocabulary)."""
    agg: dict[str, float] = {}
    for w, v in zip(tokens.words, np.asarray(values, dtype=float)):
        key = w if w in vocab.stoi else UNKNOWN_WORD
        agg[key] = agg.get(key, 0.0) + float(v)
    return sorted(agg.items(), key=lambda kv: -abs(kv[1]))[:k]


def note_report(text: str, spec: ModelSpec, vocab: Vocab, pred: NotePrediction, ta: TokenAttribution | None = None, *,
                attention: np.ndarray | None = None, sanity: Mapping[str, Any] | None = None, ref: str | None = None,
                top: int = 15, created: datetime | None = None) -> CaseReport:
    """The notes workspace's case: the specialty, the words that drove it, the attention.

    The note's text is an identifier (see the module docstring): it is printed only with identifiers.

    Args:
        text: the note.
        spec, vocab, pred: the model's spec, its vocabulary and ``notes.classify``.
        ta: ``notes.explain_note`` (None: no explanation section).
        attention: ``notes.note_attention`` (layers, heads, n_tokens), or None.
        ref: the note's id or file name (an identifier).
        top: words shown per chart.
    """
    from .text import tokenize

    tokens = ta.tokens if ta is not None else tokenize(text)
    summary = {"Words": f"{pred.n_tokens:,}", "Characters": f"{len(text):,}",
               "Windows": f"{pred.n_windows} of up to {spec.extra.get('max_tokens', '?')} words",
               "Out-of-vocabulary words": f"{pred.unknown_share:.0%}",
               "Note text": "left out (it may contain names); printed only in a report with identifiers"}
    probs = dict(pred.top(len(pred.probabilities)))
    figs = [ReportFigure("Top specialties", F.probability_bar_png(dict(pred.top(5)), "Top 5 specialties (calibrated)",
                                                                  highlight=pred.label))]
    reading = ""
    if ta is not None:
        words = model_words(tokens, ta.values, vocab, top)
        figs.append(ReportFigure("Words that moved the specialty most", F.attribution_bar_png(
            words, f"Words that moved '{ta.explanation.target}' most", "contribution to the class logit"),
            "Each word summed over its occurrences, as the model read it (lower case, numbers as <num>, "
            "words outside the vocabulary pooled as <unknown word>). Red for the specialty, green against."))
        reading = ("Integrated Gradients on the word embeddings: each word's contribution to the specialty's logit "
                   "compared with the same note with every word replaced by padding.")
    if attention is not None:
        att = np.asarray(attention)
        w = att[-1].mean(0)
        figs.append(ReportFigure("Most attended words", F.attribution_bar_png(
            model_words(tokens, w, vocab, top), f"Attention from CLS, layer {att.shape[0]}, mean of heads (summed per word)",
            "attention weight", signed=False), "Where the classifier token looked, not a direction of evidence."))
    ids = {"Note text": text}
    if ref:
        ids = {"Note reference": ref, **ids}
    notes = ("The note's text is left out of this report unless identifiers are included; charts show the model's "
             "normalised words only.",)
    if pred.n_windows > 1:
        notes += (f"Long note: read in {pred.n_windows} windows; the prediction averages them.",)
    return CaseReport(
        workspace="Notes", model=spec.name, model_summary=model_summary(spec), intended_use=INTENDED_USE,
        created=_now(created), software=software_versions(), input_summary=summary,
        prediction=f"{pred.label} ({pred.probabilities[pred.label]:.0%}, calibrated)", probabilities=probs,
        explanation_reading=reading, sanity=dict(sanity) if sanity is not None else None, figures=tuple(figs),
        tables=(), notes=notes, identifiers=ids,
        **(_explanation_fields(ta.explanation, "text") if ta is not None else {}))


def series_report(series: VitalSeries, spec: ModelSpec, fc: Forecast, exp: Explanation | None = None, *,
                  signal: str | None = None, step_ahead: int | None = None, show_steps: int = 24,
                  sanity: Mapping[str, Any] | None = None, created: datetime | None = None) -> CaseReport:
    """The vital-signs workspace's case: the forecast with its interval, attention and attributions.

    Args:
        series, spec, fc: the series, the model's spec and ``vitals.forecast``.
        exp: ``vitals.explain_forecast`` for ``signal`` at ``step_ahead`` (None: no explanation section).
        show_steps: history steps drawn before the forecast.
    """
    from .plots_vitals import threshold_warnings

    signals = spec.extra["series"].signals
    by_name = {s.name: s for s in signals}
    step = series.step_minutes
    summary = {"Steps": f"{series.n_steps} of {step} minutes ({series.n_steps * step / 60:g} h)",
               "Signals recorded": ", ".join(s for s in series.signals if np.isfinite(series.column(s)).any()) or "none",
               "Model reads": f"the last {spec.extra['history']} steps",
               "Time axis": "hours since the record began"}
    for k, v in series.static.items():
        summary[k] = f"{v:g}"
    figs = [ReportFigure("Forecast", F.forecast_png(series, fc, signals, show_steps),
                         f"Median (line) and 10-90% interval (band) of each signal's mean per {step}-minute step; green "
                         "band: normal range; dotted orange: clinical thresholds; dashed grey: forecast start. "
                         "Bottom: the model's attention over the steps it read.")]
    reading = ""
    if exp is not None:
        keep = ~np.isnan(fc.window_times)
        cols = [_elapsed(t) for t in fc.window_times[keep]]
        label = by_name[signal].label if signal in by_name else (signal or "the forecast")
        figs.append(ReportFigure("What drove the forecast", F.heatmap_png(
            np.asarray(exp.attributions)[keep].T, [by_name[s].label if s in by_name else s for s in series.signals], cols,
            f"Contribution of each past value to the median {label} at +{step_ahead or '?'} step(s)",
            xlabel="time since the record began (h:mm)", colorbar="effect"),
            "Red raised the forecast, blue lowered it, measured against every value at its training mean."))
        reading = "Attributions are in the forecast signal's own units."
    rows = []
    for i, s in enumerate(fc.signals):
        for h in range(fc.quantiles.shape[0]):
            p10, p50, p90 = fc.quantiles[h, i]
            rows.append((by_name[s].label if s in by_name else s, f"+{h + 1}", _elapsed(fc.times[h]),
                         f"{p10:.1f}", f"{p50:.1f}", f"{p90:.1f}"))
    tables = (ReportTable("Forecast (10th, 50th and 90th percentiles)", ("Signal", "Step", "Time (h:mm)", "p10", "p50", "p90"),
                          tuple(rows)),)
    warn = threshold_warnings(fc, signals)
    horizon = fc.quantiles.shape[0]
    head = (f"Forecast of {', '.join(by_name[s].label if s in by_name else s for s in fc.signals)} for the next "
            f"{horizon} step(s) ({horizon * step} min)")
    head += f"; {len(warn)} threshold warning(s)" if warn else "; no clinical threshold crossed"
    ids = {"Series start": str(series.origin)} if series.origin is not None else None
    explanation = _explanation_fields(exp, "series")
    if exp is not None and signal:
        explanation["explanation_params"] = {"signal": signal, "step ahead": step_ahead,
                                             **{k: v for k, v in explanation["explanation_params"].items() if k != "target"}}
    return CaseReport(
        workspace="Vital signs", model=spec.name, model_summary=model_summary(spec), intended_use=INTENDED_USE,
        created=_now(created), software=software_versions(), input_summary=summary, prediction=head,
        explanation_reading=reading, sanity=dict(sanity) if sanity is not None else None, figures=tuple(figs),
        tables=tables, notes=tuple(warn) + tuple(series.notices), identifiers=ids, **explanation)


# ------------------------------------------------------------------------------------------ outputs
def _slug(text: str) -> str:
    s = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", s).strip("_")[:40] or "figure"


def figure_pngs(report: CaseReport, include_identifiers: bool = False) -> dict[str, bytes]:
    """The report's figures as ``{"01_scan_and_explanation.png": PNG bytes, ...}`` in print order;
    identifying figures only with ``include_identifiers``."""
    out: dict[str, bytes] = {}
    for i, f in enumerate(report.figures, 1):
        if f.identifying and not include_identifiers:
            continue
        out[f"{i:02d}_{_slug(f.title)}.png"] = f.png
    return out


def report_zip(report: CaseReport, include_identifiers: bool = False, extra: Mapping[str, bytes] | None = None) -> bytes:
    """A zip with ``report.pdf``, the figures as PNGs (``figures/``) and any ``extra`` files (e.g. the
    CSV exports, ``{"attributions.csv": bytes}``)."""
    buf = io.BytesIO()
    stamp = report.created.astimezone(timezone.utc).timetuple()[:6]
    files = {"report.pdf": build_pdf(report, include_identifiers)}
    files.update({f"figures/{k}": v for k, v in figure_pngs(report, include_identifiers).items()})
    files.update(dict(extra or {}))
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, date_time=max(stamp, (1980, 1, 1, 0, 0, 0))), data)
    return buf.getvalue()


@lru_cache(maxsize=1)
def _font_files() -> tuple[Path, Path, frozenset[int]] | None:
    """matplotlib's DejaVu Sans (regular, bold) and the code points it covers, or None."""
    try:
        import matplotlib
        from fontTools.ttLib import TTFont
    except ImportError:
        return None
    d = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    regular, bold = d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf"
    if not (regular.exists() and bold.exists()):
        return None
    cmap = frozenset(TTFont(str(regular), lazy=True).getBestCmap())
    return regular, bold, cmap


_LATIN1 = str.maketrans({"—": "-", "–": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "…": "...", "•": "*",
                         "≥": ">=", "≤": "<=", "×": "x", "°": " deg", "→": "->"})


def _clean_text(text: object, cmap: frozenset[int] | None) -> str:
    """Printable text the font can draw: control characters out, unknown characters as '?'."""
    s = unicodedata.normalize("NFC", str(text)).replace("\r\n", "\n").replace("\t", "    ")
    s = "".join(c for c in s if c == "\n" or unicodedata.category(c)[0] != "C")
    if cmap is None:
        s = s.translate(_LATIN1)
        return s.encode("latin-1", "replace").decode("latin-1")
    return "".join(c if c == "\n" or ord(c) in cmap else "?" for c in s)


def _fmt_value(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return _fmt(v)


def build_pdf(report: CaseReport, include_identifiers: bool = False) -> bytes:
    """The report as an A4 PDF (bytes): title, the decision-support banner, prediction, model and intended
    use, input, explanation and sanity check, figures, tables, identifiers (only if asked), software,
    page numbers on every page.

    Args:
        report: the case.
        include_identifiers: print ``report.identifiers`` and identifying figures; otherwise the report
            says identifiers were left out.
    """
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    fonts = _font_files()
    cmap = fonts[2] if fonts else None
    family = "DejaVu" if fonts else "helvetica"

    def t(x: object) -> str:
        return _clean_text(x, cmap)

    class _PDF(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font(family, "", 7.5)
            self.set_text_color(110, 110, 110)
            self.cell(0, 6, t(f"MedAI {__version__} case report - {BANNER.lower().capitalize()} - page "
                              f"{self.page_no()} of {{nb}}"), align="C")

    pdf = _PDF(orientation="P", unit="mm", format="A4")
    pdf.set_margins(16, 16, 16)
    pdf.set_auto_page_break(True, margin=18)
    if fonts:
        pdf.add_font("DejaVu", "", str(fonts[0]))
        pdf.add_font("DejaVu", "B", str(fonts[1]))
    pdf.set_title(t(f"MedAI case report: {report.workspace}"))
    pdf.set_author("MedAI")
    pdf.set_creator(t(f"MedAI {__version__}"))
    pdf.set_creation_date(report.created)
    pdf.add_page()
    width = pdf.epw
    nl = {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT}

    def heading(text: str, need: float = 25) -> None:
        if pdf.get_y() + need > pdf.page_break_trigger:  # keep a heading with what follows it
            pdf.add_page()
        pdf.ln(3)
        pdf.set_font(family, "B", 12)
        pdf.set_text_color(30, 30, 30)
        pdf.cell(0, 7, t(text), **nl)
        pdf.set_draw_color(200, 200, 200)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
        pdf.ln(1.5)

    def para(text: str, size: float = 9.5, bold: bool = False, color: tuple[int, int, int] = (30, 30, 30)) -> None:
        pdf.set_font(family, "B" if bold else "", size)
        pdf.set_text_color(*color)
        pdf.multi_cell(0, size * 0.5, t(text), align="L", **nl)

    def pairs(items: Mapping[str, Any]) -> None:
        for k, v in items.items():
            pdf.set_font(family, "B", 9)
            pdf.set_text_color(30, 30, 30)
            label = t(k)
            while len(label) > 4 and pdf.get_string_width(label) > 54:  # one line per label
                label = label[:-2] + "…" if cmap else label[:-4] + "..."
            pdf.cell(56, 4.8, label)
            pdf.set_font(family, "", 9)
            pdf.multi_cell(0, 4.8, t(_fmt_value(v)), align="L", **nl)

    def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        pdf.set_font(family, "", 8)
        pdf.set_text_color(30, 30, 30)
        widths = (1, 2) if len(header) == 2 else (2,) + (1,) * (len(header) - 1)
        with pdf.table(col_widths=widths, first_row_as_headings=True, line_height=4.2, text_align="LEFT", padding=0.8,
                       borders_layout="HORIZONTAL_LINES", headings_style=_headings(family)) as tb:
            for r in [header, *rows]:
                line = tb.row()
                for c in r:
                    line.cell(t(c))
        pdf.ln(1)

    # title and banner
    pdf.set_font(family, "B", 17)
    pdf.cell(0, 9, t(f"MedAI case report: {report.workspace}"), **nl)
    pdf.set_font(family, "", 8.5)
    pdf.set_text_color(90, 90, 90)
    pdf.cell(0, 5, t(f"Created {report.created.strftime('%Y-%m-%d %H:%M %Z').strip()} - MedAI {__version__} - "
                     f"model {report.model}"), **nl)
    pdf.ln(2)
    pdf.set_fill_color(253, 237, 236)
    pdf.set_draw_color(192, 57, 43)
    pdf.set_line_width(0.6)
    pdf.set_text_color(150, 30, 20)
    pdf.set_font(family, "B", 11)
    pdf.multi_cell(0, 6.5, t(BANNER), border="LTR", fill=True, align="C", **nl)
    pdf.set_font(family, "", 8.5)
    pdf.multi_cell(0, 4.5, t(BANNER_TEXT), border="LBR", fill=True, align="C", padding=(0, 2, 1.5, 2), **nl)
    pdf.set_line_width(0.2)
    pdf.set_fill_color(255, 255, 255)
    if include_identifiers and report.identifiers:
        pdf.ln(1.5)
        para("CONTAINS PATIENT IDENTIFIERS: handle as a clinical record; do not share outside the care team.",
             9, bold=True, color=(150, 30, 20))

    heading("Prediction")
    para(report.prediction, 11, bold=True)
    if report.probabilities:
        pdf.ln(1)
        table(("Class", "Probability"), [(k, f"{v:.1%}") for k, v in
                                          sorted(report.probabilities.items(), key=lambda kv: -kv[1])[:8]])
    for n in report.notes:
        para(n, 9, color=(160, 82, 0))
        pdf.ln(0.5)

    heading("Model and intended use")
    pairs({"Model": report.model})
    para(report.model_summary, 9)
    pdf.ln(1)
    para(report.intended_use, 9, bold=True)

    heading("Input")
    pairs(report.input_summary)

    heading("Explanation")
    if report.explanation_method:
        pairs({"Method": report.explanation_method})
        if report.explanation_params:
            pairs({"Parameters": report.explanation_params})
        if report.explanation_diagnostics:
            pairs({"Diagnostics": report.explanation_diagnostics})
        if report.explanation_reading:
            para(report.explanation_reading, 9)
    else:
        para("No explanation was computed for this case.", 9)
    pdf.ln(1)
    if report.sanity:
        s = dict(report.sanity)
        verdict = s.pop("verdict", None)
        pairs({"Sanity check": verdict if verdict is not None else "see values"})
        if s:
            pairs({k.replace("_", " "): v for k, v in s.items()})
    else:
        pairs({"Sanity check": "not run for this case"})

    shown = [f for f in report.figures if include_identifiers or not f.identifying]
    if report.figures:
        heading("Figures", need=_figure_height(shown[0], width) + 20 if shown else 25)
        for f in report.figures:
            if f not in shown:
                para(f"{f.title}: left out (it may show patient identifiers).", 9, color=(160, 82, 0))
                continue
            _image(pdf, f, width, t, family)

    for tb in report.tables:
        heading(tb.title)
        table(tb.header, tb.rows)

    heading("Patient identifiers", need=20)
    if include_identifiers and report.identifiers:
        para("Included at the user's request.", 9, color=(150, 30, 20))
        pairs({k: (v if len(v) <= 4000 else v[:4000] + " [...]") for k, v in report.identifiers.items()})
    elif include_identifiers:
        para("The input carries no patient identifiers.", 9)
    else:
        para(IDENTIFIERS_LEFT_OUT + (" The input carries some; ask for a report with identifiers to print them."
                                     if report.identifiers else ""), 9)

    heading("Software", need=8 + 5 * len(report.software))
    pairs(report.software)
    return bytes(pdf.output())


def _headings(family: str) -> Any:
    from fpdf.fonts import FontFace

    return FontFace(family=family, emphasis="BOLD", fill_color=(240, 240, 240))


def _figure_size(fig: ReportFigure, width: float, max_h: float = 230.0) -> tuple[float, float]:
    """Printed (width, height) in mm: the PNG at its own DPI, shrunk to the text width and a page."""
    from PIL import Image

    with Image.open(io.BytesIO(fig.png)) as im:
        px_w, px_h = im.size
    w = min(width, px_w / F.DPI * 25.4)
    h = w * px_h / px_w
    if h > max_h:
        h, w = max_h, max_h * px_w / px_h
    return w, h


def _figure_height(fig: ReportFigure, width: float) -> float:
    return _figure_size(fig, width)[1]


def _image(pdf: Any, fig: ReportFigure, width: float, t: Any, family: str) -> None:
    from fpdf.enums import XPos, YPos

    w, h = _figure_size(fig, width, pdf.eph - 30)
    if pdf.get_y() + h + 12 > pdf.page_break_trigger:
        pdf.add_page()
    pdf.set_font(family, "B", 10)
    pdf.set_text_color(30, 30, 30)
    pdf.cell(0, 6, t(fig.title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.image(io.BytesIO(fig.png), x=pdf.l_margin + (width - w) / 2, w=w, h=h)
    if fig.caption:
        pdf.set_font(family, "", 8)
        pdf.set_text_color(80, 80, 80)
        pdf.multi_cell(0, 4, t(fig.caption), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
