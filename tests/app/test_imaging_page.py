"""AppTest of the Imaging page and the home page: uploads, bad files, explanations, identifiers."""
from __future__ import annotations

import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, open_page, make_dicom, make_png, speckle_image

APP = str(ROOT / "app.py")


def _imaging() -> AppTest:
    return open_page("imaging", 120)


def _prediction(at: AppTest) -> str:
    """The label shown: a metric in distribution, greyed markdown when flagged."""
    shown = [m.value for m in at.metric if m.label == "Prediction"]
    if shown:
        return shown[0]
    return next(m.value for m in at.markdown if m.value.startswith("Prediction (unreliable)"))


def _wait_for_explanation(at: AppTest, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        caps = [c.value for c in at.caption if " in " in c.value and " ms" in c.value and "prediction" not in c.value]
        if caps:
            return caps[0]
        time.sleep(0.3)
        at.run()
    raise AssertionError("explanation did not finish")


def test_home_lists_models_and_intended_use():
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    assert any("Intended use" in i.value for i in at.info)
    assert any("busi_cnn" in e.label for e in at.expander)


def test_upload_png_shows_prediction_and_gradcam():
    at = _imaging()
    at.sidebar.file_uploader[0].upload("scan.png", make_png(speckle_image(5)), "image/png")
    at.run()
    assert not at.exception and not at.error
    assert any(lab in _prediction(at) for lab in ("benign", "malignant", "normal"))
    assert "Grad-CAM" in _wait_for_explanation(at)
    # probabilities, scan, overlay, and the held-out reliability diagram + threshold sweep
    keys = {c.key for c in at.get("plotly_chart")}
    base = {"imaging.probs", "imaging.original", "imaging.overlay", "imaging.rel.rel", "imaging.rel.sweep"}
    # the pretrained models (attention head) also show their attention map beside the chosen explanation
    assert base <= keys and keys - base <= {"imaging.attention"}


def test_reliability_threshold_is_adjustable():
    """The operating threshold moves the held-out sensitivity/specificity; the prediction itself stays."""
    at = _imaging()
    at.sidebar.file_uploader[0].upload("scan.png", make_png(speckle_image(5)), "image/png")
    at.run()
    rates = lambda: {m.label: m.value for m in at.metric if m.label in ("Sensitivity", "Specificity", "PPV", "NPV", "Flagged")}  # noqa: E731
    before, label = rates(), _prediction(at)
    assert set(before) == {"Sensitivity", "Specificity", "PPV", "NPV", "Flagged"}
    next(s for s in at.slider if s.label == "Operating threshold").set_value(0.95).run()  # its key names the model
    after = rates()
    assert float(after["Sensitivity"].split("%")[0]) < float(before["Sensitivity"].split("%")[0])
    assert float(after["Specificity"].split("%")[0]) >= float(before["Specificity"].split("%")[0])
    assert _prediction(at) == label


def test_integrated_gradients_shows_convergence_delta():
    at = _imaging()
    at.sidebar.file_uploader[0].upload("scan.png", make_png(speckle_image(6)), "image/png")
    at.sidebar.selectbox(key="imaging.model").set_value("busi_cnn")  # IG on the 128 px model: seconds, not tens
    at.run()
    at.sidebar.selectbox(key="imaging.method").set_value("integrated_gradients")
    at.run()
    assert "convergence delta" in _wait_for_explanation(at, 180)


@pytest.mark.parametrize("name,data", [
    ("empty.dcm", b""),
    ("random.png", np.random.default_rng(0).bytes(3000)),
    ("truncated.dcm", make_dicom(np.zeros((64, 64), np.uint16))[:-5000]),
    ("noimage.dcm", make_dicom(np.zeros((2, 2), np.uint8), with_pixels=False)),
])
def test_bad_upload_gets_message_not_traceback(name, data):
    at = _imaging()
    at.sidebar.file_uploader[0].upload(name, data)
    at.run()
    assert not at.exception
    assert at.error and len(at.error[0].value) > 15
    assert "Traceback" not in at.error[0].value
    # the app keeps working: a good file afterwards is analysed
    at.sidebar.file_uploader[0].clear().upload("ok.png", make_png(speckle_image(1)), "image/png")
    at.run()
    assert not at.exception and not at.error and _prediction(at)


def test_dicom_identifiers_hidden_until_revealed():
    at = _imaging()
    at.sidebar.file_uploader[0].upload("ct.dcm", make_dicom(speckle_image(2), patient_name="Plantedname^Fake"))
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert not table["value"].astype(str).str.contains("Plantedname").any()
    at.checkbox(key="imaging.reveal").check()
    at.run()
    assert at.dataframe[0].value["value"].astype(str).str.contains("Plantedname").any()


def test_demo_multiframe_scan_has_frame_slider_and_ood_warning():
    at = _imaging()
    at.sidebar.radio(key="imaging.source").set_value("Demo scan")
    at.run()
    at.sidebar.selectbox(key="imaging.sample").set_value("MR, multi-frame (emri_small)")
    at.run()
    assert not at.exception
    sliders = [s for s in at.sidebar.slider if s.label == "Frame"]
    assert sliders and sliders[0].max == 10
    sliders[0].set_value(4)
    at.run()
    assert not at.exception
    assert any("No image model recognises this scan" in w.value for w in at.warning)


def test_sanity_check_view_runs_and_gives_a_verdict():
    """The button starts the cascading randomisation + deletion/insertion in the background; the page then shows
    both verdicts, the trained and the randomised maps side by side, the cascade and the curves."""
    at = _imaging()
    at.sidebar.file_uploader[0].upload("scan.png", make_png(speckle_image(5)), "image/png")
    at.run()
    _wait_for_explanation(at)
    assert not any("Randomisation check" in s.value for s in [*at.success, *at.warning, *at.error])
    next(t for t in at.toggle if t.label == "Sanity check of this map").set_value(True).run()
    deadline = time.time() + 90
    while time.time() < deadline:
        boxes = [b.value for b in [*at.success, *at.warning, *at.error]]
        if any("Randomisation check" in v for v in boxes):
            break
        time.sleep(0.3)
        at.run()
    assert not at.exception
    boxes = [b.value for b in [*at.success, *at.warning, *at.error]]
    verdict = next(v for v in boxes if "Randomisation check" in v)
    assert any(w in verdict for w in ("passes", "weak", "fails")) and "Spearman" in verdict
    assert any("Faithfulness" in v for v in boxes)
    keys = {c.key for c in at.get("plotly_chart")}
    assert {"imaging.sanity.trained model", "imaging.sanity.fully randomised model"} <= keys
    assert any(k.endswith(".cascade") for k in keys) and any(k.endswith(".faith") for k in keys)


def _demo(at: AppTest, label: str) -> AppTest:
    at.sidebar.radio(key="imaging.source").set_value("Demo scan")
    at.run()
    at.sidebar.selectbox(key="imaging.sample").set_value(label)
    at.run()
    return at


def test_chest_film_goes_to_the_chest_model_with_attention_map_and_credit():
    at = _demo(_imaging(), "Chest X-ray, bacterial pneumonia (child)")
    assert not at.exception and not at.error
    route = next(i.value for i in at.info if i.value.startswith("**Model:"))
    assert "chest X-ray model (cxr_pneumonia)" in route and "override" in route
    assert _prediction(at) in ("bacterial", "viral")
    assert any("CC BY 4.0" in c.value for c in at.sidebar.caption)
    assert "Attention map" in at.sidebar.selectbox(key="imaging.method").options
    at.sidebar.selectbox(key="imaging.method").set_value("attention")
    at.run()
    assert "Attention map" in _wait_for_explanation(at)
    # the reliability panel reads P(pneumonia) = P(bacterial) + P(viral)
    assert {"imaging.rel.rel", "imaging.rel.sweep", "imaging.overlay"} <= {c.key for c in at.get("plotly_chart")}


def test_forcing_a_model_overrides_the_choice():
    at = _demo(_imaging(), "Chest X-ray, normal (child)")
    at.sidebar.selectbox(key="imaging.model").set_value("busi_cnn")
    at.run()
    assert not at.exception
    route = next(i.value for i in at.info if i.value.startswith("**Model:"))
    assert "Chosen by you" in route and "busi_cnn" in route
    # the breast model's own guard flags the chest film
    assert any("does not look like breast ultrasound" in w.value for w in at.warning)
    # busi_cnn has no attention head: the method list has no attention map
    assert "Attention map" not in at.sidebar.selectbox(key="imaging.method").options
