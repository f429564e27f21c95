"""Structured patient records: the published schema and the validating CSV/DataFrame loader.

The schema is the contract for uploads and ``records predict``: which columns the mortality model
reads, their units, normal ranges, and the plausible (hard) ranges outside which a value is an
error rather than a sick patient. The fields are those known on day 3 of a SUPPORT2 stay
(Knaus et al. 1995); outcome columns are never inputs (see the model card).

Blank cells are allowed everywhere: the model has a learned "missing" embedding per feature, so a
missing laboratory value is never silently replaced by zero or by a normal value.

A table is refused (``SchemaError``) only for what is wrong with the whole file: a required column
absent or without one usable value, duplicate columns, no row left to score. One bad cell (outside
its plausible range, not a number, an unknown category) is set to missing for that patient and one
bad row (blank or repeated id, too few core values) is kept unscored; each is a ``DataChange`` in
``RecordTable.changes``, shown wherever the results are.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medai_core.errors import EmptyInput, InputError, TooLarge
from medai_core.io.changes import NOT_SCORED, SET_MISSING, DataChange, range_text, shown_value, summarise
from medai_core.io.uploads import read_csv_strings, read_text

MAX_BYTES = 50 * 1024 * 1024
MAX_ROWS = 100_000
MAX_COLUMNS = 500
ID_COLUMN = "id"
# A row is scored only if at least this share of the required (core) fields has a usable value: the
# model saw every training record with nearly all of them (SUPPORT2 lacks at most 6 of 16, nearly always
# none; 10% more were hidden at random in training), so a record missing most of them is outside
# anything it learned and its "risk" would be the missing embeddings talking.
MIN_CORE_SHARE = 0.5
BLANK_TEXT = ["", "nan", "NaN", "NA", "N/A", "null", "None"]  # a cell with only this text is blank (missing)


class SchemaError(InputError):
    """A records table does not follow the schema; ``problems`` lists each one in plain words."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("The table does not follow the records schema:\n- " + "\n- ".join(self.problems))


@dataclass(frozen=True)
class Field:
    """One column of the schema.

    Attributes:
        name: column name in the CSV.
        label: human name.
        kind: "numeric", "binary" (0/1) or "categorical".
        unit: unit of numeric values ("" if none).
        required: the column must be present (values may still be blank).
        plausible: (low, high) hard limits; values outside are errors (impossible or mistyped).
        normal: (low, high) reference range shown to the user, or None.
        categories: allowed values of a categorical field.
        help: one line for the form.
    """

    name: str
    label: str
    kind: str
    unit: str = ""
    required: bool = True
    plausible: tuple[float, float] | None = None
    normal: tuple[float, float] | None = None
    categories: tuple[str, ...] = ()
    help: str = ""

    def plausible_text(self) -> str:
        """``20-1,200 mg/dL``: the plausible range as shown in reasons and on the form."""
        if self.plausible is None:
            return ""
        return range_text(*self.plausible, self.unit if not self.unit.startswith("(") else "")

    def describe(self, value: object) -> str:
        """``label = value unit`` as shown beside an attribution."""
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return f"{self.label}: missing"
        if self.kind == "numeric":
            v = float(value)
            txt = f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
            return f"{self.label} = {txt}{' ' + self.unit if self.unit else ''}"
        if self.kind == "binary":
            return f"{self.label}: {'yes' if float(value) >= 0.5 else 'no'}"
        return f"{self.label}: {value}"


DZGROUPS = ("ARF/MOSF w/Sepsis", "CHF", "COPD", "Lung Cancer", "MOSF w/Malig", "Coma", "Colon Cancer", "Cirrhosis")

