"""Batch scoring throughput: the same 2,000 scans through the sequential CLI, a plain PyTorch loop and Ray.

Run: ``python benchmarks/bench_batch.py [--n 2000] [--model busi_effnet]``. The inputs are the BUSI images of
``$MEDAI_DATA_DIR/busi`` (or ``../shared/data/busi``), repeated in order up to ``--n`` (a repeat is a copy under
another name, so nothing is cached by path). Not a test.

1. sequential CLI: ``python -m medai_core image predict --model M FILES...`` (one process, one scan at a time,
   torch on 2 threads), stdout to a file;
2. plain PyTorch loop: decode + ``prepare_input`` per scan, then the model's forward on batches of 32 (and of
   4: on these CPUs EfficientNet is fastest in 4s) and a softmax, in one process (no OOD guard, no JSON, no
   Parquet);
3. Ray 1 worker and 4. Ray 2 workers: ``python -m medai_core batch image ... --model M --workers W --quiet``
   (each actor one torch thread, forward passes of 4 scans), Parquet out.

Each row: wall seconds (process start to end, model loading and Ray start-up included), inputs per second, the
ratio to the plain loop, and the peak resident memory of the whole process tree (sampled every 0.2 s).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def data_dir() -> Path:
    return Path(os.environ.get("MEDAI_DATA_DIR", ROOT.parent / "shared" / "data")) / "busi"


def inputs(folder: Path, n: int) -> list[Path]:
    """``n`` scans: the BUSI images (masks excluded) in name order, linked under new names when repeated."""
    src = sorted(p for p in data_dir().rglob("*.png") if "_mask" not in p.name)
    out = []
    for i in range(n):
        p = src[i % len(src)]
        q = folder / f"{i:05d}_{p.stem.replace(' ', '_')}.png"
        os.symlink(p, q)
        out.append(q)
    return out


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(cmd: list[str], env: dict[str, str], stdout=subprocess.DEVNULL) -> tuple[float, int, int]:  # noqa: ANN001
    """(wall seconds, peak tree RSS bytes, exit status) of one command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.DEVNULL)
    ps, peak = psutil.Process(proc.pid), [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], _tree_rss(ps))
            except psutil.Error:
                pass
            stop.wait(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    rc = proc.wait()
    stop.set()
    th.join()
    return time.perf_counter() - t0, peak[0], rc


PLAIN = """
import sys, torch
from medai_core.models import get_spec, load_model
from medai_core.workspaces.imaging import load_scan, prepare_input
torch.set_num_threads(2)
name, bs, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
spec, model = get_spec(name), load_model(name)
with torch.inference_mode():
    for i in range(0, len(files), bs):
        x = torch.cat([prepare_input(load_scan(f), spec) for f in files[i:i + bs]])
        torch.softmax(model(x), 1)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--model", default="busi_effnet")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="medai-bench-batch-"))
    try:
        (tmp / "in").mkdir()
        files = [str(p) for p in inputs(tmp / "in", args.n)]
        (tmp / "files.csv").write_text("path\n" + "\n".join(files) + "\n")
        env = {**os.environ}
        py = sys.executable
        rows = []
        with open(tmp / "cli.jsonl", "w") as out:
            rows.append(("sequential CLI (`image predict`, 2 torch threads)",
                         *run_measured([py, "-m", "medai_core", "image", "predict", "--model", args.model, *files],
                                       env, stdout=out)))
        for bs in (32, 4):
            rows.append((f"plain PyTorch loop (batches of {bs}, 2 torch threads)",
                         *run_measured([py, "-c", PLAIN, args.model, str(bs), *files], env)))
        for w in (1, 2):
            rows.append((f"Ray Data, {w} worker{'s' if w > 1 else ''} (`batch image`, 1 thread each)",
                         *run_measured([py, "-m", "medai_core", "batch", "image", str(tmp / "files.csv"), "--out",
                                        str(tmp / f"ray{w}.parquet"), "--model", args.model, "--workers", str(w),
                                        "--quiet"], env)))
        plain = rows[2][1]  # the better plain loop (batches of 4)
        print(f"{args.n} scans ({args.model}), {os.cpu_count()} CPUs")
        print("| run | seconds | inputs/s | time / plain loop | peak memory (MB) | exit |")
        print("|---|---|---|---|---|---|")
        for name, sec, rss, rc in rows:
            print(f"| {name} | {sec:.1f} | {args.n / sec:.1f} | {sec / plain:.2f} | {rss / 2**20:.0f} | {rc} |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
