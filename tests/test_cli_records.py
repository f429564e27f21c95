"""`records predict` (CSV in, CSV out with risk and label) and `notes predict` (JSON lines) contracts."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES
from medai_core.workspaces.records.samples import synthetic_records
from tests.conftest import ROOT


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medai_core", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=240, input=stdin)


def test_records_predict_writes_rows_back_with_risk_and_label(tmp_path: Path):
    df = synthetic_records(5, seed=2).assign(note="kept as is")
    path = tmp_path / "batch.csv"
    df.to_csv(path, index=False)
    res = _run("records", "predict", str(path))
    assert res.returncode == 0, res.stderr
    out = pd.read_csv(io.StringIO(res.stdout), dtype=str, keep_default_na=False)
    assert list(out.columns) == [*df.columns, "risk", "label", "warnings"]  # issue 13: warnings is the new last column
    assert out["id"].tolist() == df["id"].tolist() and (out["note"] == "kept as is").all()
    risk = out["risk"].astype(float)
    assert ((risk > 0) & (risk < 1)).all() and set(out["label"]) <= {"low risk", "high risk"}
    assert "Ignored columns" in res.stderr  # notices on stderr, never mixed into the CSV


def test_records_predict_reads_stdin():
    res = _run("records", "predict", "-", stdin=synthetic_records(2).to_csv(index=False))
    assert res.returncode == 0 and len(res.stdout.strip().splitlines()) == 3


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.drop(columns=["age"]), "Missing required columns: age"),
    (lambda d: d.assign(temp="hot"), "'temp'"),
    (lambda d: d.iloc[:0], "no rows"),
])
def test_records_schema_errors_go_to_stderr_nonzero(tmp_path: Path, mutate, match):
    path = tmp_path / "bad.csv"
    mutate(synthetic_records(3)).to_csv(path, index=False)
    res = _run("records", "predict", str(path))
    assert res.returncode != 0 and res.stdout == "" and match in res.stderr and "Traceback" not in res.stderr


def test_records_predict_adds_a_warnings_column_last(tmp_path: Path):
    df = synthetic_records(4, seed=3).astype(object)
    df.loc[1, "alb"] = "29"
    df.loc[3, "sex"] = "unknown"
    path = tmp_path / "batch.csv"
    df.to_csv(path, index=False)
    res = _run("records", "predict", str(path))
    assert res.returncode == 0, res.stderr
    out = pd.read_csv(io.StringIO(res.stdout), dtype=str, keep_default_na=False)
    assert list(out.columns) == [*df.columns, "risk", "label", "warnings"]
    assert out["warnings"].tolist() == [
        "", "row 2, alb = 29: set to missing (outside the plausible range 0.3-10 g/dL)", "",
        "row 4, sex = unknown: set to missing (not one of: female, male)"]
    summary = [line for line in res.stderr.splitlines() if line.startswith("changes:")]
    assert summary == [("changes: scored 4 of 4 rows; alb: 1 value set to missing (outside the plausible range 0.3-10 "
                        "g/dL); sex: 1 value set to missing (not one of: female, male) (see the warnings column)")]


def test_records_predict_scores_every_row_despite_a_glucose_of_zero(tmp_path: Path):
    df = synthetic_records(21, seed=8).astype(object)
    df.loc[6, "glucose"] = "0"
    path = tmp_path / "batch.csv"
    df.to_csv(path, index=False)
    res = _run("records", "predict", str(path))
    assert res.returncode == 0, res.stderr
    out = pd.read_csv(io.StringIO(res.stdout), dtype=str, keep_default_na=False)
    risk = out["risk"].astype(float)
    assert len(out) == 21 and ((risk > 0) & (risk < 1)).all() and (out["label"] != "").all()
    assert (out["warnings"] != "").tolist() == [i == 6 for i in range(21)]
    assert "row 7, glucose = 0: set to missing" in out["warnings"].iloc[6]
    assert "changes: scored 21 of 21 rows; glucose: 1 value set to missing" in res.stderr


def test_records_predict_keeps_an_unscored_row_with_empty_risk(tmp_path: Path):
    df = synthetic_records(3, seed=3).astype(object)
    df.loc[2, "id"] = ""
    path = tmp_path / "batch.csv"
    df.to_csv(path, index=False)
    res = _run("records", "predict", str(path))
    assert res.returncode == 0, res.stderr
    out = pd.read_csv(io.StringIO(res.stdout), dtype=str, keep_default_na=False)
    assert out["risk"].iloc[2] == "" and out["label"].iloc[2] == "" and "not scored" in out["warnings"].iloc[2]
    assert (out["risk"].iloc[:2] != "").all() and "scored 2 of 3 rows" in res.stderr


def test_records_schema_command():
    res = _run("records", "schema")
    assert res.returncode == 0 and res.stdout.startswith("column,meaning,type,unit,required")


def test_notes_predict_txt_csv_and_errors(tmp_path: Path):
    (tmp_path / "knee.txt").write_text(SYNTHETIC_NOTES["Knee arthroscopy (synthetic)"])
    (tmp_path / "empty.txt").write_text("")
    pd.DataFrame({"id": ["n1", "n2"], "text": list(SYNTHETIC_NOTES.values())[1:]}).to_csv(tmp_path / "batch.csv", index=False)
    pd.DataFrame({"text": ["eye drops after cataract surgery"]}).to_csv(tmp_path / "noid.csv", index=False)
    res = _run("notes", "predict", str(tmp_path / "knee.txt"), str(tmp_path / "batch.csv"), str(tmp_path / "empty.txt"),
               str(tmp_path / "noid.csv"))
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert res.returncode == 1  # one file failed, the others were still classified
    ok = [x for x in lines if "error" not in x]
    assert [("file" in x, x.get("id")) for x in ok] == [(True, None), (False, "n1"), (False, "n2"), (True, None)]
    for x in ok:
        assert set(x) == {"file" if "file" in x else "id", "model", "label", "probabilities"}
        assert x["model"] == "notes_tfm" and x["label"] in x["probabilities"]
        assert sum(x["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert ok[0]["file"].endswith("knee.txt") and ok[3]["file"].endswith("noid.csv:2")
    err = [x for x in lines if "error" in x]
    assert len(err) == 1 and err[0]["file"].endswith("empty.txt") and "empty" in err[0]["error"]


def test_wrong_model_kind_is_a_usage_error(tmp_path: Path):
    (tmp_path / "a.txt").write_text("knee")
    res = _run("notes", "predict", "--model", "support_ftt", str(tmp_path / "a.txt"))
    assert res.returncode == 2 and "not a text model" in res.stderr


def test_vitals_forecast_files_and_physionet_folder(tmp_path: Path):
    from medai_core.workspaces.vitals.samples import synthetic_icu_case

    synthetic_icu_case("stable").to_csv(tmp_path / "a.csv", index=False)
    stays = tmp_path / "stays"
    stays.mkdir()
    (stays / "132539.txt").write_text("Time,Parameter,Value\n00:00,RecordID,1\n00:00,Age,54\n"
                                      + "".join(f"{h:02d}:07,HR,{70 + h}\n{h:02d}:07,NIMAP,{80 - h / 2}\n" for h in range(30)))
    (tmp_path / "bad.csv").write_text("time,parameter,value\n00:00,HR,80\n")
    res = _run("vitals", "forecast", "--horizon", "3", str(tmp_path / "a.csv"), str(stays), str(tmp_path / "bad.csv"))
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert res.returncode == 1 and len(lines) == 3
    ok = [x for x in lines if "error" not in x]
    assert [Path(x["file"]).name for x in ok] == ["a.csv", "132539.txt"]
    for x in ok:
        assert set(x) == {"file", "model", "forecast", "notices", "changes"} and x["model"] == "icu_gru"  # issue 13: + notices, changes
        hr = x["forecast"]["HR"]
        assert set(hr) == {"time", "p10", "p50", "p90"} and len(hr["p50"]) == 3
        assert all(a <= b <= c for a, b, c in zip(hr["p10"], hr["p50"], hr["p90"]))
    assert ok[1]["forecast"]["HR"]["time"] == ["30:00", "31:00", "32:00"]
    assert "Too little history" in lines[2]["error"]
