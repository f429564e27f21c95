"""AppTest of the Records page: both tabs, uploads, bad files, form, attributions and attention."""
from __future__ import annotations

import time

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES
from medai_core.workspaces.records.samples import synthetic_records
from tests.conftest import ROOT, open_page, run_sanity_toggle

APP = str(ROOT / "app.py")


def _records() -> AppTest:
    return open_page("records", 180)


def _charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def test_form_scores_one_patient_with_attributions_and_attention():
    at = _records()
    assert not at.error
    metric = at.metric[0]
    assert "risk of in-hospital death" in metric.label and metric.value.endswith("%")
    assert any("Shapley value sampling in" in c.value for c in at.caption)
    assert len(_charts(at)) >= 4  # risk, attributions, attention bar, heatmap
    # marking a value missing is allowed and changes nothing but that feature
    at.number_input(key="records.form.crea").set_value(None)
    at.button[0].click().run()
    assert not at.exception and not at.error


def test_batch_upload_table_download_and_global_importance():
    at = _records()
    at.radio(key="records.source").set_value("Upload a CSV").run()
    data = synthetic_records(6, seed=4).to_csv(index=False).encode()
    at.file_uploader(key="records.upload").upload("batch.csv", data, "text/csv")
    at.run()
    assert not at.exception and not at.error
    assert any("Risk for 6 patients" in h.value for h in at.subheader)
    assert any("Global importance" in h.value for h in at.subheader)
    at.selectbox(key="records.row").set_value(3).run()
    assert "SYN-004" in at.metric[0].label
    at.radio(key="records.method").set_value("integrated_gradients").run()
    assert any("convergence delta" in c.value for c in at.caption)
    at.selectbox(key="records.layer").set_value(0).run()
    at.selectbox(key="records.head").set_value(2).run()
    assert not at.exception


@pytest.mark.parametrize("data,expect", [
    (b"", "empty"),
    (b"age,sex\n70,female\n", "Missing required columns"),
    (synthetic_records(3).assign(age="old").to_csv(index=False).encode(), "must be a number"),
    (b"\x00\x01binary", "not a text file"),
])
def test_bad_record_uploads_get_clear_messages(data, expect):
    at = _records()
    at.radio(key="records.source").set_value("Upload a CSV").run()
    at.file_uploader(key="records.upload").upload("bad.csv", data, "text/csv")
    at.run()
    assert not at.exception
    assert any(expect in e.value for e in at.error), [e.value for e in at.error]


def test_notes_demo_paste_and_csv_upload():
    at = _records()
    at.radio(key="notes.source").set_value("Synthetic demo note").run()
    assert not at.exception and not at.error
    assert any("Which words argue for" in h.value for h in at.subheader)
    assert any("<span" in m.value for m in at.markdown)  # inline highlights
    at.radio(key="notes.source").set_value("Paste text").run()
    at.text_area(key="notes.text").input(SYNTHETIC_NOTES["Chest pain consult (synthetic)"] * 30).run()
    assert not at.exception and not at.error
    assert any("windows" in w.value for w in at.warning)  # a long note says how it is read
    at.radio(key="notes.source").set_value("Upload .txt / .csv").run()
    csv = ("id,text\n" + "\n".join(f'n{i},"{t}"' for i, t in enumerate(SYNTHETIC_NOTES.values()))).encode()
    at.file_uploader(key="notes.upload").upload("notes.csv", csv, "text/csv")
    at.run()
    assert not at.exception and not at.error
    at.selectbox(key="notes.pick").set_value(2).run()
    at.selectbox(key="notes.layer").set_value(0).run()
    assert not at.exception


def test_bad_note_upload_gets_message():
    at = _records()
    at.radio(key="notes.source").set_value("Upload .txt / .csv").run()
    at.file_uploader(key="notes.upload").upload("notes.csv", b"author,body\nme,hello\n", "text/csv")
    at.run()
    assert not at.exception
    assert any("'text' column" in e.value for e in at.error)


def test_sanity_check_of_record_and_note_attributions():
    at = _records()
    boxes = run_sanity_toggle(at)
    assert not at.exception and any("Randomisation check" in v for v in boxes)
    assert "records.sanity.maps" in {c.key for c in _charts(at)}
    at.radio(key="notes.source").set_value("Synthetic demo note").run()
    toggles = [t for t in at.toggle if t.label == "Sanity check of this map"]
    assert len(toggles) == 2  # records tab (on) and notes tab
    toggles[1].set_value(True).run()
    deadline = time.time() + 120
    while "notes.sanity.maps" not in {c.key for c in _charts(at)} and time.time() < deadline:
        time.sleep(0.3)
        at.run()
    assert not at.exception and "notes.sanity.maps" in {c.key for c in _charts(at)}


