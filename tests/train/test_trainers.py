"""The SUPPORT2 and MTSamples training entry points on tiny data made here (the real data is not used),
and the MTSamples label rule."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from medai_core.models.notes_tfm import NOTES_LABELS
from medai_core.workspaces.records.samples import synthetic_records


def _fake_support(path, n: int = 240) -> None:
    df = synthetic_records(n, seed=5).drop(columns=["id"])
    rng = np.random.default_rng(0)
    risk = 1 / (1 + np.exp(-(pd.to_numeric(df["aps"]) - 40) / 8))
    df["hospdead"] = (rng.random(n) < risk).astype(int)
    df["sno"] = np.arange(1, n + 1)
    df["death"] = df["hospdead"]  # an outcome column the trainer must ignore
    df["race"] = "white"
    df.to_csv(path, index=False)


def test_support_training_writes_loadable_weights_and_card(tmp_path, monkeypatch):
    from medai_core.workspaces.records import pipeline as R
    from medai_core.io.records import load_records
    from medai_core.models import get_spec, load_model
    from medai_core.train.support import train_support

    csv, out = tmp_path / "support2.csv", tmp_path / "out"
    _fake_support(csv)
    res = train_support(csv, out, epochs=3, patience=3, log=None)
    assert sum(res["data"]["split"].values()) == 240 and "death" not in res["features"]
    for key in ("auroc", "auroc_ci", "ece", "brier", "threshold", "sensitivity"):
        assert key in res["test"]
    assert set(res["baselines"]) == {"logistic_regression", "gradient_boosting"}
    card = (out / "support_ftt.md").read_text()
    assert card.startswith("# Model card: support_ftt") and "`avtisst`" in card and (out / "support_ftt_calibration.png").exists()
    assert json.loads((out / "support_ftt.json").read_text())["weights_sha256"] == res["weights_sha256"]
    monkeypatch.setenv("MEDAI_ASSETS_DIR", str(out))
    model, spec = load_model("support_ftt"), get_spec("support_ftt")
    scores = R.score(model, spec, load_records(synthetic_records(3)))
    assert np.isfinite(scores.risk).all()


def test_mtsamples_label_rule():
    from medai_core.train.notes import label_notes

    rows = [
        ("knee note", "Orthopedic"), ("knee note", "Surgery"),  # catch-all + specific -> Orthopedic
        ("scan note", "Radiology"), ("scan note", "Neurology"),  # catch-all + specific -> Neurology
        ("spine note", "Orthopedic"), ("spine note", "Neurology"),  # two specialties -> ambiguous, dropped
        ("h and p", "Consult - History and Phy."),  # a note type only -> dropped
        ("operation", "Surgery"), ("operation", "Discharge Summary"),  # note type removed -> Surgery
        ("rare", "Dermatology"),
    ]
    df = pd.DataFrame(rows, columns=["transcription", "medical_specialty"])
    texts, labels, counts = label_notes(df, min_notes=1)
    got = dict(zip(texts, labels))
    assert got == {"knee note": "Orthopedic", "scan note": "Neurology", "operation": "Surgery", "rare": "Dermatology"}
    assert counts["ambiguous"] == 1 and counts["note_type_only"] == 1 and counts["distinct_notes"] == 6
    _, labels, counts = label_notes(df, min_notes=2)
    assert labels == [] and counts["rare_specialty"] == 4


@pytest.mark.slow
def test_notes_training_writes_weights_vocab_and_card(tmp_path, monkeypatch):
    from medai_core.workspaces.notes import pipeline as N
    from medai_core.models import get_spec, load_model
    from medai_core.train.notes import MIN_NOTES, train_notes

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(200)]
    rows = []
    for k, lab in enumerate(NOTES_LABELS):
        for i in range(MIN_NOTES):
            body = " ".join(rng.choice(words, 30)) + f" marker{k} marker{k}"
            rows.append({"transcription": f"{body} note {i}", "medical_specialty": lab})
    csv, out = tmp_path / "mtsamples.csv.gz", tmp_path / "out"
    pd.DataFrame(rows).to_csv(csv, index=False)
    res = train_notes(csv, out, epochs=2, log=None)
    assert res["data"]["kept"] == len(rows) and res["baseline"]["macro_f1"] > 0.9  # markers are easy
    for f in ("notes_tfm.pt", "notes_tfm.vocab.json", "notes_tfm.json", "notes_tfm.md"):
        assert (out / f).exists()
    monkeypatch.setenv("MEDAI_ASSETS_DIR", str(out))
    spec = get_spec("notes_tfm")
    pred = N.classify(load_model("notes_tfm"), spec, N.load_vocab(spec), "w1 w2 marker3 marker3")
    assert pred.label in NOTES_LABELS


def test_icu_training_writes_loadable_weights_and_card(tmp_path, monkeypatch):
    from medai_core.workspaces.vitals import pipeline as V
    from medai_core.io.vitals import to_series
    from medai_core.models import get_spec, load_model
    from medai_core.models.forecaster import ICU_SERIES
    from medai_core.workspaces.vitals.samples import synthetic_icu_case
    from medai_core.train.icu import train_icu, write_card

    folder, out = tmp_path / "set-a", tmp_path / "out"
    folder.mkdir()
    for i in range(24):
        case = synthetic_icu_case(("stable", "deteriorating", "sparse")[i % 3], hours=48, seed=i)
        (folder / f"{130000 + i}.txt").write_text("Time,Parameter,Value\n" + case.to_csv(index=False, header=False))
    (folder / "130999.txt").write_text("Time,Parameter,Value\n00:00,Age,50\n")  # no vitals: skipped
    res = train_icu(folder, out, epochs=1, log=None)
    write_card(out, res)
    assert res["data"]["skipped"] == 1 and sum(res["data"]["split"].values()) == 24
    for key in ("mean_ratio", "mean_ridge_ratio", "mean_coverage80", "signals"):
        assert key in res["test"]
    assert (out / "icu_gru.md").read_text().startswith("# Model card: icu_gru")
    monkeypatch.setenv("MEDAI_ASSETS_DIR", str(out))
    spec = get_spec("icu_gru")
    fc = V.forecast(load_model("icu_gru"), spec, to_series(synthetic_icu_case().astype(str), ICU_SERIES))
    assert np.isfinite(fc.quantiles).all()


def test_cgm_training_on_made_up_people(tmp_path, monkeypatch):
    from medai_core.workspaces.vitals import pipeline as V
    from medai_core.io.vitals import load_series
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.vitals.samples import synthetic_cgm_case
    from medai_core.train.cgm import train_cgm

    rows = []
    for p in range(8):
        case = synthetic_cgm_case(("meal", "low")[p % 2], hours=8, seed=p)
        rows.append(pd.DataFrame({"id": f"P{p}", "time": case["timestamp"], "gl": case["Glucose"],
                                  "diagnosis": "diabetic"}))
    csv, out = tmp_path / "cgm.csv", tmp_path / "out"
    pd.concat(rows).to_csv(csv)
    res = train_cgm(csv, out, epochs=1, log=None)
    assert {"ratio_30", "ratio_60", "coverage80_30"} <= set(res["test"]) and (out / "cgm_gru.md").exists()
    assert len(res["data"]["split"]["test"]) == 1 and len(res["data"]["split"]["train"]) == 6
    monkeypatch.setenv("MEDAI_ASSETS_DIR", str(out))
    spec = get_spec("cgm_gru")
    s = load_series(synthetic_cgm_case().to_csv(index=False).encode(), spec.extra["series"])
    fc = V.forecast(load_model("cgm_gru"), spec, s)
    assert fc.quantiles.shape == (12, 1, 3) and fc.to_json(s.origin)["Glucose"]["time"][0].startswith("2024-03-01T14:00")
