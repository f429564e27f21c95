"""CSV exports of attributions and attention weights, one pure function per workspace and kind.

Each returns UTF-8 CSV bytes (a header row, then one row per value; nothing written to disk) that
``pandas.read_csv`` reads back to the arrays the explanation holds. Floats are written with 10
significant digits. No patient identifiers are written: record exports hold the schema's features
only (never the id column), series exports give elapsed minutes (never the upload's real timestamps),
and note exports hold the note's words, which are the explanation itself; a note may contain names,
so treat a note export like the note.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from .errors import InputError
from .explain.base import Explanation

if TYPE_CHECKING:
    from .io.vitals import VitalSeries
    from .text import Tokens
    from .vitals import Forecast

FLOAT_FORMAT = "%.10g"
CLS_TOKEN = "[CLS]"


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n").encode("utf-8")


def image_attributions_csv(exp: Explanation) -> bytes:
    """One row per pixel of the model's input: ``row, col, attribution`` (row-major).

    Args:
        exp: an image explanation; attributions are (H, W) at the model's input resolution (e.g.
            128 x 128 for busi_cnn), not the scan's.
    """
    a = np.asarray(exp.attributions, dtype=np.float64)
    if a.ndim != 2:
        raise InputError(f"Image attributions must be 2-D (height x width); got shape {a.shape}.")
    rows, cols = np.indices(a.shape)
    return _csv(pd.DataFrame({"row": rows.ravel(), "col": cols.ravel(), "attribution": a.ravel()}))


def record_attributions_csv(exp: Explanation, values: dict[str, object] | None = None) -> bytes:
    """One row per schema feature, in schema order: ``feature, label, value, attribution``.

    Args:
        exp: a record explanation (attributions: one per feature of the records schema).
        values: the record's feature values (``RecordTable.frame.iloc[row].to_dict()``), or None to
            leave the value column blank. Keys outside the schema (an id column) are ignored.
    """
    from .io.records import SCHEMA

    a = np.asarray(exp.attributions, dtype=np.float64).ravel()
    if len(a) != len(SCHEMA):
        raise InputError(f"Expected {len(SCHEMA)} feature attributions; got {len(a)}.")
    vals = values or {}
    return _csv(pd.DataFrame({
        "feature": [f.name for f in SCHEMA], "label": [f.label for f in SCHEMA],
        "value": [vals.get(f.name) for f in SCHEMA], "attribution": a}))


def _attention_frame(att: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """(L, H, K) CLS rows or (L, H, Q, K) full matrices -> layer, head, query, key, weight rows."""
    att = np.asarray(att, dtype=np.float64)
    if att.ndim == 3:
        att = att[:, :, None, :]
        queries = [CLS_TOKEN]
    elif att.ndim == 4:
        queries = list(names)
    else:
        raise InputError(f"Attention must be (layers, heads, keys) or (layers, heads, queries, keys); got {att.shape}.")
    n_l, n_h, n_q, n_k = att.shape
    if n_k != len(names) or n_q != len(queries):
        raise InputError(f"Attention has {n_k} keys but {len(names)} names were given.")
    l, h, q, k = np.indices(att.shape)
    return pd.DataFrame({"layer": l.ravel(), "head": h.ravel(), "query": np.asarray(queries, dtype=object)[q.ravel()],
                         "key": np.asarray(list(names), dtype=object)[k.ravel()], "weight": att.ravel()})


def record_attention_csv(attention: np.ndarray) -> bytes:
    """Attention of the records transformer: ``layer, head, query, key, weight``.

    Args:
        attention: ``records.attention`` (layers, heads, features): the CLS token's row, query "[CLS]";
            or ``records.attention_matrix`` stacked over layers (layers, heads, 1 + F, 1 + F): every
            token's row, token 0 being "[CLS]". Both are small (24 features).
    """
    from .io.records import FEATURES

    att = np.asarray(attention)
    names = list(FEATURES) if att.ndim == 3 else [CLS_TOKEN, *FEATURES]
    return _csv(_attention_frame(att, names))


def note_attributions_csv(tokens: Tokens, values: np.ndarray) -> bytes:
    """One row per word of the note: ``token_index, token, word, char_start, char_end, attribution``.

    ``token`` is the word as written in the note (``text[char_start:char_end]``), ``word`` as the model
    reads it (lower case, numbers as "<num>"). The words are the explanation itself; a note may contain
    names, so the export is as sensitive as the note.

    Args:
        tokens: ``TokenAttribution.tokens``.
        values: ``TokenAttribution.values`` (one per token, windows stitched).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) != len(tokens):
        raise InputError(f"{len(v)} attributions for {len(tokens)} words.")
    starts = [a for a, _ in tokens.spans]
    ends = [b for _, b in tokens.spans]
    return _csv(pd.DataFrame({"token_index": np.arange(len(v)), "token": [tokens.text[a:b] for a, b in tokens.spans],
                              "word": list(tokens.words), "char_start": starts, "char_end": ends, "attribution": v}))


