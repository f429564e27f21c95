"""CSV exports of a note's word attributions and attention (see ``medai_core.report.csv``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from medai_core.errors import InputError
from medai_core.report.csv import attention_frame, to_csv

if TYPE_CHECKING:
    from medai_core.workspaces.notes.text import Tokens


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
    return to_csv(pd.DataFrame({"token_index": np.arange(len(v)), "token": [tokens.text[a:b] for a, b in tokens.spans],
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
    frame = attention_frame(att, [tokens.text[a:b] for a, b in tokens.spans])
    frame.insert(3, "token_index", np.tile(np.arange(len(tokens)), att.shape[0] * att.shape[1]))
    return to_csv(frame.rename(columns={"key": "token"}))
