"""What a page run costs beyond the model (issue 18): one session's result against the model's own time for
the same work, and slider moves on a page that already shows a result.

One real server (127.0.0.1), one protocol client (``load_protocol.ProtocolSession``: Streamlit's websocket and
upload PUT, no browser), the same inputs as the load test. For each workspace:

- **model**: the page's own core calls for that result, in this process while the server is idle (decode,
  route or score, predict, the explanation, the attention map), median of ``--repeats``;
- **page**: upload -> the result's text received by the client, median of ``--repeats`` fresh uploads;
- **overhead** = page - model, and **overhead / model** (target <= 2x).

Then slider moves on the Imaging page with a result shown (heatmap opacity, window level, operating
threshold): send the widget's new value -> that run (the fragment's alone when the widget sits in one)
finished, p50 (target <= 100 ms). As a user moves them: ``--settle`` seconds after the result is on screen
(default 1 s: the page's own follow-up work, such as the run that ends the explanation's polling, is done by
then), ``--pause`` seconds between moves (default 0.2 s); ``--settle 0 --pause 0`` moves back to back, the
instant the result arrives. Ratios carry over between machines; the times do not.

Run: ``python benchmarks/bench_page_runs.py [--repeats 7] [--url URL]``. Not a test.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_protocol import ProtocolSession  # noqa: E402
from load_test import records_csv, scan_png, stay_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCAN_LABEL = "DICOM, PNG, JPEG, BMP or TIFF (checked by content)"
RECORDS_LABEL, SERIES_LABEL = "Records CSV (one row per patient)", "Series CSV, PhysioNet .txt or .psv"
# four new values each (none served from a cache of the same scan); the level's are fractions of its range
SLIDERS = {"opacity": ("Heatmap opacity", (0.3, 0.45, 0.6, 0.75)), "level": ("Level (centre)", None),
           "threshold": ("Operating threshold", (0.3, 0.4, 0.5, 0.6))}


def model_work(repeats: int) -> dict[str, float]:
    """Seconds (median) of the core calls each page makes for its result, on the load test's inputs."""
    from medai_core.io import load_scan
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces import records as R
    from medai_core.workspaces import vitals as V
    from medai_core.workspaces.imaging import attention_map, explain, prepare_input, route_scan

    models: dict = {}

    def model_for(name: str):  # noqa: ANN202 - a module, loaded once as the app's cache does
        if name not in models:  # (not setdefault: that loaded the weights on every call, 0.24 s a model)
            models[name] = load_model(name)
        return models[name]

    def scan(seed: int) -> None:
        s = load_scan(scan_png(seed))
        route = route_scan(s, model_for, 0, keep_grid=True)  # as the page: Grad-CAM and attention from its pass
        spec, model = get_spec(route.model), model_for(route.model)
        x = prepare_input(s, spec)
        explain(model, spec, x, "gradcam", route.prediction.label, prediction=route.prediction)
        if spec.extra.get("attention"):  # shown beside Grad-CAM
            attention_map(route.prediction, x)

    rspec, rmodel = get_spec("support_ftt"), model_for("support_ftt")

    def records(seed: int) -> None:
        table = R.load_records(records_csv(seed))
        scores = R.score(rmodel, rspec, table)
        row = int(scores.scored.argmax())
        R.explain_record(rmodel, rspec, table, row, "shapley_sampling")
        R.attention(rmodel, table, row)

    vname = "icu_gru"  # the Vital signs page's first series model
    vspec, vmodel = get_spec(vname), model_for(vname)

    def forecast(seed: int) -> None:
        series = V.load_series(stay_csv(seed), vspec.extra["series"], "stay.csv")
        fc = V.forecast(vmodel, vspec, series)
        V.explain_forecast(vmodel, vspec, series, fc.signals[0], vspec.extra["horizon"],
                           V.EXPLAINERS.names(modalities=vspec.modality)[0])

    out = {}
    for kind, fn in (("scan", scan), ("records", records), ("forecast", forecast)):
        fn(1)  # warm-up
        times = []
        for r in range(repeats):
            t0 = time.perf_counter()
            fn(10 + r)
            times.append(time.perf_counter() - t0)
        out[kind] = statistics.median(times)
    return out


