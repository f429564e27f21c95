"""Training in the app (workspaces.training): reading sets, the split, training to the expected accuracy, the
exported folder working as a user model (predict, every explainer, sanity check, reliability), jobs, the CLI."""
from __future__ import annotations

import io
import json
import threading
import time
import zipfile

import numpy as np
import pytest
import torch

from medai_core.errors import Cancelled, InputError
from medai_core.workspaces import training as T
from tests.support.train_sets import png, set_files, write_set, zip_set

FAST = {"size": 128, "epochs": 12, "augment": "flip"}


# ------------------------------------------------------------------------------------------------------------ data
def test_zip_set_reads_classes_and_sets_aside_what_it_cannot_use():
    files = set_files(10)
    files["set/disc/broken.png"] = b"\x89PNG\r\n\x1a\n truncated"
    files["set/loose.png"] = png(np.zeros((20, 20), np.uint8))  # not in a class folder
    files["__MACOSX/set/disc/._000.png"] = b"junk"
    files["set/.DS_Store"] = b"junk"
    files["set/notes.txt"] = b"not an image"
    data = T.load_image_set(zip_set(files), 128)
    assert data.labels == ("disc", "stripes") and data.counts() == {"disc": 10, "stripes": 10}
    assert data.images.shape == (20, 128, 128) and data.images.dtype == np.uint8
    aside = {a.path: a.reason for a in data.set_aside}
    assert set(aside) == {"disc/broken.png", "loose.png"}
    assert "class folder" in aside["loose.png"]
    assert any("skipped" in n for n in data.notes)


@pytest.mark.parametrize("payload, words", [
    (b"PK\x03\x04 not really a zip", "not a readable ZIP"),
    (zip_set({"set/disc/a.txt": b"x"}), "No image files"),
    (zip_set({k: v for k, v in set_files(10).items() if "/disc/" in k}), "at least two classes"),
    (zip_set(set_files(5)), "at least 8 readable images"),
])
def test_bad_sets_get_clear_errors(payload, words):
    with pytest.raises(InputError, match=words):
        T.load_image_set(payload, 128)


def test_manifest_groups_stay_on_one_side_of_the_split(tmp_path):
    files = set_files(24)
    rows = ["path,group"] + [f"{name.split('/', 1)[1]},patient{i // 3}" for i, name in enumerate(sorted(files))]
    write_set(tmp_path, files)
    (tmp_path / "set" / "manifest.csv").write_text("\n".join(rows) + "\n")
    data = T.load_image_set(str(tmp_path), 128)
    assert len(set(data.groups)) == 16 and any("manifest" in n for n in data.notes)
    split = T.split_set(data.y, data.groups, seed=0)
    sides = [set(data.groups[idx]) for idx in split.values()]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert sum(len(i) for i in split.values()) == 48
    for idx in split.values():
        assert set(data.y[idx]) == {0, 1}


def test_manifest_without_group_column_is_refused(tmp_path):
    write_set(tmp_path, set_files(10))
    (tmp_path / "set" / "manifest.csv").write_text("path,patient\ndisc/000.png,p1\n")
    with pytest.raises(InputError, match="path and group"):
        T.load_image_set(str(tmp_path), 128)


