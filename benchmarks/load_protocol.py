"""Load test without browsers: N concurrent sessions speak Streamlit's own protocol to one real server.

``load_test.py`` drives Chromium pages, which on this 2-core machine compete with the server for the same
cores, so its latencies mix client rendering with server work. This client does what the browser's
JavaScript does on the wire and nothing else: it opens the ``/_stcore/stream`` websocket (with the XSRF
token, as the frontend does), asks for upload URLs (``file_urls_request``), PUTs the file to
``/_stcore/upload_file/<session>/<file>``, reruns the page with the uploader's widget state, answers the
server's fragment auto-reruns (the page polls a background explanation that way) and reads the protobuf
deltas until the result's text appears. Latency = upload start -> result delta received.

Each session: uploads its own scan (a fresh PNG per round, so no session is served from another's decode
cache) and waits for the prediction and the Grad-CAM caption, then scores a 20-record CSV (even sessions)
or forecasts an ICU stay (odd sessions). Errors = a wait that timed out, an error box, an exception element
or a traceback in the server log (kept in memory and printed in part).

Run: ``python benchmarks/load_protocol.py [--sessions 10] [--rounds 3] [--replicas N] [--explanations]``; with ``--replicas`` the
load goes through nginx to N replicas (``deploy/``), each session keeping nginx's sticky cookie. Bounded by ``--sessions``,
``--rounds`` and ``--deadline``; the server binds 127.0.0.1 only. Not a test.
"""
from __future__ import annotations

import asyncio
import re
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_startup import ROOT  # noqa: E402
from load_test import cli, drive, records_csv, scan_png, stay_csv  # noqa: E402

sys.path.insert(0, str(ROOT))


