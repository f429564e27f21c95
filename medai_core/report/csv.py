"""CSV exports of attributions and attention weights, one pure function per workspace and kind.

Each returns UTF-8 CSV bytes (a header row, then one row per value; nothing written to disk) that
``pandas.read_csv`` reads back to the arrays the explanation holds. Floats are written with 10
significant digits. No patient identifiers are written: record exports hold the schema's features
only (never the id column), series exports give elapsed minutes (never the upload's real timestamps),
and note exports hold the note's words, which are the explanation itself; a note may contain names,
so treat a note export like the note.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from medai_core.errors import InputError

FLOAT_FORMAT = "%.10g"
CLS_TOKEN = "[CLS]"


def to_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n").encode("utf-8")


def attention_frame(att: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
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
