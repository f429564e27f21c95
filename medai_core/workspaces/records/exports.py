"""CSV exports of a record's attributions and attention (see ``medai_core.report.csv``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from medai_core.errors import InputError
from medai_core.explain.base import Explanation
from medai_core.report.csv import CLS_TOKEN, attention_frame, to_csv


def record_attributions_csv(exp: Explanation, values: dict[str, object] | None = None) -> bytes:
    """One row per schema feature, in schema order: ``feature, label, value, attribution``.

    Args:
        exp: a record explanation (attributions: one per feature of the records schema).
        values: the record's feature values (``RecordTable.frame.iloc[row].to_dict()``), or None to
            leave the value column blank. Keys outside the schema (an id column) are ignored.
    """
    from medai_core.io.records import SCHEMA

    a = np.asarray(exp.attributions, dtype=np.float64).ravel()
    if len(a) != len(SCHEMA):
        raise InputError(f"Expected {len(SCHEMA)} feature attributions; got {len(a)}.")
    vals = values or {}
    return to_csv(pd.DataFrame({
        "feature": [f.name for f in SCHEMA], "label": [f.label for f in SCHEMA],
        "value": [vals.get(f.name) for f in SCHEMA], "attribution": a}))


def record_attention_csv(attention: np.ndarray) -> bytes:
    """Attention of the records transformer: ``layer, head, query, key, weight``.

    Args:
        attention: ``records.attention`` (layers, heads, features): the CLS token's row, query "[CLS]";
            or ``records.attention_matrix`` stacked over layers (layers, heads, 1 + F, 1 + F): every
            token's row, token 0 being "[CLS]". Both are small (24 features).
    """
    from medai_core.io.records import FEATURES

    att = np.asarray(attention)
    names = list(FEATURES) if att.ndim == 3 else [CLS_TOKEN, *FEATURES]
    return to_csv(attention_frame(att, names))
