"""Records data quality (issue 13): one bad cell is set to missing and one bad row is left unscored, each a
``DataChange`` with its 1-based data row; only faults of the whole file refuse it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medai_core.errors import EmptyInput, InputError, TooLarge, UnsupportedFormat
from medai_core.io.changes import NOT_SCORED, SET_MISSING, DataChange
from medai_core.io.records import SchemaError, load_records, record_from_form
from medai_core.workspaces.records.samples import synthetic_records

GLUCOSE_RANGE = "outside the plausible range 5-2,000 mg/dL"


def _table(n: int = 4, **cells: tuple[int, object]) -> bytes:
    """``n`` synthetic records with ``column=(0-based row, raw value)`` written into the CSV as given."""
    df = synthetic_records(n, seed=5).astype(object)
    for col, (row, value) in cells.items():
        df.loc[row, col] = value
    return df.to_csv(index=False).encode()


def _change(row: int, field: str, value: str, reason: str, action: str = SET_MISSING) -> DataChange:
    return DataChange(row=row, field=field, at="", value=value, action=action, reason=reason)


CELLS = [
    ("implausible low", {"glucose": (0, "0")}, _change(1, "glucose", "0", GLUCOSE_RANGE)),
    ("implausible low decimal", {"glucose": (2, "1.4")}, _change(3, "glucose", "1.4", GLUCOSE_RANGE)),
    ("implausible high", {"alb": (1, "29")}, _change(2, "alb", "29", "outside the plausible range 0.3-10 g/dL")),
    ("negative", {"crea": (3, "-1")}, _change(4, "crea", "-1", "outside the plausible range 0.05-30 mg/dL")),
    ("unit without space", {"temp": (0, "99")}, _change(1, "temp", "99", "outside the plausible range 25-45 °C")),
    ("not a number", {"hrt": (1, "fast")}, _change(2, "hrt", "fast", "not a number")),
    ("decimal comma", {"sod": (0, "140,5")}, _change(1, "sod", "140,5", "not a number")),
    ("infinite", {"meanbp": (2, "inf")}, _change(3, "meanbp", "inf", "not a number")),
    ("binary not 0/1", {"diabetes": (0, "2")}, _change(1, "diabetes", "2", "not 0 (no) or 1 (yes)")),
    ("binary text", {"dementia": (1, "yes")}, _change(2, "dementia", "yes", "not a number")),
    ("bad category", {"sex": (0, "unknown")}, _change(1, "sex", "unknown", "not one of: female, male")),
    ("long value is shortened", {"ca": (0, "x" * 60)},
     _change(1, "ca", "x" * 39 + "…", "not one of: no, yes, metastatic")),
]


@pytest.mark.parametrize("name,cells,expected", CELLS, ids=[c[0] for c in CELLS])
def test_a_bad_cell_is_set_to_missing_and_listed(name, cells, expected):
    t = load_records(_table(**cells))
    assert t.changes == (expected,)
    value = t.frame.loc[expected.row - 1, expected.field]
    assert value is None or np.isnan(value)  # the learned "missing" embedding, never zero or a normal value
    assert t.scored_mask().all() and len(t) == 4
    # the rest of the row and of the column is untouched
    other = t.frame.drop(index=expected.row - 1)[expected.field]
    assert other.notna().any()


def test_blank_stays_blank_without_a_change():
    t = load_records(_table(glucose=(0, ""), sex=(1, ""), crea=(2, "NA")))
    assert t.changes == () and t.scored_mask().all()
    assert np.isnan(t.frame.loc[0, "glucose"]) and pd.isna(t.frame.loc[1, "sex"]) and np.isnan(t.frame.loc[2, "crea"])


def test_changes_come_in_row_then_schema_order():
    t = load_records(_table(glucose=(2, "0"), age=(2, "7"), sex=(0, "x")))
    assert [(c.row, c.field) for c in t.changes] == [(1, "sex"), (3, "age"), (3, "glucose")]
    assert t.row_changes(2) == t.changes[1:]


ROWS = [
    ("duplicate id", {"id": (1, "SYN-001")}, [
        _change(1, "id", "SYN-001", "the same id is on more than one row; each patient needs a unique id", NOT_SCORED),
        _change(2, "id", "SYN-001", "the same id is on more than one row; each patient needs a unique id", NOT_SCORED)]),
    ("blank id", {"id": (3, "")}, [_change(4, "id", "", "no id: the 'id' column is blank in this row", NOT_SCORED)]),
    ("too few core values", {c: (2, "") for c in ("age", "sex", "dzgroup", "num.co", "diabetes", "dementia", "ca",
                                                   "scoma", "sps")},
     [_change(3, "record", "7 of 16 core values", "too little to score: the model needs at least 8 of the 16 core "
              "fields (age to creatinine); it never saw records missing most of them", NOT_SCORED)]),
]


@pytest.mark.parametrize("name,cells,expected", ROWS, ids=[r[0] for r in ROWS])
def test_a_row_that_cannot_be_scored_is_kept_and_says_why(name, cells, expected):
    t = load_records(_table(**cells))
    assert list(t.changes) == expected and len(t) == 4
    unscored = {c.row - 1 for c in expected}
    assert [i for i in range(4) if not t.scored_mask()[i]] == sorted(unscored)
    assert all(t.not_scored_reason(i) for i in unscored)


def test_unscored_rows_have_no_risk_and_the_rest_are_scored():
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.records import pipeline as R

    t = load_records(_table(6, id=(1, "SYN-001"), glucose=(4, "0")))
    scores = R.score(load_model("support_ftt"), get_spec("support_ftt"), t)
    assert np.isnan(scores.risk[:2]).all() and scores.labels[:2] == ("", "")
    assert np.isfinite(scores.risk[2:]).all() and list(scores.scored) == [False, False, True, True, True, True]
    out = R.write_back(t, scores)
    assert out["warnings"].iloc[4] == "row 5, glucose = 0: set to missing (" + GLUCOSE_RANGE + ")"
    assert out["warnings"].iloc[0].startswith("row 1, id = SYN-001: not scored") and out["warnings"].iloc[3] == ""
    flags = R.quality_flags(t)
    assert flags[4] == "⚠ 1 value set aside (glucose)" and flags[0].startswith("⛔ not scored") and flags[3] == ""
    with pytest.raises(InputError, match="was not scored"):
        R.explain_record(load_model("support_ftt"), get_spec("support_ftt"), t, 0)


def test_form_row_with_too_little_is_kept_unscored_not_refused():
    t = record_from_form({"age": 70, "sex": "female"})
    assert len(t) == 1 and not t.scored_mask()[0] and t.changes[-1].action == NOT_SCORED


WHOLE_FILE = [
    ("empty", b"", EmptyInput, "empty"),
    ("header only", b"age,sex\n", EmptyInput, "no rows"),
    ("binary", b"\x00\x01binary", UnsupportedFormat, "not a text file"),
    ("no required columns", b"colour\nblue\n", SchemaError, "Missing required columns: age"),
    ("required column blank everywhere", synthetic_records(3).assign(sps="").to_csv(index=False).encode(), SchemaError,
     "'sps'.*empty in every row"),
    ("required column never usable", synthetic_records(3).assign(age="old").to_csv(index=False).encode(), SchemaError,
     "'age'.*must be a number.*no row has a usable value"),
    ("no row can be scored", synthetic_records(2).assign(id="A").to_csv(index=False).encode(), SchemaError,
     "No row can be scored: 2 rows not scored: the same id is on more than one row"),
]


@pytest.mark.parametrize("name,data,err,match", WHOLE_FILE, ids=[w[0] for w in WHOLE_FILE])
def test_faults_of_the_whole_file_still_refuse_it(name, data, err, match):
    with pytest.raises(err, match=match):
        load_records(data)


def test_row_limit_still_refuses(monkeypatch):
    import medai_core.io.records as io_records

    monkeypatch.setattr(io_records, "MAX_ROWS", 3)
    with pytest.raises(TooLarge, match="more than 3 rows"):
        load_records(_table(5))
