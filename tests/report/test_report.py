"""Case reports for every workspace with the shipped models: the PDF has its sections, the PNGs decode,
and planted identifiers are absent by default (extracted text and raw bytes) and present on request."""
from __future__ import annotations

import io
import zipfile
from datetime import datetime, timezone

import numpy as np
import pydicom
import pytest
from PIL import Image
from pypdf import PdfReader

from medai_core import __version__
from medai_core.models import get_spec, load_model
from tests.conftest import make_dicom, speckle_image
from medai_core.report.case import CaseReport, IDENTIFIERS_LEFT_OUT, INTENDED_USE, ReportFigure, UNKNOWN_WORD
from medai_core.workspaces.imaging.report import image_report
from medai_core.report.pdf import build_pdf
from medai_core.report.bundle import figure_pngs, report_zip
from medai_core.plots.encode import png_bytes
from medai_core.workspaces.notes.report import model_words, note_report
from medai_core.workspaces.records.report import record_report
from medai_core.workspaces.vitals.report import series_report

CREATED = datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)
SECTIONS = ("DECISION SUPPORT ONLY", "Prediction", "Model and intended use", "Intended use", "Input", "Explanation",
            "Sanity check", "Patient identifiers", "Software", f"MedAI {__version__}", "Created 2026-01-02 03:04",
            "page 1 of")


def _text(pdf: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)


def _norm(s: str) -> str:
    return " ".join(s.split()).lower()


def _check(report: CaseReport, planted: tuple[str, ...], extra_sections: tuple[str, ...] = ()) -> str:
    """Build both PDFs and check sections, figures and the planted identifiers; returns the default text."""
    pdf = build_pdf(report)
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF")
    text = _text(pdf)
    for s in SECTIONS + extra_sections:
        assert _norm(s) in _norm(text), s
    assert IDENTIFIERS_LEFT_OUT in " ".join(text.split())
    for p in planted:
        assert p.lower() not in text.lower(), p
        assert p.encode() not in pdf and p.lower().encode() not in pdf, p
    with_ids = build_pdf(report, include_identifiers=True)
    text_ids = _text(with_ids)
    for p in planted:
        assert _norm(p) in _norm(text_ids), p
    assert "CONTAINS PATIENT IDENTIFIERS" in text_ids
    pngs = figure_pngs(report)
    assert pngs
    for name, png in pngs.items():
        assert name.endswith(".png")
        with Image.open(io.BytesIO(png)) as im:
            im.verify()
    return text


def _planted_scan_bytes(modality: str = "CT", burned_in: str | None = "NO") -> bytes:
    ds = pydicom.dcmread(io.BytesIO(make_dicom(speckle_image(3, 96), patient_name="Zzyzx^Planted", modality=modality)))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = {"CT": "1.2.840.10008.5.1.4.1.1.2",
                                                             "US": "1.2.840.10008.5.1.4.1.1.6.1"}[modality]
    ds.AccessionNumber = "ACC-778123"
    ds.private_block(0x0011, "ACME planted", create=True).add_new(0x01, "LO", "PRIVATE-VENDOR-7")
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def busi():
    return load_model("busi_cnn"), get_spec("busi_cnn")


def _image_case(busi, data: bytes):
    from medai_core.workspaces.imaging import pipeline as I
    from medai_core.io import load_scan

    model, spec = busi
    scan = load_scan(data)
    x = I.prepare_input(scan, spec)
    pred = I.predict(model, spec, x)
    return scan, spec, pred, I.explain(model, spec, x, "gradcam", pred.label)


def test_image_report(busi):
    scan, spec, pred, exp = _image_case(busi, _planted_scan_bytes())
    rep = image_report(scan, spec, pred, exp, sanity={"verdict": "passed", "rank_correlation": 0.08},
                         file_name="zzyzx_scan.dcm", created=CREATED)
    text = _check(rep, ("Zzyzx^Planted", "MRN-0001", "ACC-778123", "Test Hospital", "zzyzx_scan.dcm"),
                  ("Grad-CAM", "busi_cnn", pred.label, "rank correlation", "passed"))
    assert "Scan and explanation" in text and "left out" not in text.split("Patient identifiers")[0]
    with_ids = _text(build_pdf(rep, include_identifiers=True))
    assert "PRIVATE-VENDOR-7" not in with_ids and "ACME" not in with_ids and "2 (vendor data, not printed)" in with_ids
    assert set(figure_pngs(rep)) == {"01_scan_and_explanation.png", "02_calibrated_probabilities.png"}


def test_image_report_for_a_png(busi):
    """A PNG's metadata has no DICOM tags: the report (PDF and ZIP) builds, with the file's attributes."""
    from tests.conftest import make_png

    scan, spec, pred, exp = _image_case(busi, make_png(speckle_image(5)))
    rep = image_report(scan, spec, pred, exp, file_name="zzyzx_scan.png", created=CREATED)
    text = _check(rep, ("zzyzx_scan.png",), ("Grad-CAM", "busi_cnn", pred.label, "Image file", "PNG"))
    assert "DICOM attributes" not in text and "Private tags" not in text
    assert "01_scan_and_explanation.png" in figure_pngs(rep)


