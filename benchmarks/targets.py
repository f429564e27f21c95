"""The speed and memory targets (issue 5) in one table, each figure beside its target.

Run: ``python benchmarks/targets.py [--repeats 9] [--no-browser]``. Medians after warm-up on this machine's
CPU threads; cold start and memory start real servers (Debian chromium needed, else use --no-browser).
Per-workspace detail: bench_imaging.py, bench_records.py, bench_vitals.py; concurrency: load_protocol.py (and the
browser-driven load_test.py). Page-run overhead against these model figures, as ratios, and slider moves:
bench_page_runs.py (issue 18); where a loaded server's time goes: profile_page_runs.py.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import median_ms  # noqa: E402


def rows(repeats: int) -> list[tuple[str, float, str, str]]:
    """(work, median ms, unit, target) for the in-process targets."""
    from bench_imaging import _png
    from bench_records import thousand_words
    from bench_vitals import make_batch_4000
    from medai_core.workspaces.notes import pipeline as N
    from medai_core.workspaces.records import pipeline as R
    from medai_core.workspaces.imaging.pipeline import explain, predict, prepare_input
    from medai_core.io import load_scan
    from medai_core.io.records import load_records
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.imaging.samples import sample_path
    from medai_core.workspaces.records.samples import synthetic_records

    out = []
    spec, model = get_spec("busi_cnn"), load_model("busi_cnn")
    png, dcm = _png(), sample_path("Ultrasound, RGB (US1)").read_bytes()

    def scan_to_cam(data: bytes) -> None:
        x = prepare_input(load_scan(data), spec)
        p = predict(model, spec, x)
        explain(model, spec, x, "gradcam", p.label)

    out.append(("PNG 256 x 256 bytes -> prediction + Grad-CAM", median_ms(lambda: scan_to_cam(png), repeats)[0], "ms", "<= 100 ms"))
    out.append(("DICOM US 640 x 480 RGB bytes -> prediction + Grad-CAM", median_ms(lambda: scan_to_cam(dcm), repeats)[0], "ms",
                "<= 100 ms"))
    x = prepare_input(load_scan(png), spec)
    deltas = []

    def ig() -> None:
        deltas.append(explain(model, spec, x, "integrated_gradients", "malignant").diagnostics["relative_delta"])

    out.append(("Integrated Gradients from 64 steps, doubled while the delta is over 1% (scan; delta {delta})", median_ms(ig, repeats)[0], "ms", "<= 400 ms"))
    out[-1] = (out[-1][0].format(delta=f"{max(deltas):.2%} of the output difference at most"), *out[-1][1:])
    out.append(("occlusion map (scan, 16 px window, stride 8)",
                median_ms(lambda: explain(model, spec, x, "occlusion", "malignant"), max(3, repeats // 2))[0], "ms", "<= 1 s"))

    tspec, tmodel = get_spec("support_ftt"), load_model("support_ftt")
    csv10k = synthetic_records(10_000, seed=1).to_csv(index=False).encode()
    out.append(("score 10,000 structured records (CSV bytes -> validated -> risk)",
                median_ms(lambda: R.score(tmodel, tspec, load_records(csv10k)), repeats)[0], "ms", "<= 1 s"))
    table = load_records(csv10k)
    out.append(("score 10,000 structured records (table already validated)",
                median_ms(lambda: R.score(tmodel, tspec, table), repeats)[0], "ms", "<= 1 s"))

    nspec, nmodel = get_spec("notes_tfm"), load_model("notes_tfm")
    vocab, note = N.load_vocab(nspec), thousand_words()

    def note_job() -> None:
        p = N.classify(nmodel, nspec, vocab, note)
        N.explain_note(nmodel, nspec, vocab, note, p.label)

    out.append(("classify + token-attribute one 1,000-word note (IG, delta <= 1%)", median_ms(note_job, repeats)[0], "ms",
                "<= 500 ms"))

    vspec, vmodel = get_spec("icu_gru"), load_model("icu_gru")
    batch_4000 = make_batch_4000(vspec, vmodel)

    out.append(("forecast 4,000 ICU stays in batch (windows + model)", median_ms(batch_4000, repeats)[0], "ms", "<= 5 s"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--no-browser", action="store_true", help="skip cold start and server memory")
    args = ap.parse_args()
    import torch

    table = [(w, f"{v:.0f} ms" if v < 1000 else f"{v / 1000:.2f} s", t) for w, v, _, t in rows(args.repeats)]
    if not args.no_browser:
        import subprocess

        from bench_startup import CHROMIUM, EVERY_MODEL, ROOT, cold_start, rss_mb, stop
        from playwright.sync_api import sync_playwright

        starts = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            for i in range(6):
                seconds, proc, _ = cold_start(browser)
                rss = rss_mb(proc.pid)
                stop(proc)
                if i:
                    starts.append(seconds)
            browser.close()
        table.append(("cold start: `streamlit run` -> home page rendered in Chromium (median of 5)",
                      f"{statistics.median(starts):.2f} s", "<= 3 s"))
        table.append(("server resident memory on the home page", f"{rss:.0f} MB", ""))
        out = subprocess.run([sys.executable, "-c", EVERY_MODEL], cwd=ROOT, capture_output=True, text=True, check=True)
        n, mb = out.stdout.split()
        table.append((f"resident memory with the app's libraries and all {n} models loaded", f"{float(mb):.0f} MB",
                      "<= 1.5 GB"))
    print(f"# targets, torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats} after warm-up")
    print("| work | median | target |")
    print("|---|---|---|")
    for w, v, t in table:
        print(f"| {w} | {v} | {t} |")


if __name__ == "__main__":
    main()
