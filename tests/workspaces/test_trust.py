"""The trust checks run on every shipped model through its workspace's glue (small step counts)."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from medai_core.plots.static import report_png
from medai_core.trust.checks import TrustReport
from medai_core.trust.faithfulness import FaithfulnessCurves
from medai_core.trust.randomisation import CascadeResult, rank_correlation
from medai_core.workspaces.imaging.trust import faithfulness_image, sanity_check_image
from medai_core.workspaces.notes.trust import faithfulness_note, sanity_check_note
from medai_core.workspaces.records.trust import faithfulness_record, sanity_check_record
from medai_core.workspaces.vitals.trust import faithfulness_forecast, sanity_check_forecast


# ---------------------------------------------------------------- shipped models, end to end (small step counts)


def _finite(c: CascadeResult, f: FaithfulnessCurves) -> None:
    assert np.isfinite(c.trained).all() and all(np.isfinite(s.attributions).all() for s in c.stages)
    assert all(np.isfinite([s.rank_correlation, s.abs_rank_correlation, s.pearson_abs]).all() for s in c.stages)
    assert c.verdict in ("passes", "weak", "fails") and f.verdict in ("faithful", "partly faithful", "not faithful")
    assert np.isfinite([f.deletion_auc, f.deletion_auc_random, f.insertion_auc, f.insertion_auc_random]).all()
    report = TrustReport("m", "t", c, f)
    json.dumps(report.to_json())
    assert report.summary()["verdict"] == c.verdict and report.summary()["deletion_auc"] == round(f.deletion_auc, 6)
    png = Image.open(io.BytesIO(report_png(report)))  # 1-D maps as bars, 2-D as images
    png.load()
    assert png.size[0] > png.size[1]


def test_busi_gradcam_trust(busi):
    from medai_core.workspaces.imaging.pipeline import explain, prepare_input
    from medai_core.io import load_scan
    from tests.conftest import make_png, speckle_image

    model, spec = busi
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = prepare_input(load_scan(make_png(speckle_image(3))), spec)
    c = sanity_check_image(model, spec, x, "gradcam", "malignant")
    assert [s.group for s in c.stages] == ["fc", "layer4", "layer3", "layer2", "layer1", "stem"]
    assert c.trained.shape == spec.input_size
    shown = explain(model, spec, x, "gradcam", "malignant").attributions
    np.testing.assert_allclose(c.trained, shown, rtol=1e-5, atol=1e-7)  # the map the user sees
    assert rank_correlation(c.trained, c.trained) == 1.0
    assert abs(c.rank_correlation) < 1.0 and c.verdict == "passes"
    f = faithfulness_image(model, spec, x, "malignant", shown, n_steps=5, n_random=2)
    assert f.n_units == 256 and len(f.fractions) == 6
    with torch.inference_mode():
        p_malignant = float(torch.softmax(model(x) / model.temperature, 1)[0, 1])
    assert 0 <= f.score_reference <= 1 and f.score_input == pytest.approx(p_malignant, abs=1e-5)
    _finite(c, f)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name,method", [("cxr_pneumonia", "gradcam"), ("cxr_pneumonia", "attention"),
                                         ("busi_effnet", "gradcam")])
def test_pretrained_image_models_trust(name, method):
    """The same checks on the EfficientNet models: stages randomised from the output down, the maps the user sees."""
    from medai_core.io import load_scan
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.imaging.pipeline import explain, prepare_input, predict
    from medai_core.workspaces.imaging.samples import sample_path

    model, spec = load_model(name), get_spec(name)
    x = prepare_input(load_scan(sample_path("Chest X-ray, viral pneumonia (child)")), spec)
    target = predict(model, spec, x).label
    c = sanity_check_image(model, spec, x, method, target)
    groups = [s.group for s in c.stages]
    assert groups[:3] == (["fc", "pool", "head"] if method == "gradcam" else ["pool", "head", "stages.6"])
    assert len(groups) == 11 and c.trained.shape == spec.input_size
    shown = explain(model, spec, x, method, target).attributions
    np.testing.assert_allclose(c.trained, shown, rtol=1e-4, atol=1e-6)
    if method == "attention":  # the attention map never reads the classifier: fc is not a stage that can move it
        assert "fc" not in groups[:-1] or groups.index("fc") > groups.index("stem")
    f = faithfulness_image(model, spec, x, target, shown, n_steps=5, n_random=2)
    _finite(c, f)


def test_records_trust():
    from medai_core.workspaces.records import pipeline as R
    from medai_core.io.records import SCHEMA, load_records
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.records.samples import synthetic_records

    spec, model = get_spec("support_ftt"), load_model("support_ftt")
    t = load_records(synthetic_records(3))
    c = sanity_check_record(model, spec, t, 1, "integrated_gradients", n_steps=16)
    assert [s.group for s in c.stages] == ["head", "blocks.2", "blocks.1", "blocks.0", "cls", "tokenizer"]
    exp = R.explain_record(model, spec, t, 1, "integrated_gradients", n_steps=16)
    f = faithfulness_record(model, spec, t, 1, exp.attributions, n_steps=6, n_random=2)
    assert f.n_units == len(SCHEMA)
    assert f.score_input == pytest.approx(exp.diagnostics["risk"], abs=1e-6)
    assert f.score_reference == pytest.approx(exp.diagnostics["reference_risk"], abs=1e-6)
    _finite(c, f)


def test_notes_trust():
    from medai_core.workspaces.notes import pipeline as N
    from medai_core.models import get_spec, load_model

    spec, model = get_spec("notes_tfm"), load_model("notes_tfm")
    vocab = N.load_vocab(spec)
    text = "Cataract in the left eye; phacoemulsification with intraocular lens placement was uneventful."
    c = sanity_check_note(model, spec, vocab, text, "Ophthalmology", n_steps=8, max_steps=8)
    assert [s.group for s in c.stages] == ["head", "norm", "blocks.1", "blocks.0", "pos", "embed"]
    ta = N.explain_note(model, spec, vocab, text, "Ophthalmology", n_steps=8, max_steps=8)
    f = faithfulness_note(model, spec, vocab, text, "Ophthalmology", ta.values, n_steps=5, n_random=2)
    assert f.n_units == len(ta.tokens)
    assert f.score_input == pytest.approx(N.classify(model, spec, vocab, text).probabilities["Ophthalmology"], abs=1e-6)
    _finite(c, f)


@pytest.mark.parametrize("name, signal, groups", [
    ("icu_gru", "MAP", ["head", "static", "attention", "encoder"]), ("cgm_gru", "Glucose", ["head", "attention", "encoder"])])
def test_series_trust(name, signal, groups):
    from medai_core.workspaces.vitals import pipeline as V
    from medai_core.io.vitals import load_series
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.vitals.samples import SYNTHETIC_SERIES, synthetic_series_csv

    spec, model = get_spec(name), load_model(name)
    series = load_series(synthetic_series_csv(name, next(iter(SYNTHETIC_SERIES[name]))), spec.extra["series"])
    c = sanity_check_forecast(model, spec, series, signal, 2, n_steps=16)
    assert [s.group for s in c.stages] == groups
    exp = V.explain_forecast(model, spec, series, signal, 2, n_steps=16)
    f = faithfulness_forecast(model, spec, series, signal, 2, exp.attributions, n_steps=5, n_random=2)
    fc = V.forecast(model, spec, series)
    k = list(fc.signals).index(signal)
    assert f.score_input == pytest.approx(float(fc.quantiles[1, k, 1]), rel=1e-5)
    _finite(c, f)
