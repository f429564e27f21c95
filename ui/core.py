"""Cached model loaders, background jobs, the audit hook, sign-in and small widgets (see ``ui``)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st

from medai_core.errors import MedAIError
from medai_core.models import MODELS, get_spec, load_model, weights_digest

K_JOBS, K_AUDIT_SEEN, K_AUDIT_ANON = "ui.jobs", "ui.audit.seen", "ui.audit.anon"
INTENDED_USE = (
    "**Intended use:** decision support and demonstration. MedAI does not make a diagnosis; "
    "every output must be reviewed by a qualified clinician together with the full clinical picture."
)


@st.cache_resource(show_spinner="Loading model…")
def cached_model(name: str):  # noqa: ANN201 - a torch module
    """One eval-mode model per process, shared by every session (explain calls lock it)."""
    return load_model(name)


_WORK_LOCK = threading.Lock()
_WORK = {"active": 0, "full": 0}  # page runs and background jobs running now; torch's intra-op threads when alone


@contextlib.contextmanager
def model_work() -> Any:
    """Around a page run or a background job: torch's intra-op threads for the work in this thread, all the
    machine's when it runs alone, one when others run at the same time.

    With the default (all cores for every caller), ten sessions on two cores ran twenty compute threads that
    took turns; one thread each when busy took the scan p50 under ten sessions from 2.5 to 1.4 s (issue 18),
    while a single user keeps both cores. ``torch.set_num_threads`` sets the calling thread's OpenMP team
    size (the pages' work runs on its own thread), so it is set at every start, and put back at the end (new
    threads, e.g. a training job's, start from the last value set). Before torch is imported (the home page on a
    cold start) there is nothing to set, and torch is not imported for it. ``MEDAI_TORCH_THREADS`` overrides
    the number used alone."""
    import sys

    torch = sys.modules.get("torch")
    with _WORK_LOCK:
        if torch is not None and not _WORK["full"]:
            _WORK["full"] = max(1, int(os.environ.get("MEDAI_TORCH_THREADS", "0") or 0) or torch.get_num_threads())
        _WORK["active"] += 1
        alone = _WORK["active"] == 1
    if torch is not None:
        torch.set_num_threads(_WORK["full"] if alone else 1)
    try:
        yield
    finally:
        with _WORK_LOCK:
            _WORK["active"] -= 1
        if torch is not None:
            torch.set_num_threads(_WORK["full"])


_RUNS_LOCK = threading.Lock()
_RUNS: dict[str, Any] = {"slots": None, "n": 0}


def page_run_slots() -> int:
    """How many page runs may execute at once: ``MEDAI_PAGE_RUNS`` (0: no limit), else the machine's cores + 1."""
    raw = os.environ.get("MEDAI_PAGE_RUNS", "").strip()
    return max(0, int(raw)) if raw.isdigit() else (os.cpu_count() or 2) + 1


@contextlib.contextmanager
def page_run() -> Any:
    """Around a page run: at most ``page_run_slots()`` run at once; the others wait their turn, in order of arrival.

    Ten sessions' runs all at once shared two cores and one interpreter lock: each took ten times as long, every
    result came late, and switching between them cost throughput. Admitted a few at a time, each runs at nearly
    its single-user speed and the queue drains in arrival order (issue 18). Fragment reruns (a slider moving the
    viewer) and background jobs do not pass here, so they are never queued behind whole page runs."""
    with _RUNS_LOCK:
        n = page_run_slots()
        if _RUNS["slots"] is None or _RUNS["n"] != n:
            _RUNS["slots"], _RUNS["n"] = (threading.Semaphore(n) if n else None), n
        slots = _RUNS["slots"]
    if slots is None:
        yield
        return
    got = False
    while not (got := slots.acquire(timeout=0.05)):
        if _superseded():  # a newer run of this session replaces this one: leave the queue, stop at once
            break
    try:
        yield
    finally:
        if got:
            slots.release()


