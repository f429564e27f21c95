"""Run a batch job on Ray Data and write its rows as Parquet.

The inputs become a Ray dataset (one row per path); ``map_batches`` runs ``BatchScorer`` on a pool of actors,
each holding the model once; this process streams the finished blocks and writes each as one Parquet part
file in the ``--out`` folder (written to a hidden name, then renamed, so a part is either whole or absent).

Faults: a killed actor is restarted by Ray and its unfinished batches are retried. The writer keeps the set of
inputs already written and drops any rows of an input it has written before, so every input is in the output
exactly once. ``resume`` reads the inputs already in ``--out`` and skips them.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from medai_core.batch.inputs import expand_inputs
from medai_core.batch.scorer import DEFAULT_MODEL, MODALITIES, SCHEMAS, BatchScorer
from medai_core.errors import ConfigError, InputError

ROOT = Path(__file__).resolve().parents[2]
_SPEC_MODALITY = {"image": ("image",), "records": ("tabular",), "notes": ("text",), "vitals": ("series", "sepsis")}


@dataclass
class BatchJob:
    """What to run. ``workers``: actors in the pool (default: the cluster's CPUs); ``batch_size``: inputs per call."""

    modality: str
    inputs: list[str]
    out: Path
    model: str | None = None
    explain: str | None = None
    maps: Path | None = None
    target: str | None = None
    frame: int = 0
    horizon: int | None = None
    address: str | None = None
    workers: int | None = None
    batch_size: int = 16
    resume: bool = False


@dataclass
class BatchResult:
    out: Path
    inputs: int
    skipped: int
    written: int
    rows: int
    errors: int
    seconds: float
    workers: int
    model: str | None
    input_digests: list[str] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, object]:
        return {"out": str(self.out), "inputs": self.inputs, "skipped": self.skipped, "written": self.written,
                "rows": self.rows, "errors": self.errors, "seconds": round(self.seconds, 2), "workers": self.workers,
                "inputs_per_second": round(self.written / self.seconds, 2) if self.seconds else None}


def check_job(job: BatchJob) -> None:
    """Fail before any work: unknown modality, model or explainer; a model of another modality; ``--explain``
    without ``--maps``; an output folder that has parts already, without ``--resume``."""
    from medai_core.explain import explainer_for
    from medai_core.models import get_spec

    if job.modality not in MODALITIES:
        raise InputError(f"Unknown modality {job.modality!r}; choose one of {', '.join(MODALITIES)}.")
    name = job.model or DEFAULT_MODEL.get(job.modality)
    kind = get_spec(name).modality if name else "image"
    if kind not in _SPEC_MODALITY[job.modality]:
        raise InputError(f"Model {name!r} is a {kind} model, not for `batch {job.modality}`.")
    if job.explain:
        explainer_for(job.explain, kind)
        if job.maps is None:
            raise InputError("--explain needs --maps DIR for the maps.")
    if job.out.exists() and not job.out.is_dir():
        raise InputError(f"{job.out} exists and is not a folder of Parquet parts.")
    if not job.resume and parts(job.out):
        raise InputError(f"{job.out} already holds results: add --resume to skip the inputs in it, or choose "
                         "another --out.")


def parts(out: Path) -> list[Path]:
    return sorted(out.glob("part-*.parquet")) if out.is_dir() else []


def done_inputs(out: Path) -> set[str]:
    """The inputs already written to ``out`` (every part's ``input`` column)."""
    done: set[str] = set()
    for p in parts(out):
        done.update(pq.read_table(p, columns=["input"]).column("input").to_pylist())
    return done


def client_auth(address: str | None) -> None:
    """Ray 2.60 clusters require their token by default, but Ray Client sends it only with RAY_AUTH_MODE=token,
    which Ray reads when it is imported: set it (before ``import ray``) when a token is at hand."""
    if address and address.startswith("ray://") and "RAY_AUTH_MODE" not in os.environ and (
            os.environ.get("RAY_AUTH_TOKEN") or (Path.home() / ".ray" / "auth_token").exists()):
        os.environ["RAY_AUTH_MODE"] = "token"