def _results(at: AppTest) -> pd.DataFrame:
    """The batch results table (the one with a "data quality" column)."""
    return next(d.value for d in at.dataframe if "data quality" in d.value.columns)


def _upload(at: AppTest, df: pd.DataFrame) -> None:
    at.radio(key="records.source").set_value("Upload a CSV").run()
    at.file_uploader(key="records.upload").upload("batch.csv", df.to_csv(index=False).encode(), "text/csv")
    at.run()


def test_impossible_glucose_is_set_aside_listed_and_flagged_with_every_row_scored():
    at = _records()
    df = synthetic_records(6, seed=4).astype(object)
    df.loc[2, "glucose"] = "0"
    _upload(at, df)
    assert not at.exception and not at.error
    panel = [e for e in at.expander if e.label.startswith("What we changed in your data")]
    assert [e.label for e in panel] == ["What we changed in your data: 1 value set aside"]
    assert any("glucose: 1 value set to missing (outside the plausible range" in m.value for m in panel[0].markdown)
    results = _results(at)
    assert list(results.columns) == ["id", "risk", "label", "data quality"]
    assert results["risk"].notna().all() and len(results) == 6  # every row scored
    assert results["data quality"].tolist() == ["", "", "⚠ 1 value set aside (glucose)", "", "", ""]
    at.selectbox(key="records.row").set_value(2).run()
    assert not at.exception and at.metric[0].value.endswith("%")
    assert any("1 value set aside (glucose)" in w.value for w in at.warning)  # beside the risk metric


def test_unscored_row_shows_no_risk_and_why_without_crashing():
    at = _records()
    df = synthetic_records(5, seed=4).astype(object)
    df.loc[1, "id"] = "SYN-001"  # rows 1 and 2 share an id: neither is scored
    _upload(at, df)
    assert not at.exception and not at.error
    assert at.selectbox(key="records.row").value == 2  # the first scored patient is chosen
    results = _results(at)
    assert results["risk"].isna().tolist() == [True, True, False, False, False]
    assert results["data quality"].iloc[0].startswith("⛔ not scored: the same id is on more than one row")
    at.selectbox(key="records.row").set_value(0).run()
    assert not at.exception and at.metric[0].value == "no risk"
    assert any("was not scored" in w.value for w in at.warning)
    assert any("Global importance" in h.value for h in at.subheader)  # the batch view still works


def test_form_shows_the_plausible_range_and_refuses_an_impossible_value():
    at = _records()
    glucose = at.number_input(key="records.form.glucose")
    assert "Accepted: 5-2,000 mg/dL" in glucose.help and glucose.min == 5 and glucose.max == 2000
    at.number_input(key="records.form.age").set_value(7.0)  # below 18: the widget keeps its previous value
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert at.number_input(key="records.form.age").value >= 18
    assert any("nothing" in e.label for e in at.expander if e.label.startswith("What we changed in your data"))


def test_notes_csv_with_an_empty_row_lists_it_and_classifies_the_rest():
    at = _records()
    at.radio(key="notes.source").set_value("Upload .txt / .csv").run()
    notes = list(SYNTHETIC_NOTES.values())[:2]
    csv = f'id,text\nn1,"{notes[0]}"\nn2,""\nn3,"{notes[1]}"\n'.encode()
    at.file_uploader(key="notes.upload").upload("notes.csv", csv, "text/csv")
    at.run()
    assert not at.exception and not at.error
    panel = [e for e in at.expander if e.label.startswith("What we changed in your data")]
    assert any(e.label == "What we changed in your data: 1 row set aside" for e in panel), [e.label for e in panel]
    table = next(d.value for d in at.dataframe if "reason" in getattr(d.value, "columns", []))
    assert table["row"].tolist() == ["2"] and table["action"].tolist() == ["not scored"]
    classified = next(d.value for d in at.dataframe if "specialty" in getattr(d.value, "columns", []))
    assert len(classified) == 2  # the two readable notes are classified


def test_global_importance_is_computed_only_when_its_expander_is_opened():
    """A lazy panel: the batch attribution (up to 200 records) runs when the user opens it, not on every upload."""
    at = _records()
    at.radio(key="records.source").set_value("Upload a CSV").run()
    at.file_uploader(key="records.upload").upload("batch.csv", synthetic_records(6, seed=4).to_csv(index=False).encode(),
                                                  "text/csv")
    at.run()
    assert "records.global" not in {c.key for c in _charts(at)}
    at.session_state["records.global.open"] = True  # what opening the expander sends
    at.run()
    assert not at.exception
    assert "records.global" in {c.key for c in _charts(at)}