def test_image_report_leaves_out_pixels_that_may_show_burned_in_text(busi):
    scan, spec, pred, exp = _image_case(busi, _planted_scan_bytes("US", burned_in=None))
    rep = image_report(scan, spec, pred, exp, created=CREATED)
    assert rep.figures[0].identifying
    assert "01_scan_and_explanation.png" not in figure_pngs(rep)
    assert "01_scan_and_explanation.png" in figure_pngs(rep, include_identifiers=True)
    assert "left out (it may show patient identifiers)" in _text(build_pdf(rep))
    assert "burned" in " ".join(rep.notes)
    checked = image_report(scan, spec, pred, exp, allow_burned_in=True, created=CREATED)
    assert not checked.figures[0].identifying and "01_scan_and_explanation.png" in figure_pngs(checked)


def test_record_report():
    from medai_core.workspaces.records import pipeline as REC
    from medai_core.io.records import load_records
    from medai_core.workspaces.records.samples import synthetic_records

    df = synthetic_records(4)
    df.loc[2, "id"] = "ZZYZX-ID-42"
    df["patient_name"] = ["A^One", "B^Two", "Zzyzx^Planted", "C^Three"]
    table = load_records(df)
    model, spec = load_model("support_ftt"), get_spec("support_ftt")
    scores = REC.score(model, spec, table)
    exp = REC.explain_record(model, spec, table, 2, "integrated_gradients")
    rep = record_report(table, 2, spec, scores, exp, attention=REC.attention(model, table, 2), created=CREATED)
    assert rep.identifiers == {"Record ID": "ZZYZX-ID-42", "Column 'patient_name'": "Zzyzx^Planted"}
    text = _check(rep, ("ZZYZX-ID-42", "Zzyzx^Planted"), ("support_ftt", "Feature contributions", "Age",
                                                           "Integrated Gradients"))
    assert "Sanity check not run" in text
    assert len(figure_pngs(rep)) == 3


def test_note_report():
    from medai_core.workspaces.notes import pipeline as N
    from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES

    spec = get_spec("notes_tfm")
    model, vocab = load_model("notes_tfm"), N.load_vocab(spec)
    text = ("Patient Zzyzx Plantedname, MRN 99812, seen by Dr Quoxley.\n"
            + SYNTHETIC_NOTES["Knee arthroscopy (synthetic)"])
    enc = N.encode_note(text, vocab, spec)
    pred = N.classify(model, spec, vocab, enc)
    ta = N.explain_note(model, spec, vocab, enc, pred.label)
    rep = note_report(text, spec, vocab, pred, ta, attention=N.note_attention(model, enc), ref="zzyzx-note.txt",
                        created=CREATED)
    body = _check(rep, ("Zzyzx", "Plantedname", "99812", "Quoxley", "zzyzx-note.txt"),
                  ("notes_tfm", pred.label, "Words that moved", "text is left out"))
    assert "meniscus" not in body  # the note's text is not printed, only model words in charts
    words = dict(model_words(ta.tokens, ta.values, vocab, k=100))
    assert "zzyzx" not in words and "plantedname" not in words and "99812" not in words
    assert UNKNOWN_WORD in words


def test_series_report():
    from medai_core.workspaces.vitals import pipeline as V
    from medai_core.io.vitals import load_series
    from medai_core.workspaces.vitals.samples import synthetic_series_csv

    spec, model = get_spec("cgm_gru"), load_model("cgm_gru")
    series = load_series(synthetic_series_csv("cgm_gru", "After a meal (synthetic)"), spec.extra["series"])
    fc = V.forecast(model, spec, series)
    exp = V.explain_forecast(model, spec, series, "Glucose", 6, "integrated_gradients")
    rep = series_report(series, spec, fc, exp, signal="Glucose", step_ahead=6,
                          sanity={"verdict": "failed", "deletion_auc": 0.41}, created=CREATED)
    _check(rep, ("2024-03-01",), ("cgm_gru", "Forecast", "What drove the forecast", "p50", "deletion auc"))
    icu_spec, icu = get_spec("icu_gru"), load_model("icu_gru")
    icu_series = load_series(synthetic_series_csv("icu_gru", "Deteriorating patient (synthetic)"), icu_spec.extra["series"])
    rep2 = series_report(icu_series, icu_spec, V.forecast(icu, icu_spec, icu_series), created=CREATED)
    assert rep2.identifiers is None and "No explanation was computed" in _text(build_pdf(rep2))


def _minimal(**kw) -> CaseReport:
    base = dict(workspace="Records", model="m", model_summary="s", intended_use=INTENDED_USE, created=CREATED,
                software={"MedAI": __version__}, input_summary={"x": "1"}, prediction="p")
    return CaseReport(**{**base, **kw})


def test_unicode_text_is_drawn_or_replaced():
    rep = _minimal(prediction="Ünïcödé – risk ≥ 90 % — 中文 ✓", input_summary={"Température": "38,5 °C"})
    text = _text(build_pdf(rep))
    assert "Ünïcödé" in text and "Température" in text and "38,5 °C" in text


def test_zip_holds_pdf_pngs_and_extras():
    png = png_bytes(np.zeros((4, 4, 3), np.uint8), fast=False)
    rep = _minimal(figures=(ReportFigure("A chart", png), ReportFigure("Scan", png, identifying=True)))
    blob = report_zip(rep, extra={"attributions.csv": b"a,b\n1,2\n"})
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        assert sorted(z.namelist()) == ["attributions.csv", "figures/01_a_chart.png", "report.pdf"]
        assert z.read("report.pdf").startswith(b"%PDF")
    with zipfile.ZipFile(io.BytesIO(report_zip(rep, include_identifiers=True))) as z:
        assert "figures/02_scan.png" in z.namelist()