def _init_ray(address: str | None) -> None:
    """Start (or join, with ``address``) Ray; quiet Ray Data's own progress output."""
    import ray

    if not ray.is_initialized():
        _check_reachable(address)
        env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               "OMP_NUM_THREADS": "1"}
        for var in ("MEDAI_ASSETS_DIR", "MEDAI_AUDIT_URL", "MEDAI_AUDIT_PATH"):
            if os.environ.get(var):
                env[var] = os.environ[var]
        kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                                  runtime_env={"env_vars": env})
        try:
            if address:
                ray.init(address=address, **kw)
            else:
                ray.init(num_cpus=os.cpu_count() or 1, **kw)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"Could not reach the Ray cluster at {address or 'this machine'}: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    _quiet_data()


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) that does not answer fails in seconds with a clear message; Ray itself
    keeps retrying for minutes."""
    import socket

    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address takes auto, HOST:PORT or ray://HOST:PORT, not {address!r}.")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"Could not reach the Ray cluster at {address}: {exc.strerror or exc}.") from exc


def _quiet_data() -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # ours is one bar over inputs, not Ray's per operator
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def run_batch(job: BatchJob, progress: TextIO | None = sys.stderr) -> BatchResult:
    """Run ``job``; ``progress`` gets the bar (None: quiet)."""
    client_auth(job.address)
    import ray
    from tqdm import tqdm

    check_job(job)
    t0 = time.perf_counter()
    inputs = expand_inputs(job.inputs)
    done = done_inputs(job.out) if job.resume else set()
    todo = [p for p in inputs if p not in done]
    job.out.mkdir(parents=True, exist_ok=True)
    if job.maps:
        job.maps.mkdir(parents=True, exist_ok=True)
    result = BatchResult(job.out, len(inputs), len(inputs) - len(todo), 0, 0, 0, 0.0, 0, job.model)
    if not todo:
        result.seconds = time.perf_counter() - t0
        return result
    _init_ray(job.address)
    if job.address and job.address.startswith("ray://"):
        return _via_client(job, todo, result, progress, t0)
    blocks = math.ceil(len(todo) / job.batch_size)
    workers = min(blocks, job.workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
    result.workers = workers
    ds = ray.data.from_items([{"input": p} for p in todo], override_num_blocks=blocks)
    scored = ds.map_batches(
        BatchScorer, batch_size=job.batch_size, batch_format="numpy", concurrency=workers, num_cpus=1,
        fn_constructor_kwargs=dict(modality=job.modality, model=job.model, explain=job.explain,
                                   maps=str(job.maps) if job.maps else None, target=job.target, frame=job.frame,
                                   horizon=job.horizon, threads=1))
    # Ray Data's actor pools restart a killed actor (max_restarts=-1) and retry its batches (max_task_retries=-1)
    # by default: the fault test kills one mid-run
    run_id = uuid.uuid4().hex[:8]
    written: set[str] = set()
    digests: dict[str, str] = {}
    bar = tqdm(total=len(todo), unit="input", file=progress, disable=progress is None, dynamic_ncols=True,
               mininterval=0.5 if progress is not None and progress.isatty() else 30, smoothing=0.1)
    try:
        for block in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
            block = _fresh(block, written)
            if block.num_rows == 0:
                continue
            new = set(block.column("input").to_pylist())
            _write_part(job.out / f"part-{run_id}-{len(written):07d}.parquet", block, job.modality)
            written |= new
            for i, d in zip(block.column("input").to_pylist(), block.column("input_sha256").to_pylist()):
                digests[i] = d or ""
            result.rows += block.num_rows
            result.errors += int(pc.sum(pc.is_valid(block.column("error"))).as_py() or 0)
            bar.update(len(new))
    finally:
        bar.close()
    result.written = len(written)
    result.seconds = time.perf_counter() - t0
    result.input_digests = [digests[i] for i in sorted(digests)]
    return result


def _via_client(job: BatchJob, todo: list[str], result: BatchResult, progress: TextIO | None, t0: float
                ) -> BatchResult:
    """Through Ray Client (``ray://``) the streaming executor cannot run in this process, so the whole job runs
    as one task inside the cluster (inputs and ``--out`` are paths there: a shared mount); this process shows
    the progress by counting the inputs in ``--out`` when it can see that folder."""
    import dataclasses

    import ray
    from tqdm import tqdm

    ref = ray.remote(num_cpus=0)(_in_cluster).remote(dataclasses.replace(job, inputs=todo, address=None, resume=True))
    bar = tqdm(total=len(todo), unit="input", file=progress, disable=progress is None, mininterval=1)
    seen = len(done_inputs(job.out))
    while not ray.wait([ref], timeout=2)[0]:
        try:
            bar.update(max(0, len(done_inputs(job.out)) - seen - bar.n))
        except (OSError, pa.ArrowException):
            pass
    bar.close()
    inner = ray.get(ref)
    inner.inputs, inner.skipped = result.inputs, result.skipped
    inner.seconds = time.perf_counter() - t0
    return inner


def _in_cluster(job: BatchJob) -> BatchResult:
    _quiet_data()
    return run_batch(job, progress=None)


def _fresh(block: pa.Table, written: set[str]) -> pa.Table:
    """The rows of inputs not written yet (a retried batch may bring an input a second time)."""
    if not written:
        return block
    keep = pc.invert(pc.is_in(block.column("input"), value_set=pa.array(sorted(written), pa.string())))
    return block.filter(keep)


def _write_part(path: Path, block: pa.Table, modality: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    pq.write_table(block.cast(SCHEMAS[modality]), tmp)
    os.replace(tmp, path)


def job_digest(result: BatchResult) -> str:
    """One sha256 over the sorted sha256 digests of the inputs written (the audit trail's input digest)."""
    return hashlib.sha256("\n".join(result.input_digests).encode()).hexdigest()
