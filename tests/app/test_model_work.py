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
