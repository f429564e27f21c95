"""Session isolation: two sessions of the same server process (shared model and decode caches) never
see each other's uploads or results."""
from __future__ import annotations

import numpy as np

from medai_core.workspaces.records.samples import synthetic_records
from tests.conftest import make_dicom, open_page, speckle_image

FAKE_NAME = "Leakcheck^Zebediah"


def _texts(at) -> str:  # noqa: ANN001 - AppTest
    """Everything a session renders as text (markdown, captions, metrics, tables, errors, info)."""
    parts = []
    for kind in ("markdown", "caption", "metric", "info", "warning", "error", "success", "text", "subheader"):
        for el in getattr(at, kind):
            parts.append(str(getattr(el, "value", "")) + " " + str(getattr(el, "label", "")))
    for df in at.dataframe:
        parts.append(df.value.to_csv())
    return "\n".join(parts)


def test_imaging_sessions_do_not_share_uploads_or_results():
    a, b = open_page("imaging", 120), open_page("imaging", 120)
    dcm = make_dicom((speckle_image(11) * 255).astype(np.uint8), patient_name=FAKE_NAME)
    a.sidebar.file_uploader[0].upload("alice_scan.dcm", dcm, "application/dicom")
    a.run()
    assert not a.exception and a.metric or any("Prediction" in m.value for m in a.markdown)
    b.run()
    seen = _texts(b)
    assert not b.metric and "alice_scan" not in seen and "Leakcheck" not in seen
    assert not b.get("plotly_chart")  # no scan, no overlay, no probabilities
    assert "ui.jobs" not in b.session_state  # no background explanation jobs either

    # B uploads the same bytes: it gets its own result (decode cache is keyed by content), and A's
    # session state (jobs, selections) stays A's
    b.sidebar.file_uploader[0].upload("bob.dcm", dcm, "application/dicom")
    b.run()
    assert not b.exception
    jobs_a, jobs_b = a.session_state["ui.jobs"], b.session_state["ui.jobs"]
    assert jobs_a is not jobs_b and {id(j) for j in jobs_a.values()}.isdisjoint({id(j) for j in jobs_b.values()})
    assert "Leakcheck" not in _texts(b) and "Leakcheck" not in _texts(a)  # identifiers hidden by default


def test_records_sessions_do_not_share_tables():
    a, b = open_page("records", 120), open_page("records", 120)
    df = synthetic_records(5)
    df["id"] = [f"alice-{i}" for i in range(5)]
    a.radio(key="records.source").set_value("Upload a CSV").run()
    a.file_uploader(key="records.upload").upload("alice.csv", df.to_csv(index=False).encode(), "text/csv")
    a.run()
    assert not a.exception and "alice-0" in _texts(a)
    b.radio(key="records.source").set_value("Upload a CSV").run()
    assert not b.exception and "alice-" not in _texts(b)
    assert not any("Risk for" in h.value for h in b.subheader)
