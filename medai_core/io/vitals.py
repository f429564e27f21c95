"""Vital-sign series in: PhysioNet 2012 stays, PhysioNet 2019 ``.psv`` records, long (``time,parameter,value``)
or wide CSV uploads.

Everything becomes a ``VitalSeries``: a regular grid (the model's step, e.g. 60 min) of per-signal
means with NaN where nothing was recorded (a mask, never a silent zero), plus static values.
Rules (stated in the model card and the README), the same for training data and uploads:

* ``-1`` means missing (PhysioNet); a reading outside its signal's plausible range (``Signal.plausible``)
  is an artefact (e.g. a heart rate of 0 or a temperature of -17.8 degrees C): ``drop_artefacts`` sets it
  aside and lists it as a ``DataChange``; the rest is forecast. A series is refused only when too little
  history is left;
* a signal with alternative sources takes the first available source per step (invasive arterial
  pressure, else non-invasive);
* several values in one step are averaged;
* a PhysioNet 2019 file (pipe-separated, one row per ICU hour, recognised by its header) is read by its
  ``ICULOS`` hour; its outcome column (``SepsisLabel``) is never an input.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from medai_core.errors import EmptyInput, InputError, TooLarge, UnsupportedFormat
from medai_core.io.changes import DROPPED, DataChange, range_text, shown_value
from medai_core.io.series_spec import SeriesSpec, Signal  # noqa: F401  (re-exported; pandas-free for the model catalogue)
from medai_core.io.uploads import read_csv_strings, read_text

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 500_000
MAX_STEPS = 24 * 60  # one day of minute data / 60 days of hourly data

# PhysioNet/CinC Challenge 2019 (Reyna et al. 2020): the columns of its hourly .psv records
PHYSIONET_2019_COLUMNS = (
    "HR", "O2Sat", "Temp", "SBP", "MAP", "DBP", "Resp", "EtCO2", "BaseExcess", "HCO3", "FiO2", "pH", "PaCO2", "SaO2",
    "AST", "BUN", "Alkalinephos", "Calcium", "Chloride", "Creatinine", "Bilirubin_direct", "Glucose", "Lactate",
    "Magnesium", "Phosphate", "Potassium", "Bilirubin_total", "TroponinI", "Hct", "Hgb", "PTT", "WBC", "Fibrinogen",
    "Platelets", "Age", "Gender", "Unit1", "Unit2", "HospAdmTime", "ICULOS", "SepsisLabel")
OUTCOME_COLUMNS = ("SepsisLabel",)  # targets, never inputs
# Unit1 = medical ICU, Unit2 = surgical ICU: PhysioNet 2012's ICUType 3 and 4
_UNIT_ICU_TYPE = {"Unit1": 3, "Unit2": 4}


class SeriesError(InputError):
    """An uploaded series cannot be used; ``problems`` lists each reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("The series cannot be used:\n- " + "\n- ".join(self.problems))


@dataclass(frozen=True)
class VitalSeries:
    """A regular grid: ``values[t, s]`` is signal ``signals[s]`` in step ``t`` (NaN = not recorded).

    ``times`` are the step starts in minutes from the first step (``origin`` is its timestamp when the
    source had real timestamps, else None). ``static`` holds per-patient values (e.g. Age). ``changes``
    lists every reading set aside as an artefact (``drop_artefacts``), in the order of the file.
    """

    signals: tuple[str, ...]
    values: np.ndarray
    times: np.ndarray
    step_minutes: int
    static: dict[str, float] = field(default_factory=dict)
    origin: pd.Timestamp | None = None
    notices: tuple[str, ...] = ()
    changes: tuple[DataChange, ...] = ()

    @property
    def n_steps(self) -> int:
        return len(self.times)

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.signals.index(name)]