SCHEMA: tuple[Field, ...] = (
    Field("age", "Age", "numeric", "years", plausible=(18, 110), help="Adults only (the training cohort)."),
    Field("sex", "Sex", "categorical", categories=("female", "male")),
    Field("dzgroup", "Disease group", "categorical", categories=DZGROUPS, help="SUPPORT2 primary disease group."),
    Field("num.co", "Number of comorbidities", "numeric", "", plausible=(0, 20), normal=(0, 0)),
    Field("diabetes", "Diabetes", "binary", plausible=(0, 1)),
    Field("dementia", "Dementia", "binary", plausible=(0, 1)),
    Field("ca", "Cancer", "categorical", categories=("no", "yes", "metastatic")),
    Field("scoma", "SUPPORT coma score", "numeric", "(0-100)", plausible=(0, 100), normal=(0, 0),
          help="Day 3, from the Glasgow coma scale; 0 = not in coma."),
    Field("sps", "SUPPORT physiology score", "numeric", "", plausible=(0, 110), help="Day 3."),
    Field("aps", "APACHE III physiology score", "numeric", "", plausible=(0, 200), help="Day 3."),
    Field("meanbp", "Mean arterial pressure", "numeric", "mmHg", plausible=(0, 250), normal=(70, 100)),
    Field("hrt", "Heart rate", "numeric", "/min", plausible=(0, 300), normal=(60, 100)),
    Field("resp", "Respiratory rate", "numeric", "/min", plausible=(0, 100), normal=(12, 20)),
    Field("temp", "Temperature", "numeric", "°C", plausible=(25, 45), normal=(36.1, 37.8)),
    Field("sod", "Sodium", "numeric", "mmol/L", plausible=(90, 200), normal=(135, 145)),
    Field("crea", "Creatinine", "numeric", "mg/dL", plausible=(0.05, 30), normal=(0.6, 1.3)),
    Field("wblc", "White blood cells", "numeric", "x10^9/L", required=False, plausible=(0, 500), normal=(4, 11)),
    Field("pafi", "PaO2/FiO2 ratio", "numeric", "mmHg", required=False, plausible=(10, 1000), normal=(400, 500)),
    Field("alb", "Albumin", "numeric", "g/dL", required=False, plausible=(0.3, 10), normal=(3.5, 5.0)),
    Field("bili", "Bilirubin", "numeric", "mg/dL", required=False, plausible=(0.05, 80), normal=(0.1, 1.2)),
    Field("ph", "Arterial pH", "numeric", "", required=False, plausible=(6.5, 8.0), normal=(7.35, 7.45)),
    Field("glucose", "Glucose", "numeric", "mg/dL", required=False, plausible=(5, 2000), normal=(70, 140)),
    Field("bun", "Blood urea nitrogen", "numeric", "mg/dL", required=False, plausible=(1, 300), normal=(7, 20)),
    Field("urine", "Urine output", "numeric", "mL/day", required=False, plausible=(0, 15000), normal=(800, 2000)),
)
FIELDS: dict[str, Field] = {f.name: f for f in SCHEMA}
FEATURES: tuple[str, ...] = tuple(f.name for f in SCHEMA)

# Columns of the source data a model must never read (outcomes, later measurements, model outputs,
# and fields left out on purpose); an upload may carry them, they are ignored with a notice.
EXCLUDED = {
    "hospdead": "the label", "death": "outcome", "d.time": "outcome", "slos": "outcome (length of stay)",
    "hday": "known only after admission day", "charges": "outcome", "totcst": "outcome", "totmcst": "outcome",
    "surv2m": "model output", "surv6m": "model output", "prg2m": "physician prognosis",
    "prg6m": "physician prognosis", "dnr": "decision during the stay", "dnrday": "decision during the stay",
    "sfdm2": "outcome", "adlp": "after day 3", "adls": "after day 3", "adlsc": "after day 3",
    "avtisst": "average over days 3-25 (leaks the future)",
    "dzclass": "a coarser copy of dzgroup", "race": "left out (fairness; not physiology)",
    "income": "left out (fairness; 33% missing)", "edu": "left out (socio-economic; 18% missing)",
}


