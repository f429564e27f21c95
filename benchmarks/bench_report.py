"""Case-report speed and size: build each workspace's report (figures) and its PDF, and de-identify a DICOM.

Run: ``python benchmarks/bench_report.py [--repeats 3]``. Models' predictions and explanations are made
once beforehand (they are not what is timed); warm-up runs are discarded; medians and inter-quartile
ranges are reported (this machine is 2 noisy cores). Inputs are the demo inputs. Not a test.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import median_ms  # noqa: E402

from medai_core.workspaces.imaging import pipeline as I  # noqa: E402
from medai_core.workspaces.notes import pipeline as N  # noqa: E402
from medai_core.workspaces.records import pipeline as REC  # noqa: E402
from medai_core.workspaces.vitals import pipeline as V  # noqa: E402
from medai_core.io import deidentify_dicom, load_scan  # noqa: E402
from medai_core.io.records import load_records  # noqa: E402
from medai_core.io.vitals import load_series  # noqa: E402
from medai_core.models import get_spec, load_model  # noqa: E402
from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES  # noqa: E402
from medai_core.workspaces.imaging.samples import sample_path
from medai_core.workspaces.records.samples import synthetic_records
from medai_core.workspaces.vitals.samples import synthetic_series_csv
from medai_core.report.pdf import build_pdf
from medai_core.workspaces.imaging.report import image_report
from medai_core.workspaces.notes.report import note_report
from medai_core.workspaces.records.report import record_report
from medai_core.report.bundle import report_zip
from medai_core.workspaces.vitals.report import series_report


def cases() -> dict[str, object]:
    """Workspace -> a function building its CaseReport from results computed here once."""
    out = {}
    spec, model = get_spec("busi_cnn"), load_model("busi_cnn")
    scan = load_scan(sample_path("CT, 16-bit (CT_small)").read_bytes())
    x = I.prepare_input(scan, spec)
    pred = I.predict(model, spec, x)
    exp = I.explain(model, spec, x, "integrated_gradients", pred.label)
    out["Imaging (busi_cnn, CT_small, IG)"] = lambda: image_report(scan, spec, pred, exp)

    tspec, tmodel = get_spec("support_ftt"), load_model("support_ftt")
    table = load_records(synthetic_records(12))
    scores = REC.score(tmodel, tspec, table)
    texp = REC.explain_record(tmodel, tspec, table, 0, "shapley_sampling")
    att = REC.attention(tmodel, table, 0)
    out["Records (support_ftt, Shapley + attention)"] = lambda: record_report(table, 0, tspec, scores, texp, attention=att)

    nspec, nmodel = get_spec("notes_tfm"), load_model("notes_tfm")
    vocab = N.load_vocab(nspec)
    note = SYNTHETIC_NOTES["Chest pain consult (synthetic)"]
    enc = N.encode_note(note, vocab, nspec)
    npred = N.classify(nmodel, nspec, vocab, enc)
    ta = N.explain_note(nmodel, nspec, vocab, enc, npred.label)
    natt = N.note_attention(nmodel, enc)
    out["Notes (notes_tfm, IG + attention)"] = lambda: note_report(note, nspec, vocab, npred, ta, attention=natt)

    vspec, vmodel = get_spec("icu_gru"), load_model("icu_gru")
    series = load_series(synthetic_series_csv("icu_gru", "Deteriorating patient (synthetic)"), vspec.extra["series"])
    fc = V.forecast(vmodel, vspec, series)
    vexp = V.explain_forecast(vmodel, vspec, series, "HR", 6)
    out["Vital signs (icu_gru, IG)"] = lambda: series_report(series, vspec, fc, vexp, signal="HR", step_ahead=6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"# case reports, median of {args.repeats} after warm-up")
    print("| workspace | figures ms | PDF ms (IQR) | total ms | PDF KiB | pages | zip KiB |")
    print("|---|---|---|---|---|---|---|")
    from io import BytesIO

    from pypdf import PdfReader

    for name, build in cases().items():
        fig_ms, _ = median_ms(build, args.repeats, warmup=1)
        rep = build()
        pdf_ms, pdf_iqr = median_ms(lambda: build_pdf(rep), args.repeats, warmup=1)
        pdf = build_pdf(rep)
        pages = len(PdfReader(BytesIO(pdf)).pages)
        z = report_zip(rep)
        print(f"| {name} | {fig_ms:.0f} | {pdf_ms:.0f} ({pdf_iqr:.0f}) | {fig_ms + pdf_ms:.0f} | {len(pdf) / 1024:.0f} | "
              f"{pages} | {len(z) / 1024:.0f} |", flush=True)
    for label in ("CT, 16-bit (CT_small)", "MR, JPEG 2000 (MR2)", "Ultrasound, multi-frame JPEG (YBR)"):
        data = sample_path(label).read_bytes()
        ms, iqr = median_ms(lambda: deidentify_dicom(data, allow_burned_in=True), args.repeats, warmup=1)
        print(f"| de-identify {label}, {len(data) / 1024:.0f} KiB | | {ms:.1f} ({iqr:.1f}) | | | | |")


if __name__ == "__main__":
    main()
