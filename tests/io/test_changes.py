"""DataChange: what MedAI changed in the user's data, as the panel, the CLIs and the reports show it."""
from __future__ import annotations

import io
import zipfile
from datetime import datetime, timezone

import pandas as pd
from pypdf import PdfReader

from medai_core.io.changes import (DROPPED, MAX_VALUE_CHARS, NOT_SCORED, SET_MISSING, DataChange, changes_table,
                                   rows_with_changes, shown_value, summarise)
from medai_core.report import CaseReport, build_pdf, report_zip

GLUCOSE = DataChange(3, "glucose", "", "0", SET_MISSING, "outside the plausible range 20-1,200 mg/dL")
HR = DataChange(None, "HR", "03:15", "0", DROPPED, "outside the plausible range 20-300 /min")


def test_text_and_json_name_only_what_applies():
    assert GLUCOSE.text() == "row 3, glucose = 0: set to missing (outside the plausible range 20-1,200 mg/dL)"
    assert HR.text() == "HR, at 03:15 = 0: dropped (outside the plausible range 20-300 /min)"
    assert GLUCOSE.to_json() == {"row": 3, "field": "glucose", "value": "0", "action": "set to missing",
                                 "reason": "outside the plausible range 20-1,200 mg/dL"}
    assert "row" not in HR.to_json() and HR.to_json()["at"] == "03:15"


def test_values_are_shortened():
    v = shown_value("x" * 100)
    assert len(v) == MAX_VALUE_CHARS and v.endswith("…")
    assert shown_value("  1.4 ") == "1.4"


def test_summary_counts_per_field_and_reason_most_frequent_first():
    more = [GLUCOSE, DataChange(9, "glucose", "", "1.4", SET_MISSING, GLUCOSE.reason), HR,
            DataChange(5, "text", "", "(empty)", NOT_SCORED, "the note is empty")]
    lines = summarise(more)
    assert lines[0] == "glucose: 2 values set to missing (outside the plausible range 20-1,200 mg/dL)"
    assert "1 row not scored: the note is empty" in lines
    assert "HR: 1 reading dropped (outside the plausible range 20-300 /min)" in lines
    assert rows_with_changes(more) == {3: [GLUCOSE], 9: [more[1]], 5: [more[3]]}
    header, rows = changes_table(more)
    assert header == ("row", "field", "time", "value", "action", "reason") and rows[2][:3] == ("", "HR", "03:15")


def _report(changes: tuple[DataChange, ...]) -> CaseReport:
    return CaseReport("Records", "support_ftt", "A model.", "Decision support.", datetime(2026, 12, 2, tzinfo=timezone.utc),
                      {}, {"Rows": "2"}, "risk 12%", data_changes=changes)


def _text(pdf: bytes) -> str:
    return " ".join((p.extract_text() or "") for p in PdfReader(io.BytesIO(pdf)).pages)


def test_report_lists_the_changes_and_the_zip_carries_all_of_them():
    many = tuple(DataChange(i + 1, "albumin", "", "29", SET_MISSING, "outside the plausible range 0.5-9 g/dL")
                 for i in range(45))
    text = _text(build_pdf(_report(many)))
    assert "What we changed in your data" in text and "albumin: 45 values set to missing" in text
    assert "and 5 more" in text
    z = zipfile.ZipFile(io.BytesIO(report_zip(_report(many))))
    frame = pd.read_csv(z.open("data_changes.csv"))
    assert len(frame) == 45 and list(frame.columns) == ["row", "field", "time", "value", "action", "reason"]


def test_report_says_when_nothing_was_changed():
    text = _text(build_pdf(_report(())))
    assert "What we changed in your data" in text and "Nothing: every value was used as it was uploaded" in text
    assert "data_changes.csv" not in zipfile.ZipFile(io.BytesIO(report_zip(_report(())))).namelist()
