"""Notes workspace (clinical notes): everything the page's notes tab and the ``notes`` CLI need.

A note goes ``load_notes`` (a ``NoteBatch``: the notes, and the CSV rows set aside as ``DataChange``s) /
``check_text`` -> ``classify`` (windows of ``max_tokens`` words, averaged) -> ``encode_note`` ->
``explain_note`` (word attributions) and ``note_attention``, then ``trust_note``, ``note_report`` and
the CSVs. Tokenisation and the vocabulary live in ``text``.
"""
from __future__ import annotations

from medai_core.explain import EXPLAINERS, explainer_for
from medai_core.io.notes import MAX_NOTE_CHARS, Note, NoteBatch, SkippedNote, check_text, load_notes
from medai_core.plots.charts import attention_bar, class_probability_figure, word_bar
from medai_core.plots.trust import maps_side_by_side
from medai_core.workspaces.notes.exports import note_attention_csv, note_attributions_csv
from medai_core.workspaces.notes.pipeline import (EncodedNote, NotePrediction, TokenAttribution, attention_peakedness,
                                                  classify, encode_note, explain_note, highlight_html, load_vocab,
                                                  note_attention, top_words)
from medai_core.workspaces.notes.report import model_words, note_report
from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES
from medai_core.workspaces.notes.text import Tokens, Vocab, tokenize
from medai_core.workspaces.notes.trust import faithfulness_note, sanity_check_note, trust_note

MODALITY = "text"

__all__ = ["EXPLAINERS", "MAX_NOTE_CHARS", "MODALITY", "SYNTHETIC_NOTES", "EncodedNote", "Note", "NoteBatch",
           "NotePrediction", "SkippedNote", "TokenAttribution", "Tokens", "Vocab", "attention_bar",
           "attention_peakedness", "check_text", "class_probability_figure", "classify", "encode_note", "explain_note",
           "explainer_for", "faithfulness_note", "highlight_html", "load_notes", "load_vocab", "maps_side_by_side",
           "model_words", "note_attention", "note_attention_csv", "note_attributions_csv", "note_report",
           "sanity_check_note", "tokenize", "top_words", "trust_note", "word_bar"]