def note_attention_csv(tokens: Tokens, attention: np.ndarray) -> bytes:
    """The CLS token's attention to every word, per layer and head:
    ``layer, head, query, token_index, token, weight`` (query is always "[CLS]").

    Only the CLS row is exported: it is what the classifier reads, and the full matrices of a long note
    (up to 513 x 513 per window, layer and head) would run to millions of rows. Each window's weights sum
    to 1 over its words and its own CLS token, so a word's weight is relative to its window.

    Args:
        tokens: the note's tokens (``EncodedNote.tokens``).
        attention: ``notes.note_attention`` (layers, heads, n_tokens).
    """
    att = np.asarray(attention, dtype=np.float64)
    if att.ndim != 3 or att.shape[-1] != len(tokens):
        raise InputError(f"Attention must be (layers, heads, {len(tokens)}); got {att.shape}.")
    frame = _attention_frame(att, [tokens.text[a:b] for a, b in tokens.spans])
    frame.insert(3, "token_index", np.tile(np.arange(len(tokens)), att.shape[0] * att.shape[1]))
    return _csv(frame.rename(columns={"key": "token"}))


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
    from .vitals import window_minutes

    minutes = window_minutes(series.n_steps, hist, series.step_minutes)
    vals = np.full(a.shape, np.nan)
    lo = max(series.n_steps - hist, 0)
    vals[hist - (series.n_steps - lo):] = series.values[lo:]
    steps = np.arange(-hist, 0)
    s_idx, k_idx = np.indices(a.shape)
    return _csv(pd.DataFrame({"step": steps[s_idx.ravel()], "minutes": minutes[s_idx.ravel()],
                              "signal": np.asarray(series.signals, dtype=object)[k_idx.ravel()],
                              "value": vals.ravel(), "attribution": a.ravel()}))


def series_attention_csv(forecast: Forecast) -> bytes:
    """The forecaster's temporal attention over the steps it read: ``step, minutes, weight``.

    Args:
        forecast: ``vitals.forecast`` (attention: one weight per input step; padding steps, before the
            record began, have blank minutes).
    """
    w = np.asarray(forecast.attention, dtype=np.float64).ravel()
    return _csv(pd.DataFrame({"step": np.arange(-len(w), 0), "minutes": np.asarray(forecast.window_times, float),
                              "weight": w}))


def series_forecast_csv(forecast: Forecast) -> bytes:
    """The forecast itself: ``signal, step_ahead, minutes, p10, p50, p90`` (minutes from the series start)."""
    q = np.asarray(forecast.quantiles, dtype=np.float64)
    h, t = np.indices(q.shape[:2])
    return _csv(pd.DataFrame({"signal": np.asarray(forecast.signals, dtype=object)[t.ravel()], "step_ahead": h.ravel() + 1,
                              "minutes": np.asarray(forecast.times, float)[h.ravel()],
                              "p10": q[..., 0].ravel(), "p50": q[..., 1].ravel(), "p90": q[..., 2].ravel()}))
