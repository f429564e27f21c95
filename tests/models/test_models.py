"""Registries, the shipped weights, and calibrated predictions with the OOD guard."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medai_core.errors import ModelError, UnknownName
from medai_core.explain import EXPLAINERS
from medai_core.workspaces.imaging.pipeline import decide, predict, prepare_input
from medai_core.io import load_scan
from medai_core.models import MODELS, create_model, get_spec, load_model, read_card
from medai_core.registry import Registry
from tests.conftest import make_png, pydicom_file, speckle_image


def test_registry_suggests_close_names():
    with pytest.raises(UnknownName, match="Did you mean 'busi_cnn'"):
        get_spec("busi_cn")
    with pytest.raises(UnknownName, match="gradcam"):
        EXPLAINERS.get("gradcamm")
    r: Registry[int] = Registry("thing")
    r.register("a", kind="x")(1)
    with pytest.raises(ValueError):
        r.register("a")(2)
    assert r.names(kind="x") == ["a"] and r.names(kind="y") == []


def _example_input(spec):
    """Two random inputs of the kind the model takes (by modality)."""
    if spec.modality == "image":
        return torch.rand(2, spec.in_channels, *spec.input_size)
    if spec.modality == "tabular":
        from medai_core.io.records import validate_records
        from medai_core.models.support_ftt import encode_records
        from medai_core.workspaces.records.samples import synthetic_records

        return encode_records(validate_records(synthetic_records(2)).frame)
    if spec.modality == "text":
        ids = torch.randint(4, 500, (2, 40))
        ids[:, 0] = 2  # <cls>
        ids[1, 30:] = 0  # padding
        return ids
    if spec.modality == "series":
        s = len(spec.extra["series"].signals)
        x = torch.randn(2, spec.extra["history"], s)
        pad = torch.zeros(2, spec.extra["history"], dtype=torch.bool)
        pad[1, :10] = True
        stat = create_model(spec.name).static
        n_static = stat.in_features if stat is not None else 0
        return x, torch.ones_like(x), pad, torch.rand(2, n_static)
    if spec.modality == "sepsis":  # (N, hours, features): values, masks, gaps, counts, demographics
        from medai_core.models.sepsis import N_FEATURES

        return torch.randn(2, 30, N_FEATURES)
    raise AssertionError(f"no example input for {spec.modality}")


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_forward(name):
    spec = get_spec(name)
    model = create_model(name).eval()
    x = _example_input(spec)
    with torch.no_grad():
        out = model(*x) if isinstance(x, tuple) else model(x)
    if spec.modality == "series":  # (N, horizon, targets, quantiles)
        assert out.shape == (2, spec.extra["horizon"], spec.extra["n_targets"], 3) and torch.isfinite(out).all()
        return
    if spec.modality == "sepsis":  # one risk logit per hour
        assert out.shape == (2, 30) and torch.isfinite(out).all()
        return
    n_out = 1 if spec.modality == "tabular" else len(spec.labels)  # binary models return one logit
    assert out.reshape(2, -1).shape == (2, n_out) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_every_shipped_model_loads_with_checked_weights(name):
    model = load_model(name)
    assert not model.training
    card = read_card(name)
    assert card["weights_sha256"] and card["test"]["n"] > 0


def test_shipped_weights_match_card(busi):
    model, spec = busi
    card = read_card(spec.name)
    assert card["labels"] == list(spec.labels)
    assert card["test"]["malignant_auroc"] >= 0.85
    assert not model.training


def test_missing_or_tampered_weights_raise(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAI_ASSETS_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="not found"):
        load_model("busi_cnn")
    from medai_core.models.spec import assets_dir

    real = assets_dir.__globals__["ASSETS_DIR"]
    (tmp_path / "busi_cnn.json").write_text((real / "busi_cnn.json").read_text())
    (tmp_path / "busi_cnn.pt").write_bytes(b"not weights")
    with pytest.raises(ModelError, match="sha256"):
        load_model("busi_cnn")


def test_prediction_is_calibrated_distribution(busi):
    model, spec = busi
    pred = predict(model, spec, prepare_input(load_scan(make_png(speckle_image())), spec))
    assert set(pred.probabilities) == set(spec.labels)
    assert sum(pred.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert pred.label in spec.labels and np.isfinite(pred.ood_score)


@pytest.mark.parametrize("name", ["busi_effnet", "cxr_pneumonia", "busi_cnn"])
def test_prediction_runs_on_the_folded_copy_with_the_models_own_answer(name):
    """predict() runs the process's BatchNorm-folded inference copy: the model's own calibrated probabilities and
    OOD score up to rounding, and for attention-pooling models the attention explainer's map from the same pass."""
    from medai_core.workspaces.imaging import attention_map, explain

    model, spec = load_model(name), get_spec(name)
    x = prepare_input(load_scan(make_png(speckle_image(4))), spec)
    pred = predict(model, spec, x)
    with torch.inference_mode():
        logits, feats = model.forward_with_features(x)
        probs = torch.softmax(logits / model.temperature, 1)[0].numpy()
        score = float(model.ood_score(feats)[0])
    np.testing.assert_allclose([pred.probabilities[k] for k in spec.labels], probs, atol=1e-5)
    assert pred.ood_score == pytest.approx(score, rel=1e-4)
    assert "attention" not in pred.to_json("f") and "attention" not in repr(pred)
    att = attention_map(pred, x)
    if not spec.extra.get("attention"):
        assert pred.attention is None and att is None
        return
    own = explain(model, spec, x, "attention", spec.labels[0], copy_model=False)  # its own pass, unfolded
    assert att.method == "attention" and att.params == own.params
    np.testing.assert_allclose(att.attributions, own.attributions, rtol=1e-4, atol=1e-7)
    assert att.diagnostics["max_weight"] == pytest.approx(own.diagnostics["max_weight"], rel=1e-4)


def test_decision_rule_uses_threshold():
    labels = ("benign", "malignant", "normal")
    assert decide(np.array([0.5, 0.3, 0.2]), labels, "malignant", 0.25) == "malignant"
    assert decide(np.array([0.3, 0.2, 0.5]), labels, "malignant", 0.25) == "normal"
    assert decide(np.array([0.3, 0.2, 0.5]), labels, "malignant", 0.6) == "normal"


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "RG3_UNCR.dcm"])
def test_ood_guard_flags_other_modalities(busi, name):
    model, spec = busi
    pred = predict(model, spec, prepare_input(load_scan(pydicom_file(name)), spec))
    assert pred.ood, (name, pred.ood_score, pred.ood_threshold)


@pytest.mark.parametrize("name", [n for n in MODELS if get_spec(n).modality in ("tabular", "text")])
def test_fused_attention_path_equals_explicit_weights_path(name):
    """forward() uses fused attention; forward_with_attention() computes the weights the page shows."""
    spec = get_spec(name)
    model = load_model(name)
    x = _example_input(spec)
    with torch.no_grad():
        fused = model(x)
        explicit, weights = model.forward_with_attention(x)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
    assert all(torch.allclose(w.sum(-1), torch.ones(())) for w in weights)
