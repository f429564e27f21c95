"""`python -m medai_core image predict`: the JSON-lines contract, errors that do not stop the run."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import ROOT, make_dicom, make_png, speckle_image


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medai_core", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=240)


def test_predict_folder_with_good_and_bad_files(tmp_path: Path):
    (tmp_path / "a.png").write_bytes(make_png(speckle_image(1)))
    (tmp_path / "b.dcm").write_bytes(make_dicom(speckle_image(2)))
    (tmp_path / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    (tmp_path / "notes.txt").write_text("not a scan")
    res = _run("image", "predict", str(tmp_path), str(tmp_path / "missing.png"), "--model", "busi_cnn")
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(lines) == 5
    by = {Path(d["file"]).name: d for d in lines}
    for name in ("a.png", "b.dcm"):
        d = by[name]
        assert set(d) == {"file", "model", "label", "probabilities", "ood", "ood_score"}
        assert d["model"] == "busi_cnn" and d["label"] in d["probabilities"]
        assert abs(sum(d["probabilities"].values()) - 1) < 1e-4
        assert isinstance(d["ood"], bool) and isinstance(d["ood_score"], float)
    for name in ("broken.dcm", "notes.txt", "missing.png"):
        assert set(by[name]) == {"file", "error"} and by[name]["error"]
    assert res.returncode == 1  # some files failed; every file still got its line


def test_predict_with_explanation_writes_pngs(tmp_path: Path):
    from PIL import Image

    src = tmp_path / "scan.png"
    src.write_bytes(make_png(speckle_image(4)))
    out = tmp_path / "out"
    res = _run("image", "predict", str(src), "--explain", "gradcam", "--out", str(out))
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    png = Path(d["explanation"]["png"])
    assert png.exists() and Image.open(png).size == (256, 256)
    assert np.asarray(Image.open(png)).std() > 0


def test_unknown_explainer_is_a_clear_error(tmp_path: Path):
    src = tmp_path / "scan.png"
    src.write_bytes(make_png(speckle_image(4)))
    res = _run("image", "predict", str(src), "--explain", "gradcm", "--out", str(tmp_path))
    assert res.returncode == 2 and "Did you mean 'gradcam'" in res.stderr and "Traceback" not in res.stderr


def test_predict_with_sanity_writes_json_and_figure(tmp_path: Path):
    from PIL import Image

    src = tmp_path / "scan.png"
    src.write_bytes(make_png(speckle_image(4)))
    out = tmp_path / "out"
    res = _run("image", "predict", str(src), "--explain", "gradcam", "--out", str(out), "--sanity", "--model", "busi_cnn")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert set(d) == {"file", "model", "label", "probabilities", "ood", "ood_score", "explanation", "sanity"}
    assert set(d["explanation"]) == {"method", "target", "png"}  # the existing contract, unchanged
    s = d["sanity"]
    assert set(s) == {"verdict", "rank_correlation", "abs_rank_correlation", "faithfulness", "deletion_auc",
                      "deletion_auc_random", "insertion_auc", "insertion_auc_random", "json", "png"}
    assert s["verdict"] in ("passes", "weak", "fails") and -1 <= s["rank_correlation"] <= 1
    assert s["json"] == str(out / "scan.gradcam.sanity.json") and s["png"] == str(out / "scan.gradcam.sanity.png")
    report = json.loads(Path(s["json"]).read_text())
    assert report["method"] == "gradcam" and report["target"] == d["label"]
    stages = report["randomisation"]["stages"]
    assert [st["group"] for st in stages] == ["fc", "layer4", "layer3", "layer2", "layer1", "stem"]
    assert report["randomisation"]["rank_correlation"] == s["rank_correlation"] == stages[-1]["rank_correlation"]
    f = report["faithfulness"]
    assert f["deletion_auc"] == s["deletion_auc"] and len(f["deletion"]) == len(f["fractions"]) == 21
    img = Image.open(s["png"])
    img.load()
    assert img.size[0] > img.size[1] > 100 and np.asarray(img).std() > 0


def test_sanity_needs_explain(tmp_path: Path):
    src = tmp_path / "scan.png"
    src.write_bytes(make_png(speckle_image(4)))
    res = _run("image", "predict", str(src), "--sanity")
    assert res.returncode == 2 and "--explain" in res.stderr and res.stdout == ""


def test_notes_predict_csv_with_an_empty_row_gets_one_error_line_for_it(tmp_path: Path):
    """`notes predict`: an empty CSV row is its own error line, in file order; the other rows are classified."""
    from medai_core.workspaces.notes.samples import SYNTHETIC_NOTES

    import pandas as pd

    knee, chest = list(SYNTHETIC_NOTES.values())[:2]
    pd.DataFrame({"id": ["n1", "n2", "n3", "n4"], "text": [knee, "", chest, "   "]}).to_csv(tmp_path / "batch.csv",
                                                                                        index=False)
    res = _run("notes", "predict", str(tmp_path / "batch.csv"))
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert res.returncode == 1  # something was not scored, as when a file fails
    assert [x["id"] for x in lines] == ["n1", "n2", "n3", "n4"]
    for x in (lines[0], lines[2]):
        assert set(x) == {"id", "model", "label", "probabilities"} and x["model"] == "notes_tfm"
    for x, row in ((lines[1], 2), (lines[3], 4)):
        assert set(x) == {"id", "error"} and x["error"] == f"Row {row} (n{row}) was not scored: the note is empty."


def test_vitals_forecast_lists_notices_and_changes(tmp_path: Path):
    """`vitals forecast`: a stay with artefacts (a heart rate of 0, a temperature of -17.8 °C) is forecast; its
    line keeps every key and adds ``notices`` (the series' notices and each change's text) and ``changes``."""
    rows = "".join(f"{h:02d}:07,HR,{80 + h}\n{h:02d}:07,NIMAP,{75 - h}\n{h:02d}:07,Temp,37.{h % 10}\n" for h in range(12))
    (tmp_path / "132540.txt").write_text("Time,Parameter,Value\n00:00,RecordID,132540\n00:00,Age,70\n" + rows
                                         + "04:30,HR,0\n06:45,Temp,-17.8\n05:00,EtCO2,35\n")
    res = _run("vitals", "forecast", "--horizon", "2", str(tmp_path / "132540.txt"))
    assert res.returncode == 0, res.stderr
    (line,) = [json.loads(x) for x in res.stdout.splitlines()]
    assert set(line) == {"file", "model", "forecast", "notices", "changes"} and len(line["forecast"]["HR"]["p50"]) == 2
    assert line["changes"] == [
        {"field": "HR", "value": "0", "action": "dropped", "reason": "outside the plausible range 1-300 /min", "at": "04:30"},
        {"field": "Temp", "value": "-17.8", "action": "dropped", "reason": "outside the plausible range 25-45 °C",
         "at": "06:45"}]
    assert line["notices"][-2:] == ["HR, at 04:30 = 0: dropped (outside the plausible range 1-300 /min)",
                                    "Temp, at 06:45 = -17.8: dropped (outside the plausible range 25-45 °C)"]
    assert any("EtCO2" in n for n in line["notices"][:-2])  # the series' own notices come first


def test_vitals_forecast_reads_a_physionet_2019_record(tmp_path: Path):
    from medai_core.io.vitals import PHYSIONET_2019_COLUMNS

    lines = ["|".join(PHYSIONET_2019_COLUMNS)]
    for h in range(1, 13):
        row = dict.fromkeys(PHYSIONET_2019_COLUMNS, "NaN")
        row.update({"HR": "0" if h == 4 else str(90 + h), "MAP": str(80 - h), "SBP": "118", "Resp": "20", "Age": "58",
                    "Gender": "1", "ICULOS": str(h), "SepsisLabel": "1" if h > 8 else "0"})
        lines.append("|".join(row[c] for c in PHYSIONET_2019_COLUMNS))
    (tmp_path / "p000001.psv").write_text("\n".join(lines) + "\n")
    res = _run("vitals", "forecast", str(tmp_path / "p000001.psv"))
    assert res.returncode == 0, res.stderr
    (line,) = [json.loads(x) for x in res.stdout.splitlines()]
    assert line["changes"] == [{"field": "HR", "value": "0", "action": "dropped",
                                "reason": "outside the plausible range 1-300 /min", "at": "4:00"}]
    assert any("SepsisLabel" in n and "never an input" in n for n in line["notices"])
    # the 6 hours after the last row (ICULOS 12)
    assert line["forecast"]["HR"]["time"] == [f"{h}:00" for h in range(13, 19)]