@dataclass
class RunView:
    """What the server sent since the last user action: widget ids by label, and all visible text."""

    widgets: dict[str, tuple[str, object]] = field(default_factory=dict)  # label -> (id, proto)
    texts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class ProtocolSession:
    """One browser tab's worth of Streamlit protocol, no rendering."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.ws = None
        self.session_id = ""
        self.page = ""
        self.page_hash = ""
        self.finished = 0  # script runs (full or fragment) finished so far
        self.states: dict[str, object] = {}  # widget id -> WidgetState we keep sending
        self.fragments: dict[str, float] = {}  # fragment id -> auto-rerun interval
        self.widget_fragment: dict[str, str] = {}  # widget label -> the fragment that drew it ("" = none)
        self.view = RunView()
        self.changed = asyncio.Event()
        self.file_urls: dict[str, asyncio.Future] = {}
        self.cookie = ""
        self.xsrf = ""

    async def connect(self) -> None:
        import websockets

        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        await asyncio.to_thread(opener.open, f"{self.base}/_stcore/health", None, 10)
        for c in jar:
            if c.name == "_streamlit_xsrf":
                self.xsrf = c.value
        # every cookie goes back, as a browser's would: behind nginx its sticky one (deploy/) keeps the session
        # (websocket and upload PUTs) on one replica
        self.cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
        ws_url = self.base.replace("http://", "ws://") + "/_stcore/stream"
        self.ws = await websockets.connect(ws_url, subprotocols=["streamlit", self.xsrf] if self.xsrf else ["streamlit"],
                                           additional_headers={"Cookie": self.cookie},
                                           max_size=None, open_timeout=30)
        self.reader = asyncio.create_task(self._read())
        self.poller = asyncio.create_task(self._auto_rerun())

    async def close(self) -> None:
        self.poller.cancel()
        self.reader.cancel()
        await self.ws.close()

    def _back(self, **kw: object) -> bytes:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        return BackMsg(**kw).SerializeToString()

    async def rerun(self, page: str | None = None, fragment_id: str = "", auto: bool = False) -> None:
        from streamlit.proto.ClientState_pb2 import ClientState
        from streamlit.proto.WidgetStates_pb2 import WidgetStates

        if page is not None:
            self.page, self.page_hash = page, ""
        cs = ClientState(page_name=self.page, page_script_hash=self.page_hash, widget_states=WidgetStates(widgets=list(self.states.values())),
                         fragment_id=fragment_id, is_auto_rerun=auto)
        await self.ws.send(self._back(rerun_script=cs))

    async def _auto_rerun(self) -> None:
        """The frontend's job for ``st.fragment(run_every=...)``: rerun the fragment every interval."""
        while True:
            await asyncio.sleep(0.05)
            for fid, every in list(self.fragments.items()):
                last = getattr(self, f"_last_{fid}", 0.0)
                if time.perf_counter() - last >= every:
                    setattr(self, f"_last_{fid}", time.perf_counter())
                    await self.rerun(fragment_id=fid, auto=True)

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        async for raw in self.ws:
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                self.session_id = msg.new_session.initialize.session_id or self.session_id
                if not msg.metadata.run.fragment_ids:  # a full run forgets the last run's fragments
                    self.fragments.clear()
            elif kind == "navigation":  # the page st.navigation chose: reruns name it as the browser does
                self.page_hash = msg.navigation.page_script_hash
            elif kind == "auto_rerun":
                self.fragments[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
            elif kind == "stop_auto_rerun":
                for fid in msg.stop_auto_rerun.fragment_ids:
                    self.fragments.pop(fid, None)
            elif kind == "file_urls_response":
                fut = self.file_urls.pop(msg.file_urls_response.response_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(msg.file_urls_response)
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                self._element(msg.delta.new_element, msg.delta.fragment_id)
            elif kind == "script_finished":
                self.finished += 1
            self.changed.set()

    def _element(self, el, fragment_id: str = "") -> None:  # noqa: ANN001 - an Element proto
        kind = el.WhichOneof("type")
        sub = getattr(el, kind)
        if hasattr(sub, "id") and hasattr(sub, "label") and sub.id:
            self.view.widgets[sub.label] = (sub.id, sub)
            self.widget_fragment[sub.label] = fragment_id
        if kind == "markdown":
            self.view.texts.append(sub.body)
        elif kind == "alert":
            self.view.texts.append(sub.body)
            if sub.format == 1:  # ERROR
                self.view.errors.append(sub.body[:120])
        elif kind == "exception":
            self.view.errors.append(f"exception element: {sub.type}: {sub.message[:100]}")
        elif kind in ("heading", "metric"):
            self.view.texts.append(getattr(sub, "body", "") or getattr(sub, "label", ""))

    async def wait_for(self, pattern: str, timeout: float, widget: bool = False) -> None:
        """Until a text matching ``pattern`` (or, with ``widget``, a widget with that label) has arrived."""
        rx = re.compile(pattern)
        deadline = time.perf_counter() + timeout
        while True:
            if any(rx.search(t) for t in (self.view.widgets if widget else self.view.texts)):
                return
            if self.view.errors:
                raise RuntimeError(self.view.errors[0])
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"no {pattern!r} in {timeout:.0f} s")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    def set_state(self, label: str, **value: object) -> None:
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        wid = self.view.widgets[label][0]
        self.states[wid] = WidgetState(id=wid, **value)

    async def move(self, label: str, timeout: float = 30.0, **value: object) -> float:
        """Change one widget as a user would and wait for the run it starts (the widget's fragment only, when
        it sits in one, as the frontend does) to finish. Returns the seconds from sending to ``script_finished``."""
        self.set_state(label, **value)
        runs, t0 = self.finished, time.perf_counter()
        await self.rerun(fragment_id=self.widget_fragment.get(label, ""))
        while self.finished == runs:
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"moving {label!r}: no run finished in {timeout:.0f} s")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
        return time.perf_counter() - t0

    async def open_page(self, page: str, ready: str, timeout: float) -> None:
        self.states.clear()
        self.fragments.clear()
        self.view = RunView()
        await self.rerun(page)
        await self.wait_for(re.escape(ready), timeout, widget=True)

    async def timed_result(self, page: str, choose: tuple[str, str] | None, label: str, name: str, data: bytes,
                           mime: str, done: str, timeout: float, then: str = "") -> tuple[float, float | None]:
        """Open ``page`` (choosing ``choose`` = (radio label, option) first), upload ``data`` to the uploader
        ``label`` and wait for a text matching ``done``; returns upload start -> that text, in seconds, after
        letting the run that drew it finish (an error after it counts too), and with ``then`` upload start ->
        a text matching ``then`` as well (waited for after ``done``; None without ``then``)."""
        await self.open_page(page, choose[0] if choose else label, timeout)
        if choose:
            self.set_state(choose[0], string_value=choose[1])
            self.view = RunView()
            await self.rerun()
            await self.wait_for(re.escape(label), timeout, widget=True)
        t0 = time.perf_counter()
        await self.upload(label, name, data, mime)
        await self.wait_for(done, timeout)
        seconds = time.perf_counter() - t0
        later = None
        if then:
            await self.wait_for(then, timeout)
            later = time.perf_counter() - t0
        runs = self.finished
        for _ in range(100):
            if self.finished > runs or self.view.errors:
                break
            await asyncio.sleep(0.05)
        return seconds, later

    async def upload(self, label: str, name: str, data: bytes, mime: str) -> None:
        from streamlit.proto.Common_pb2 import FileURLsRequest, FileUploaderState, UploadedFileInfo

        req_id = uuid.uuid4().hex
        fut = asyncio.get_running_loop().create_future()
        self.file_urls[req_id] = fut
        await self.ws.send(self._back(file_urls_request=FileURLsRequest(request_id=req_id, file_names=[name],
                                                                       session_id=self.session_id)))
        resp = await asyncio.wait_for(fut, 30)
        urls = resp.file_urls[0]
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{urls.file_id}\"; filename=\"{name}\"\r\n"
                f"Content-Type: {mime}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        url = urls.upload_url if urls.upload_url.startswith("http") else self.base + urls.upload_url
        req = urllib.request.Request(url, data=body, method="PUT", headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "X-Xsrftoken": self.xsrf,
            "Cookie": self.cookie})
        await asyncio.to_thread(urllib.request.urlopen, req, None, 30)
        self.set_state(label, file_uploader_state_value=FileUploaderState(uploaded_file_info=[
            UploadedFileInfo(name=name, size=len(data), file_id=urls.file_id, file_urls=urls)]))
        self.view.texts.clear()
        self.fragments.clear()
        await self.rerun()


