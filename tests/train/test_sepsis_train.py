"""The sepsis trainer end to end on small PhysioNet-2019-shaped records the test writes (the real loader, the
split, the ensemble, calibration, threshold, the trees baseline, the card)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from medai_core.io.vitals import PHYSIONET_2019_COLUMNS
from medai_core.train.sepsis import train_sepsis
from medai_core.train.sepsis_card import write_card
from medai_core.train.sepsis_data import load_records, split_patients


def _write_records(folder: Path, n: int = 60, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        hours = int(rng.integers(10, 40))
        septic = i % 4 == 0
        df = pd.DataFrame(np.nan, index=range(hours), columns=list(PHYSIONET_2019_COLUMNS))
        onset = hours - 8 if septic else hours + 100
        t = np.arange(hours)
        df["HR"] = 80 + 25 * (t > onset - 12) * septic + rng.normal(0, 4, hours)
        df["MAP"] = 80 - 10 * (t > onset - 12) * septic + rng.normal(0, 3, hours)
        df["Temp"] = np.where(t % 4 == 0, 37 + (t > onset - 12) * septic, np.nan)
        df.loc[2, "HR"] = 0 if i == 1 else df.loc[2, "HR"]  # an artefact, set aside by the loader
        df["Age"], df["Gender"], df["Unit1"], df["Unit2"], df["HospAdmTime"] = 60.0, i % 2, 1.0, 0.0, -3.0
        df["ICULOS"] = t + 1
        df["SepsisLabel"] = (t >= onset - 6).astype(int) if septic else 0
        df.to_csv(folder / f"p{i:06d}.psv", sep="|", index=False, na_rep="NaN")


def test_loader_and_split(tmp_path: Path):
    _write_records(tmp_path)
    d = load_records(tmp_path, log=None)
    assert len(d["ids"]) == 60 and d["offsets"][-1] == len(d["labels"]) == len(d["values"])
    assert d["set_aside"][0] == 1  # the heart rate of 0
    split = split_patients(d["ids"], d["labels"], d["offsets"])
    allidx = np.concatenate(list(split.values()))
    assert sorted(allidx.tolist()) == list(range(60))  # every patient once, on one side only


def test_train_writes_weights_json_and_card(tmp_path: Path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _write_records(data)
    r = train_sepsis(data, out, epochs=2, members=2, hidden=8, log=None)
    write_card(out, r)
    assert (out / "sepsis_gru.pt").exists()
    card = json.loads((out / "sepsis_gru.json").read_text())
    assert 0 < card["threshold"] < 1 and len(card["training"]["best_epoch"]) == 2
    for k in ("utility", "auroc", "auprc", "sensitivity_patients", "median_warning_hours", "calibration", "ci95"):
        assert k in card["test"], k
    assert "gradient_boosting" in card["baselines"]
    assert len(card["data"]["test_ids"]) == card["data"]["split"]["test"]
    md = (out / "sepsis_gru.md").read_text()
    assert "normalized utility" in md and "gradient-boosted trees (baseline)" in md and "Not a diagnosis" in md
