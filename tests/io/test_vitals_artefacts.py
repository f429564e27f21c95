"""Artefacts in vital-sign series: an impossible reading is set aside and listed (a ``DataChange``), the rest is
forecast; training reads stays with the same rule; PhysioNet 2019 ``.psv`` records load through the same loader."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medai_core.errors import UnsupportedFormat
from medai_core.io.changes import DROPPED, DataChange
from medai_core.io.vitals import (
    PHYSIONET_2019_COLUMNS,
    SeriesError,
    drop_artefacts,
    implausible,
    load_series,
    plausible_range_text,
)
from medai_core.models.forecaster import CGM_SERIES, ICU_SERIES

SIGNAL = {s.name: s for s in ICU_SERIES.signals}


def _stay(extra: str = "", hours: int = 6) -> bytes:
    """A PhysioNet 2012 stay: HR, NIMAP, NISysABP and Temp every hour at :07, plus ``extra`` lines."""
    rows = "".join(f"{h:02d}:07,HR,{80 + h}\n{h:02d}:07,NIMAP,{75 - h}\n{h:02d}:07,NISysABP,{120 - h}\n"
                   f"{h:02d}:07,Temp,{36.8 + h / 10:.1f}\n" for h in range(hours))
    return f"Time,Parameter,Value\n00:00,RecordID,132999\n00:00,Age,61\n{rows}{extra}".encode()


def test_single_artefacts_are_dropped_and_listed():
    s = load_series(_stay("02:30,HR,0\n03:40,Temp,-17.8\n01:15,NISysABP,0\n"), ICU_SERIES)
    assert s.changes == (
        DataChange(None, "HR", "02:30", "0", DROPPED, "outside the plausible range 1-300 /min"),
        DataChange(None, "Temp", "03:40", "-17.8", DROPPED, "outside the plausible range 25-45 °C"),
        DataChange(None, "SysABP", "01:15", "0", DROPPED, "outside the plausible range 1-300 mmHg"),
    )
    # the artefacts did not enter the hourly means: the grid is the one without them
    clean = load_series(_stay(), ICU_SERIES)
    np.testing.assert_array_equal(s.values, clean.values)
    assert clean.changes == () and s.notices == clean.notices
    assert s.changes[0].text() == "HR, at 02:30 = 0: dropped (outside the plausible range 1-300 /min)"


def test_a_forecast_goes_on_from_the_rest():
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.vitals import forecast

    spec = get_spec("icu_gru")
    s = load_series(_stay("02:30,HR,0\n03:40,Temp,-17.8\n01:15,NISysABP,0\n"), spec.extra["series"])
    q = forecast(load_model("icu_gru"), spec, s).quantiles
    assert np.isfinite(q).all()


def test_every_reading_of_a_signal_impossible_leaves_the_signal_empty():
    text = _stay().decode().replace(",Temp,", ",Temp,-17.8#").encode()
    text = b"\n".join(line.split(b"#")[0] for line in text.split(b"\n"))  # every Temp is -17.8
    s = load_series(text, ICU_SERIES)
    assert len(s.changes) == 6 and {c.field for c in s.changes} == {"Temp"}
    assert [c.at for c in s.changes] == [f"{h:02d}:07" for h in range(6)]
    assert np.isnan(s.column("Temp")).all() and np.isfinite(s.column("HR")).all()
    assert any("Temperature" in n for n in s.notices)  # "No values at all for: ... Temperature ..."


def test_too_little_history_left_is_refused_naming_the_artefacts():
    data = b"Time,Parameter,Value\n00:10,HR,80\n01:10,HR,0\n02:10,HR,0\n03:10,HR,81\n"
    with pytest.raises(SeriesError) as err:
        load_series(data, ICU_SERIES)
    assert err.value.problems[0].startswith("Too little history: values in 2 step(s) of 60 min")
    assert err.value.problems[1] == "Heart rate (HR) outside 1-300 /min: 2 readings set aside as artefacts (e.g. 0 at 01:10)."


def test_only_artefacts_is_refused():
    with pytest.raises(SeriesError, match="Every reading .* outside its plausible range"):
        load_series(b"time,parameter,value\n00:00,HR,0\n01:00,HR,0\n02:00,Temp,-17.8\n", ICU_SERIES)


def test_the_rule_itself():
    hr = SIGNAL["HR"]
    assert implausible(hr, [0, 1, 300, 301, 80]).tolist() == [True, False, False, True, False]
    assert plausible_range_text(SIGNAL["GCS"]) == "outside the plausible range 3-15"
    assert plausible_range_text(CGM_SERIES.signals[0]) == "outside the plausible range 20-600 mg/dL"
    readings = pd.DataFrame({"param": ["HR", "NIMAP", "MAP", "HR"], "value": [0.0, 70.0, 400.0, 80.0],
                             "raw": ["0", "70", "400", "80"], "at": ["a", "b", "c", "d"]}, index=[3, 1, 2, 0])
    kept, changes = drop_artefacts(readings, ICU_SERIES)
    assert kept.index.tolist() == [1, 0]
    assert [(c.field, c.at, c.value) for c in changes] == [("MAP", "c", "400"), ("HR", "a", "0")]  # file order


def test_wide_upload_keeps_its_own_time_text():
    data = (b"timestamp,HR,MAP\n2024-01-01 08:00,80,70\n2024-01-01 09:00,0,72\n2024-01-01 10:00,82,71\n"
            b"2024-01-01 11:00,84,0\n")
    s = load_series(data, ICU_SERIES)
    assert [(c.field, c.at, c.value) for c in s.changes] == [("HR", "2024-01-01 09:00", "0"), ("MAP", "2024-01-01 11:00", "0")]
    np.testing.assert_allclose(s.column("HR"), [80, np.nan, 82, 84])


# ---- training reads stays with the same rule --------------------------------------------------------------

def test_training_reader_drops_the_same_readings(tmp_path: Path):
    from medai_core.train.icu import HOURS, load_stays

    data = _stay("02:30,HR,0\n03:40,Temp,-17.8\n01:15,NISysABP,0\n")
    (tmp_path / "132999.txt").write_bytes(data)
    loaded = load_stays(tmp_path, log=None)
    upload = load_series(data, ICU_SERIES)
    grid = np.full((HOURS, len(ICU_SERIES.signals)), np.nan, np.float32)
    grid[:upload.n_steps] = upload.values
    np.testing.assert_array_equal(loaded["values"][0], grid)
    assert loaded["skipped"] == 0


def test_cgm_training_reader_drops_the_same_readings(tmp_path: Path):
    from medai_core.train.cgm import load_people

    times = pd.date_range("2024-03-01 08:00", periods=12, freq="5min").astype(str)
    gl = [110 + i for i in range(12)]
    gl[4] = 5  # impossible
    pd.DataFrame({"id": "p1", "time": times, "gl": gl, "diagnosis": "pre"}).to_csv(tmp_path / "cgm.csv", index=False)
    grid = load_people(tmp_path / "cgm.csv")["grids"][0]
    upload = load_series(("timestamp,Glucose\n" + "".join(f"{t},{g}\n" for t, g in zip(times, gl))).encode(), CGM_SERIES)
    np.testing.assert_array_equal(grid, upload.values[:, 0].astype(np.float32))
    assert np.isnan(grid[4]) and [c.value for c in upload.changes] == ["5"]


# ---- PhysioNet 2019 .psv --------------------------------------------------------------------------------

def _psv(hours: int = 8, seed: int = 0, artefacts: dict[tuple[int, str], str] | None = None, unit2: bool = True) -> bytes:
    """A PhysioNet 2019 record in its own layout: 41 pipe-separated columns, one row per ICU hour, NaN = missing."""
    rng = np.random.default_rng(seed)
    base = {"HR": 88, "O2Sat": 97, "Temp": 37.0, "SBP": 125, "MAP": 82, "DBP": 60, "Resp": 18, "EtCO2": 35}
    lines = ["|".join(PHYSIONET_2019_COLUMNS)]
    for h in range(1, hours + 1):
        row = dict.fromkeys(PHYSIONET_2019_COLUMNS, "NaN")
        if h > 1:  # like the real files: the first hour often has only the demographics
            row.update({k: f"{v + rng.normal(0, 2):.1f}" for k, v in base.items()})
        if h % 4 == 0:
            row.update({"FiO2": "0.4", "SaO2": "96", "Lactate": "1.9"})
        row.update({"Age": "71.5", "Gender": "0", "Unit1": "0" if unit2 else "1", "Unit2": "1" if unit2 else "0",
                    "HospAdmTime": "-12.3", "ICULOS": str(h), "SepsisLabel": "1" if h > 5 else "0"})
        for (hour, col), value in (artefacts or {}).items():
            if hour == h:
                row[col] = value
        lines.append("|".join(row[c] for c in PHYSIONET_2019_COLUMNS))
    return ("\n".join(lines) + "\n").encode()


def test_psv_layout_is_read_by_content_with_its_columns_mapped():
    data = _psv(artefacts={(3, "HR"): "0", (5, "Temp"): "-17.8"})
    assert len(data.split(b"\n")[0].split(b"|")) == 41
    s = load_series(data, ICU_SERIES, "export.csv")  # the name does not matter, the header does
    assert s.step_minutes == 60 and s.n_steps == 9  # ICULOS 1..8 as elapsed hours 1:00..8:00
    assert s.static == {"Age": 71.5, "Gender": 0.0, "ICUType": 4.0}  # Unit2 = surgical ICU
    assert s.changes == (DataChange(None, "HR", "3:00", "0", DROPPED, "outside the plausible range 1-300 /min"),
                         DataChange(None, "Temp", "5:00", "-17.8", DROPPED, "outside the plausible range 25-45 °C"))
    for col, name in (("SBP", "SysABP"), ("DBP", "DiasABP"), ("Resp", "RespRate"), ("MAP", "MAP")):
        assert np.isfinite(s.column(name)[2:]).all(), col
    assert np.isnan(s.column("HR")[3]) and np.isfinite(s.column("HR")[[2, 4]]).all()
    assert s.column("FiO2")[4] == pytest.approx(0.4) and s.column("SaO2")[8] == 96
    notices = " ".join(s.notices)
    assert "SepsisLabel: an outcome label, never an input" in notices
    assert "O2Sat" in notices and "EtCO2" in notices and "HospAdmTime" in notices


def test_psv_outcome_column_never_changes_the_series():
    a = load_series(_psv(seed=3), ICU_SERIES)
    b = load_series(_psv(seed=3).replace(b"|1\n", b"|0\n"), ICU_SERIES)  # SepsisLabel is the last column
    np.testing.assert_array_equal(a.values, b.values)
    assert a.static == b.static


def test_psv_forecasts():
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.vitals import forecast

    spec = get_spec("icu_gru")
    s = load_series(_psv(hours=30, seed=1, artefacts={(20, "SBP"): "0"}, unit2=False), spec.extra["series"])
    assert s.static["ICUType"] == 3.0 and [c.field for c in s.changes] == ["SysABP"]
    assert np.isfinite(forecast(load_model("icu_gru"), spec, s).quantiles).all()


def test_pipe_separated_without_the_2019_header_is_not_guessed():
    with pytest.raises(UnsupportedFormat, match="PhysioNet 2019"):
        load_series(b"timestamp|HR\n2024-01-01 08:00|80\n2024-01-01 09:00|82\n", ICU_SERIES)


def test_psv_with_a_bad_hour_is_reported_by_row():
    data = _psv().replace(b"|6|1\n", b"|six|1\n")
    with pytest.raises(SeriesError, match="Unparseable timestamps in rows 7"):
        load_series(data, ICU_SERIES)


def test_psv_with_a_column_named_twice_is_a_clear_error():
    data = _psv().replace(b"|ICULOS|", b"|ICULOS |", 1).replace(b"HR|O2Sat", b"ICULOS|O2Sat", 1)
    with pytest.raises(UnsupportedFormat, match="more than once: ICULOS"):
        load_series(data, ICU_SERIES)