def _superseded() -> bool:
    """Streamlit has asked this page run to stop or rerun (the user changed a widget or uploaded a file while the
    run waited for a slot). Reads Streamlit's request state without consuming it: the run's next element raises
    as usual. Streamlit's runner gives no public way to ask; with an unknown version it answers False (the run then
    waits its turn, then stops)."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx
        from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType

        requests = getattr(get_script_run_ctx(), "script_requests", None)
        return requests is not None and getattr(requests, "_state", ScriptRequestType.CONTINUE) != ScriptRequestType.CONTINUE
    except Exception:  # noqa: BLE001 - a Streamlit without these internals
        return False


@st.cache_resource
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="medai-explain")


def model_picker(modality: str, key: str, auto: str = "") -> str:
    """Select box of the registered models of a modality; returns the chosen name. With ``auto`` the first
    choice is that text (the page chooses per input) and returns ""."""
    names = ([""] if auto else []) + MODELS.names(modality=modality)
    user = lambda n: "user model — " if get_spec(n).extra.get("user_model") else ""
    return st.selectbox("Model", names, key=key,
                        format_func=lambda n: auto if not n else f"{n}: {user(n)}{get_spec(n).description}")


def digest(data: bytes, full: bool = False) -> str:
    """sha256 in hex: 16 characters for cache keys; ``full`` for the audit trail (the only trace of an input it keeps)."""
    return hashlib.sha256(data).hexdigest()[: None if full else 16]


def current_user() -> str:
    """Who the audit trail names: the signed-in user's e-mail (or name), else this session's anonymous id."""
    if st.user.get("is_logged_in", False):
        return str(st.user.get("email") or st.user.get("name") or "signed-in user")
    return st.session_state.setdefault(K_AUDIT_ANON, f"anon-{uuid.uuid4().hex[:12]}")


def is_admin() -> bool:
    """Signed in and listed in ``.streamlit/secrets.toml`` ``[medai] admins`` (e-mails): may open the Audit page."""
    try:
        admins = {str(a).strip().lower() for a in st.secrets.get("medai", {}).get("admins", [])}
    except Exception:  # noqa: BLE001 - no secrets file: nobody is an admin
        return False
    return bool(st.user.get("is_logged_in", False)) and str(st.user.get("email") or "").strip().lower() in admins


def audit(action: str, workspace: str, model: str | None = None, *, sha: str | None = None, params: dict | None = None,
          summary: dict | None = None, once: bool = True) -> None:
    """One record in the audit trail (``medai_core.audit``): user, model, weights and input digests, parameters,
    summary. ``once``: only the first time this session sees (action, input, model, parameters), as every widget
    change reruns the page. A failing store never stops the page: a warning, the error's type in the log."""
    from medai_core.audit import record_event  # sqlalchemy loads on the first record, not at start-up

    seen: set = st.session_state.setdefault(K_AUDIT_SEEN, set())
    key = f"{action}|{workspace}|{sha}|{model}|{json.dumps(params, sort_keys=True, default=str)}"
    if once and key in seen:
        return
    try:
        record_event(action, workspace=workspace, user=current_user(), model=model, params=params, input_sha256=sha,
                     weights_sha256=weights_digest(model) if model else None, summary=summary)
    except Exception as err:  # noqa: BLE001 - the trail must not take the page down
        logging.getLogger("medai.audit").warning("audit trail unavailable: %s", type(err).__name__)
        st.warning("Audit trail unavailable: this action was not recorded.", icon=":material/history:")
        return
    seen.add(key)


@dataclass
class Job:
    """A background computation with progress, owned by one session."""

    label: str
    future: Future | None = None
    started: float = field(default_factory=time.perf_counter)
    progress: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def done(self) -> bool:
        return self.future is not None and self.future.done()


def submit_job(key: str, label: str, fn: Callable[[Callable[[float], None]], Any], keep: int = 8,
               wait_s: float = 0.0) -> Job:
    """Start ``fn(progress)`` in the background once per ``key`` for this session.

    Jobs live in this session's state only, so no session sees another's results. ``progress`` records the
    fraction done and raises ``Cancelled`` once the job's ``cancel`` is set (``explain.base.cancellable``), so
    a cancelled explainer stops at its next model pass. A new job is waited for up to ``wait_s`` seconds: a
    quick one (Grad-CAM, tens of ms) is then drawn in this same run, and only slow ones make the page poll
    (each poll is a fragment rerun, and the last one a full rerun).
    """
    from medai_core.explain.base import cancellable

    jobs: dict[str, Job] = st.session_state.setdefault(K_JOBS, {})
    job = jobs.get(key)
    if job is not None:
        return job
    job = Job(label)

    def record(p: float) -> None:
        job.progress = p

    def run(progress: Callable[[float], None]) -> Any:
        with model_work():
            return fn(progress)

    job.future = _executor().submit(run, cancellable(record, job.cancel))
    jobs[key] = job
    while len(jobs) > keep:
        jobs.pop(next(iter(jobs)))
    if wait_s > 0:
        wait([job.future], timeout=wait_s)
    return job


