"""Training jobs in the background: one at a time per server process, the others queued in order.

A page submits a job (``QUEUE.submit``) and polls ``job.status()``; the job runs in the queue's one worker
thread, so a clinician's page never waits for it and two trainings never share the two cores. The uploaded
ZIP's bytes live only in the job and are dropped when it ends; nothing is written to disk or logged (the model
folder's files are in memory until the user saves or downloads them).
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from medai_core.errors import Cancelled, MedAIError
from medai_core.workspaces.training.fit import estimate_seconds, train_user_model
from medai_core.workspaces.training.settings import Event, TrainResult, TrainSettings

KEEP_S = 3600.0
PHASES = ("read", "features", "train", "reference", "export")
PHASE_WORDS = {"queued": "waiting for the training job ahead of it", "read": "reading images",
               "features": "computing backbone features", "train": "training", "reference": "OOD reference statistics",
               "export": "exporting the model"}


def duration(seconds: float | None) -> str:
    """``75`` -> "1 min 15 s"; ``8.2`` -> "8 s"."""
    if seconds is None:
        return "unknown"
    s = round(max(seconds, 0.0))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


@dataclass(frozen=True)
class JobStatus:
    """What the page shows: state (queued, running, done, failed, cancelled), phase and progress, the epochs so
    far, the time elapsed and the estimate of the time left, the queue position, the error or the result."""

    id: str
    state: str
    phase: str
    done: int
    total: int
    history: tuple[dict[str, float], ...]
    elapsed_s: float
    remaining_s: float | None
    ahead: int
    error: str = ""
    result: TrainResult | None = None

    @property
    def words(self) -> str:
        return PHASE_WORDS.get(self.phase, self.phase)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")


@dataclass
class TrainingJob:
    id: str
    settings: TrainSettings
    source: Any
    manifest: bytes | None
    n_images: int
    state: str = "queued"
    phase: str = "queued"
    done: int = 0
    total: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    phase_started: float = 0.0
    plan: dict[str, float] = field(default_factory=dict)
    error: str = ""
    result: TrainResult | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancel_event.set()

    def on_event(self, e: Event) -> None:
        if e.phase != self.phase:
            self.phase, self.phase_started = e.phase, time.perf_counter()
        self.done, self.total = e.done, e.total
        if e.epoch is not None:
            self.history.append(e.epoch)

    def remaining(self) -> float | None:
        """Seconds left: the current phase at its measured rate, later phases from the plan."""
        if self.state != "running" or self.phase not in PHASES:
            return None
        now = time.perf_counter()
        spent = now - self.phase_started
        if self.done > 0 and self.total > 0:
            here = spent / self.done * (self.total - self.done)
        else:
            here = max(self.plan.get(self.phase, 0.0) - spent, 0.0)
        later = sum(self.plan.get(p, 0.0) for p in PHASES[PHASES.index(self.phase) + 1:])
        return here + later


class TrainingQueue:
    """The server's training jobs. ``submit`` returns at once; one worker thread runs them in order."""

    def __init__(self) -> None:
        self._jobs: dict[str, TrainingJob] = {}
        self._waiting: deque[TrainingJob] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._ids = itertools.count(1)
        self._worker: threading.Thread | None = None

    def submit(self, source: Any, settings: TrainSettings, *, manifest: bytes | None = None,
               n_images: int = 0) -> TrainingJob:
        settings.check()
        with self._lock:
            now = time.perf_counter()
            for old in [j for j in self._jobs.values() if j.finished and now - j.finished > KEEP_S]:
                del self._jobs[old.id]  # a finished job's files (the model, ~14 MB) are kept an hour
            job = TrainingJob(f"job-{next(self._ids)}-{int(time.time())}", settings, source, manifest, n_images)
            self._jobs[job.id] = job
            self._waiting.append(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="medai-training", daemon=True)
                self._worker.start()
            self._wake.notify()
        return job

    def get(self, job_id: str) -> TrainingJob | None:
        return self._jobs.get(job_id)

    def status(self, job_id: str) -> JobStatus | None:
        job = self._jobs.get(job_id)
        if job is None:
            return None
        with self._lock:  # the job at the head of the queue is the one running
            ahead = list(self._waiting).index(job) if job.state == "queued" and job in self._waiting else 0
        end = job.finished or time.perf_counter()
        return JobStatus(job.id, job.state, job.phase, job.done, job.total, tuple(job.history),
                         end - job.started if job.started else 0.0, job.remaining(), ahead, job.error, job.result)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting:
                    if not self._wake.wait(timeout=60):
                        self._worker = None
                        return
                job = self._waiting[0]
            self._train(job)
            with self._lock:
                self._waiting.popleft()

    @staticmethod
    def _train(job: TrainingJob) -> None:
        job.state, job.started = "running", time.perf_counter()
        job.phase_started = job.started
        try:
            if job.cancel_event.is_set():
                raise Cancelled("Cancelled before it started.")
            job.plan = estimate_seconds(job.settings, job.n_images) if job.n_images else {}
            job.result = train_user_model(job.source, job.settings, manifest=job.manifest, emit=job.on_event,
                                          cancel=job.cancel_event.is_set)
            job.state = "done"
        except Cancelled as exc:
            job.state, job.error = "cancelled", str(exc)
        except MedAIError as exc:
            job.state, job.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the worker; the page shows it
            job.state, job.error = "failed", f"Training failed unexpectedly ({type(exc).__name__}: {str(exc)[:200]})."
        finally:
            job.source = None  # the uploaded bytes go with the job
            job.finished = time.perf_counter()


QUEUE = TrainingQueue()
