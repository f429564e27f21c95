"""User model folders with held-out results (heldout.csv: the reliability panel) and OOD reference statistics
(reference.npz: the OOD guard and the automatic model choice), and the user model label in the model picker."""
from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medai_core.errors import ModelError
from medai_core.models import get_spec, load_model
from medai_core.models.backbones import REFERENCE_EXTRACTOR
from medai_core.models.user import (
    NO_OOD,
    ModelCheckError,
    ModelFileError,
    register_folder,
)
from medai_core.models.user_reference import read_reference, write_reference
from medai_core.trust.heldout import HeldOutError, load_heldout, reliability_view
from medai_core.trust.heldout_user import parse_heldout_csv
from tests.conftest import make_png
from tests.models.test_user_models import SIZE, _clean, write_folder  # noqa: F401 - _clean: the autouse fixture

N_REF = 30


def smooth_noise(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """The reference set's kind of image: low-pass noise stretched to [0, 1]."""
    a = gaussian_filter(rng.random((size, size)), 3)
    return (a - a.min()) / (a.max() - a.min())


def unrelated(kind: str, size: int = 64) -> np.ndarray:
    if kind == "checkerboard":
        return (np.indices((size, size)).sum(0) // 8 % 2).astype(float)
    if kind == "constant":
        return np.full((size, size), 0.5)
    return np.random.default_rng(7).random((size, size))  # white noise


# ------------------------------------------------------------------------------------------------------ heldout.csv
def _csv(rows: list[str], header: str = "id,label,normal,abnormal") -> str:
    return "\n".join([header, *rows]) + "\n"


def _good_rows(n: int = 12) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    p = np.round(rng.random(n), 4)
    y = (p + rng.normal(0, 0.3, n) > 0.5).astype(int)
    y[:2] = [0, 1]  # both classes, whatever the draw
    rows = [f"c{i},{'abnormal' if y[i] else 'normal'},{1 - p[i]:.4f},{p[i]:.4f}" for i in range(n)]
    return rows, p, y


def test_heldout_csv_gives_the_reliability_panel_its_cases(tmp_path):
    folder = write_folder(tmp_path / "m", name="tiny_ho", threshold=0.4)
    rows, p, y = _good_rows()
    bad = ["x1,cat,0.5,0.5", "x2,normal,abc,0.2", "x3,abnormal,0.1,1.5", "x4,normal,,0.3"]
    (folder / "heldout.csv").write_text(_csv(rows[:5] + bad + rows[5:]))
    name = register_folder(folder)
    ho = load_heldout(name)
    assert ho.kind == "classifier" and ho.n == len(rows) and ho.labels == ("normal", "abnormal")
    np.testing.assert_allclose(ho.probs, p)
    np.testing.assert_array_equal(ho.outcomes, y == 1)
    np.testing.assert_array_equal(ho.y, y)
    assert ho.class_probs.shape == (len(rows), 2)
    assert ho.threshold == 0.4 and ho.threshold_source == "the model folder's medai-model.json"
    assert ho.positive_label == "abnormal"
    assert ho.weights_sha256 == hashlib.sha256((folder / "model.pt").read_bytes()).hexdigest()
    assert ho.meta["set_aside"] == 4 and ho.meta["rows"] == len(rows) + 4
    assert "heldout.csv" in ho.meta["source"] and "4 of 16 rows set aside" in ho.meta["note"]
    aside = " | ".join(ho.meta["set_aside_rows"])
    for words in ("row 7: label 'cat' is not one of normal, abnormal",
                  "row 8: column 'normal' value 'abc' is not a number",
                  "row 9: column 'abnormal' value '1.5' is outside [0, 1]", "row 10: column 'normal' is empty"):
        assert words in aside
    v = reliability_view(ho)
    assert v.default_threshold == 0.4 and v.what == "abnormal"
    np.testing.assert_array_equal(reliability_view(ho, "normal").outcomes, y == 0)


@pytest.mark.parametrize("text, words", [
    (_csv(_good_rows()[0], "id,truth,normal,abnormal"), "no column 'label'"),
    (_csv(_good_rows()[0], "id,label,normal,tumour"), "no column 'abnormal'"),
    (_csv(_good_rows(9)[0]), "9 usable row(s) of 9; the reliability panel needs at least 10"),
    (_csv(_good_rows(10)[0][:5] + ["x,dog,0.5,0.5"] * 10), "5 usable row(s) of 15"),
    (_csv([f"c{i},normal,0.8,0.2" for i in range(12)]), "every usable row has the label 'normal'"),
    ("", "heldout.csv is empty"),
])
def test_unusable_heldout_csv_is_a_clear_error(tmp_path, text, words):
    folder = write_folder(tmp_path / "m", name="tiny_bad_ho")
    (folder / "heldout.csv").write_text(text)
    name = register_folder(folder)
    with pytest.raises(HeldOutError) as err:
        load_heldout(name)
    assert words in str(err.value) and "tiny_bad_ho" in str(err.value)


def test_no_heldout_csv_says_no_held_out_data_supplied(tmp_path):
    name = register_folder(write_folder(tmp_path / "m", name="tiny_no_ho"))
    with pytest.raises(HeldOutError, match="No held-out data supplied"):
        load_heldout(name)


def test_parse_heldout_csv_is_pure():
    t = parse_heldout_csv(b"\xef\xbb\xbflabel, b ,a\n" + b"a,0.1,0.9\n\nb,0.8,0.2\n" * 5 + b"a,0.1\nb,1,0,9\n",
                          ["a", "b"])
    assert t.n_rows == 12 and t.class_probs.shape == (11, 2)
    assert t.set_aside == ("row 17: column 'a' is empty",)  # an extra field (row 18) is ignored like other columns
    np.testing.assert_allclose(t.class_probs[0], [0.9, 0.1])  # columns in the manifest's label order
    np.testing.assert_array_equal(t.y[:2], [0, 1])
    np.testing.assert_allclose(t.class_probs[-1], [0.0, 1.0])


# ---------------------------------------------------------------------------------------------------- reference.npz
@pytest.fixture(scope="module")
def ref_folder(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    folder = write_folder(tmp_path_factory.mktemp("ref") / "m", name="tiny_ref")
    summary = write_reference(folder, [smooth_noise(rng) for _ in range(N_REF)])
    assert summary["n"] == N_REF and summary["n_fit"] == 24 and summary["n_calibrate"] == 6
    assert summary["k"] == 23 and summary["threshold"] > 0 and Path(summary["file"]).name == "reference.npz"
    return folder


@pytest.fixture(scope="module")
def pngs(tmp_path_factory) -> dict[str, list[Path]]:
    root, rng = tmp_path_factory.mktemp("scans"), np.random.default_rng(123)

    def save(name: str, a: np.ndarray) -> Path:
        p = root / f"{name}.png"
        p.write_bytes(make_png(np.round(a * 255).astype(np.uint8)))
        return p

    return {"like": [save(f"like{i}", smooth_noise(rng)) for i in range(10)],
            "unrelated": [save(k, unrelated(k)) for k in ("checkerboard", "constant", "white")]}


def test_reference_statistics_flag_unrelated_images(ref_folder, pngs):
    from medai_core.workspaces.imaging import load_scan, predict, prepare_input

    name = register_folder(ref_folder)
    spec, model = get_spec(name), load_model(name)
    assert spec.extra["ood"].startswith("reference statistics supplied: reference.npz")
    assert model.ood_threshold == pytest.approx(float(np.load(ref_folder / "reference.npz")["threshold"]))
    preds = {k: [predict(model, spec, prepare_input(load_scan(p), spec)) for p in ps] for k, ps in pngs.items()}
    like = [p.ood_score / p.ood_threshold for p in preds["like"]]
    # the threshold is the 99% quantile of 6 held-out reference images: most new images like them pass
    far = [p.ood_score / p.ood_threshold for p in preds["unrelated"]]
    assert sum(d <= 1 for d in like) >= 7 and np.median(like) < 0.9, like
    assert all(p.ood for p in preds["unrelated"]) and min(far) > max(max(like), 1.2), (like, far)
    clone = copy.deepcopy(model)  # explainers work on copies: the guard comes along
    x = prepare_input(load_scan(pngs["unrelated"][0]), spec)
    assert clone.ood_threshold == model.ood_threshold
    score = float(clone.ood_score(clone.forward_with_features(x)[1]))
    assert score == pytest.approx(preds["unrelated"][0].ood_score, rel=1e-5)


def test_the_router_weighs_the_user_model_beside_the_shipped_ones(ref_folder, pngs):
    from medai_core.workspaces.imaging import load_scan
    from medai_core.workspaces.imaging.routing import route_scan, routed_models

    name = register_folder(ref_folder)
    assert get_spec(name).extra["routing"] == {"modalities": (), "body_parts": ()}
    assert name in routed_models() and {"cxr_pneumonia", "busi_effnet"} <= set(routed_models())
    routes = [route_scan(load_scan(p), load_model) for p in pngs["like"][:4]]
    accepted = [r for r in routes if not r.prediction.ood]
    assert len(accepted) >= 2 and all(r.model == name for r in accepted)
    assert "(tiny_ref), because the scan looks like its training images" in accepted[0].reason
    r = route_scan(load_scan(pngs["unrelated"][0]), load_model)
    assert r.prediction.ood and all(c.prediction.ood for c in r.candidates)
    assert "No image model recognises this scan" in r.reason


def test_a_folder_without_reference_statistics_is_not_routed(tmp_path):
    from medai_core.workspaces.imaging.routing import routed_models

    name = register_folder(write_folder(tmp_path / "m", name="tiny_plain"))
    assert get_spec(name).extra["ood"] == NO_OOD and "routing" not in get_spec(name).extra
    assert name not in routed_models() and load_model(name).ood_threshold == float("inf")


def _good_ref(ref_folder: Path) -> dict[str, np.ndarray]:
    with np.load(ref_folder / "reference.npz") as z:
        return {k: z[k] for k in z.files}


def _write(folder: Path, ref: dict, **over) -> None:
    np.savez(folder / "reference.npz", **{k: v for k, v in {**ref, **over}.items() if v is not None})


@pytest.mark.parametrize("over, kind, words", [
    ({"extractor": np.array("resnet50_gap")}, ModelCheckError, "extractor is 'resnet50_gap'"),
    ({"center": np.zeros(512, np.float32)}, ModelCheckError, "center has shape (512,); it must be (1280,)"),
    ({"components": np.zeros((4, 100), np.float32)}, ModelCheckError, "components has shape (4, 100)"),
    ({"precision": np.eye(3, dtype=np.float32)}, ModelCheckError, "precision has shape (3, 3); it must be (23, 23)"),
    ({"center": np.full(1280, np.nan, np.float32)}, ModelCheckError, "center holds non-finite values"),
    ({"threshold": np.array(0.0)}, ModelCheckError, "threshold must be positive"),
    ({"threshold": np.array(np.inf)}, ModelCheckError, "threshold holds non-finite values"),
    ({"threshold": None}, ModelCheckError, "missing array(s) 'threshold'"),
    ({"center": np.array([None] * 1280, dtype=object)}, ModelFileError, "could not be read as reference statistics"),
])
def test_bad_reference_statistics_are_clear_errors(ref_folder, tmp_path, over, kind, words):
    folder = write_folder(tmp_path / "m", name="tiny_bad_ref")
    _write(folder, _good_ref(ref_folder), **over)
    assert "routing" in get_spec(register_folder(folder)).extra  # found at registration, checked when loaded
    with pytest.raises(kind) as err:
        load_model("tiny_bad_ref")
    assert words in str(err.value) and isinstance(err.value, ModelError)


@pytest.mark.parametrize("content", [b"", b"not a zip archive at all", b"PK\x03\x04truncated"])
def test_unreadable_reference_files_are_file_errors(tmp_path, content):
    path = tmp_path / "reference.npz"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="could not be read as reference statistics"):
        read_reference(path)


def test_pickled_or_single_array_reference_files_are_refused(tmp_path):
    import pickle

    path = tmp_path / "reference.npz"
    path.write_bytes(pickle.dumps({"extractor": REFERENCE_EXTRACTOR}))
    with pytest.raises(ModelFileError, match="never unpickles"):
        read_reference(path)
    with path.open("wb") as f:
        np.save(f, np.zeros(1280))
    with pytest.raises(ModelFileError, match="single .npy array"):
        read_reference(path)


def test_write_reference_checks_its_images(tmp_path):
    from medai_core.errors import InputError

    folder = write_folder(tmp_path / "m", name="tiny_w")
    with pytest.raises(InputError, match="at least 4 images"):
        write_reference(folder, [np.zeros((8, 8))] * 3)
    with pytest.raises(InputError, match="image 2 has shape"):
        write_reference(folder, [np.zeros((8, 8)), np.zeros((3, 8, 8)), np.zeros((8, 8)), np.zeros((8, 8))])
    with pytest.raises(InputError, match="values in \\[0, 1\\]"):
        write_reference(folder, [np.full((8, 8), 2.0)] * 4)
    rng = np.random.default_rng(3)
    s = write_reference(folder, [torch.from_numpy(smooth_noise(rng, 40)) for _ in range(5)])  # < 20: no hold-out
    assert s["n_fit"] == 5 and s["n_calibrate"] == 0 and s["k"] == 4
    assert read_reference(folder / "reference.npz")["components"].shape == (4, 1280)
    assert s["threshold"] > 0 and SIZE == get_spec(register_folder(folder)).input_size[0]


# ---------------------------------------------------------------------------------------------------- the pages
def test_the_picker_labels_user_models_and_the_panel_reads_heldout_csv(ref_folder, tmp_path, monkeypatch):
    from medai_core.models import register_user_models
    from tests.conftest import open_page

    folder = write_folder(tmp_path / "m", "exported_program", name="tiny_page")
    (folder / "heldout.csv").write_text(_csv(_good_rows()[0] + ["x,cat,0.5,0.5"]))
    monkeypatch.setenv("MEDAI_MODEL_DIRS", os.pathsep.join([str(folder), str(ref_folder)]))
    register_user_models()
    at = open_page("imaging")
    box = at.selectbox(key="imaging.model")
    assert any(o.startswith("tiny_page: user model — tiny_page v1") for o in box.options), box.options
    assert any(o.startswith("busi_cnn: ") and "user model" not in o for o in box.options)
    box.set_value("tiny_page").run()
    at.radio(key="imaging.source").set_value("Demo scan").run()
    assert not at.exception
    assert not any("No held-out" in w.value for w in at.warning)
    assert any(m.label == "Sensitivity" for m in at.metric)