_HHMM = re.compile(r"^\s*(\d{1,5}):(\d{2})\s*$")


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
    """Bytes -> (DataFrame of strings, kind) where kind is "long", "wide" or "psv" (PhysioNet 2019).

    The kind comes from the content, never the file name: a header line with ``|`` between PhysioNet 2019
    columns (``ICULOS`` among them) is a 2019 record.
    """
    text = read_text(Path(data) if isinstance(data, (str, Path)) else data, MAX_BYTES)
    header = text.lstrip().split("\n", 1)[0]
    psv = "|" in header and _is_physionet_2019([c.strip() for c in header.split("|")])
    df = read_csv_strings(text, MAX_ROWS + 1, **({"sep": "|"} if psv else {}))
    if len(df) > MAX_ROWS:
        raise TooLarge(f"The file has more than {MAX_ROWS:,} rows.")
    if len(df) == 0:
        raise EmptyInput("The file has a header but no rows.")
    cols = [c.strip().lower() for c in df.columns]
    df.columns = [c.strip() for c in df.columns]
    if psv:
        dup = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
        if dup:
            raise UnsupportedFormat(f"Columns named more than once: {', '.join(dup[:8])}.")
        return df, "psv"
    if cols[:3] == ["time", "parameter", "value"]:
        return df, "long"
    if cols and cols[0] in ("timestamp", "time"):
        return df, "wide"
    raise UnsupportedFormat("Expected a long table with columns time,parameter,value, a wide table whose first "
                            "column is timestamp, or a PhysioNet 2019 .psv record (pipe-separated, with ICULOS); got "
                            f"columns {', '.join(df.columns[:8])}.")


def _is_physionet_2019(columns: list[str]) -> bool:
    """A PhysioNet 2019 header: the ICULOS hour and at least two other columns of that layout."""
    return "ICULOS" in columns and len(set(columns) & set(PHYSIONET_2019_COLUMNS)) >= 3


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


