"""ui.core.model_work: torch's intra-op threads per page run or job, all of them alone, one when others run."""
from __future__ import annotations

import threading

import torch

from ui.core import _WORK, model_work


def test_threads_follow_how_many_runs_are_busy(monkeypatch):
    full = 2  # as on a 2-core server (the test run itself may be limited to one thread)
    monkeypatch.setitem(_WORK, "full", full)
    seen: dict[str, int] = {}
    inside, release = threading.Event(), threading.Event()

    def long_run() -> None:
        with model_work():
            seen["first"] = torch.get_num_threads()
            inside.set()
            release.wait(10)

    def short_run() -> None:
        with model_work():
            seen["second"] = torch.get_num_threads()

    t1 = threading.Thread(target=long_run)
    t1.start()
    inside.wait(10)
    t2 = threading.Thread(target=short_run)
    t2.start()
    t2.join()
    release.set()
    t1.join()
    assert seen["first"] == _WORK["full"] == full  # alone: every core
    assert seen["second"] == 1  # while another run is busy: one thread, no oversubscription
    assert _WORK["active"] == 0
    after = {}
    t3 = threading.Thread(target=lambda: after.setdefault("n", torch.get_num_threads()))
    t3.start()
    t3.join()
    assert after["n"] == full  # a new thread (a training job's) starts from every core again


def _crowd(n: int, hold: threading.Event) -> tuple[list[threading.Thread], dict]:
    """``n`` page runs entering ``page_run`` at once, each staying inside until ``hold`` is set."""
    from ui.core import page_run

    state = {"inside": 0, "most": 0, "done": 0}
    lock = threading.Lock()

    def run() -> None:
        with page_run():
            with lock:
                state["inside"] += 1
                state["most"] = max(state["most"], state["inside"])
            hold.wait(10)
            with lock:
                state["inside"] -= 1
                state["done"] += 1

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    return threads, state


def _settle(state: dict, key: str, value: int) -> None:
    import time

    deadline = time.monotonic() + 10
    while state[key] != value and time.monotonic() < deadline:
        time.sleep(0.01)


def test_page_runs_are_admitted_a_few_at_a_time_in_turn(monkeypatch):
    monkeypatch.setenv("MEDAI_PAGE_RUNS", "2")
    hold = threading.Event()
    threads, state = _crowd(5, hold)
    _settle(state, "inside", 2)
    threading.Event().wait(0.3)  # the three others are waiting, not inside
    assert state["inside"] == 2 and state["done"] == 0
    hold.set()
    for t in threads:
        t.join(10)
    assert state["done"] == 5 and state["most"] == 2


def test_no_limit_with_zero_and_the_default_is_cores_plus_one(monkeypatch):
    import os

    from ui.core import page_run_slots

    monkeypatch.delenv("MEDAI_PAGE_RUNS", raising=False)
    assert page_run_slots() == (os.cpu_count() or 2) + 1
    monkeypatch.setenv("MEDAI_PAGE_RUNS", "0")
    hold = threading.Event()
    threads, state = _crowd(5, hold)
    _settle(state, "inside", 5)
    hold.set()
    for t in threads:
        t.join(10)
    assert state["most"] == 5 and state["done"] == 5


def test_a_superseded_run_leaves_the_queue_at_once(monkeypatch):
    """A run Streamlit has asked to stop (a newer one of the same session replaces it) does not wait for a slot:
    its next element raises, so it ends without holding one. Outside a script run nothing is superseded."""
    import ui.core as core

    assert core._superseded() is False
    monkeypatch.setenv("MEDAI_PAGE_RUNS", "1")
    hold = threading.Event()
    threads, state = _crowd(1, hold)
    _settle(state, "inside", 1)
    monkeypatch.setattr(core, "_superseded", lambda: True)
    late_hold = threading.Event()
    late, late_state = _crowd(1, late_hold)
    _settle(late_state, "inside", 1)  # entered without the slot, while the first run still holds it
    assert late_state["inside"] == 1 and state["inside"] == 1
    hold.set()
    late_hold.set()
    for t in [*threads, *late]:
        t.join(10)
    # the late run never took the slot, so it gave none back: the count is still one
    slots = core._RUNS["slots"]
    assert slots.acquire(timeout=1) and not slots.acquire(timeout=0.1)
    slots.release()


def test_superseded_reads_streamlits_own_request_state(monkeypatch):
    """The check reads the pinned Streamlit's ScriptRequests: fails here, not silently in production, if it moves."""
    import types

    import streamlit.runtime.scriptrunner as sr
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData, ScriptRequests

    import ui.core as core

    requests = ScriptRequests()
    monkeypatch.setattr(sr, "get_script_run_ctx", lambda: types.SimpleNamespace(script_requests=requests))
    assert core._superseded() is False
    assert requests.request_rerun(RerunData())
    assert core._superseded() is True
    requests = ScriptRequests()
    requests.request_stop()
    assert core._superseded() is True