def estimate(model_name: str, modality: str, x: Any, method: str, params: dict) -> Any:
    """The attribution's expected time on this machine (``explain.cost.estimate_seconds``: batched passes x
    pass time measured here), or None when it cannot be estimated. Cost depends on the input's shape, not
    its values, so it is computed once per process for each model, method, parameters and shape (measuring
    it on every rerun made a copy of the model per session thread: 14% of the server's time under load)."""
    import torch

    if not isinstance(x, torch.Tensor):
        return None
    return _estimate(model_name, modality, tuple(x.shape), method, tuple(sorted((k, str(v)) for k, v in params.items())),
                     _params=params)


@st.cache_resource(show_spinner=False, max_entries=64)
def _estimate(model_name: str, modality: str, shape: tuple[int, ...], method: str, params_key: tuple, _params: dict) -> Any:
    import torch

    from medai_core.explain.cost import estimate_seconds

    try:
        return estimate_seconds(cached_model(model_name), modality, torch.zeros(shape), method, _params)
    except MedAIError:
        return None


def forget_job(key: str) -> None:
    """Cancel a running job (it stops at its next model pass) and forget it, so the page can start it again."""
    job = st.session_state.get(K_JOBS, {}).pop(key, None)
    if job is not None:
        job.cancel.set()


def show_error(err: BaseException) -> None:
    """Clear message for the user's mistakes; a generic one (no details) for bugs."""
    if isinstance(err, MedAIError):
        st.error(str(err), icon=":material/error:")
    else:
        st.error("An unexpected error occurred while processing this input; nothing was saved. "
                 "Please try another file.", icon=":material/error:")


@st.cache_resource(max_entries=4, ttl=900, show_spinner="Decoding scan…")
def cached_scan(digest_key: str, _data: bytes):  # noqa: ANN201 - a Scan
    """Decode once per upload (kept in memory only, never on disk). Keyed by content digest."""
    from medai_core.io import load_scan

    return load_scan(_data)


@st.cache_resource(max_entries=16, ttl=900, show_spinner="Choosing the model for this scan…")
def cached_route(digest_key: str, frame: int, _scan):  # noqa: ANN001, ANN201 - a Scan -> a Route
    """Every routed image model's verdict on one frame of a scan, once per (upload, frame): widgets that only
    change the view (window, opacity, explainer) do not run the models again."""
    from medai_core.workspaces.imaging import route_scan

    return route_scan(_scan, cached_model, frame, keep_grid=True)


@st.cache_resource(max_entries=16, ttl=900, show_spinner=False)
def cached_attention(digest_key: str, frame: int, name: str, _x, _pred=None):  # noqa: ANN001, ANN201 - tensor -> Explanation
    """The attention map of an attention-pooling image model, once per (upload, frame, model): read from
    ``_pred`` (that model's prediction on ``_x``, whose forward pass kept the head's weights) when given, else
    one forward pass (the explainer is registered ``hooks=False``)."""
    from medai_core.workspaces.imaging import attention_map, explain

    spec = get_spec(name)
    att = attention_map(_pred, _x) if _pred is not None and _pred.model == name else None
    return att if att is not None else explain(cached_model(name), spec, _x, "attention", spec.labels[0])


