"""Real browser: start `streamlit run app.py` on 127.0.0.1, upload a scan in Debian's chromium,
and see the prediction and the explanation overlay appear."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from tests.support.browser import upload
from tests.support.server import ServerError, running_server

CHROMIUM = os.environ.get("MEDAI_CHROMIUM", "/usr/bin/chromium")
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module. Its output goes to a file (a pipe nobody reads could fill and block the
    server's next write), which a failing test prints (``_server_log_on_failure``)."""
    log_path = tmp_path_factory.mktemp("server") / "streamlit.log"
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(log_path, "w"))
        try:
            srv = stack.enter_context(running_server(env={"PYTHONUNBUFFERED": "1"}, log=log))
        except ServerError as exc:
            pytest.fail(f"streamlit did not start: {exc}\n{_tail(log_path)}")
        yield srv.url, log_path


@pytest.fixture(autouse=True)
def _server_log_on_failure(request):
    """Print what the server logged during the test; pytest shows captured output only when a test fails."""
    if "server" not in request.fixturenames:
        yield
        return
    log_path = request.getfixturevalue("server")[1]
    start = log_path.stat().st_size if log_path.exists() else 0
    yield
    with open(log_path, "rb") as f:
        f.seek(start)
        print("--- server log during this test (its end) ---\n" + f.read()[-4000:].decode(errors="replace"))
    # a test closes its page when it passes: one still open failed, so print what it showed, then close it
    for context in request.getfixturevalue("browser").contexts:
        for page in context.pages:
            try:
                text = page.locator("body").inner_text(timeout=5_000)
                shot = log_path.parent / f"{request.node.name}.png"
                page.screenshot(path=str(shot), full_page=True, timeout=10_000)
                text = f"(screenshot: {shot})\n{text}"
            except Exception as exc:  # noqa: BLE001 - a diagnostic, never the failure itself
                text = f"(not readable: {type(exc).__name__})"
            print(f"--- page left open: {page.url} ---\n{text[:3000]}")
            page.close()


