"""Uploads never touch the disk and patient identifiers never reach logs, in the real server.

A server runs with debug logging and its own empty TMPDIR and HOME. A browser uploads a DICOM whose
patient name and ID are planted markers, a records CSV and a clinical note carrying markers, and waits
for each result. Afterwards the markers must appear in none of: the server's log, any file under its
TMPDIR or HOME, any file in the repository created or changed during the run, /dev/shm. A second browser
session must see none of the first session's files or results. The server's audit trail (a SQLite file named by
MEDAI_AUDIT_PATH) must hold the run's records, a prediction at least, and none of the markers in any row of any
table (tests/audit/test_no_identifiers.py checks the same on PostgreSQL, without a browser).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.audit.dump import dump_tables, leaked
from tests.conftest import make_dicom, speckle_image
from tests.e2e.test_browser import browser  # noqa: F401  (fixture)
from tests.support.browser import upload
from tests.support.server import ROOT, running_server

pytestmark = pytest.mark.e2e
NAME, PID, NOTE_MARK, RECORD_MARK = "Leakcheck^Zebediah", "LEAK-7731-MRN", "Quixotrel", "LEAKROW-5512"
MARKERS = [m.encode() for m in ("Leakcheck", "Zebediah", PID[:8], NOTE_MARK, RECORD_MARK)]


def _files_with_markers(folder: Path, since: float | None = None) -> list[str]:
    hits = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".venv", "node_modules")]
        for f in filenames:
            p = Path(dirpath) / f
            try:
                if since is not None and p.stat().st_mtime < since:
                    continue
                data = p.read_bytes()
            except OSError:
                continue
            if any(m in data for m in MARKERS):
                hits.append(str(p))
    return hits


def test_uploads_stay_off_disk_and_out_of_logs(browser, tmp_path):  # noqa: F811 - the fixture
    from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES
    from medai_core.workspaces.records.samples import synthetic_records

    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    log = tmp_path / "server.log"
    start = time.time()
    trail = tmp_path / "audit" / "audit.sqlite"
    env = {"HOME": str(home), "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1", "MEDAI_AUDIT_PATH": str(trail),
           "MEDAI_AUDIT_URL": ""}
    with open(log, "w") as out, running_server(env=env, log=out, extra_args=("--logger.level", "debug")) as srv:
        url = srv.url
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/imaging")
        page.get_by_text("Upload a scan in the sidebar").wait_for(timeout=60_000)
        dcm = make_dicom(speckle_image(3), patient_name=NAME)
        dcm = dcm.replace(b"MRN-0001", PID[:8].encode())  # same length: the file stays valid
        assert b"Leakcheck" in dcm and PID[:8].encode() in dcm  # the markers are really in the upload
        page.locator("input[type=file]").set_input_files(
            files=[{"name": "scan.dcm", "mimeType": "application/dicom", "buffer": dcm}])
        page.get_by_text("Grad-CAM: '").first.wait_for(timeout=90_000)
        page.get_by_text("Metadata (patient identifiers hidden)").click()
        page.get_by_text("hidden (identifier)").first.wait_for(state="attached", timeout=10_000)
        assert page.get_by_text("Leakcheck").count() == 0  # hidden on screen by default

        df = synthetic_records(4)
        df["id"] = [RECORD_MARK + str(i) for i in range(4)]
        page.goto(f"{url}/records")
        page.get_by_text("Upload a CSV", exact=True).first.click()
        upload(page, "Records CSV (one row per patient)",
               [{"name": "batch.csv", "mimeType": "text/csv", "buffer": df.to_csv(index=False).encode()}])
        page.get_by_text("Risk for 4 patients").wait_for(timeout=90_000)
        note = list(SYNTHETIC_NOTES.values())[0] + f" Patient {NOTE_MARK} seen today."
        page.get_by_text("Clinical note: specialty").click()
        page.get_by_role("textbox", name="Clinical note").fill(note)
        page.get_by_role("textbox", name="Clinical note").press("Control+Enter")
        page.get_by_text("Which words argue for").first.wait_for(timeout=90_000)

        other = browser.new_page()  # a second session on the same server
        other.goto(f"{url}/imaging")
        other.get_by_text("Upload a scan in the sidebar").wait_for(timeout=60_000)
        assert other.get_by_text("Grad-CAM: '").count() == 0 and other.get_by_text("scan.dcm").count() == 0
        other.goto(f"{url}/records")
        other.get_by_text("Structured record: in-hospital mortality").wait_for(timeout=60_000)
        assert other.get_by_text(RECORD_MARK).count() == 0
        other.close()
        page.close()
    text = log.read_bytes()
    assert b"Runtime state:" in text  # a debug-level message: debug logging was really on
    assert not [m for m in MARKERS if m in text], "an identifier or uploaded content reached the server log"
    assert not _files_with_markers(home) and not _files_with_markers(tmp)
    assert not _files_with_markers(ROOT, since=start), "a file in the repository holds uploaded content"
    if Path("/dev/shm").is_dir():
        assert not _files_with_markers(Path("/dev/shm"), since=start)
    assert trail.exists(), "the server wrote no audit trail"
    tables = dump_tables(f"sqlite:///{trail}")
    rows = [line for lines in tables.values() for line in lines]
    assert any("|predict|" in line and "|imaging|" in line for line in rows), rows[:5]
    assert any("|predict|" in line and "|records|" in line for line in rows)
    assert leaked(tables, MARKERS) == [], "an identifier reached the audit trail"
    assert not _files_with_markers(trail.parent), "an identifier is in the audit database's files"
