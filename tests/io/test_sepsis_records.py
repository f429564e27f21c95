"""Reading ICU records for the sepsis early warning: bad cells set aside and listed, whole-file problems refused."""
from __future__ import annotations

import numpy as np
import pytest

from medai_core.errors import InputError
from medai_core.models import get_spec
from medai_core.io.sepsis import load_sepsis_record
from medai_core.io.vitals import PHYSIONET_2019_COLUMNS

SPEC = get_spec("sepsis_gru")


def _load(data: bytes):
    return load_sepsis_record(data, SPEC.extra["variables"], SPEC.extra["static"], "r.psv")


def _psv(rows: list[dict], columns=PHYSIONET_2019_COLUMNS) -> bytes:
    lines = ["|".join(columns)]
    for k, r in enumerate(rows):
        lines.append("|".join(str(r.get(c, "NaN")) if c != "ICULOS" else str(r.get(c, k + 1)) for c in columns))
    return ("\n".join(lines) + "\n").encode()


def test_one_row_per_input_row_with_bad_cells_set_aside():
    data = _psv([{"HR": 80, "Age": 70, "Gender": 1, "SepsisLabel": 0}, {"HR": "abc", "Temp": 37.2, "SepsisLabel": 0},
                 {"HR": 0, "MAP": 75, "SepsisLabel": 1}])
    rec = _load(data)
    assert rec.n_hours == 3 and rec.kind == "psv"
    assert rec.values[0, 0] == 80 and np.isnan(rec.values[1, 0]) and np.isnan(rec.values[2, 0])
    assert rec.values[1, 2] == pytest.approx(37.2)
    reasons = {(c.row, c.field): c.reason for c in rec.changes}
    assert reasons[(2, "HR")] == "not a number" and "plausible range" in reasons[(3, "HR")]
    np.testing.assert_array_equal(rec.recorded_label, [0, 0, 1])  # kept for display only
    assert any("never an input" in n for n in rec.notices)


def test_missing_columns_are_never_measured_with_a_notice():
    cols = ("HR", "MAP", "Age", "ICULOS")
    rec = _load(_psv([{"HR": 90, "MAP": 70}, {"HR": 95}], cols))
    assert rec.n_hours == 2 and np.isnan(rec.values[:, 2]).all()
    assert any("Temp" in n for n in rec.notices)


def test_physionet_2012_stay_on_an_hourly_grid():
    txt = b"Time,Parameter,Value\n00:00,RecordID,1\n00:00,Age,70\n00:00,ICUType,4\n00:10,HR,80\n00:50,HR,90\n" \
          b"02:05,NISysABP,120\n02:05,SysABP,110\n02:30,Lactate,2.5\n"
    rec = _load(txt)
    assert rec.kind == "physionet2012" and rec.n_hours == 3
    assert rec.values[0, 0] == 85 and np.isnan(rec.values[1, 0])
    assert rec.values[2, 3] == 110  # invasive pressure wins over non-invasive
    assert rec.static[0, 3] == 1  # surgical ICU -> Unit2
    assert rec.notices


@pytest.mark.parametrize("data", [b"", b"\x00\x01binary", b"a,b\n1,2\n", b"HR|ICULOS\n"])
def test_whole_file_problems_are_refused_with_a_message(data: bytes):
    with pytest.raises(InputError):
        _load(data)


def test_the_fast_path_reads_a_clean_record_exactly_as_the_checked_path(monkeypatch):
    import medai_core.io.sepsis as io_sepsis
    from medai_core.workspaces.vitals.samples import synthetic_sepsis_record

    data = synthetic_sepsis_record("deteriorating")
    assert io_sepsis._clean_psv(data) is not None
    fast = _load(data)
    monkeypatch.setattr(io_sepsis, "_clean_psv", lambda raw: None)
    slow = _load(data)
    for a in ("values", "static", "hours", "recorded_label"):
        np.testing.assert_array_equal(getattr(fast, a), getattr(slow, a))
    assert fast.notices == slow.notices and fast.changes == slow.changes == ()
    # a cell that is not a number takes the checked path, which reports it
    assert io_sepsis._clean_psv(data.replace(b"|84|", b"|abc|", 1)) is None
