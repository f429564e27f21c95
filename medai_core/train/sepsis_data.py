"""PhysioNet/CinC 2019 records for training: read every ``.psv``, set artefacts aside, split by patient.

The arrays are kept flat (all hours of all patients, row order kept) with per-patient offsets.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from medai_core.io.sepsis import implausible_mask
from medai_core.models.catalog import SEPSIS_STATIC, SEPSIS_VARIABLES

SEED = 20261123  # one seed for every trainer (medai_core.train.busi.SEED)
VAR_NAMES = tuple(s.name for s in SEPSIS_VARIABLES)


def load_records(folder: Path, log: Callable[[str], None] | None = print, limit: int | None = None) -> dict[str, Any]:
    """All ``*.psv`` files -> values (R, 34) with NaN, static (R, 6), labels (R,), offsets (P+1,), ids (P,),
    and the number of implausible values set aside per variable."""
    files = sorted(Path(folder).glob("*.psv"))[:limit]
    if not files:
        raise FileNotFoundError(f"no PhysioNet 2019 .psv records in {folder}")
    vals, stat, labs, ids, lens = [], [], [], [], []
    for i, f in enumerate(files):
        df = pd.read_csv(f, sep="|")
        vals.append(df.reindex(columns=list(VAR_NAMES)).to_numpy(np.float32))
        stat.append(df.reindex(columns=list(SEPSIS_STATIC)).to_numpy(np.float32))
        labs.append(df["SepsisLabel"].to_numpy(np.int8))
        ids.append(f.stem)
        lens.append(len(df))
        if log and i % 2000 == 0:
            log(f"read {i} records")
    values = np.concatenate(vals)
    bad = implausible_mask(values, SEPSIS_VARIABLES)
    values[bad] = np.nan
    return {"values": values, "static": np.concatenate(stat), "labels": np.concatenate(labs),
            "offsets": np.concatenate([[0], np.cumsum(lens)]).astype(np.int64), "ids": np.array(ids),
            "set_aside": bad.sum(0).astype(np.int64)}


def load_cached(folder: Path, cache: Path | None, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """``load_records`` through an optional ``.npz`` cache (development only)."""
    if cache is not None and Path(cache).exists():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    data = load_records(folder, log)
    if cache is not None:
        np.savez(cache, **data)
    return data


def split_patients(ids: np.ndarray, labels: np.ndarray, offsets: np.ndarray, seed: int = SEED
                   ) -> dict[str, np.ndarray]:
    """Patient indices 70/15/15 train/validation/test, stratified by whether the patient becomes septic."""
    septic = np.array([labels[a:b].any() for a, b in zip(offsets[:-1], offsets[1:])])
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for group in (np.flatnonzero(septic), np.flatnonzero(~septic)):
        perm = rng.permutation(group)
        a, b = int(0.7 * len(perm)), int(0.85 * len(perm))
        out["train"] += perm[:a].tolist()
        out["val"] += perm[a:b].tolist()
        out["test"] += perm[b:].tolist()
    return {k: np.sort(np.array(v, np.int64)) for k, v in out.items()}


def patient_slices(offsets: np.ndarray, idx: np.ndarray) -> list[slice]:
    return [slice(int(offsets[i]), int(offsets[i + 1])) for i in idx]
