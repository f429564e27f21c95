"""The sepsis early warning's held-out file: the shipped ensemble re-run on its exact test patients.

One score per test patient, so that the app's reliability diagram and threshold view (sensitivity, PPV at
an adjustable threshold) read as the alarm does: a patient's score is the highest hourly risk up to 3 hours
after onset (septic patients; later alarms earn nothing in the challenge utility) or over the whole stay (the
others); outcome = becomes septic. At the shipped threshold, sensitivity is then the share of septic patients
warned and PPV the share of alarmed patients who become septic, as in the card. The card's hour-level
numbers (utility, AUROC, AUPRC) are recomputed and checked too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from medai_core.train.heldout_common import _base, _check, _same_ids

PER_PATIENT_NOTE = ("For the sepsis early warning a test case is a patient: the score is the highest hourly risk up "
                    "to 3 h after onset (septic patients) or over the whole stay (the others), so sensitivity is the "
                    "share of septic patients warned and PPV the share of alarmed patients who become septic.")


def patient_scores(labels: list[np.ndarray], risk: list[np.ndarray]) -> np.ndarray:
    """Per patient, the highest hourly risk where an alarm still counts (see the module docstring)."""
    from medai_core.trust.utility import DT_LATE, onset_hour

    out = []
    for lab, r in zip(labels, risk):
        ts = onset_hour(lab)
        out.append(float(np.max(r[: int(ts) + DT_LATE + 1] if np.isfinite(ts) else r)))
    return np.array(out)


def heldout_sepsis(path: Path, name: str = "sepsis_gru") -> dict[str, Any]:
    from medai_core.models import load_model
    from medai_core.models.spec import read_card
    from medai_core.train.sepsis import predict_logits, stay_features
    from medai_core.train.sepsis_data import load_records, patient_slices, split_patients
    from medai_core.train.sepsis_eval import evaluate_risk

    card = read_card(name)
    data = load_records(path, log=None)
    split = split_patients(data["ids"], data["labels"], data["offsets"], card["data"]["seed"])
    te = split["test"]
    _same_ids(name, data["ids"][te].tolist(), card["data"].get("test_ids"))
    model = load_model(name)
    feats = stay_features(data, te, model.mean.numpy(), model.std.numpy(), model.log_vars.numpy() > 0.5)
    with torch.inference_mode():
        risk = [model.risk(torch.from_numpy(v)).double().numpy() for v in predict_logits(model, feats)]
    labels = [data["labels"][s].astype(np.float32) for s in patient_slices(data["offsets"], te)]
    thr = float(model.threshold)
    t = evaluate_risk(labels, risk, thr, ci=False)
    out = _base(name, "classifier", len(te), "PhysioNet/CinC 2019 training set B, physionet2019/training_setB",
                "patients stratified by sepsis, 70/15/15, seed from the card (medai_core.train.sepsis_data.split_patients)")
    rep = out["meta"]["reproduced"]
    for k in ("utility", "auroc", "auprc", "sensitivity_patients", "ppv_patients", "alarm_episodes_per_patient_day"):
        _check(name, k, t[k], card["test"][k], rep)
    _check(name, "threshold", thr, card["threshold"], rep)
    out["meta"]["note"] = PER_PATIENT_NOTE
    out |= {"threshold": thr, "threshold_source": "the alarm threshold that maximised the utility on validation",
            "positive_label": "sepsis (patient)", "labels": ["no sepsis", "sepsis"],
            "probs": patient_scores(labels, risk), "outcomes": np.array([lab.any() for lab in labels], int)}
    return out