async def one_session(base: str, k: int, rounds: int, out: dict, timeout: float, explanations: bool = False) -> None:
    s = ProtocolSession(base)
    try:
        await s.connect()
    except Exception as exc:  # noqa: BLE001
        out["errors"].append(f"session {k}: connect: {type(exc).__name__}: {exc}")
        return

    async def step(kind: str, page: str, choose: tuple[str, str] | None, label: str, name: str,
                   data: bytes, mime: str, done: str, r: int, then: str = "") -> None:
        try:
            seconds, later = await s.timed_result(page, choose, label, name, data, mime, done, timeout, then)
            out[kind].append(seconds)
            if later is not None:
                out["explanation"].append(later)
            if s.view.errors:
                raise RuntimeError(s.view.errors[0])
        except Exception as exc:  # noqa: BLE001 - every failure is an error of the run
            out["errors"].append(f"session {k} round {r} {kind}: {type(exc).__name__}: {str(exc)[:120]}")

    try:
        for r in range(rounds):
            seed = 1000 * k + r
            await step("scan", "imaging", None,
                       "DICOM, PNG, JPEG, BMP or TIFF (checked by content)", f"scan{seed}.png", scan_png(seed),
                       "image/png", r"Grad-CAM in \d+ ms", r)
            if k % 2 == 0:
                await step("records", "records", ("Records from", "Upload a CSV"), "Records CSV (one row per patient)",
                           f"batch{seed}.csv", records_csv(seed), "text/csv", r"Risk for 20 patients", r,
                           r"Shapley value sampling in \d+ ms" if explanations else "")
            else:
                await step("forecast", "vitals", None, "Series CSV, PhysioNet .txt or .psv", f"stay{seed}.csv",
                           stay_csv(seed), "text/csv", r"Red raised the forecast", r)
    finally:
        await s.close()


def main() -> None:
    args = cli("Load test speaking Streamlit's protocol, no browsers.")

    async def sessions(url: str) -> dict:
        out: dict = {"scan": [], "records": [], "forecast": [], "errors": [], **({"explanation": []} if args.explanations else {})}
        await asyncio.gather(*(one_session(url, k, args.rounds, out, args.timeout, args.explanations)
                               for k in range(args.sessions)))
        return out

    drive(args, sessions, "protocol load test")


if __name__ == "__main__":
    main()