def _tail(path: Path, size: int = 4000) -> str:
    """The end of the server's log, for a failure message."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-size:]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("MEDAI_REQUIRE_BROWSER"):
            pytest.fail(f"chromium not found at {CHROMIUM}")
        pytest.skip("Debian chromium is not installed (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def _shot(page, name: str, full_page: bool = True) -> None:
    folder = os.environ.get("MEDAI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=full_page)


def test_upload_scan_shows_prediction_and_overlay(server, browser):
    from medai_core.workspaces.imaging.samples import sample_path

    url, _ = server
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"{url}/imaging")
    page.get_by_text("Upload a scan in the sidebar").wait_for(timeout=60_000)
    # a chest film goes to the chest model: prediction, Grad-CAM and the attention map side by side
    page.locator("input[type=file]").set_input_files(str(sample_path("Chest X-ray, bacterial pneumonia (child)")))
    page.get_by_text("Grad-CAM: '").first.wait_for(timeout=60_000)
    page.get_by_text("Attention map (where the head pooled from)").first.wait_for(timeout=30_000)
    page.get_by_text("chest X-ray model (cxr_pneumonia)").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1200)
    _shot(page, "imaging_chest.png")
    # a CT is nobody's scan: flagged, greyed out
    page.locator("input[type=file]").set_input_files(str(sample_path("CT, 16-bit (CT_small)")))
    page.get_by_text("No image model recognises this scan").first.wait_for(timeout=60_000)
    page.get_by_text("Grad-CAM: '").first.wait_for(timeout=60_000)
    page.wait_for_timeout(800)
    _shot(page, "imaging.png")
    # identifiers hidden by default in the metadata panel
    page.get_by_text("Metadata (patient identifiers hidden)").click()
    page.get_by_text("hidden (identifier)").first.wait_for(state="attached", timeout=10_000)
    _shot(page, "imaging_metadata.png")
    page.close()


def test_imaging_sanity_check_and_report_download(server, browser):
    """Click through the sanity check on the Imaging page, then download the case report (PDF, readable,
    no patient name) and the de-identified DICOM (read back: identity removed)."""
    import io

    import pydicom
    from pypdf import PdfReader

    from medai_core.workspaces.imaging.samples import sample_path

    url, _ = server
    page = browser.new_page(viewport={"width": 1500, "height": 1100}, accept_downloads=True)
    page.goto(f"{url}/imaging")
    page.get_by_text("Upload a scan in the sidebar").wait_for(timeout=60_000)
    page.locator("input[type=file]").set_input_files(str(sample_path("Ultrasound, RGB (US1)")))
    page.get_by_text("Grad-CAM: '").first.wait_for(timeout=60_000)
    page.get_by_text("Sanity check of this map").click()
    page.get_by_text("Randomisation check:").first.wait_for(timeout=300_000)  # busi_effnet: ~25 s alone, more in CI
    page.get_by_text("Faithfulness:").first.wait_for(timeout=10_000)
    # the maps' titles are drawn by Plotly, which renders after the text around it: wait, do not count at once
    page.get_by_text("fully randomised model").first.wait_for(timeout=60_000)
    page.get_by_text("Can I trust this heatmap?").first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(1500)
    _shot(page, "imaging_sanity.png", full_page=False)
    page.get_by_text("How sure is the model?").first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)
    _shot(page, "imaging_reliability.png", full_page=False)
    with page.expect_download(timeout=60_000) as dl:
        page.get_by_role("button", name="Case report (PDF)").click()
    pdf = Path(dl.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "Randomisation" in text or "sanity" in text.lower()  # the verdict went into the report
    assert "CompressedSamples" not in text and b"CompressedSamples" not in pdf  # the demo's patient name
    # the de-identified DICOM: offered once the user confirms there is no burned-in text (ultrasound)
    page.get_by_text("I have checked the image").click()
    button = page.get_by_role("button", name="De-identified DICOM")
    button.wait_for(timeout=60_000)  # offered by the rerun the tick starts
    # one click, no retry: a lost reply (ui/fixes.py) left this button spinning in 1 of 4 clicks
    with page.expect_download(timeout=60_000) as dl:
        button.click()
    ds = pydicom.dcmread(io.BytesIO(Path(dl.value.path()).read_bytes()))
    assert ds.PatientIdentityRemoved == "YES" and "CompressedSamples" not in str(ds.get("PatientName", ""))
    page.close()


def test_home_lists_models(server, browser):
    url, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.get_by_text("Model card: busi_cnn").first.wait_for(timeout=60_000)
    _shot(page, "home.png")
    page.close()


def test_records_upload_shows_risk_attributions_and_attention(server, browser, tmp_path):
    from medai_core.workspaces.records.samples import synthetic_records

    csv = tmp_path / "batch.csv"
    synthetic_records(8, seed=3).to_csv(csv, index=False)
    url, _ = server
    page = browser.new_page(viewport={"width": 1500, "height": 3600})
    page.goto(f"{url}/records")
    page.get_by_text("Upload a CSV").first.click()
    upload(page, "Records CSV (one row per patient)", csv)
    page.get_by_text("Risk for 8 patients").wait_for(timeout=60_000)
    page.get_by_text("rather than the reference patient").first.wait_for(timeout=60_000)
    page.get_by_text("CLS-to-feature attention").first.wait_for(timeout=30_000)
    page.get_by_text("Global importance for this batch").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    _shot(page, "records.png")
    page.close()


def test_notes_upload_shows_top3_highlights_and_attention(server, browser, tmp_path):
    from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES

    note = tmp_path / "cataract.txt"
    note.write_text(SYNTHETIC_NOTES["Cataract surgery (synthetic)"])
    url, _ = server
    page = browser.new_page(viewport={"width": 1500, "height": 2600})
    page.goto(f"{url}/records")
    page.get_by_text("Clinical note: specialty").click()
    page.get_by_text("Upload .txt / .csv").click()
    upload(page, "A .txt note, or a .csv", note)
    page.get_by_text("Which words argue for").wait_for(timeout=60_000)
    page.get_by_text("Top 3 specialties").first.wait_for(timeout=30_000)
    page.locator("span[title]").first.wait_for(timeout=30_000)
    assert page.locator("span[title]").count() > 20  # words highlighted inline
    page.get_by_text("Most attended words").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    _shot(page, "notes.png")
    page.close()


def test_vitals_upload_shows_forecast_and_attributions(server, browser, tmp_path):
    from medai_core.workspaces.vitals.samples import synthetic_icu_case

    csv = tmp_path / "stay.csv"
    synthetic_icu_case("deteriorating").to_csv(csv, index=False)
    url, _ = server
    page = browser.new_page(viewport={"width": 1500, "height": 2600})
    page.goto(f"{url}/vitals")
    page.locator("input[type=file]").first.set_input_files(str(csv))
    page.get_by_text("Attention over past steps").first.wait_for(timeout=60_000)
    page.get_by_text("Contribution of each past value").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    _shot(page, "vitals.png")
    page.close()


def test_sepsis_section_scores_a_psv_record(server, browser, tmp_path):
    from medai_core.workspaces.vitals.samples import synthetic_sepsis_record

    psv = tmp_path / "p000001.psv"
    psv.write_bytes(synthetic_sepsis_record("deteriorating"))
    url, _ = server
    page = browser.new_page(viewport={"width": 1500, "height": 3900})
    page.goto(f"{url}/vitals")
    page.get_by_text("Sepsis early warning").first.click()
    page.get_by_text("not a diagnosis").first.wait_for(timeout=60_000)
    upload(page, "PhysioNet 2019 .psv record", psv)
    page.get_by_text("What moved the risk at hour").first.wait_for(timeout=60_000)
    page.get_by_text("Septic patients warned").first.wait_for(timeout=60_000)
    page.get_by_text("alarm threshold").first.wait_for(timeout=30_000)  # drawn by Plotly, after the text
    page.wait_for_timeout(1500)
    _shot(page, "sepsis.png")
    page.close()
