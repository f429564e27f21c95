"""No identifier reaches the audit trail: the app's pages, driven without a browser (AppTest), with the leakage
test's planted markers in a DICOM (patient name and ID), a file name, a records CSV's ids and a note's text, write
to a real PostgreSQL; afterwards every row of every table is read back and searched for the markers."""
from __future__ import annotations

import time

from medai_core.audit import open_store
from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES
from medai_core.workspaces.records.samples import synthetic_records
from tests.audit.dump import dump_tables, leaked
from tests.conftest import make_dicom, open_page, speckle_image
from tests.e2e.test_leakage import MARKERS, NAME, NOTE_MARK, PID, RECORD_MARK
from tests.support.postgres import postgres_url  # noqa: F401  (fixture)


def _wait(at, what: str, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(what in c.value for c in at.caption):
            return
        time.sleep(0.3)
        at.run()
    raise AssertionError(f"{what!r} did not appear")


def test_pages_write_no_identifier_to_postgresql(monkeypatch, postgres_url):  # noqa: F811 - the fixture
    import sqlalchemy as sa

    url = postgres_url.rsplit("/", 1)[0] + "/leakcheck"
    admin = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE IF EXISTS leakcheck"))
        conn.execute(sa.text("CREATE DATABASE leakcheck"))
    admin.dispose()
    monkeypatch.setenv("MEDAI_AUDIT_URL", url)

    at = open_page("imaging", 180)
    dcm = make_dicom(speckle_image(3), patient_name=NAME).replace(b"MRN-0001", PID[:8].encode())
    at.sidebar.file_uploader[0].upload(f"{NAME.split('^')[0]}_{PID}.dcm", dcm, "application/dicom")
    at.run()
    _wait(at, "Grad-CAM in")
    at.checkbox(key="imaging.take.ids").check().run()  # a report WITH identifiers: the trail still has none
    next(b for b in at.get("download_button") if b.label == "Case report (PDF)").click().run()
    assert not at.exception

    at = open_page("records", 180)
    at.radio(key="records.source").set_value("Upload a CSV").run()
    df = synthetic_records(4)
    df["id"] = [RECORD_MARK + str(i) for i in range(4)]
    at.file_uploader(key="records.upload").upload(f"{RECORD_MARK}.csv", df.to_csv(index=False).encode(), "text/csv")
    at.run()
    assert not at.exception and not at.error
    at.text_area(key="notes.text").input(next(iter(SYNTHETIC_NOTES.values())) + f" Patient {NOTE_MARK} seen today.").run()
    assert not at.exception

    store = open_store(url)
    actions = {r.action for r in store.query()}
    assert {"predict", "explain", "report"} <= actions, actions
    assert {r.workspace for r in store.query(action="predict")} == {"imaging", "records", "notes"}
    (report,) = store.query(action="report")
    assert report.params == {"what": "pdf", "identifiers": True}
    tables = dump_tables(url)
    assert sum(len(rows) for rows in tables.values()) == store.count() > 0
    assert leaked(tables, MARKERS) == []
    store.dispose()
