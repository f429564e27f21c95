"""``python -m medai_core vitals sepsis``: the JSON-lines contract and the causality of the risk (by truncating files)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medai_core.workspaces.vitals.samples import synthetic_sepsis_record
from tests.conftest import ROOT


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medai_core", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def _lines(res: subprocess.CompletedProcess) -> dict[str, dict]:
    return {Path(d["file"]).name: d for d in map(json.loads, res.stdout.splitlines())}


def test_one_line_per_file_with_a_risk_and_an_alarm_per_row(tmp_path: Path):
    psv = synthetic_sepsis_record("deteriorating")
    (tmp_path / "p1.psv").write_bytes(psv)
    text = psv.decode().splitlines()
    text[5] = "|".join(["abc"] + text[5].split("|")[1:])  # a bad cell is set aside, not the record
    (tmp_path / "p2.psv").write_text("\n".join(text) + "\n")
    (tmp_path / "broken.psv").write_bytes(b"\x00\x01\x02\x03")
    (tmp_path / "stay.txt").write_text("Time,Parameter,Value\n00:00,Age,70\n00:05,HR,88\n01:10,HR,95\n03:00,Temp,38.4\n")
    res = _run("vitals", "sepsis", str(tmp_path))
    assert res.returncode == 1  # one file failed; the others were scored
    out = _lines(res)
    assert set(out) == {"p1.psv", "p2.psv", "broken.psv", "stay.txt"}
    p1 = out["p1.psv"]
    assert set(p1) == {"file", "model", "risk", "alarm"} and p1["model"] == "sepsis_gru"
    assert len(p1["risk"]) == len(p1["alarm"]) == len(text) - 1
    assert all(0 < r < 1 for r in p1["risk"]) and set(p1["alarm"]) <= {0, 1} and any(p1["alarm"])
    assert len(out["p2.psv"]["risk"]) == len(text) - 1
    assert out["p2.psv"]["changes"][0]["field"] == "HR" and out["p2.psv"]["changes"][0]["value"] == "abc"
    assert set(out["broken.psv"]) == {"file", "error"}
    assert out["stay.txt"]["hours"] == [1, 2, 3, 4] and len(out["stay.txt"]["risk"]) == 4


@pytest.mark.parametrize("keep", [1, 9, 24])
def test_the_risk_at_a_row_uses_rows_up_to_it_only(tmp_path: Path, keep: int):
    lines = synthetic_sepsis_record("deteriorating").decode().splitlines()
    (tmp_path / "full.psv").write_text("\n".join(lines) + "\n")
    (tmp_path / "cut.psv").write_text("\n".join(lines[: keep + 1]) + "\n")
    out = _lines(_run("vitals", "sepsis", str(tmp_path / "full.psv"), str(tmp_path / "cut.psv")))
    assert out["cut.psv"]["risk"] == pytest.approx(out["full.psv"]["risk"][:keep], abs=2e-4)
    assert out["cut.psv"]["alarm"] == out["full.psv"]["alarm"][:keep]


def test_a_forecaster_is_not_a_sepsis_model(tmp_path: Path):
    (tmp_path / "p1.psv").write_bytes(synthetic_sepsis_record("stable"))
    res = _run("vitals", "sepsis", str(tmp_path / "p1.psv"), "--model", "icu_gru")
    assert res.returncode != 0 and "not a sepsis model" in (res.stderr + res.stdout)
