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
    res = _run("image", "predict", str(tmp_path), str(tmp_path / "missing.png"))
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
    res = _run("image", "predict", str(src), "--explain", "gradcam", "--out", str(out), "--sanity")
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
