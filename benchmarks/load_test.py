"""Load test: N concurrent browser sessions against one real server on 127.0.0.1.

Every session uploads its own scan and waits for the prediction and the Grad-CAM overlay, then half of
the sessions score a records CSV and half forecast a vital-sign upload; this repeats ``--rounds`` times
with fresh files (so no session is served from another's decode cache). Latency = from the upload to the
result visible in that session's page. Errors = a wait that timed out, an error box on the page, or a
traceback in the server log.

Run: ``python benchmarks/load_test.py [--sessions 10] [--rounds 3]`` (needs Debian chromium). Bounded:
at most ``--sessions`` pages, ``--rounds`` rounds and ``--deadline`` seconds. ``--replicas N`` starts N
servers behind Debian's nginx (``deploy/nginx.conf.template``, sticky sessions) and loads nginx instead.
The browser runs on the same machine as the server, so its rendering competes for the same cores. Not a test.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_startup import CHROMIUM, ROOT  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.support.server import ServerError, start_server, stop, wait_healthy  # noqa: E402


def scan_png(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256] / 256
    base = 0.35 + 0.25 * np.exp(-((yy - 0.3) ** 2) / 0.05)
    base[((yy - 0.55) ** 2 + (xx - 0.5) ** 2) < 0.02 * rng.uniform(0.5, 1.5)] *= 0.25
    img = (np.clip(base * rng.rayleigh(0.8, (256, 256)), 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def records_csv(seed: int) -> bytes:
    from medai_core.workspaces.records.samples import synthetic_records

    return synthetic_records(20, seed=seed).to_csv(index=False).encode()


def stay_csv(seed: int) -> bytes:
    from medai_core.workspaces.vitals.samples import synthetic_icu_case

    return synthetic_icu_case("deteriorating" if seed % 2 else "stable", seed=seed).to_csv(index=False).encode()


def warm_inputs() -> None:
    """Make one input of each kind before the clock starts: the first records or stay CSV imports the core (torch,
    pandas; 2-3 s), and a protocol client doing that in its event loop stalls every session's messages meanwhile
    (it put 3 s on round-one results before this was called; issue 18)."""
    scan_png(0), records_csv(0), stay_csv(1)


async def timed(page, action, wait_text: str, timeout_s: float) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    await action()
    await page.get_by_text(wait_text).first.wait_for(timeout=timeout_s * 1000)
    return time.perf_counter() - t0


async def session(browser, url: str, k: int, rounds: int, out: dict, timeout_s: float) -> None:  # noqa: ANN001
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(timeout_s * 1000)
    page = await ctx.new_page()

    async def upload(kind: str, path: str, ready: str, choose: str | None, name: str, mime: str, data: bytes,
                     done: str, r: int) -> None:
        try:
            await page.goto(f"{url}/{path}", wait_until="domcontentloaded")
            await page.get_by_text(ready).first.wait_for()
            if choose:
                await page.get_by_text(choose, exact=True).first.click()
            out[kind].append(await timed(page, lambda: page.locator("input[type=file]").first.set_input_files(
                files=[{"name": name, "mimeType": mime, "buffer": data}]), done, timeout_s))
        except Exception as exc:  # noqa: BLE001 - a timeout or a missing element is an error of the run
            out["errors"].append(f"session {k} round {r} {kind}: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}")
        if await page.get_by_text("An unexpected error occurred").count():
            out["errors"].append(f"session {k} round {r} {kind}: error box on the page")

    try:
        for r in range(rounds):
            seed = 1000 * k + r
            await upload("scan", "imaging", "Upload a scan in the sidebar", None, f"scan{seed}.png", "image/png",
                         scan_png(seed), "Grad-CAM: '", r)
            if k % 2 == 0:
                await upload("records", "records", "Structured record: in-hospital mortality", "Upload a CSV", f"batch{seed}.csv", "text/csv",
                             records_csv(seed), "Risk for 20 patients", r)
            else:
                await upload("forecast", "vitals", "Vital signs", None, f"stay{seed}.csv", "text/csv", stay_csv(seed),
                             "Contribution of each past value", r)
    finally:
        await ctx.close()


async def run(url: str, sessions: int, rounds: int, timeout_s: float) -> dict:
    from playwright.async_api import async_playwright

    out: dict = {"scan": [], "records": [], "forecast": [], "errors": []}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        await asyncio.gather(*(session(browser, url, k, rounds, out, timeout_s) for k in range(sessions)))
        await browser.close()
    return out


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def report(title: str, out: dict, log_text: str) -> None:
    """The latency table (p50/p95/max per kind of work), the errors, and the server log's tracebacks
    (first and last frames of up to three)."""
    starts = [m.start() for m in re.finditer(r"Traceback \(most recent call last\)", log_text)]
    print(title)
    print("| work (upload -> result) | n | p50 s | p95 s | max s |")
    print("|---|---|---|---|---|")
    for key, label in (("scan", "scan -> prediction + Grad-CAM"), ("records", "20-record CSV -> risk table"),
                       ("forecast", "ICU stay CSV -> forecast + attributions"),
                       ("explanation", "20-record CSV -> first patient's Shapley explanation")):
        if key not in out:
            continue
        xs = out[key]
        print(f"| {label} | {len(xs)} | {statistics.median(xs) if xs else float('nan'):.2f} | {pct(xs, 95):.2f} | "
              f"{max(xs) if xs else float('nan'):.2f} |")
    print(f"\nerrors: {len(out['errors'])} in the sessions, {len(starts)} tracebacks in the server log")
    for e in out["errors"][:20]:
        print(" -", e)
    for start in starts[:3]:
        lines = log_text[start:].splitlines()
        end = next((i for i, ln in enumerate(lines[1:], 1) if ln and not ln.startswith(" ")), len(lines) - 1)
        print("\n--- server traceback (first and last frames) ---\n"
              + "\n".join(lines[:5] + ["  ..."] + lines[max(5, end - 8):end + 1]))


def cli(description: str) -> argparse.Namespace:
    """The options both load tests take (bounded in sessions, rounds and time)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds one result may take")
    ap.add_argument("--deadline", type=float, default=600.0, help="seconds for the whole run")
    ap.add_argument("--url", help="an already running server (default: start one on 127.0.0.1, a free port)")
    ap.add_argument("--replicas", type=int, default=0,
                    help="start N replicas behind Debian's nginx (deploy/nginx.conf.template) and load nginx")
    ap.add_argument("--warm", type=float, default=0.0, metavar="SECONDS",
                    help="a warm server: one visitor opens the home page (which starts the server's background warm-up: "
                         "imports, models, attribution copies), then the load starts SECONDS later. Default 0: the load "
                         "starts as soon as the server answers its health check (a cold server)")
    ap.add_argument("--explanations", action="store_true",
                    help="protocol client: after the risk table, wait for the first patient's Shapley explanation too "
                         "(under load it follows the table) and time it from the upload")
    return ap.parse_args()


