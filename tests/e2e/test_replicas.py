"""Two MedAI replicas behind Debian's nginx (``deploy/nginx.conf.template``), driven by two real browsers.

Sessions are spread over the replicas and stay on theirs (the ``medai_replica`` cookie nginx sets); when one
replica stops, new sessions are served by the other, and the stopped replica's open session is greyed out by
Streamlit while it reconnects and comes back on the other replica, never on an nginx error page.
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from deploy.render_nginx import max_upload_mb, render
from tests.support.nginx import (
    COOKIE,
    NGINX,
    nginx_available,
    running_nginx,
    upstreams_for,
)
from tests.e2e.test_browser import browser  # noqa: F401  (the shared fixture)
from tests.support.server import ServerError, running_servers, stop

CHROMIUM = os.environ.get("MEDAI_CHROMIUM", "/usr/bin/chromium")
SCAN = "Chest X-ray, bacterial pneumonia (child)"
READY = "Upload a scan in the sidebar"
RESULT = "Grad-CAM: '"
# what the page shows while its websocket is down. With `client.toolbarMode = "minimal"` Streamlit 1.67 draws no
# "Connecting" status widget: it greys the page out until it is connected again, and shows its own "Connection
# error" dialog if no server answers for long (all replicas down: "Connection failed with status 502.").
# Failover through nginx takes about a second. Record what shows, and any nginx error page at any moment.
WATCH_JS = """() => {
  window.__medai_seen = [];
  const note = (what) => { if (!window.__medai_seen.includes(what)) window.__medai_seen.push(what); };
  const check = () => {
    const w = document.querySelector('[data-testid="stConnectionStatus"], [role="dialog"]');
    if (w && w.innerText.trim()) note(w.innerText.trim());
    if (/Bad Gateway|Service Unavailable|Gateway Time-out|nginx/.test(document.body ? document.body.innerText : ''))
      note('NGINX ERROR PAGE');
  };
  new MutationObserver(check).observe(document.documentElement,
    {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def _require(ok: bool, what: str) -> None:
    if not ok:
        if os.environ.get("MEDAI_REQUIRE_BROWSER"):
            pytest.fail(f"{what} not found")
        pytest.skip(f"{what} is not installed (.ci/run installs it)")


def _shot(page, name: str) -> None:
    folder = os.environ.get("MEDAI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name))


def test_rendered_config_passes_nginx_t(tmp_path):
    """The template renders for 1 and 3 replicas into a config nginx accepts, with Streamlit's upload limit."""
    _require(nginx_available(), f"nginx ({NGINX})")
    for replicas in (["127.0.0.1:8501"], ["127.0.0.1:8501", "127.0.0.1:8502", "10.0.0.7:8501"]):
        text = render("127.0.0.1:8080", replicas, tmp_path, user="root" if os.geteuid() == 0 else None)
        assert not re.search(r"@@[A-Z_]+@@", text) and f"client_max_body_size {max_upload_mb() + 1}m;" in text
        assert text.count("upstream medai_") == len(replicas) + 1
        (tmp_path / "nginx.conf").write_text(text)
        out = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c",
                              str(tmp_path / "nginx.conf")], capture_output=True, text=True, timeout=30, check=False)
        assert out.returncode == 0, out.stderr
    with pytest.raises(ValueError, match="host:port"):
        render("8080", ["127.0.0.1"], tmp_path)


def _session(chromium, url: str):
    """A fresh browser (own cookies) on the Imaging page; its replica cookie."""
    ctx = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.goto(f"{url}/imaging")
    page.get_by_text(READY).first.wait_for(timeout=60_000)
    cookie = next(c["value"] for c in ctx.cookies() if c["name"] == COOKIE)
    return ctx, page, cookie


def _scan_result(page) -> None:
    from medai_core.workspaces.imaging.samples import sample_path

    page.locator("input[type=file]").set_input_files(str(sample_path(SCAN)))
    page.get_by_text(RESULT).first.wait_for(timeout=90_000)


@pytest.mark.e2e
def test_two_replicas_sticky_sessions_and_a_stopped_replica(browser, tmp_path):  # noqa: F811 - the fixture
    _require(nginx_available(), f"nginx ({NGINX})")
    with contextlib.ExitStack() as stack:
        try:
            replicas = stack.enter_context(running_servers(2, env={"PYTHONUNBUFFERED": "1"},
                                                           logs=[tmp_path / "r0.log", tmp_path / "r1.log"]))
            ngx = stack.enter_context(running_nginx([r.url.removeprefix("http://") for r in replicas],
                                                    tmp_path / "nginx"))
        except ServerError as exc:
            pytest.fail(f"replicas or nginx did not start: {exc}")
        by_addr = {r.url.removeprefix("http://"): r for r in replicas}

        # two browsers: nginx gives each its own replica (round robin for a browser without the cookie)
        sessions = [_session(browser, ngx.url) for _ in range(2)]
        for _, page, _ in sessions:
            _scan_result(page)
        served = [upstreams_for(ngx.access_log, cookie) for _, _, cookie in sessions]
        assert all(len(s) == 1 for s in served), served  # sticky: every request of a browser on one replica
        assert served[0] != served[1] and served[0] | served[1] == set(by_addr), served
        for (_, _, cookie), s in zip(sessions, served):  # the upload PUT went where the websocket is
            assert upstreams_for(ngx.access_log, cookie, "/_stcore/upload_file/") == s
        _shot(sessions[0][1], "replicas_session_a.png")

        # stop the first browser's replica while its page is open
        ctx_a, page_a, cookie_a = sessions[0]
        stopped = by_addr[next(iter(served[0]))]
        survivor = next(iter(served[1]))
        page_a.evaluate(WATCH_JS)
        t0 = time.monotonic()
        stopped.proc.terminate()  # SIGTERM: Streamlit closes its websockets, then exits
        page_a.wait_for_timeout(300)
        _shot(page_a, "replicas_reconnecting.png")
        stop(stopped)
        # the page reconnects through nginx to the other replica: nginx rewrites the browser's cookie
        deadline = time.monotonic() + 60
        while (new_cookie := next(c["value"] for c in ctx_a.cookies() if c["name"] == COOKIE)) == cookie_a:
            assert time.monotonic() < deadline, "the page did not reconnect to the other replica"
            page_a.wait_for_timeout(200)
        reconnect_s = time.monotonic() - t0
        seen = page_a.evaluate("window.__medai_seen")
        assert "NGINX ERROR PAGE" not in seen, seen
        # its reconnect (Streamlit's /_stcore/health, /_stcore/host-config, then the websocket) was answered there
        assert upstreams_for(ngx.access_log, new_cookie, "/_stcore/health") == {survivor}
        assert "Bad Gateway" not in page_a.content()
        _scan_result(page_a)  # and it works there (the PUT below went to the survivor)
        assert upstreams_for(ngx.access_log, new_cookie, "/_stcore/upload_file/") == {survivor}
        _shot(page_a, "replicas_after_failover.png")

        # a new browser now: served by the remaining replica
        ctx_c, page_c, cookie_c = _session(browser, ngx.url)
        _scan_result(page_c)
        assert upstreams_for(ngx.access_log, cookie_c) == {survivor}
        assert "Bad Gateway" not in page_c.content()
        for ctx, _, _ in [*sessions, (ctx_c, page_c, cookie_c)]:
            ctx.close()
        assert reconnect_s < 30, reconnect_s
