"""Vital-sign series in: PhysioNet 2012 stays, long (``time,parameter,value``) or wide CSV uploads.

Everything becomes a ``VitalSeries``: a regular grid (the model's step, e.g. 60 min) of per-signal
means with NaN where nothing was recorded (a mask, never a silent zero), plus static values.
Rules (stated in the model card and the README):

* ``-1`` means missing (PhysioNet); values outside a signal's plausible range are dropped as
  artefacts (e.g. a heart rate of 0 or a temperature of 5 degrees C);
* a signal with alternative sources takes the first available source per step (invasive arterial
  pressure, else non-invasive);
* several values in one step are averaged.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medai_core.errors import EmptyInput, InputError, TooLarge, UnsupportedFormat
from medai_core.io.series_spec import SeriesSpec, Signal  # noqa: F401  (re-exported; pandas-free for the model catalogue)
from medai_core.io.uploads import read_csv_strings, read_text

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 500_000
MAX_STEPS = 24 * 60  # one day of minute data / 60 days of hourly data


class SeriesError(InputError):
    """An uploaded series cannot be used; ``problems`` lists each reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("The series cannot be used:\n- " + "\n- ".join(self.problems))


@dataclass(frozen=True)
class VitalSeries:
    """A regular grid: ``values[t, s]`` is signal ``signals[s]`` in step ``t`` (NaN = not recorded).

    ``times`` are the step starts in minutes from the first step (``origin`` is its timestamp when the
    source had real timestamps, else None). ``static`` holds per-patient values (e.g. Age).
    """

    signals: tuple[str, ...]
    values: np.ndarray
    times: np.ndarray
    step_minutes: int
    static: dict[str, float] = field(default_factory=dict)
    origin: pd.Timestamp | None = None
    notices: tuple[str, ...] = ()

    @property
    def n_steps(self) -> int:
        return len(self.times)

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.signals.index(name)]


_HHMM = re.compile(r"^\s*(\d{1,3}):(\d{2})\s*$")


def _parse_times(raw: pd.Series) -> tuple[pd.Series, pd.Timestamp | None, pd.Series]:
    """Minutes from the first time; accepts HH:MM (PhysioNet), plain numbers (minutes) or timestamps.
    Returns (minutes, origin timestamp or None, bad-row mask)."""
    s = raw.astype(str).str.strip()
    m = s.str.extract(_HHMM)
    if m[0].notna().all():
        return m[0].astype(float) * 60 + m[1].astype(float), None, pd.Series(False, index=raw.index)
    num = pd.to_numeric(s, errors="coerce")
    if num.notna().all():
        return num.astype(float), None, pd.Series(False, index=raw.index)
    # ISO 8601 dates (offsets such as +01:00 honoured, different offsets put on UTC); other date styles
    # only when no row is ISO (a whole file in one style), so a garbled row is reported, not guessed at
    ts = pd.to_datetime(s, errors="coerce", format="ISO8601", utc=True)
    if ts.isna().all():
        try:
            ts = pd.to_datetime(s, errors="coerce", format="mixed", utc=True)
        except (ValueError, TypeError, OverflowError):  # pandas raises for some strings despite "coerce"
            return pd.Series(np.nan, index=raw.index), None, pd.Series(True, index=raw.index)
    bad = ts.isna()
    if bad.all():
        return pd.Series(np.nan, index=raw.index), None, bad
    ts = ts.dt.tz_convert(None)  # naive UTC wall-clock time from here on
    origin = ts.min()
    return (ts - origin).dt.total_seconds() / 60.0, origin, bad


def _rows(idx, limit: int = 5) -> str:
    idx = list(idx)
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return ", ".join(str(int(i) + 2) for i in idx[:limit]) + more


def read_table(data: bytes | Path | str, name: str = "") -> tuple[pd.DataFrame, str]:
    """Bytes -> (DataFrame of strings, kind) where kind is "long" or "wide"."""
    text = read_text(Path(data) if isinstance(data, (str, Path)) else data, MAX_BYTES)
    df = read_csv_strings(text, MAX_ROWS + 1)
    if len(df) > MAX_ROWS:
        raise TooLarge(f"The file has more than {MAX_ROWS:,} rows.")
    if len(df) == 0:
        raise EmptyInput("The file has a header but no rows.")
    cols = [c.strip().lower() for c in df.columns]
    df.columns = [c.strip() for c in df.columns]
    if cols[:3] == ["time", "parameter", "value"]:
        return df, "long"
    if cols and cols[0] in ("timestamp", "time"):
        return df, "wide"
    raise UnsupportedFormat("Expected a long table with columns time,parameter,value or a wide table whose first "
                            f"column is timestamp; got columns {', '.join(df.columns[:8])}.")