async def page_work(url: str, repeats: int, timeout: float, settle: float = 1.0,
                    pause: float = 0.2) -> dict[str, list[float]]:
    s = ProtocolSession(url)
    await s.connect()
    out: dict[str, list[float]] = {k: [] for k in ("scan", "records", "forecast", *SLIDERS)}

    async def result(kind: str, page: str, label: str, name: str, data: bytes, mime: str, done: str,
                     choose: tuple[str, str] | None = None) -> None:
        out[kind].append((await s.timed_result(page, choose, label, name, data, mime, done, timeout))[0])
        print(f"{kind}: {out[kind][-1]:.2f} s", file=sys.stderr, flush=True)

    try:
        for r in range(repeats + 1):  # the first round warms the server's caches and imports up: not counted
            await result("scan", "imaging", SCAN_LABEL, f"scan{r}.png", scan_png(5000 + r), "image/png", r"Grad-CAM in \d+ ms")
            await asyncio.sleep(settle)
            for name, (label, values) in SLIDERS.items():
                if label not in s.view.widgets:
                    continue
                if values is None:  # the level slider: within its own range
                    proto = s.view.widgets[label][1]
                    lo, hi = proto.min, proto.max
                    values = tuple(lo + f * (hi - lo) for f in (0.4, 0.47, 0.53, 0.6))
                for v in values:
                    out[name].append(await s.move(label, double_array_value={"data": [v]}, timeout=timeout))
                    await asyncio.sleep(pause)
            await result("records", "records", RECORDS_LABEL, f"batch{r}.csv", records_csv(6000 + r), "text/csv",
                         r"Shapley value sampling in \d+ ms", ("Records from", "Upload a CSV"))
            await result("forecast", "vitals", SERIES_LABEL, f"stay{r}.csv", stay_csv(7000 + r), "text/csv",
                         r"Red raised the forecast")
            if r == 0:
                for v in out.values():
                    v.clear()
    finally:
        await s.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--url", help="an already running server (default: start one on 127.0.0.1)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds after a result before the first slider move")
    ap.add_argument("--pause", type=float, default=0.2, help="seconds between slider moves")
    args = ap.parse_args()
    from tests.support.server import start_server, stop, wait_healthy

    model = model_work(args.repeats)
    log = tempfile.TemporaryFile(mode="w+")
    server = None
    url = args.url
    if not url:
        server = start_server(log=log)
        wait_healthy(server.url, timeout_s=60.0, proc=server.proc)
        url = server.url
    try:
        page = asyncio.run(page_work(url, args.repeats, args.timeout, args.settle, args.pause))
    finally:
        if server is not None:
            stop(server)
    log.seek(0)
    tracebacks = log.read().count("Traceback")
    print(f"# page runs, one session, median of {args.repeats} (server tracebacks: {tracebacks})")
    print("| result | model work | page (upload -> result) | overhead | overhead / model | target |")
    print("|---|---|---|---|---|---|")
    for kind, what in (("scan", "scan -> prediction + Grad-CAM"), ("records", "20-record CSV -> risk + explanation"),
                       ("forecast", "ICU stay -> forecast + attributions")):
        p, m = statistics.median(page[kind]), model[kind]
        print(f"| {what} | {m * 1000:.0f} ms | {p * 1000:.0f} ms | {(p - m) * 1000:.0f} ms | {(p - m) / m:.1f}x | <= 2x |")
    print()
    print(f"| slider move (Imaging, result shown; {args.settle:g} s settle, {args.pause:g} s between moves) "
          "| p50 | p95 | n | target |")
    print("|---|---|---|---|---|")
    for name, (label, _) in SLIDERS.items():
        xs = sorted(page[name])
        if xs:
            print(f"| {label} | {statistics.median(xs) * 1000:.0f} ms | {xs[min(len(xs) - 1, int(0.95 * len(xs)))] * 1000:.0f} ms "
                  f"| {len(xs)} | p50 <= 100 ms |")


if __name__ == "__main__":
    main()
