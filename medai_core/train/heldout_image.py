"""Held-out file of an EfficientNet-Lite0 classifier (``cxr_pneumonia``, ``busi_effnet``): the shipped weights,
run end to end (full network, not training's cached front) on the card's exact test split."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from medai_core.models.spec import get_spec, read_card
from medai_core.train.heldout_common import _base, _check, _same_ids

SOURCES = {"cxr_pneumonia": ("Paediatric chest X-rays (Kermany et al. 2018, CC BY 4.0), cxr_pneumonia/manifest.csv",
                             "patients split stratified by label, StratifiedGroupKFold, seed from the card "
                             "(medai_core.train.effnet.group_split)"),
           "busi_effnet": ("BUSI (Al-Dhabyani et al. 2020), busi/{benign,malignant,normal}",
                           "near-duplicate groups (pHash) split stratified by label, StratifiedGroupKFold, seed from "
                           "the card (the same split as busi_cnn)")}


def heldout_effnet(name: str, path: Path) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    from medai_core.models import load_model
    from medai_core.train.effnet import SEED, _f32, group_split, load_busi_set, load_cxr, positive_indices
    from medai_core.train.metrics import softmax
    from medai_core.workspaces.imaging.pipeline import decide_indices

    card, spec = read_card(name), get_spec(name)
    data = (load_cxr if name == "cxr_pneumonia" else load_busi_set)(path, spec)
    te = group_split(data.y, data.groups, card["training"].get("seed", SEED))["test"]
    _same_ids(name, [data.paths[i] for i in te], card.get("test_files"))
    model = load_model(name)
    with torch.inference_mode():
        logits = torch.cat([model(_f32(data.x[te[i : i + 64]])) for i in range(0, len(te), 64)]).numpy()
    p = softmax(logits, float(model.temperature))
    y = data.y[te]
    pos = positive_indices(spec)
    thr = float(model.decision_threshold)
    pred = decide_indices(p, pos, thr)
    pp = p[:, pos].sum(1)
    yb = np.isin(y, pos)
    out = _base(name, "classifier", len(te), *SOURCES[name])
    rep = out["meta"]["reproduced"]
    _check(name, "accuracy", float((pred == y).mean()), card["test"]["accuracy"], rep)
    _check(name, "positive_auroc", roc_auc_score(yb, pp), card["test"]["positive_auroc"], rep)
    _check(name, "positive_accuracy", float((np.isin(pred, pos) == yb).mean()), card["test"]["positive_accuracy"], rep)
    group = " + ".join(spec.labels[i] for i in pos)
    out |= {"threshold": thr, "threshold_source": f"the model's decision threshold on P({group}), fitted on validation",
            "positive_label": spec.positive_label, "labels": list(spec.labels),
            "probs": pp, "outcomes": yb.astype(int), "class_probs": p, "y": y}
    return out