def wide_to_long(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Wide (timestamp + one column per signal) -> long; checks timestamps are increasing and unique."""
    problems = []
    tcol = df.columns[0]
    minutes, origin, bad = _parse_times(df[tcol])
    if bad.any():
        problems.append(f"Unparseable timestamps in rows {_rows(df.index[bad])} (e.g. {df[tcol][bad].iloc[0]!r}).")
    else:
        dup = minutes.duplicated(keep=False)
        if dup.any():
            problems.append(f"Duplicated timestamps in rows {_rows(df.index[dup])}.")
        back = minutes.diff() < 0
        if back.any():
            problems.append(f"Timestamps go backwards at rows {_rows(df.index[back])}; sort the file by time.")
    if problems:
        raise SeriesError(problems)
    # built by hand, not DataFrame.melt: melt refuses a wide file whose signal columns include one named
    # "value" or "parameter" (found by the long fuzz run); such a column is just an unknown signal here
    vals = df.iloc[:, 1:]
    n, k = vals.shape
    long = pd.DataFrame({"time": np.tile(df.iloc[:, 0].to_numpy(), k),
                         "parameter": np.repeat(np.asarray(vals.columns, dtype=object), n),
                         "value": vals.to_numpy(dtype=object).T.ravel()})
    return long, []


def to_series(long: pd.DataFrame, spec: SeriesSpec, *, strict: bool = True) -> VitalSeries:
    """Long table (time, parameter, value; strings) -> ``VitalSeries`` on the spec's grid.

    Args:
        strict: uploads (True) reject absurd values with a message; training data (False) drops them.

    Raises:
        SeriesError: unparseable times or values, absurd values, no known signal, too little history.
    """
    problems: list[str] = []
    notices: list[str] = []
    long = long.reset_index(drop=True)
    long["parameter"] = long["parameter"].astype(str).str.strip()
    raw_v = long["value"].astype(str).str.strip()
    blank = raw_v.isin(["", "nan", "NaN", "NA"])
    val = pd.to_numeric(raw_v.where(~blank), errors="coerce")
    badv = val.isna() & ~blank
    if badv.any():
        problems.append(f"Values that are not numbers in rows {_rows(long.index[badv])} (e.g. {raw_v[badv].iloc[0]!r}).")
    minutes, origin, badt = _parse_times(long["time"])
    if badt.any():
        problems.append(f"Unparseable times in rows {_rows(long.index[badt])} (e.g. {long['time'][badt].iloc[0]!r}).")
    if problems:
        raise SeriesError(problems)
    static = {}
    for name in spec.static:
        hit = long.index[(long["parameter"] == name) & val.notna() & (val >= 0)]
        if len(hit):
            static[name] = float(val[hit[-1]])
    source_of = {src: s.name for s in spec.signals for src in s.sources}
    known = set(source_of) | set(spec.static) | set(spec.ignore) | {"RecordID"}
    unknown = sorted(set(long["parameter"]) - known)
    if unknown:
        notices.append(f"Ignored unknown signals: {', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}. "
                       f"This model reads {', '.join(s.name for s in spec.signals)}.")
    use = long["parameter"].isin(list(source_of)) & val.notna() & (val != -1)
    if not use.any():
        raise SeriesError([f"No values of any signal this model reads ({', '.join(s.name for s in spec.signals)})."])
    step = spec.step_minutes
    rows = pd.DataFrame({"step": (minutes[use] // step).astype(int), "param": long["parameter"][use], "value": val[use]})
    rows = rows[rows["step"] >= 0]
    n_steps = int(rows["step"].max()) + 1
    if strict and n_steps > MAX_STEPS:  # uploads only; training data builds long grids
        raise TooLarge(f"The series spans {n_steps:,} steps of {step} min; the limit is {MAX_STEPS:,}.")
    values = np.full((n_steps, len(spec.signals)), np.nan)
    for j, s in enumerate(spec.signals):
        for src in reversed(s.sources):  # lower priority first, overwritten by higher priority
            r = rows[rows["param"] == src]
            lo, hi = s.plausible
            absurd = (r["value"] < lo) | (r["value"] > hi)
            if absurd.any():
                if strict:
                    problems.append(f"{s.label} ({src}) outside {lo:g}-{hi:g} {s.unit} at rows "
                                    f"{_rows(r.index[absurd])} (values {sorted(set(r['value'][absurd].round(2)))[:4]}).")
                r = r[~absurd]
            if len(r):
                means = r.groupby("step")["value"].mean()
                values[means.index.to_numpy(), j] = means.to_numpy()
    if problems:
        raise SeriesError(problems)
    empty = [s.label for j, s in enumerate(spec.signals) if np.isnan(values[:, j]).all()]
    if len(empty) == len(spec.signals):
        raise SeriesError(["Every signal is empty after dropping missing values."])
    if empty:
        notices.append(f"No values at all for: {', '.join(empty)} (the model treats them as missing throughout).")
    observed_steps = int((~np.isnan(values)).any(1).sum())
    if observed_steps < spec.min_history_steps:
        raise SeriesError([f"Too little history: values in {observed_steps} step(s) of {step} min; "
                           f"the model needs at least {spec.min_history_steps}."])
    return VitalSeries(tuple(s.name for s in spec.signals), values, np.arange(n_steps) * float(step), step,
                       static, origin, tuple(notices))


def load_series(data: bytes | Path | str, spec: SeriesSpec, name: str = "") -> VitalSeries:
    """Read a long/wide CSV or a PhysioNet 2012 ``.txt`` stay and put it on the spec's grid."""
    df, kind = read_table(data, name)
    if kind == "wide":
        df, _ = wide_to_long(df)
    else:
        df = df.rename(columns={c: c.strip().lower() for c in df.columns[:3]})
    return to_series(df[["time", "parameter", "value"]], spec)
