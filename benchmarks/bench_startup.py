"""Cold start and memory: ``streamlit run`` to the home page rendered in a real browser, and the server's
resident memory once every workspace has loaded its models.

Run: ``python benchmarks/bench_startup.py [--repeats 5]`` (needs Debian chromium). The browser is started
before the clock; each repeat starts a fresh server on 127.0.0.1 and stops it. Not a test.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
sys.path.insert(0, str(ROOT))
from tests.support.server import free_port, start_server, stop  # noqa: E402  (stop: targets.py takes it from here)

EVERY_MODEL = """
import os, psutil, torch, streamlit, plotly, captum.attr, pydicom
from medai_core.models import MODELS, load_model
models = [load_model(n) for n in MODELS]
print(len(models), psutil.Process().memory_info().rss / 2**20)
"""


def _scan() -> Path:
    from medai_core.workspaces.imaging.samples import sample_path

    return sample_path("Ultrasound, RGB (US1)")


def _stay() -> bytes:
    from medai_core.workspaces.vitals.samples import synthetic_icu_case

    return synthetic_icu_case("deteriorating").to_csv(index=False).encode()


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (MB)."""
    import psutil

    p = psutil.Process(pid)
    return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)]) / 2**20


def cold_start(browser, timeout: float = 60.0) -> tuple[float, subprocess.Popen, str]:  # noqa: ANN001
    """Seconds from launching the server to the home page's title visible in the browser."""
    port = free_port()  # before the clock, as the page is
    page = browser.new_page()
    t0 = time.perf_counter()
    server = start_server(port)
    while True:
        try:
            page.goto(server.url, timeout=5000)
            break
        except Exception:  # noqa: BLE001 - connection refused until the server listens
            if time.perf_counter() - t0 > timeout:
                stop(server)
                raise
            time.sleep(0.05)
    page.get_by_text("Real models trained on real data").wait_for(timeout=timeout * 1000)
    seconds = time.perf_counter() - t0
    page.close()
    return seconds, server.proc, server.url


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    out = subprocess.run([sys.executable, "-c", EVERY_MODEL], cwd=ROOT, capture_output=True, text=True, check=True)
    n_models, rss_models = out.stdout.split()
    starts, rss_home, rss_all = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        for i in range(args.repeats + 1):
            seconds, proc, url = cold_start(browser)
            try:
                if i == 0:
                    continue  # warm-up: first run fills the OS file cache (imports, weights)
                starts.append(seconds)
                rss_home.append(rss_mb(proc.pid))
                page = browser.new_page()
                page.goto(f"{url}/imaging")  # busi_cnn: a scan with prediction and Grad-CAM
                page.get_by_text("Upload a scan in the sidebar").wait_for(timeout=60_000)
                page.locator("input[type=file]").set_input_files(str(_scan()))
                page.get_by_text("Grad-CAM: '").first.wait_for(timeout=120_000)
                page.goto(f"{url}/records")  # support_ftt (form) and notes_tfm (second tab)
                page.get_by_text("Attention map").first.wait_for(timeout=120_000)
                page.goto(f"{url}/vitals")  # icu_gru on an uploaded synthetic stay
                page.locator("input[type=file]").first.set_input_files(
                    files=[{"name": "stay.csv", "mimeType": "text/csv", "buffer": _stay()}])
                page.get_by_text("Contribution of each past value").first.wait_for(timeout=120_000)
                page.wait_for_timeout(1000)
                page.close()
                rss_all.append(rss_mb(proc.pid))
            finally:
                stop(proc)
        browser.close()
    print(f"# cold start and memory, median of {args.repeats} fresh servers after one warm-up")
    print("| work | median | min | max | target |")
    print("|---|---|---|---|---|")
    print(f"| cold start: `streamlit run` to home page rendered in the browser | {statistics.median(starts):.2f} s | "
          f"{min(starts):.2f} s | {max(starts):.2f} s | <= 3 s |")
    print(f"| server resident memory, home page only | {statistics.median(rss_home):.0f} MB | {min(rss_home):.0f} MB | "
          f"{max(rss_home):.0f} MB | |")
    print(f"| server resident memory after a scan, a record and a forecast in three workspaces | "
          f"{statistics.median(rss_all):.0f} MB | {min(rss_all):.0f} MB | {max(rss_all):.0f} MB | <= 1.5 GB |")
    print(f"| one process with the app's libraries and all {n_models} models loaded | {float(rss_models):.0f} MB | | | "
          f"<= 1.5 GB |")


if __name__ == "__main__":
    main()