def warm_up(urls: list[str], seconds: float) -> None:
    """One visit to the home page of each server (each replica directly, not through nginx, so every replica
    starts its warm-up), then ``seconds`` of quiet (see ``--warm``)."""
    import urllib.request

    for url in urls:
        urllib.request.urlopen(f"{url}/", timeout=30).read()
        asyncio.run(_visit_home(url))
    time.sleep(seconds)


async def _visit_home(url: str) -> None:
    from load_protocol import ProtocolSession

    s = ProtocolSession(url)
    await s.connect()
    try:
        await s.rerun("")
        deadline = time.perf_counter() + 30
        while not s.finished and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
    finally:
        await s.close()


def _rss_mb(proc) -> float:  # noqa: ANN001 - a Popen
    import psutil

    with contextlib.suppress(psutil.Error):
        return psutil.Process(proc.pid).memory_info().rss / 2**20
    return float("nan")


@contextlib.contextmanager
def _target(args: argparse.Namespace, log) -> Iterator[tuple[str, list, list[str]]]:  # noqa: ANN001 - a text file
    """The URL to load, the server processes and each server's own URL: ``--url``, one server, or ``--replicas N``
    behind nginx."""
    if args.url:
        yield args.url.rstrip("/"), [], [args.url.rstrip("/")]
    elif args.replicas:
        from tests.support.nginx import running_nginx
        from tests.support.server import running_servers

        with tempfile.TemporaryDirectory(prefix="medai-nginx-") as tmp, \
                running_servers(args.replicas, logs=[Path(tmp) / f"r{k}.log" for k in range(args.replicas)]) as servers, \
                running_nginx([s.url.removeprefix("http://") for s in servers], Path(tmp) / "nginx") as ngx:
            try:
                yield ngx.url, [s.proc for s in servers], [s.url for s in servers]
            finally:
                for k in range(args.replicas):
                    log.write((Path(tmp) / f"r{k}.log").read_text())
    else:
        server = start_server(log=log)
        try:
            try:
                wait_healthy(server.url, timeout_s=30.0, proc=server.proc)
            except ServerError as exc:  # run anyway: the sessions' errors and the log's tracebacks make the report
                print(f"warning: {exc}", file=sys.stderr)
            yield server.url, [server.proc], [server.url]
        finally:
            stop(server)


def drive(args: argparse.Namespace, sessions, title: str) -> None:  # noqa: ANN001 - async (url) -> result dict
    """Start a server, or ``--replicas N`` behind nginx (unless ``--url``), run ``sessions(url)`` within
    ``--deadline``, stop them, and print the report with the servers' tracebacks, the throughput and each
    server's resident memory at the end of the load."""
    log = tempfile.TemporaryFile(mode="w+")
    warm_inputs()
    with _target(args, log) as (url, procs, direct):
        if args.warm > 0:
            warm_up(direct, args.warm)
        t0 = time.perf_counter()
        out = asyncio.run(asyncio.wait_for(sessions(url), args.deadline))
        wall = time.perf_counter() - t0
        rss = [_rss_mb(p) for p in procs]
    log.seek(0)
    where = (f"{args.replicas} replica(s) behind nginx" if args.replicas else "one server") + (
        f", warm (home page opened {args.warm:.0f} s before)" if args.warm > 0 else ", cold (load from the first health check)")
    report(f"# {title}: {args.sessions} concurrent sessions x {args.rounds} rounds, {where}, wall {wall:.0f} s",
           out, log.read())
    done = sum(len(out[k]) for k in ("scan", "records", "forecast"))
    print(f"throughput: {done} results in {wall:.0f} s = {done / wall:.2f} results/s")
    if rss:
        print("resident memory per server at the end: " + ", ".join(f"{m:.0f} MB" for m in rss))


def main() -> None:
    args = cli("Load test with one headless Chromium page per session.")
    drive(args, lambda url: run(url, args.sessions, args.rounds, args.timeout), "browser load test")


if __name__ == "__main__":
    main()
