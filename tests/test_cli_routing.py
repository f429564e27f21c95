"""`image predict` without --model: the right model for each scan, said in the JSON line; --model still forces one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, pydicom_file

CHEST = ("chest_xray_normal.jpeg", "chest_xray_bacterial.jpeg", "chest_xray_viral.jpeg")


def _lines(*args: str) -> list[dict]:
    res = subprocess.run([sys.executable, "-m", "medai_core", "image", "predict", *args], capture_output=True,
                         text=True, cwd=ROOT, timeout=240)
    assert "Traceback" not in res.stderr, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_chest_films_go_to_the_chest_model_and_ct_mr_stay_flagged():
    demo = ROOT / "assets" / "demo"
    files = [demo / n for n in CHEST] + [pydicom_file("CT_small.dcm"), pydicom_file("MR_small.dcm"),
                                          pydicom_file("emri_small.dcm")]
    by = {Path(d["file"]).name: d for d in _lines(*map(str, files))}
    for n in CHEST:
        d = by[n]
        assert d["model"] == "cxr_pneumonia" and not d["ood"], d
        assert d["route"]["reason"].startswith("Chosen: chest X-ray model")
        assert set(d["route"]["candidates"]) == {"cxr_pneumonia", "busi_effnet"}
        assert d["positive"]["label"] == "pneumonia"
        assert abs(d["positive"]["probability"] - d["probabilities"]["bacterial"] - d["probabilities"]["viral"]) < 1e-5
    assert by["chest_xray_normal.jpeg"]["label"] == "normal"
    assert by["chest_xray_bacterial.jpeg"]["label"] in ("bacterial", "viral")
    for n in ("CT_small.dcm", "MR_small.dcm", "emri_small.dcm"):
        d = by[n]
        assert d["ood"] is True, d
        assert all(c["ood"] for c in d["route"]["candidates"].values())
        assert d["route"]["reason"].startswith("No image model recognises this scan")


def test_model_flag_still_forces_a_model():
    d = _lines(str(ROOT / "assets" / "demo" / CHEST[0]), "--model", "busi_cnn")[0]
    assert d["model"] == "busi_cnn" and "route" not in d and "positive" not in d


def _busi_dir() -> Path:
    env = os.environ.get("MEDAI_DATA_DIR")
    d = (Path(env) if env else ROOT.parent / "shared" / "data") / "busi"
    if not d.is_dir():
        pytest.skip("BUSI images not available (../shared/data/busi); the breast routing is checked where they are")
    return d


def test_breast_ultrasound_goes_to_the_breast_model():
    d = _busi_dir()
    files = [sorted((d / lab).glob("*.png"))[k] for lab in ("benign", "malignant", "normal") for k in (0, 7)]
    lines = _lines(*map(str, files))
    assert [x["model"] for x in lines] == ["busi_effnet"] * len(files), [x.get("route") for x in lines]