@st.cache_resource(show_spinner=False)
def prewarm() -> threading.Thread:
    """Once per server process, after the first page is on screen (any page: app.py calls it): in the background,
    import torch and the model and explainer modules, load the routed image models and each page's default model,
    make the image models' inference copies, and let the two explanation threads make their attribution copies. The first users after a
    restart then wait for none of it (under ten sessions at once the first round of scans took 5.6-6.3 s against
    0.6-3.3 s later; issue 18)."""
    def work() -> None:
        import importlib
        import pkgutil

        import medai_core.workspaces

        time.sleep(2.0)  # let the server deliver the first page before the imports take the GIL
        workspaces = [f"medai_core.workspaces.{m.name}" for m in pkgutil.iter_modules(medai_core.workspaces.__path__)]
        for mod in ("medai_core.models.busi_cnn", "medai_core.models.effnet", "medai_core.models.support_ftt", "medai_core.models.notes_tfm",
                    "medai_core.models.forecaster", *workspaces, "plotly.graph_objects", "plotly.colors",
                    # first used inside a page run: the audit trail (sqlalchemy), DICOM sniffing, the styled tables
                    "medai_core.audit", "pydicom", "pandas.io.formats.style", "narwhals.stable.v1"):
            importlib.import_module(mod)
        import torch

        from medai_core.explain.base import inference_copy, thread_copy
        from medai_core.workspaces.imaging import routed_models

        images = routed_models()
        for name in [*images, *(n for m in ("tabular", "series", "text") for n in MODELS.names(modality=m)[:1])]:
            try:
                cached_model(name)
            except MedAIError:  # a missing weights file: the page says so when it is opened
                continue
        for name in images:
            with contextlib.suppress(MedAIError):
                inference_copy(cached_model(name))  # the one the predictions and attention maps run on
                wait([_executor().submit(thread_copy, cached_model(name)) for _ in range(2)])
                spec = get_spec(name)  # the sanity check's time estimate under every scan's Grad-CAM (timed passes)
                estimate(name, spec.modality, torch.zeros(1, spec.in_channels or 1, *spec.input_size), "gradcam", {})
        from ui.panels import warm_reliability

        for name in [*images, *(n for m in ("tabular", "series") for n in MODELS.names(modality=m)[:1])]:
            with contextlib.suppress(MedAIError):  # held-out views and figures the pages show first
                warm_reliability(name)

    t = threading.Thread(target=work, name="medai-prewarm", daemon=True)
    t.start()
    return t


LOGIN_ENV = "MEDAI_REQUIRE_LOGIN"


def require_sign_in() -> None:
    """With ``MEDAI_REQUIRE_LOGIN=1`` nothing is shown until the user signs in with the OpenID Connect
    provider configured in ``.streamlit/secrets.toml`` ``[auth]`` (Streamlit's built-in ``st.login``).
    Without the switch (a single-user or demo machine) the app is open. See README, "Shared deployment"."""
    if os.environ.get(LOGIN_ENV, "").strip().lower() not in ("1", "true", "yes", "on"):
        return
    try:
        configured = "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all
        configured = False
    if not configured:
        st.error(f"Sign-in is required ({LOGIN_ENV} is set) but no identity provider is configured: add an "
                 "[auth] section to .streamlit/secrets.toml (see the README). Nothing else is shown.",
                 icon=":material/lock:")
        st.stop()
    if not st.user.get("is_logged_in", False):
        st.title("MedAI")
        st.info("This shared deployment requires sign-in with your organisation's account.", icon=":material/lock:")
        st.button("Sign in", on_click=st.login, type="primary", key="ui.login")
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as {st.user.get('name') or st.user.get('email') or 'user'}")
        st.button("Sign out", on_click=st.logout, key="ui.logout")


def route_via_app() -> None:
    """Make sure pages run under app.py's ``st.navigation``. Streamlit still has its legacy multipage mode: until
    app.py has called ``st.navigation`` once in a server process, a first visit to a sub-page URL (``/imaging``)
    runs ``pages/*.py`` directly, without the router's page config and menu. Switch the mode off and rerun through
    the router (Streamlit's PagesManager flag; revisit when Streamlit drops the legacy mode)."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


@st.cache_data(show_spinner=False)
def cached_operating_point(name: str) -> dict:
    """The sepsis model's held-out operating point and threshold table from its card, read once per process
    (``workspaces.vitals.sepsis.operating_point``; each session gets its own copy)."""
    from medai_core.workspaces.vitals.sepsis import operating_point

    return operating_point(get_spec(name))


@st.cache_resource(show_spinner=False)
def cached_heldout(name: str):  # noqa: ANN201 - a HeldOut
    """The model's shipped held-out results (assets/<name>.heldout.json), loaded once per process."""
    from medai_core.trust.heldout import load_heldout

    return load_heldout(name)


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``fn(*args, **kwargs)`` and its wall time in ms, for the latency every result shows on screen."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - t0) * 1000
