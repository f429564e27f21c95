"""``python -m medai_core batch image|records|notes|vitals INPUT... --out OUT.parquet``.

Prints one JSON summary line on stdout when the job ends (``out``, ``inputs``, ``skipped`` by ``--resume``,
``written``, ``rows``, ``errors``, ``seconds``, ``workers``, ``inputs_per_second``); the progress bar goes to
stderr (``--quiet``: none). Exit status 0, or 1 when any row is an error row, 2 for a job that cannot start.
Every job appends one record to the audit trail.
"""
from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import sys
from pathlib import Path


def add_parser(sub) -> None:  # noqa: ANN001 - argparse's sub-parsers action
    b = sub.add_parser("batch", help="score (and explain) many inputs on Ray Data; rows to a Parquet folder")
    b.add_argument("modality", choices=["image", "records", "notes", "vitals"])
    b.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders, or CSV manifests (first column `path`)")
    b.add_argument("--out", required=True, metavar="OUT.parquet", help="folder of Parquet part files (made if absent)")
    b.add_argument("--address", default=None, metavar="auto|ray://HOST:PORT",
                   help="Ray cluster to use (default: a local Ray instance on this machine's cores)")
    b.add_argument("--model", default=None, help="as in the other commands (image: routed per scan when absent)")
    b.add_argument("--explain", metavar="NAME", help="also write each input's map (.npy; a PNG overlay for images)")
    b.add_argument("--maps", metavar="DIR", help="folder for the maps")
    b.add_argument("--target", help="class (image, notes) or signal (vitals) to explain; default: the prediction's")
    b.add_argument("--frame", type=int, default=0, help="frame of multi-frame scans (0-based)")
    b.add_argument("--horizon", type=int, default=None, help="vitals: steps ahead (default and maximum: the model's)")
    b.add_argument("--workers", type=int, default=None, help="actors in the pool (default: the cluster's CPUs)")
    b.add_argument("--batch-size", type=int, default=16,
                   help="inputs per actor call; forced image models score them in one forward pass (default 16)")
    b.add_argument("--resume", action="store_true", help="skip the inputs already in --out")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=batch_command)


def batch_command(args: argparse.Namespace) -> int:
    from medai_core.batch.run import BatchJob, client_auth, job_digest, run_batch

    client_auth(args.address)
    job = BatchJob(args.modality, list(args.inputs), Path(args.out), model=args.model, explain=args.explain,
                   maps=Path(args.maps) if args.maps else None, target=args.target, frame=args.frame,
                   horizon=args.horizon, address=args.address, workers=args.workers, batch_size=args.batch_size,
                   resume=args.resume)
    import ray

    # Ray prints its own messages (e.g. a retried task after a worker died) on stdout: send them to stderr, so
    # that stdout is only the summary line
    with contextlib.redirect_stdout(sys.stderr):
        try:
            res = run_batch(job, progress=None if args.quiet else sys.stderr)
        finally:
            if ray.is_initialized():
                ray.shutdown()
    _audit(args, res, job_digest(res))
    print(json.dumps(res.to_json()), flush=True)
    return 1 if res.errors else 0


def _audit(args: argparse.Namespace, res, digest: str) -> None:  # noqa: ANN001 - a BatchResult
    """One audit record for the job: counts and digests only (no paths, no content)."""
    try:
        from medai_core.audit import record_event
        from medai_core.models import weights_digest

        record_event("batch", workspace=args.modality, user=f"cli:{getpass.getuser()}", model=args.model,
                     weights_sha256=weights_digest(args.model) if args.model else None,
                     params={"explain": args.explain, "workers": res.workers, "batch_size": args.batch_size,
                             "resume": bool(args.resume), "address": "cluster" if args.address else "local"},
                     input_sha256=digest,
                     summary={"inputs": res.inputs, "written": res.written, "skipped": res.skipped, "rows": res.rows,
                              "errors": res.errors, "seconds": round(res.seconds, 2)})
    except ImportError:
        pass
    except Exception as exc:  # noqa: BLE001 - the job's results are written; say the audit failed, loudly
        print(f"warning: the audit trail could not record this job ({type(exc).__name__})", file=sys.stderr)