@dataclass(frozen=True)
class RecordTable:
    """A validated table of records.

    Attributes:
        frame: one row per patient, exactly the schema's columns (blank = NaN / None), typed.
        ids: the patient identifiers (the ``id`` column, or row numbers 1..n).
        notices: things the user should know that are not errors (ignored columns, absent optional
            columns treated as missing).
        source: the original table (all columns, as read) for writing back with results.
        changes: every cell set to missing and every row left unscored, with its 1-based data row
            (row 1 is the first patient), in row order.
    """

    frame: pd.DataFrame
    ids: tuple[str, ...]
    notices: tuple[str, ...] = ()
    source: pd.DataFrame = field(default_factory=pd.DataFrame)
    changes: tuple[DataChange, ...] = ()

    def __len__(self) -> int:
        return len(self.frame)

    def scored_mask(self) -> np.ndarray:
        """(N,) bool: the rows to score (False for a row with a ``NOT_SCORED`` change)."""
        mask = np.ones(len(self.frame), dtype=bool)
        for c in self.changes:
            if c.action == NOT_SCORED and c.row is not None:
                mask[c.row - 1] = False
        return mask

    def row_changes(self, row: int) -> tuple[DataChange, ...]:
        """The changes of record ``row`` (0-based index into the table)."""
        return tuple(c for c in self.changes if c.row == row + 1)

    def not_scored_reason(self, row: int) -> str:
        """Why record ``row`` (0-based) was not scored; "" if it was."""
        return "; ".join(c.reason for c in self.row_changes(row) if c.action == NOT_SCORED)


def _rows(idx: pd.Index | np.ndarray, limit: int = 5) -> str:
    """Row numbers as the user sees them in a spreadsheet (header is row 1)."""
    nums = [int(i) + 2 for i in list(idx)[:limit]]
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return ", ".join(map(str, nums)) + more


def read_csv(data: bytes | str | Path) -> pd.DataFrame:
    """Read CSV bytes (or a path) into a DataFrame of strings; format errors become ``InputError``."""
    text = data if isinstance(data, str) else read_text(data, MAX_BYTES)
    if not text.strip():
        raise EmptyInput("The file is empty.")
    df = read_csv_strings(text, MAX_ROWS + 1, skipinitialspace=True)
    df = df.where(df != "", np.nan)  # blank = missing
    if df.shape[1] > MAX_COLUMNS:
        raise TooLarge(f"The table has {df.shape[1]} columns; the limit is {MAX_COLUMNS}.")
    if len(df) > MAX_ROWS:
        raise TooLarge(f"The table has more than {MAX_ROWS:,} rows; split it into smaller files.")
    if len(df) == 0:
        raise EmptyInput("The table has a header but no rows.")
    return df