def psv_to_long(df: pd.DataFrame, spec: SeriesSpec) -> tuple[pd.DataFrame, list[str]]:
    """A PhysioNet 2019 record (one row per ICU hour) -> long table and notices.

    Time is ``ICULOS`` (hours since ICU admission) as elapsed ``h:mm``. Columns that are a source of one of
    the spec's signals or a static field are read; ``Unit1``/``Unit2`` become ``ICUType`` (3 medical, 4
    surgical) where the spec reads it; outcome columns (``SepsisLabel``) and every other column are ignored,
    each with a notice.
    """
    hours = pd.to_numeric(df["ICULOS"].str.strip(), errors="coerce")
    ok = np.isfinite(hours) & (hours >= 0) & (hours < 100_000)  # an absurd hour is reported, not overflowed
    minutes = (hours.where(ok, 0) * 60).round().astype("int64")
    times = (minutes // 60).astype(str) + ":" + (minutes % 60).astype(str).str.zfill(2)
    wide = {"time": times.where(ok, df["ICULOS"])}  # a bad hour is reported by its own text
    sources = {src for s in spec.signals for src in s.sources}
    read = [c for c in df.columns if c in sources or c in spec.static]
    wide.update({c: df[c] for c in read})
    units = [c for c in _UNIT_ICU_TYPE if c in df.columns]
    if "ICUType" in spec.static and "ICUType" not in df.columns and units:
        icu = pd.Series("", index=df.index)
        for c in reversed(units):
            icu = icu.mask(pd.to_numeric(df[c].str.strip(), errors="coerce") == 1, str(_UNIT_ICU_TYPE[c]))
        wide["ICUType"] = icu
        read += units
    notices = []
    outcomes = [c for c in df.columns if c in OUTCOME_COLUMNS]
    if outcomes:
        notices.append(f"Ignored {', '.join(outcomes)}: an outcome label, never an input to the forecast.")
    unused = [c for c in df.columns if c not in read and c not in outcomes and c != "ICULOS"]
    if unused:
        notices.append(f"Ignored columns this model does not read: {', '.join(unused)}.")
    long, _ = wide_to_long(pd.DataFrame(wide, index=df.index))
    return long, notices


def implausible(signal: Signal, values: np.ndarray | pd.Series) -> np.ndarray:
    """True where a reading of ``signal`` is physiologically impossible (outside ``signal.plausible``)."""
    lo, hi = signal.plausible
    v = np.asarray(values, dtype=float)
    return (v < lo) | (v > hi)


def plausible_range_text(signal: Signal) -> str:
    """``outside the plausible range 1-300 /min``: the reason given for a dropped reading."""
    return f"outside the plausible range {range_text(*signal.plausible, signal.unit)}"


def drop_artefacts(readings: pd.DataFrame, spec: SeriesSpec) -> tuple[pd.DataFrame, tuple[DataChange, ...]]:
    """Set aside every physiologically impossible reading: the one artefact rule of training and uploads.

    Args:
        readings: one row per reading with columns ``param`` (a source name of one of ``spec``'s signals),
            ``value`` (float), ``raw`` (the value as written) and ``at`` (its time as written).

    Returns:
        The plausible readings (same columns and index), and one ``DataChange`` per dropped reading, in
        the order of ``readings``' index (the order of the file).
    """
    signal_of = {src: s for s in spec.signals for src in s.sources}
    bad = pd.Series(False, index=readings.index)
    for s in spec.signals:
        mine = readings["param"].isin(s.sources)
        bad |= mine & implausible(s, readings["value"].where(mine, s.plausible[0]))
    changes = tuple(DataChange(None, signal_of[p].name, str(at), shown_value(raw), DROPPED,
                               plausible_range_text(signal_of[p]))
                    for p, raw, at in readings.loc[bad, ["param", "raw", "at"]].sort_index().itertuples(index=False))
    return readings[~bad], changes


def _artefact_problems(changes: tuple[DataChange, ...], spec: SeriesSpec) -> list[str]:
    """Refusal context: which readings were set aside before too little was left."""
    by_name = {s.name: s for s in spec.signals}
    out = []
    for name in dict.fromkeys(c.field for c in changes):
        mine = [c for c in changes if c.field == name]
        s = by_name[name]
        out.append(f"{s.label} ({name}) outside {range_text(*s.plausible, s.unit)}" +
                   f": {len(mine)} reading{'s' if len(mine) != 1 else ''} set aside as artefacts "
                   f"(e.g. {mine[0].value} at {mine[0].at}).")
    return out


def to_series(long: pd.DataFrame, spec: SeriesSpec, *, strict: bool = True) -> VitalSeries:
    """Long table (time, parameter, value; strings) -> ``VitalSeries`` on the spec's grid.

    Impossible readings are set aside by ``drop_artefacts`` (listed in ``VitalSeries.changes``), for training
    data and uploads alike.

    Args:
        strict: uploads (True) are held to ``MAX_STEPS``; training data (False) may build longer grids.

    Raises:
        SeriesError: unparseable times or values, no known signal, too little history once missing values
            and artefacts are set aside.
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
    rows = pd.DataFrame({"step": (minutes[use] // step).astype(int), "param": long["parameter"][use], "value": val[use],
                         "raw": raw_v[use], "at": long["time"][use].astype(str).str.strip()})
    rows = rows[rows["step"] >= 0]
    if rows.empty:
        raise SeriesError(["No values at or after time 0 (readings at negative times are not read)."])
    rows, changes = drop_artefacts(rows, spec)
    if rows.empty:
        raise SeriesError(["Every reading of the signals this model reads is outside its plausible range."]
                          + _artefact_problems(changes, spec))
    n_steps = int(rows["step"].max()) + 1
    if strict and n_steps > MAX_STEPS:  # uploads only; training data builds long grids
        raise TooLarge(f"The series spans {n_steps:,} steps of {step} min; the limit is {MAX_STEPS:,}.")
    values = np.full((n_steps, len(spec.signals)), np.nan)
    for j, s in enumerate(spec.signals):
        for src in reversed(s.sources):  # lower priority first, overwritten by higher priority
            r = rows[rows["param"] == src]
            if len(r):
                means = r.groupby("step")["value"].mean()
                values[means.index.to_numpy(), j] = means.to_numpy()
    empty = [s.label for j, s in enumerate(spec.signals) if np.isnan(values[:, j]).all()]
    if empty:
        notices.append(f"No values at all for: {', '.join(empty)} (the model treats them as missing throughout).")
    observed_steps = int((~np.isnan(values)).any(1).sum())
    if observed_steps < spec.min_history_steps:
        raise SeriesError([(f"Too little history: values in {observed_steps} step(s) of {step} min; "
                            f"the model needs at least {spec.min_history_steps}."), *_artefact_problems(changes, spec)])
    return VitalSeries(tuple(s.name for s in spec.signals), values, np.arange(n_steps) * float(step), step,
                       static, origin, tuple(notices), changes)


def load_series(data: bytes | Path | str, spec: SeriesSpec, name: str = "") -> VitalSeries:
    """Read a long/wide CSV, a PhysioNet 2012 ``.txt`` stay or a PhysioNet 2019 ``.psv`` record and put it on
    the spec's grid (artefacts set aside and listed in ``changes``; see ``to_series``)."""
    df, kind = read_table(data, name)
    notices: list[str] = []
    if kind == "psv":
        df, notices = psv_to_long(df, spec)
    elif kind == "wide":
        df, _ = wide_to_long(df)
    else:
        df = df.rename(columns={c: c.strip().lower() for c in df.columns[:3]})
    series = to_series(df[["time", "parameter", "value"]], spec)
    return replace(series, notices=tuple(notices) + series.notices) if notices else series
