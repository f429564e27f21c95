"""ICU stays of PhysioNet 2012 (``.txt``) and 2019 (``.psv``) on one hourly grid, and windows over them.

A set of stays is a dict of flat arrays (``Stays``): ``values`` (sum of stay lengths, S) in the signals'
units with NaN where nothing was recorded, ``offsets`` (N + 1) where each stay starts in ``values``,
``first`` (N) the first grid step holding a row of the source file, ``static`` (N, 6) (age, sex, ICU type
one-hot, as ``medai_core.models.forecaster.static_vector`` without its time feature), ``ids`` and
``source`` ("2012" or "2019").

The grid is the upload path's (``medai_core.io.vitals.load_series``): step t is hour t after admission
(PhysioNet 2012: the record's time; 2019: ``ICULOS``), readings outside a signal's plausible range are
set aside, several readings in one hour are averaged, and ``SepsisLabel`` is never read. The 2019
reader is vectorised (pandas per file); a test checks it against ``load_series`` cell for cell.

Windows are (stay, end) pairs: history steps end-L .. end-1, targets end .. end+H-1; ``gather`` builds a
batch of them on the fly from per-stay standardised, carried-forward copies, so 400,000 windows never
sit in memory at once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from medai_core.io.series_spec import SeriesSpec
from medai_core.io.vitals import SeriesError, _UNIT_ICU_TYPE, to_series
from medai_core.models.forecaster import static_vector
from medai_core.models.spec import ModelSpec
from medai_core.workspaces.vitals.pipeline import locf

Stays = dict[str, Any]
HOURS_2012 = 48  # PhysioNet 2012 records cover the first 48 h


def _pack(grids: list[np.ndarray], first: list[int], static: list[list[float]], ids: list[str], source: str) -> Stays:
    lengths = np.array([len(g) for g in grids], np.int64)
    return {"values": np.concatenate(grids).astype(np.float32), "offsets": np.concatenate([[0], np.cumsum(lengths)]),
            "first": np.array(first, np.int64), "static": np.array(static, np.float32).reshape(len(grids), -1),
            "ids": np.array(ids), "source": np.array([source] * len(grids))}


def concat_stays(parts: list[Stays]) -> Stays:
    """One ``Stays`` from several (offsets re-based)."""
    off, base = [np.zeros(1, np.int64)], 0
    for p in parts:
        off.append(p["offsets"][1:] + base)
        base += int(p["offsets"][-1])
    out = {k: np.concatenate([p[k] for p in parts]) for k in ("values", "first", "static", "ids", "source")}
    out["offsets"] = np.concatenate(off)
    return out


def subset(stays: Stays, idx: np.ndarray) -> Stays:
    """The stays ``idx`` (in that order)."""
    off = stays["offsets"]
    grids = [stays["values"][off[i]:off[i + 1]] for i in idx]
    out = _pack(grids, stays["first"][idx].tolist(), stays["static"][idx].tolist(), stays["ids"][idx].tolist(), "")
    out["source"] = stays["source"][idx]
    return out


def _static(age: float | None, sex: float | None, icu: float | None, spec: ModelSpec) -> list[float]:
    st = {k: v for k, v in (("Age", age), ("Gender", sex), ("ICUType", icu)) if v is not None and v >= 0}
    return static_vector(st, spec, 0)[:-1]


def read_psv(path: Path, series: SeriesSpec, spec: ModelSpec) -> tuple[np.ndarray, int, list[float]]:
    """One 2019 record -> (grid (T, S), first step, statics): vectorised ``load_series`` for clean files."""
    df = pd.read_csv(path, sep="|")
    hours = df["ICULOS"].to_numpy(np.int64)
    n = int(hours.max()) + 1
    grid = np.full((n, len(series.signals)), np.nan, np.float32)
    for j, s in enumerate(series.signals):
        for src in reversed(s.sources):  # lower priority first, overwritten by higher priority
            if src not in df.columns:
                continue
            v = df[src].to_numpy(np.float64, copy=True)
            v[(v < s.plausible[0]) | (v > s.plausible[1]) | (v == -1)] = np.nan
            ok = ~np.isnan(v)
            if ok.any():
                means = pd.Series(v[ok]).groupby(hours[ok]).mean()
                grid[means.index.to_numpy(), j] = means.to_numpy()

    def last(col: str) -> float | None:
        if col not in df.columns:
            return None
        v = df[col].to_numpy(np.float64)
        v = v[~np.isnan(v) & (v >= 0)]
        return float(v[-1]) if len(v) else None

    icu = None
    for col in reversed([c for c in _UNIT_ICU_TYPE if c in df.columns]):
        if (df[col].to_numpy(np.float64) == 1).any():
            icu = float(_UNIT_ICU_TYPE[col])
    return grid, int(hours.min()), _static(last("Age"), last("Gender"), icu, spec)


def load_psv_stays(folder: Path, series: SeriesSpec, spec: ModelSpec, log: Callable[[str], None] | None = print
                   ) -> Stays:
    """Every ``*.psv`` record of a PhysioNet 2019 folder (sorted by name)."""
    files = sorted(Path(folder).glob("*.psv"))
    if not files:
        raise FileNotFoundError(f"no PhysioNet 2019 .psv records in {folder}")
    grids, first, stat, ids = [], [], [], []
    for i, f in enumerate(files):
        g, f0, st = read_psv(f, series, spec)
        grids.append(g)
        first.append(f0)
        stat.append(st)
        ids.append(f.stem)
        if log and i % 2000 == 0:
            log(f"read {i} of {len(files)} records")
    return _pack(grids, first, stat, ids, "2019")


def load_txt_stays(folder: Path, series: SeriesSpec, spec: ModelSpec, log: Callable[[str], None] | None = print
                   ) -> Stays:
    """Every ``*.txt`` stay of a PhysioNet 2012 folder, first 48 h (as ``medai_core.train.icu.load_stays``)."""
    files = sorted(Path(folder).glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no PhysioNet 2012 .txt stays in {folder}")
    grids, stat, ids = [], [], []
    for i, f in enumerate(files):
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        df.columns = ["time", "parameter", "value"]
        try:
            s = to_series(df, series, strict=False)
        except SeriesError:
            continue
        grid = np.full((HOURS_2012, len(series.signals)), np.nan, np.float32)
        n = min(HOURS_2012, s.n_steps)
        grid[:n] = s.values[:n]
        grids.append(grid)
        stat.append(_static(s.static.get("Age"), s.static.get("Gender"), s.static.get("ICUType"), spec))
        ids.append(f.stem)
        if log and i % 1000 == 0:
            log(f"read {i} of {len(files)} stays")
    return _pack(grids, [0] * len(grids), stat, ids, "2012")


def cached(path: Path | None, load: Callable[[], Stays]) -> Stays:
    """``load()``, kept in ``path`` (``.npz``) between runs when given (development only)."""
    if path is not None and Path(path).exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    stays = load()
    if path is not None:
        np.savez_compressed(path, **stays)
    return stays


# ---------------------------------------------------------------- windows
def cut_points(stays: Stays, min_history: int, horizon: int, whole_horizon: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(stay, end) for every end at least ``min_history`` hours after the stay's first row and, when
    ``whole_horizon``, with the ``horizon`` hours from ``end`` on inside the stay (else at least one)."""
    off = stays["offsets"]
    stay, end = [], []
    for i in range(len(off) - 1):
        n = int(off[i + 1] - off[i])
        lo = int(stays["first"][i]) + min_history
        hi = n - horizon if whole_horizon else n - 1
        if hi >= lo:
            stay.append(np.full(hi + 1 - lo, i))
            end.append(np.arange(lo, hi + 1))
    if not stay:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(stay).astype(np.int64), np.concatenate(end).astype(np.int64)