def _normalise_columns(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.columns = [str(c).strip() for c in df.columns]
    return df


def validate_records(df: pd.DataFrame, *, require_all: bool = False, from_form: bool = False) -> RecordTable:
    """Check a table against the schema and return typed features.

    Args:
        df: the uploaded table (any dtypes; strings are parsed).
        require_all: treat optional columns as required (not used by the app; for strict callers).
        from_form: one record typed in a form: any field may be blank (an upload must give each
            required column at least one value).

    Returns:
        The typed table; ``changes`` lists every cell set to missing (outside its plausible range,
        not a number, not an allowed category) and every row left unscored (blank or repeated id,
        fewer than ``MIN_CORE_SHARE`` of the core fields), each with its 1-based data row.

    Raises:
        SchemaError: what is wrong with the whole table, each problem listed (missing or duplicated
            columns, a required column with no usable value in any row, no row left to score).
        EmptyInput: no rows.
    """
    if df is None or len(df) == 0:
        raise EmptyInput("The table has no rows.")
    if len(df) > MAX_ROWS:
        raise TooLarge(f"The table has {len(df):,} rows; the limit is {MAX_ROWS:,}.")
    df = _normalise_columns(df).reset_index(drop=True)
    problems: list[str] = []
    notices: list[str] = []
    dup_cols = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dup_cols:
        raise SchemaError([f"Columns appear more than once: {', '.join(dup_cols)}."])

    missing_req = [f.name for f in SCHEMA if (f.required or require_all) and f.name not in df.columns]
    if missing_req:
        problems.append(f"Missing required columns: {', '.join(missing_req)}.")
    absent_opt = [f.name for f in SCHEMA if not f.required and not require_all and f.name not in df.columns]
    if absent_opt:
        notices.append(f"Optional columns not in the file, treated as missing for every patient: {', '.join(absent_opt)}.")
    extra = [c for c in df.columns if c not in FIELDS and c != ID_COLUMN]
    if extra:
        leak = [c for c in extra if c in EXCLUDED]
        more = f" and {len(extra) - 12} more" if len(extra) > 12 else ""
        msg = f"Ignored columns (not model inputs): {', '.join(extra[:12])}{more}."
        if leak:
            msg += f" {len(leak)} of them are outcomes or fields left out on purpose (see the model card); they are never read."
        notices.append(msg)

    # Column by column on numpy arrays: the same checks as pandas Series operations made per column, without
    # their fixed cost (~55 ms for any table before, most of a 20-record upload's page run; issue 18).
    cols: dict[str, pd.Series] = {}
    cells: list[tuple[int, int, DataChange]] = []  # (row index, schema position, change) for sorting
    for j, f in enumerate(SCHEMA):
        if f.name not in df.columns:
            cols[f.name] = pd.Series(np.nan if f.kind != "categorical" else None, index=df.index,
                                     dtype=float if f.kind != "categorical" else object)
            continue
        raw = df[f.name].to_numpy(dtype=object)
        text = np.array(["" if na else str(v).strip() for v, na in zip(raw, pd.isna(raw))], dtype=object)
        blank = pd.isna(raw) | np.isin(text, BLANK_TEXT)
        if blank.all():
            if f.required and not from_form:
                problems.append(f"Column {f.name!r} ({f.label}) is empty in every row; it is required: "
                                f"give its values (blank cells are allowed in some rows, not in all).")
            else:
                if not from_form:  # the form shows "missing" in the field itself
                    notices.append(f"Column {f.name!r} ({f.label}) is empty in every row: treated as missing.")
                cols[f.name] = pd.Series(np.nan, index=df.index, dtype=float)
            continue
        col_problems: list[str] = []  # what refuses the file if no cell of a required column is usable
        set_aside: list[tuple[np.ndarray, str]] = []  # (mask, reason)
        if f.kind == "categorical":
            allowed = {c.lower(): c for c in f.categories}
            known = np.array([allowed.get(t.lower()) for t in text], dtype=object)
            bad = ~blank & pd.isna(known)
            if bad.any():
                shown = sorted({str(v) for v in raw[bad]})[:5]
                col_problems.append(f"Column {f.name!r}: unknown values {shown} in rows {_rows(np.flatnonzero(bad))}; "
                                    f"allowed: {', '.join(f.categories)}.")
                set_aside.append((bad, f"not one of: {', '.join(f.categories)}"))
            known[blank | bad] = None
            cols[f.name] = pd.Series(known, index=df.index, dtype="str")
        else:
            parsed = pd.to_numeric(np.where(blank, np.nan, raw) if blank.any() else raw, errors="coerce")
            num = np.asarray(parsed, dtype=float)  # ``parsed`` keeps integers integral in the messages
            wrong = ~np.isfinite(num) & ~blank  # text, or inf (never a measurement)
            if wrong.any():
                shown = sorted({str(v) for v in raw[wrong]})[:5]
                col_problems.append(f"Column {f.name!r} ({f.label}) must be a number; got {shown} in rows "
                                    f"{_rows(np.flatnonzero(wrong))}.")
                set_aside.append((wrong, "not a number"))
            ok = ~np.isnan(num) & ~wrong
            if f.kind == "binary":
                badb = ok & ~np.isin(num, [0, 1])
                if badb.any():
                    col_problems.append(f"Column {f.name!r} ({f.label}) must be 0 or 1; rows {_rows(np.flatnonzero(badb))}.")
                    set_aside.append((badb, "not 0 (no) or 1 (yes)"))
            elif f.plausible is not None:
                lo, hi = f.plausible
                oor = ok & ((num < lo) | (num > hi))
                if oor.any():
                    col_problems.append(f"Column {f.name!r} ({f.label}) outside the plausible range {lo:g}-{hi:g}"
                                        f"{' ' + f.unit if f.unit else ''} in rows {_rows(np.flatnonzero(oor))} "
                                        f"(values {sorted(set(np.round(parsed[oor], 3).tolist()))[:5]}).")
                    set_aside.append((oor, f"outside the plausible range {f.plausible_text()}"))
            keep = ok.copy()
            for mask, _ in set_aside:
                keep &= ~mask
            cols[f.name] = pd.Series(np.where(keep, num, np.nan), index=df.index, dtype=float)
        usable = ~blank
        for mask, _ in set_aside:
            usable &= ~mask
        if f.required and not from_form and not usable.any():
            problems.extend(p[:-1] + "; no row has a usable value and the column is required." for p in col_problems)
            continue
        for mask, reason in set_aside:
            for i in np.flatnonzero(mask):
                cells.append((int(i), j, DataChange(row=int(i) + 1, field=f.name, at="", value=shown_value(raw[i]),
                                                    action=SET_MISSING, reason=reason)))
    out = pd.DataFrame(cols, index=df.index)

    rows_out: list[tuple[int, int, DataChange]] = []  # unscored rows sort after their cells
    if ID_COLUMN in df.columns:
        ids = df[ID_COLUMN].astype(str).str.strip()
        blank_id = df[ID_COLUMN].isna() | (ids == "")
        for i in np.flatnonzero(blank_id.to_numpy()):
            rows_out.append((int(i), len(SCHEMA), DataChange(int(i) + 1, ID_COLUMN, "", "", NOT_SCORED,
                                                             "no id: the 'id' column is blank in this row")))
        dup = ids.duplicated(keep=False) & ~blank_id
        if dup.any():
            where: dict[str, list[int]] = {}
            for i in np.flatnonzero(dup.to_numpy()):
                where.setdefault(ids.iloc[i], []).append(int(i))
            for same in where.values():  # which of them is the patient is unknown: none is scored
                for i in same:
                    rows_out.append((i, len(SCHEMA), DataChange(
                        i + 1, ID_COLUMN, "", shown_value(ids.iloc[i]), NOT_SCORED,
                        "the same id is on more than one row; each patient needs a unique id")))
        id_list = tuple(ids.where(~blank_id, "").tolist())
        id_list = tuple(v if v else f"(row {k + 1})" for k, v in enumerate(id_list))
    else:
        id_list = tuple(str(i + 1) for i in range(len(df)))
    if problems:
        raise SchemaError(problems)

    core = [f.name for f in SCHEMA if f.required]
    need = int(np.ceil(MIN_CORE_SHARE * len(core)))
    given = out[core].notna().sum(axis=1).to_numpy()
    for i in np.flatnonzero(given < need):
        rows_out.append((int(i), len(SCHEMA) + 1, DataChange(
            int(i) + 1, "record", "", f"{given[i]} of {len(core)} core values", NOT_SCORED,
            f"too little to score: the model needs at least {need} of the {len(core)} core fields "
            "(age to creatinine); it never saw records missing most of them")))
    changes = tuple(c for *_, c in sorted(cells + rows_out, key=lambda t: (t[0], t[1])))
    table = RecordTable(frame=out, ids=id_list, notices=tuple(notices), source=df, changes=changes)
    if not from_form and not table.scored_mask().any():
        raise SchemaError(["No row can be scored: " + "; ".join(summarise([c for c in changes if c.action == NOT_SCORED]))
                           + "."])
    return table


def load_records(data: bytes | str | Path | pd.DataFrame) -> RecordTable:
    """Read and validate a records table (CSV bytes, a path, or a DataFrame).

    Raises:
        InputError: unreadable file, or a ``SchemaError`` listing every schema problem.
    """
    df = data if isinstance(data, pd.DataFrame) else read_csv(data)
    return validate_records(df)


def record_from_form(values: dict[str, object]) -> RecordTable:
    """One record from a form (``None`` = missing) validated like an upload."""
    row = {f.name: values.get(f.name) for f in SCHEMA}
    df = pd.DataFrame([{k: ("" if v is None else v) for k, v in row.items()}])
    df = df.replace({"": np.nan})
    return validate_records(df, from_form=True)


def schema_table() -> pd.DataFrame:
    """The published schema as a table (for the page, the README and ``records schema``)."""
    rows = []
    for f in SCHEMA:
        rows.append({
            "column": f.name, "meaning": f.label, "type": f.kind, "unit": f.unit,
            "required": "yes" if f.required else "optional",
            "allowed": (", ".join(f.categories) if f.categories else
                        (f"{f.plausible[0]:g} to {f.plausible[1]:g}" if f.plausible else "")),
            "normal range": (f"{f.normal[0]:g}" if f.normal and f.normal[0] == f.normal[1] else
                             f"{f.normal[0]:g}-{f.normal[1]:g}" if f.normal else ""),
        })
    return pd.DataFrame(rows)
