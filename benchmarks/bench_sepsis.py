"""Sepsis early warning: scoring one stay hour by hour, and 4,000 stays in batch, against plain PyTorch.

Run: ``python benchmarks/bench_sepsis.py [--stays 4000] [--repeats 7]``. Reads the first ``--stays`` records of
``$MEDAI_DATA_DIR/physionet2019/training_setB`` (or ``../shared/data/...``). Not a test.

1. One stay (the median-length one), file bytes -> risk and alarm at every hour:
   - ours: ``load_record`` + ``score_record`` (one causal forward pass gives every hour);
   - plain: the model's forward on the already-built input tensor (no parsing, no checks);
   - bedside: re-scoring the growing record at every new hour (what a monitor does without keeping the GRU
     state), total for the stay.
2. Many stays: ours one file at a time (``score_record``), and batched as the CLI does (``score_records``,
   64 records per padded pass), vs a plain PyTorch loop over pre-parsed tensors in length-sorted batches of 64
   (no reading or checking); stays per second.
Medians over ``--repeats``; torch on 2 threads; ratios against the plain baseline measured in the same run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_ms  # noqa: E402


def _median(fn, repeats: int) -> float:  # noqa: ANN001
    """Median seconds of ``fn()`` after one warm-up (the shared helper, in seconds)."""
    return median_ms(fn, repeats, warmup=1)[0] / 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stays", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(2)
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.vitals.sepsis import load_record, record_inputs, score_record, score_records

    data = Path(os.environ.get("MEDAI_DATA_DIR", ROOT.parent / "shared" / "data")) / "physionet2019" / "training_setB"
    files = sorted(data.glob("*.psv"))[: args.stays]
    if not files:
        sys.exit(f"no .psv records in {data}")
    spec, model = get_spec("sepsis_gru"), load_model("sepsis_gru")
    blobs = [f.read_bytes() for f in files]
    lengths = [b.count(b"\n") - 1 for b in blobs]
    mid = blobs[int(np.argsort(lengths)[len(lengths) // 2])]
    rec = load_record(mid, spec)
    x = record_inputs(model, rec)

    ours = _median(lambda: score_record(model, spec, load_record(mid, spec)), args.repeats)
    with torch.inference_mode():
        plain = _median(lambda: model(x), args.repeats)

    def bedside() -> None:
        for t in range(rec.n_hours):
            with torch.inference_mode():
                model(x[:, : t + 1])

    bed = _median(bedside, max(3, args.repeats // 2))
    print(f"one stay of {rec.n_hours} hours (median length of {len(files)}):", flush=True)
    print(f"  ours, file bytes -> risk at every hour: {1000 * ours:.1f} ms", flush=True)
    print(f"  plain forward on a built tensor:        {1000 * plain:.1f} ms  (ours / plain = {ours / plain:.2f})", flush=True)
    print(f"  bedside re-scoring at every new hour:   {1000 * bed:.1f} ms for the stay "
          f"({1000 * bed / rec.n_hours:.2f} ms per hour)")

    t0 = time.perf_counter()
    for b in blobs:
        score_record(model, spec, load_record(b, spec))
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs = [load_record(b, spec) for b in blobs]
    t_parse = time.perf_counter() - t0
    xs = [record_inputs(model, r)[0] for r in recs]
    order = np.argsort([len(v) for v in xs])
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(order), 64):
            batch = torch.nn.utils.rnn.pad_sequence([xs[j] for j in order[i:i + 64]], batch_first=True)
            model(batch)
    t_plain = time.perf_counter() - t0
    print(f"{len(blobs)} stays ({sum(lengths):,} hours):", flush=True)
    print(f"  ours, one file at a time (score_record per file): {t_ours:.1f} s, {len(blobs) / t_ours:.0f} stays/s", flush=True)
    print(f"  plain PyTorch, parsed tensors, batches of 64: {t_plain:.1f} s, {len(blobs) / t_plain:.0f} stays/s "
          f"(ours / plain = {t_ours / t_plain:.2f})", flush=True)
    print(f"  of ours, reading and checking the {len(blobs)} files alone: {t_parse:.1f} s", flush=True)
    t0 = time.perf_counter()
    score_records(model, spec, [load_record(b, spec) for b in blobs])
    t_batch = time.perf_counter() - t0
    print(f"  ours, batched (read every file, score_records in batches of 64, as `vitals sepsis`): {t_batch:.1f} s, "
          f"{len(blobs) / t_batch:.0f} stays/s (ours / plain = {t_batch / t_plain:.2f})", flush=True)


if __name__ == "__main__":
    main()
