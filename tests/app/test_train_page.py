"""AppTest of the Train page: a server folder of a small set, the time estimate, a background run to the end,
the results, saving the model folder and finding the model on the Imaging page."""
from __future__ import annotations

import time

import pytest

from tests.conftest import open_page
from tests.support.train_sets import set_files, write_set


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    data = write_set(tmp_path / "sets", set_files(30, root="demo"))
    monkeypatch.setenv("MEDAI_TRAIN_DATA_DIRS", str(data))
    monkeypatch.setenv("MEDAI_MODEL_DIRS", str(tmp_path / "models"))
    yield data / "demo", tmp_path / "models"
    from medai_core.models.user import forget_user_models

    forget_user_models()


def _texts(at) -> str:
    return " ".join(str(e.value) for e in [*at.info, *at.success, *at.warning, *at.error, *at.markdown, *at.caption])


def test_train_page_runs_a_job_and_saves_a_model_the_imaging_page_lists(dirs):
    folder, models = dirs
    at = open_page("train")
    assert "Choose a training set" in _texts(at)
    at.radio(key="train.source").set_value("A folder on this server").run()
    at.text_input(key="train.folder").set_value(str(folder)).run()
    assert "60 image files" in _texts(at) and "Estimated time" in _texts(at)
    at.text_input(key="train.name").set_value("page_model")
    at.select_slider(key="train.size").set_value(128)
    at.slider(key="train.epochs").set_value(8).run()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    deadline = time.time() + 180
    while time.time() < deadline and "Trained in" not in _texts(at):
        time.sleep(0.5)
        at.run()
    assert "Trained in" in _texts(at), _texts(at)[:500]
    assert any(m.label == "Accuracy" for m in at.metric)
    assert float(next(m.value for m in at.metric if m.label == "Accuracy")) >= 0.8
    next(b for b in at.button if b.label.startswith("Save to the model folder")).click().run()
    assert "Saved and registered" in _texts(at) and (models / "page_model" / "medai-model.json").is_file()

    img = open_page("imaging")
    options = img.selectbox(key="imaging.model").options
    assert any(o.startswith("page_model") and "user model" in o for o in options)


def test_train_page_refuses_folders_outside_the_allowed_ones(dirs, tmp_path):
    at = open_page("train")
    at.radio(key="train.source").set_value("A folder on this server").run()
    at.text_input(key="train.folder").set_value(str(tmp_path)).run()
    assert not at.exception
    assert any("not under a folder this server allows" in e.value for e in at.error)
