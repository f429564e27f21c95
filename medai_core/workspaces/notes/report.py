"""The notes case report: the specialty, the words that argued for it, attention."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from medai_core.plots import static as F
from medai_core.report.case import (INTENDED_USE, UNKNOWN_WORD, CaseReport, ReportFigure, explanation_fields, model_summary,
                                    report_time, software_versions)

if TYPE_CHECKING:
    from medai_core.io.changes import DataChange
    from medai_core.models.spec import ModelSpec
    from medai_core.workspaces.notes.pipeline import NotePrediction, TokenAttribution
    from medai_core.workspaces.notes.text import Tokens, Vocab


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
                top: int = 15, created: datetime | None = None, data_changes: Sequence[DataChange] = ()) -> CaseReport:
    """The notes workspace's case: the specialty, the words that drove it, the attention.

    The note's text is an identifier (see the module docstring): it is printed only with identifiers.

    Args:
        text: the note.
        spec, vocab, pred: the model's spec, its vocabulary and ``notes.classify``.
        ta: ``notes.explain_note`` (None: no explanation section).
        attention: ``notes.note_attention`` (layers, heads, n_tokens), or None.
        ref: the note's id or file name (an identifier).
        top: words shown per chart.
        data_changes: the rows of the uploaded CSV that were not scored (``NoteBatch.changes``); their row
            numbers and reasons, never their text.
    """
    from medai_core.workspaces.notes.text import tokenize

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
        created=report_time(created), software=software_versions(), input_summary=summary,
        prediction=f"{pred.label} ({pred.probabilities[pred.label]:.0%}, calibrated)", probabilities=probs,
        explanation_reading=reading, sanity=dict(sanity) if sanity is not None else None, figures=tuple(figs),
        tables=(), notes=notes, identifiers=ids, data_changes=tuple(data_changes),
        **(explanation_fields(ta.explanation, "text") if ta is not None else {}))
