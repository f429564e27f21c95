"""Bring your own model: folders with medai-model.json, as TorchScript and as torch.export programs."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from medai_core.errors import InputError, ModelError
from medai_core.models import MODELS, get_spec, load_model, user_model_problems
from medai_core.models.user import (ManifestError, ModelCheckError, ModelFileError, forget_user_models,
                                    register_folder, register_user_models)
from tests.conftest import make_png, speckle_image

SIZE = 32


class TinyCNN(nn.Module):
    def __init__(self, channels: int = 1, k: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.Conv2d(4, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


class LogModel(TinyCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # log(0) = -inf on the probe
        return self.fc(self.pool(self.features(x)).flatten(1)) + torch.log(x.mean((1, 2, 3)))[:, None]


def _manifest(**over) -> dict:
    m = {"name": "tiny", "version": "1", "modality": "image", "labels": ["normal", "abnormal"],
         "positive_label": "abnormal", "format": "torchscript", "file": "model.pt",
         "input": {"channels": 1, "size": [SIZE, SIZE], "mean": [0.5], "std": [0.25], "resize": "stretch"},
         "gradcam_layer": "features.3", "threshold": 0.5, "temperature": 1.0, "intended_use": "tests only",
         "card": "README.md"}
    m.update(over)
    return {k: v for k, v in m.items() if v is not None}


def write_folder(folder: Path, fmt: str = "torchscript", model: nn.Module | None = None, batch_dynamic: bool = True,
                 **over) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = (model or TinyCNN()).eval()
    if fmt == "torchscript":
        file = "model.pt"
        torch.jit.save(torch.jit.script(model), str(folder / file))
    else:
        file = "model.pt2"
        x = torch.rand(2 if batch_dynamic else 1, 1, SIZE, SIZE)
        dyn = {"x": {0: torch.export.Dim("batch", min=1, max=4096)}} if batch_dynamic else None
        torch.export.save(torch.export.export(model, (x,), dynamic_shapes=dyn), str(folder / file))
    (folder / "README.md").write_text("# tiny\nA test model.\n")
    (folder / "medai-model.json").write_text(json.dumps(_manifest(**{"format": fmt, "file": file, **over})))
    return folder


@pytest.fixture(autouse=True)
def _clean():
    torch.set_num_threads(1)
    forget_user_models()
    yield
    forget_user_models()


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("scan") / "scan.png"
    p.write_bytes(make_png(speckle_image(1, 64)))
    return p


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"torchscript": write_folder(root / "ts", "torchscript", name="tiny_ts"),
            "exported_program": write_folder(root / "ep", "exported_program", name="tiny_ep")}


@pytest.mark.parametrize("fmt", ["torchscript", "exported_program"])
def test_user_model_predicts_explains_and_passes_the_sanity_check(folders, png, fmt):
    from medai_core.workspaces.imaging import explain, load_scan, predict, prepare_input, sanity_check_image
    from medai_core.workspaces.imaging.pipeline import explainers_for

    name = register_folder(folders[fmt])
    spec, model = get_spec(name), load_model(name)
    assert spec.extra["user_model"] and name in MODELS.names(modality="image")
    x = prepare_input(load_scan(png), spec)
    assert x.shape == (1, 1, SIZE, SIZE)
    pred = predict(model, spec, x)
    assert pred.model == name and set(pred.probabilities) == {"normal", "abnormal"}
    assert abs(sum(pred.probabilities.values()) - 1) < 1e-6
    assert pred.ood is False and pred.ood_score == 0 and pred.ood_threshold == float("inf")
    # the wrapper normalises as declared: same logits as the raw network on (x - mean) / std
    raw = model.net((x - 0.5) / 0.25)
    assert torch.allclose(model(x), raw, atol=1e-5)
    ig = explain(model, spec, x, "integrated_gradients", "abnormal", n_steps=16, max_steps=16)
    occ = explain(model, spec, x, "occlusion", "abnormal", window=8, stride=8)
    sg = explain(model, spec, x, "smoothgrad", "abnormal", nt_samples=4)
    for exp in (ig, occ, sg):
        assert exp.attributions.shape == (SIZE, SIZE) and np.isfinite(exp.attributions).all()
    if fmt == "exported_program":
        assert "gradcam" in explainers_for(spec)
        cam = explain(model, spec, x, "gradcam", "abnormal")
        assert cam.attributions.shape == (SIZE, SIZE) and np.ptp(cam.attributions) > 0
    else:
        assert "gradcam" not in explainers_for(spec)
        with pytest.raises(InputError, match="TorchScript modules cannot be hooked"):
            explain(model, spec, x, "gradcam", "abnormal")
    res = sanity_check_image(model, spec, x, "integrated_gradients", "abnormal", n_steps=16, max_steps=16)
    assert [s.group for s in res.stages] == ["fc", "features"]  # output layer first
    assert res.verdict in {"passes", "weak", "fails"} and np.isfinite(res.rank_correlation)
    assert not np.allclose(res.stages[-1].attributions, res.trained)
    assert torch.allclose(model(x), raw, atol=1e-5)  # the shared model is never touched


def test_three_channel_models_take_grayscale_repeated(tmp_path):
    folder = write_folder(tmp_path / "rgb", model=TinyCNN(channels=3), name="tiny_rgb",
                          input={"channels": 3, "size": [SIZE, SIZE], "mean": [0.4, 0.5, 0.6], "std": [0.2] * 3})
    model = load_model(register_folder(folder))
    assert model(torch.rand(2, 1, SIZE, SIZE)).shape == (2, 2)


def test_discovery_registers_folders_and_skips_broken_ones(tmp_path, monkeypatch):
    root = tmp_path / "zoo"
    write_folder(root / "good", name="tiny_good")
    (root / "broken").mkdir(parents=True)
    (root / "broken" / "medai-model.json").write_text("{not json")
    write_folder(root / "clash", name="busi_cnn")
    single = write_folder(tmp_path / "single", name="tiny_single")
    monkeypatch.setenv("MEDAI_MODEL_DIRS", os.pathsep.join([str(root), str(single), str(tmp_path / "nowhere")]))
    names = register_user_models()
    assert sorted(names) == ["tiny_good", "tiny_single"]
    assert {"tiny_good", "tiny_single"} <= set(MODELS.names(modality="image"))
    problems = {Path(p.folder).name: p.error for p in user_model_problems()}
    assert "not valid JSON" in problems["broken"]
    assert "already used by a shipped model" in problems["clash"]
    assert "not a folder" in problems["nowhere"]
    assert get_spec("busi_cnn").extra.get("user_model") is None  # the shipped model is untouched
    assert register_user_models() == names  # a re-scan is idempotent


@pytest.mark.parametrize("over, kind, words", [
    ({"colour": "red"}, ManifestError, "unknown field(s) 'colour'; allowed: name, version"),
    ({"labels": None}, ManifestError, "missing required field(s) 'labels'"),
    ({"labels": "normal"}, ManifestError, "'labels' must be a non-empty list of texts"),
    ({"threshold": "high"}, ManifestError, "'threshold' must be a finite number"),
    ({"positive_label": "tumour"}, ManifestError, "positive_label 'tumour' is not one of the labels"),
    ({"format": "onnx"}, ManifestError, "format 'onnx' is not one of torchscript, exported_program"),
    ({"modality": "records"}, ManifestError, "not supported yet"),
    ({"input": {"channels": 1, "size": [SIZE], "mean": [0.5], "std": [0.25]}}, ManifestError, "input.size"),
    ({"input": {"channels": 1, "size": [SIZE, SIZE], "mean": [0.5], "std": [0.25], "resize": "crop"}},
     ManifestError, "input.resize 'crop'"),
    ({"labels": ["a", "b", "c"], "positive_label": "a"}, ModelCheckError, "returns 2 scores per image but labels lists 3"),
    ({"gradcam_layer": "features.9"}, ModelCheckError, "gradcam_layer 'features.9' is not a layer of the model; some "
                                                       "that are: features, features.0"),
])
def test_validation_errors_are_clear(tmp_path, over, kind, words):
    folder = write_folder(tmp_path / "m", **over)
    with pytest.raises(kind) as err:
        register_folder(folder, load=True)
    assert words in str(err.value) and isinstance(err.value, ModelError)
    assert "tiny" not in MODELS


def test_missing_things_and_bad_models(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        register_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no medai-model.json"):
        register_folder(tmp_path / "empty")
    folder = write_folder(tmp_path / "a")
    (folder / "medai-model.json").write_text("[1, 2")
    with pytest.raises(ManifestError, match="not valid JSON"):
        register_folder(folder)
    folder = write_folder(tmp_path / "b")
    (folder / "model.pt").unlink()
    with pytest.raises(ModelFileError, match="model file 'model.pt' not found"):
        register_folder(folder)
    folder = write_folder(tmp_path / "c")
    torch.save(TinyCNN().state_dict(), folder / "model.pt")  # a pickle, not TorchScript: refused
    with pytest.raises(ModelFileError, match="could not be read as torchscript"):
        register_folder(folder, load=True)
    with pytest.raises(ModelCheckError, match="non-finite"):
        register_folder(write_folder(tmp_path / "d", model=LogModel()), load=True)


def test_exported_program_needs_a_dynamic_batch(tmp_path):
    folder = write_folder(tmp_path / "m", "exported_program", batch_dynamic=False)
    with pytest.raises(ModelCheckError, match="probe input of shape"):
        register_folder(folder, load=True)


def test_cli_model_dir(folders, png, capsys):
    from medai_core.__main__ import main

    assert main(["image", "predict", str(png), "--model-dir", str(folders["torchscript"])]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["model"] == "tiny_ts" and set(line["probabilities"]) == {"normal", "abnormal"}
    assert main(["image", "predict", str(png), "--model-dir", str(folders["torchscript"].parent / "none")]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_user_model_on_the_home_and_imaging_pages(folders, monkeypatch):
    """Listed on the home page as a user model (no test-split numbers of ours), chosen on the Imaging page for a
    demo scan: a prediction, and the reliability panel says there is no held-out data, without an exception."""
    from medai_core.models import register_user_models
    from tests.conftest import open_page

    monkeypatch.setenv("MEDAI_MODEL_DIRS", str(folders["exported_program"]))
    register_user_models()
    at = open_page("home")
    assert "user model" in [m.value for m in at.metric]
    at = open_page("imaging")
    at.selectbox(key="imaging.model").set_value("tiny_ep").run()
    at.radio(key="imaging.source").set_value("Demo scan").run()
    assert not at.exception
    assert any("No held-out data supplied" in w.value for w in at.warning)
