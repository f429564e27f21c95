"""The real BUSI training entry point, run on a tiny data set made here (the real data is not used)."""
from __future__ import annotations

import json

import numpy as np

from tests.conftest import make_png


def _fake_busi(root, per_class: int = 15) -> None:
    rng = np.random.default_rng(0)
    for k, label in enumerate(("benign", "malignant", "normal")):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 255, (64, 64), dtype=np.uint8)
            img[20:40, 20:40] //= (k + 1)  # a class-dependent dark square
            (root / label / f"{label} ({i}).png").write_bytes(make_png(img))
        # masks, as in the published BUSI folders, are ignored
        (root / label / f"{label} (0)_mask.png").write_bytes(make_png(np.zeros((64, 64), np.uint8)))


def test_train_writes_loadable_weights_and_card(tmp_path, monkeypatch):
    from medai_core.workspaces.imaging.pipeline import predict, prepare_input
    from medai_core.io import load_scan
    from medai_core.models import get_spec, load_model
    from medai_core.train.busi import train_busi
    from medai_core.train.busi_card import finalize_card

    data, out = tmp_path / "busi", tmp_path / "out"
    _fake_busi(data)
    res = train_busi(data, out, epochs=2, log=lambda *_: None)
    assert res["split"]["images"] == 45 and res["split"]["train"] + res["split"]["val"] + res["split"]["test"] == 45
    for key in ("accuracy", "malignant_auroc", "confusion", "ece_before", "ece_after", "ood_flag_rate"):
        assert key in res["test"]
    card = finalize_card(out)
    assert "ood_reference" in card and (out / "busi_cnn.md").read_text().startswith("# Model card")
    assert json.loads((out / "busi_cnn.json").read_text())["weights_sha256"] == res["weights_sha256"]
    monkeypatch.setenv("MEDAI_ASSETS_DIR", str(out))
    model, spec = load_model("busi_cnn"), get_spec("busi_cnn")
    pred = predict(model, spec, prepare_input(load_scan((data / "benign" / "benign (1).png").read_bytes()), spec))
    assert abs(sum(pred.probabilities.values()) - 1) < 1e-6


def test_split_keeps_near_duplicates_together():
    from medai_core.train.busi import split_indices

    y = np.repeat([0, 1, 2], 30)
    groups = np.arange(90) // 3  # triples of near-duplicates
    split = split_indices(y, groups, seed=1)
    where = {}
    for name, idx in split.items():
        for i in idx:
            where.setdefault(groups[i], set()).add(name)
    assert all(len(s) == 1 for s in where.values())
    assert sorted(np.concatenate(list(split.values()))) == list(range(90))