class WindowSource:
    """Batches of windows over ``stays`` with the model's standardisation (``mean``, ``std`` per signal)."""

    def __init__(self, stays: Stays, mean: np.ndarray, std: np.ndarray, history: int, horizon: int, n_targets: int,
                 time_cap: float = 96.0) -> None:
        self.L, self.H, self.T, self.time_cap = history, horizon, n_targets, time_cap
        off = stays["offsets"]
        n_st, s = len(off) - 1, stays["values"].shape[1]
        lengths = np.diff(off)
        self.poff = np.concatenate([[0], np.cumsum(lengths + history)])[:-1]  # padded offsets
        self.off, self.lengths = off[:-1], lengths
        z = np.zeros((int(lengths.sum()) + history * n_st, s), np.float32)
        o = np.zeros_like(z)
        filled = np.full(stays["values"].shape, np.nan, np.float32)
        for i in range(n_st):
            f, obs = locf(stays["values"][off[i]:off[i + 1]])
            filled[off[i]:off[i + 1]] = f
            with np.errstate(divide="ignore", invalid="ignore"):
                zi = np.nan_to_num((f - mean) / std, nan=0.0, posinf=0.0, neginf=0.0)
            p = self.poff[i] + history
            z[p:p + len(f)] = zi
            o[p:p + len(f)] = obs
        self.z, self.o, self.filled = z, o, filled
        self.values = np.concatenate([stays["values"][:, :n_targets], np.full((horizon, n_targets), np.nan, np.float32)])
        self.static = stays["static"]

    def gather(self, stay: np.ndarray, end: np.ndarray) -> dict[str, np.ndarray]:
        """x, m (B, L, S), pad (B, L), static (B, K+1), y, ymask (B, H, T), last (B, T) for the windows."""
        rows = (self.poff[stay] + end)[:, None] + np.arange(self.L)[None]
        pad = (end[:, None] - self.L + np.arange(self.L)[None]) < 0
        tgt = (self.off[stay] + end)[:, None] + np.arange(self.H)[None]
        inside = (end[:, None] + np.arange(self.H)[None]) < self.lengths[stay][:, None]
        y = np.where(inside[..., None], self.values[np.minimum(tgt, len(self.values) - 1)], np.nan)
        tstat = np.minimum(end, self.time_cap)[:, None].astype(np.float32) / 48.0
        return {"x": self.z[rows], "m": self.o[rows], "pad": pad, "static": np.concatenate([self.static[stay], tstat], 1),
                "y": np.nan_to_num(y).astype(np.float32), "ymask": ~np.isnan(y),
                "last": self.filled[self.off[stay] + end - 1, :self.T]}
