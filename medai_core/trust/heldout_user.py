"""A user model folder's held-out results: ``heldout.csv`` (README, "Your own model").

The file has a header ``label,<label 1>,<label 2>,...``: column ``label`` holds each held-out case's true label
(one of the manifest's labels) and there is one column per manifest label with the model's probability of that
label as MedAI shows it (after the manifest's temperature). Other columns are ignored. A row with an unknown
label or a missing, non-numeric or out-of-[0, 1] probability is set aside and counted, never silently: the
``HeldOut``'s ``meta`` lists it (row, column, value). The file is refused only for what is wrong with all of it:
no ``label`` column or no column for a label, fewer than ``MIN_ROWS`` usable rows, a single class.

Pure (the csv module and numpy), and below ``heldout`` (which imports it): ``heldout.load_heldout`` builds from the
table the same ``HeldOut`` as the shipped image models' ``assets/<model>.heldout.json``.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np

HELDOUT_CSV = "heldout.csv"
LABEL_COLUMN = "label"
MIN_ROWS = 10
NO_HELDOUT = "No held-out data supplied"


class HeldOutCsvError(ValueError):
    """A ``heldout.csv`` that cannot be used as a whole (``load_heldout`` raises it as a ``HeldOutError``)."""


@dataclass(frozen=True)
class HeldOutTable:
    """The usable rows of a ``heldout.csv``.

    Attributes:
        class_probs: (n, K) float, each label's probability, in the manifest's label order.
        y: (n,) int, the true label's index.
        n_rows: data rows in the file.
        set_aside: one line per row set aside: "row 7: column 'malignant' value 'abc' is not a number".
    """

    class_probs: np.ndarray
    y: np.ndarray
    n_rows: int
    set_aside: tuple[str, ...]


def parse_heldout_csv(data: bytes | str, labels: tuple[str, ...] | list[str]) -> HeldOutTable:
    """The usable rows of a ``heldout.csv`` (its bytes or text) for a model with ``labels``.

    Rows are numbered as in a spreadsheet: the header is row 1, the first case row 2.

    Raises:
        HeldOutCsvError: unreadable text, no ``label`` column or no column for a label, fewer than ``MIN_ROWS``
            usable rows, or only one class among them.
    """
    labels = tuple(labels)
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.lstrip("\ufeff")
        rows = list(csv.reader(io.StringIO(text)))
    except UnicodeDecodeError:
        raise HeldOutCsvError(f"{HELDOUT_CSV} is not UTF-8 text; save it as a UTF-8 CSV.") from None
    except csv.Error as exc:
        raise HeldOutCsvError(f"{HELDOUT_CSV} cannot be read as CSV ({exc}).") from None
    if not rows:
        raise HeldOutCsvError(f"{HELDOUT_CSV} is empty.")
    header = [c.strip() for c in rows[0]]
    missing = [c for c in (LABEL_COLUMN, *labels) if c not in header]
    if missing:
        raise HeldOutCsvError(f"{HELDOUT_CSV} has no column {', '.join(map(repr, missing))}; its header must be "
                              f"'{LABEL_COLUMN},{','.join(labels)}' (the true label, then each label's probability).")
    at = {c: header.index(c) for c in (LABEL_COLUMN, *labels)}
    probs, y, aside, n_rows = [], [], [], 0
    for row_no, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue  # blank line
        n_rows += 1
        why = _check_row(row, at, labels)
        if why is None:
            probs.append([float(row[at[lab]]) for lab in labels])
            y.append(labels.index(row[at[LABEL_COLUMN]].strip()))
        else:
            aside.append(f"row {row_no}: {why}")
    if len(y) < MIN_ROWS:
        first = f" Set aside: {'; '.join(aside[:3])}{' ...' if len(aside) > 3 else ''}." if aside else ""
        raise HeldOutCsvError(f"{HELDOUT_CSV} has {len(y)} usable row(s) of {n_rows}; the reliability panel needs at "
                              f"least {MIN_ROWS}.{first}")
    if len(set(y)) < 2:
        raise HeldOutCsvError(f"{HELDOUT_CSV}: every usable row has the label {labels[y[0]]!r}; sensitivity and "
                              "specificity need held-out cases of at least two classes.")
    return HeldOutTable(np.asarray(probs, dtype=float), np.asarray(y, dtype=int), n_rows, tuple(aside))


def _check_row(row: list[str], at: dict[str, int], labels: tuple[str, ...]) -> str | None:
    """Why a data row cannot be used (None: it can)."""
    cell = [c.strip() for c in row]
    true = cell[at[LABEL_COLUMN]] if at[LABEL_COLUMN] < len(cell) else ""
    if true not in labels:
        return f"label {true[:30]!r} is not one of {', '.join(labels)}"
    for lab in labels:
        v = cell[at[lab]] if at[lab] < len(cell) else ""
        if v == "":
            return f"column {lab!r} is empty"
        try:
            f = float(v)
        except ValueError:
            return f"column {lab!r} value {v[:30]!r} is not a number"
        if not (math.isfinite(f) and 0.0 <= f <= 1.0):
            return f"column {lab!r} value {v[:30]!r} is outside [0, 1]"
    return None