def test_server_folders_only_under_the_allowed_roots(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDAI_TRAIN_DATA_DIRS", raising=False)
    with pytest.raises(InputError, match="off"):
        T.allowed_folder(str(tmp_path))
    (tmp_path / "ok").mkdir()
    monkeypatch.setenv("MEDAI_TRAIN_DATA_DIRS", str(tmp_path / "ok"))
    assert T.allowed_folder(str(tmp_path / "ok")) == (tmp_path / "ok").resolve()
    with pytest.raises(InputError, match="not under"):
        T.allowed_folder(str(tmp_path / "ok" / ".." / ".."))


def test_models_home_is_found_by_discovery_when_no_folders_are_set(tmp_path, monkeypatch):
    from medai_core.models.user import model_folders

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MEDAI_MODEL_DIRS", raising=False)
    assert T.models_home() == tmp_path / ".medai" / "models" and model_folders()[0] == []
    (T.models_home() / "m").mkdir(parents=True)
    (T.models_home() / "m" / "medai-model.json").write_text("{}")
    assert model_folders()[0] == [T.models_home() / "m"]
    monkeypatch.setenv("MEDAI_MODEL_DIRS", str(tmp_path / "elsewhere"))
    assert T.models_home() == tmp_path / "elsewhere"


def test_settings_are_checked():
    for bad in ({"name": "a b"}, {"optimizer": "lbfgs"}, {"lr": 0.0}, {"size": 100}, {"backbone": "resnet"},
                {"fine_tune": 5}, {"epochs": 0}):
        with pytest.raises(InputError):
            T.TrainSettings(**bad).check()


# ------------------------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def trained():
    events: list[T.Event] = []
    r = T.train_user_model(zip_set(set_files(40)), T.TrainSettings(name="tiny_trained", **FAST), emit=events.append)
    return r, events


def test_training_reaches_the_expected_accuracy_and_reports_progress(trained):
    r, events = trained
    assert r.evaluation.accuracy >= 0.9 and r.evaluation.auroc >= 0.95
    assert r.best_epoch == min(r.history, key=lambda h: h["val_loss"])["epoch"]
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    phases = [e.phase for e in events]
    assert phases.index("read") < phases.index("features") < phases.index("train") < phases.index("export")
    assert [e.epoch["epoch"] for e in events if e.epoch] == list(range(1, 13))
    assert r.evaluation.confusion.sum() == len(r.evaluation.y) == sum(r.split_counts["test"].values())
    assert set(r.evaluation.per_class.columns) >= {"precision", "recall", "F1"}


def test_the_folder_is_a_user_model_that_predicts_explains_and_passes_the_sanity_check(trained, tmp_path):
    from medai_core.models import get_spec, load_model
    from medai_core.models.user import forget_user_models
    from medai_core.trust.heldout import load_heldout
    from medai_core.workspaces import imaging as W
    from tests.support.train_sets import image

    r, _ = trained
    folder = T.save_folder(r.files, tmp_path / "tiny_trained")
    man = json.loads((folder / "medai-model.json").read_text())
    assert man["format"] == "exported_program" and man["gradcam_layer"] == "head"
    assert (folder / "README.md").read_text().startswith("# tiny_trained")
    try:
        name = T.register_trained(str(folder))
        spec, model = get_spec(name), load_model(name)
        assert "gradcam" in W.explainers_for(spec)
        rng = np.random.default_rng(7)
        for kind in ("disc", "stripes"):
            x = torch.from_numpy(image(kind, rng).astype(np.float32) / 255)[None, None]
            x = torch.nn.functional.interpolate(x, size=(128, 128), mode="bilinear")
            pred = W.predict(model, spec, x)
            assert pred.label == kind
        for method in W.explainers_for(spec):
            exp = W.explain(model, spec, x, method, "stripes")
            assert np.isfinite(np.asarray(exp.attributions)).all()
        ho = load_heldout(name)
        assert ho.n == len(r.evaluation.y)
        with pytest.raises(InputError):
            T.save_folder(r.files, folder)  # no silent overwrite
    finally:
        forget_user_models()


def test_sanity_check_on_the_trained_model(trained, tmp_path):
    from medai_core.models import get_spec, load_model
    from medai_core.models.user import forget_user_models
    from medai_core.workspaces import imaging as W
    from tests.support.train_sets import image

    r, _ = trained
    folder = T.save_folder(r.files, tmp_path / "tiny_trained")
    try:
        name = T.register_trained(str(folder))
        spec, model = get_spec(name), load_model(name)
        x = torch.from_numpy(image("disc", np.random.default_rng(3), 128).astype(np.float32) / 255)[None, None]
        check = W.sanity_check_image(model, spec, x, "gradcam", "disc")
        assert len(check.stages) >= 5 and check.verdict
        assert check.abs_rank_correlation < 0.9  # randomising the weights changes the map
    finally:
        forget_user_models()


def test_fine_tuning_trains_the_last_stage(tmp_path):
    r = T.train_user_model(zip_set(set_files(12)), T.TrainSettings(name="ft", fine_tune=1, size=128, epochs=2,
                                                                   augment="none", optimizer="momentum", lr=0.01))
    assert len(r.history) == 2 and r.files["model.pt2"]
    plan = T.estimate_seconds(T.TrainSettings(fine_tune=1, size=128), 1000)
    assert plan["train"] > T.estimate_seconds(T.TrainSettings(fine_tune=0, size=128), 1000)["train"]


def test_cancel_stops_at_the_next_batch():
    stop = threading.Event()

    def emit(e):
        if e.phase == "train":
            stop.set()
    with pytest.raises(Cancelled):
        T.train_user_model(zip_set(set_files(10)), T.TrainSettings(size=128, epochs=50), emit=emit,
                           cancel=stop.is_set)


def test_queue_runs_one_job_at_a_time_in_order():
    q = T.TrainingQueue()
    data = zip_set(set_files(10))
    first = q.submit(data, T.TrainSettings(name="a", size=128, epochs=3))
    second = q.submit(data, T.TrainSettings(name="b", size=128, epochs=3))
    third = q.submit(data, T.TrainSettings(name="c", size=128, epochs=3))
    third.cancel()
    deadline = time.time() + 120
    saw_waiting = False
    while time.time() < deadline and not q.status(second.id).finished:
        s1, s2 = q.status(first.id), q.status(second.id)
        if s2.state == "queued" and s1.state == "running":
            saw_waiting = saw_waiting or s2.ahead == 1
        time.sleep(0.05)
    assert saw_waiting
    assert q.status(first.id).state == "done" and q.status(second.id).state == "done"
    deadline = time.time() + 30
    while time.time() < deadline and not q.status(third.id).finished:
        time.sleep(0.05)
    assert q.status(third.id).state == "cancelled"
    assert first.source is None  # the upload's bytes are dropped when the job ends


def test_bad_upload_fails_the_job_with_the_message():
    q = T.TrainingQueue()
    job = q.submit(b"not a zip", T.TrainSettings(size=128))
    deadline = time.time() + 30
    while time.time() < deadline and not q.status(job.id).finished:
        time.sleep(0.05)
    s = q.status(job.id)
    assert s.state == "failed" and "ZIP" in s.error


def test_zip_download_holds_the_folder(trained):
    r, _ = trained
    zf = zipfile.ZipFile(io.BytesIO(T.zip_folder(r.files, "tiny_trained")))
    assert sorted(zf.namelist()) == sorted(f"tiny_trained/{f}" for f in r.files)


# ------------------------------------------------------------------------------------------------------------ CLI
def test_cli_train_user_writes_a_folder_the_cli_predicts_with(tmp_path, capsys):
    from medai_core.__main__ import main
    from medai_core.models.user import forget_user_models

    write_set(tmp_path / "data", set_files(12, root="."))
    out = tmp_path / "model"
    assert main(["image", "train-user", str(tmp_path / "data"), "--out", str(out), "--size", "128", "--epochs",
                 "5", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["name"] == "model" and summary["labels"] == ["disc", "stripes"] and summary["images"] == 24
    assert set(summary["seconds"]) >= {"read", "features", "train", "export", "total"}
    try:
        assert main(["image", "predict", "--model-dir", str(out), str(tmp_path / "data" / "disc" / "000.png")]) == 0
        line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert line["model"] == "model" and line["label"] == "disc"
    finally:
        forget_user_models()
    assert main(["image", "train-user", str(tmp_path / "data"), "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
