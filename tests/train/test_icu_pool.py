"""The pooled ICU forecaster (PhysioNet 2012 + 2019): the 2019 loader against the upload path, windows,
the baselines on tiny synthetic data, a tiny end-to-end training run, the registered spec and the CLI on a
``.psv`` record. All data is made here."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medai_core.io.vitals import PHYSIONET_2019_COLUMNS, load_series
from medai_core.models.catalog import ICU_POOL_SERIES, ICU_POOL_SPEC
from medai_core.models.forecaster import static_vector, window_features
from medai_core.train import icu_baselines as B
from medai_core.train.icu_data import WindowSource, cut_points, load_psv_stays, read_psv


def _psv(hours: int = 20, seed: int = 0, start: int = 1, unit1: bool = True, artefact: bool = True) -> str:
    rng = np.random.default_rng(seed)
    lines = ["|".join(PHYSIONET_2019_COLUMNS)]
    for h in range(start, start + hours):
        row = dict.fromkeys(PHYSIONET_2019_COLUMNS, "NaN")
        if h > start:
            row.update({"HR": f"{85 + h + rng.normal(0, 2):.1f}", "O2Sat": "97", "SBP": f"{120 - h:.0f}",
                        "MAP": f"{80 + rng.normal(0, 3):.1f}", "DBP": "61", "Resp": f"{18 + rng.normal(0, 1):.1f}"})
        if h % 4 == 0:
            row.update({"Temp": f"{37 + 0.05 * h:.2f}", "FiO2": "0.4", "EtCO2": "33"})
        if artefact and h == start + 3:
            row["HR"] = "0"
        row.update({"Age": "66", "Gender": "1", "Unit1": "1" if unit1 else "0", "Unit2": "0" if unit1 else "1",
                    "HospAdmTime": "-3", "ICULOS": str(h), "SepsisLabel": "1" if h > 10 else "0"})
        lines.append("|".join(row[c] for c in PHYSIONET_2019_COLUMNS))
    return "\n".join(lines) + "\n"


def test_psv_loader_matches_the_upload_path_cell_for_cell(tmp_path):
    f = tmp_path / "p000001.psv"
    f.write_text(_psv(start=3, unit1=False))
    grid, first, static = read_psv(f, ICU_POOL_SERIES, ICU_POOL_SPEC)
    s = load_series(f, ICU_POOL_SERIES)
    np.testing.assert_allclose(grid, s.values.astype(np.float32), rtol=1e-6, equal_nan=True)
    assert first == 3 and len(grid) == 23 and static == static_vector(s.static, ICU_POOL_SPEC, 0)[:-1]
    assert static[5] == 1.0  # Unit2 -> surgical ICU (ICUType 4)
    assert np.isnan(grid[6, 0]) and [c.field for c in s.changes] == ["HR"]  # the artefact, set aside in both
    assert np.isfinite(grid[4:, ICU_POOL_SERIES.signals.index(next(x for x in ICU_POOL_SERIES.signals
                                                                    if x.name == "SpO2"))]).all()


def test_sepsis_label_never_changes_the_grid(tmp_path):
    a, b = tmp_path / "a.psv", tmp_path / "b.psv"
    a.write_text(_psv())
    b.write_text(_psv().replace("|1\n", "|0\n"))
    np.testing.assert_array_equal(read_psv(a, ICU_POOL_SERIES, ICU_POOL_SPEC)[0], read_psv(b, ICU_POOL_SERIES, ICU_POOL_SPEC)[0])


def test_cut_points_and_windows(tmp_path):
    for i, n in enumerate((20, 30, 15)):
        (tmp_path / f"p{i}.psv").write_text(_psv(hours=n, seed=i))
    stays = load_psv_stays(tmp_path, ICU_POOL_SERIES, ICU_POOL_SPEC, log=None)
    assert stays["ids"].tolist() == ["p0", "p1", "p2"] and np.diff(stays["offsets"]).tolist() == [21, 31, 16]
    stay, end = cut_points(stays, 12, 6)  # >= 12 h after the first row (ICULOS 1), whole horizon inside
    assert end[stay == 0].tolist() == [13, 14, 15] and end[stay == 2].tolist() == [] and (stay == 1).sum() == 13
    s = stays["values"].shape[1]
    mean, std = np.zeros(s, np.float32), np.ones(s, np.float32)
    w = WindowSource(stays, mean, std, 24, 6, 5).gather(stay, end)
    v0 = stays["values"][:21]
    assert w["x"].shape == (len(stay), 24, s) and w["pad"][0, :11].all() and not w["pad"][0, 11:].any()
    np.testing.assert_allclose(w["x"][0, -1, 1], v0[12, 1])  # the last history hour is end - 1
    np.testing.assert_allclose(w["y"][0, :, 0], v0[13:19, 0])
    assert w["ymask"][2, :, :4].all() and not w["ymask"][2, :, 4].all() and w["static"][0, -1] == pytest.approx(13 / 48)


def test_engineered_features_by_hand_and_the_model_sees_the_same():
    L, s = 24, 2
    x = np.zeros((1, L, s), np.float32)
    m = np.zeros((1, L, s), np.float32)
    x[0, :, 0] = np.arange(L, dtype=np.float32)  # a value each hour rising by 1
    m[0, :, 0] = 1
    x[0, 10:, 1] = 5.0  # one reading at hour 10, carried forward
    m[0, 10, 1] = 1
    f = B.engineered({"x": x, "m": m}, np.zeros(s), np.ones(s), 1)
    assert f[0, 0].tolist() == pytest.approx([23, 22, 20.5, 11.5, 1.0, 0, 24])  # last, mean3, mean6, mean24, slope, since, n
    assert f[0, 1, 0] == 5 and f[0, 1, 5] == 13 and np.isnan(f[0, 1, 4])
    wf = window_features(torch.from_numpy(x), torch.from_numpy(m)).numpy()[0]
    # blocks of S: mean3 - last, mean6 - last, mean24 - last, slope, share observed
    assert wf[[0, 2, 4, 6, 8]].tolist() == pytest.approx([22 - 23, 20.5 - 23, 11.5 - 23, 1.0, 1.0])
    assert wf[[1, 3, 5, 7, 9]].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0, 1 / 24])


def test_baselines_learn_a_trend():
    rng = np.random.default_rng(0)
    n, L, H = 1200, 24, 6
    slope = rng.normal(0, 1, n).astype(np.float32)
    hours = np.arange(L + H, dtype=np.float32)
    series = 50 + slope[:, None] * hours[None] + rng.normal(0, 0.3, (n, L + H)).astype(np.float32)
    w = {"x": series[:, :L, None], "m": np.ones((n, L, 1), np.float32), "y": series[:, L:, None],
         "ymask": np.ones((n, H, 1), bool), "last": series[:, L - 1:L]}
    f = B.engineered(w, np.zeros(1), np.ones(1), 1)
    tr, te = slice(0, 800), slice(800, None)
    sub = lambda d, sl: {k: v[sl] for k, v in d.items()}  # noqa: E731
    ridge = B.ridge_forecast(f[tr], sub(w, tr), f[te], 1, H)
    trees = B.predict_trees(B.fit_trees(f[tr], np.zeros((800, 1), np.float32), sub(w, tr), 1, H, max_iter=100, log=None),
                            f[te], np.zeros((400, 1), np.float32), H)
    pers = np.abs(w["last"][te][:, None] - w["y"][te]).mean()
    assert np.abs(ridge - w["y"][te]).mean() < 0.3 * pers and np.abs(trees - w["y"][te]).mean() < 0.5 * pers


def test_the_model_is_registered_for_the_page_the_cli_and_the_heldout_files():
    from medai_core.__main__ import build_parser
    from medai_core.models import MODELS, get_spec
    from medai_core.train.heldout import BUILDERS, HELDOUT_MODELS

    spec = get_spec("icu_pool_gru")
    assert spec.modality == "series" and "icu_pool_gru" in MODELS.names(modality="series")
    assert spec.labels == ("HR", "MAP", "SysABP", "RespRate", "Temp") and "SepsisLabel" not in {
        src for s in spec.extra["series"].signals for src in s.sources}
    assert "icu_pool_gru" in HELDOUT_MODELS and "icu_pool_gru" in BUILDERS
    args = build_parser().parse_args(["vitals", "train", "--model", "icu_pool_gru", "--data", "x"])
    assert args.model == "icu_pool_gru"


def test_cli_forecasts_the_6_hours_after_the_last_row_of_a_psv(tmp_path, capsys):
    from medai_core.__main__ import main

    f = tmp_path / "p000009.psv"
    f.write_text(_psv(hours=30, seed=4))  # ICULOS 1..30
    assert main(["vitals", "forecast", str(f), "--model", "icu_pool_gru"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["model"] == "icu_pool_gru" and set(line["forecast"]) == {"HR", "MAP", "SysABP", "RespRate", "Temp"}
    hr = line["forecast"]["HR"]
    assert hr["time"] == ["31:00", "32:00", "33:00", "34:00", "35:00", "36:00"]
    assert all(a <= b <= c for a, b, c in zip(hr["p10"], hr["p50"], hr["p90"])) and 90 < hr["p50"][0] < 140
    assert any("SepsisLabel" in n and "never an input" in n for n in line["notices"])


def _txt(seed: int, hours: int = 48) -> str:
    rng = np.random.default_rng(seed)
    rows = ["Time,Parameter,Value", f"00:00,RecordID,{130000 + seed}", "00:00,Age,61", "00:00,Gender,0", "00:00,ICUType,2"]
    for h in range(hours):
        rows += [f"{h:02d}:10,HR,{80 + 5 * np.sin(h / 5) + rng.normal(0, 1):.0f}", f"{h:02d}:10,NIMAP,{75 + rng.normal(0, 2):.0f}",
                 f"{h:02d}:10,NISysABP,{115 + rng.normal(0, 3):.0f}", f"{h:02d}:10,RespRate,{17 + rng.normal(0, 1):.0f}"]
        if h % 4 == 0:
            rows.append(f"{h:02d}:30,Temp,{37 + rng.normal(0, 0.2):.1f}")
    return "\n".join(rows) + "\n"


def test_training_end_to_end_on_tiny_data(tmp_path):
    from medai_core.models.forecaster import FeatureQuantileForecaster
    from medai_core.train.icu_pool import train_pool
    from medai_core.train.icu_pool_card import card_markdown

    (tmp_path / "physionet2012/set-a").mkdir(parents=True)
    (tmp_path / "physionet2019/training_setB").mkdir(parents=True)
    for i in range(14):
        (tmp_path / f"physionet2012/set-a/{130000 + i}.txt").write_text(_txt(i))
        (tmp_path / f"physionet2019/training_setB/p{i:06d}.psv").write_text(_psv(hours=30 + i, seed=i, unit1=i % 2 == 0))
    torch.manual_seed(0)
    r = train_pool(tmp_path, tmp_path / "out", ICU_POOL_SPEC, epochs=1, hidden=8, tree_iter=20, log=None)
    for s in ("2012", "2019"):
        t = r["test"][s]
        assert t["n_patients"] == 3 and {"mean_ratio_model", "mean_ratio_ridge", "mean_ratio_trees"} <= set(t)
        assert len(t["mean_ratio_trees_ci95"]) == 2 and 0 <= t["mean_coverage80"] <= 1
        assert r["data"][s]["split"] == {"train": 9, "val": 2, "test": 3}
    state = torch.load(tmp_path / "out/icu_pool_gru.pt", weights_only=True)
    FeatureQuantileForecaster(12, 5, 7, 6, 8).load_state_dict(state, strict=True)
    md = card_markdown(r, ICU_POOL_SPEC)
    assert md.startswith("# Model card: icu_pool_gru") and "Why one model for both sources" in md
