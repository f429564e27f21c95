"""The right model for each scan: the rule itself on made-up scores (pure), then the shipped models on real files."""
from __future__ import annotations

import numpy as np
import pytest

from medai_core.io.scan import MetaItem, Scan
from medai_core.workspaces.imaging.pipeline import ImagePrediction
from medai_core.workspaces.imaging.routing import choose, forced, header_hints, routed_models


def _pred(name: str, score: float, threshold: float = 10.0) -> ImagePrediction:
    return ImagePrediction(model=name, labels=("a", "b"), probabilities={"a": 0.6, "b": 0.4}, label="a",
                           positive_label="b", threshold=0.5, ood=score > threshold, ood_score=score,
                           ood_threshold=threshold, seconds=0.0)


def _scan(modality: str = "", body_part: str = "") -> Scan:
    meta = (MetaItem("(0018,0015)", "BodyPartExamined", "Body Part Examined", "CS", body_part, False),) if body_part else ()
    return Scan(np.zeros((1, 8, 8), np.float32), "test", False, modality=modality, metadata=meta)


def _route(scores: dict[str, float], scan: Scan | None = None):
    return choose(scan or _scan(), lambda n: _pred(n, scores[n]), list(scores))


def test_routed_models_are_the_chest_and_the_new_breast_model():
    assert set(routed_models()) == {"cxr_pneumonia", "busi_effnet"}


def test_the_model_that_recognises_the_scan_wins():
    r = _route({"cxr_pneumonia": 4.0, "busi_effnet": 30.0})
    assert r.model == "cxr_pneumonia" and not r.prediction.ood
    assert "looks like its training images" in r.reason and "busi_effnet" in r.reason


def test_of_two_accepting_models_the_nearer_wins_unless_the_header_points_to_the_other():
    assert _route({"cxr_pneumonia": 9.0, "busi_effnet": 5.0}).model == "busi_effnet"
    r = _route({"cxr_pneumonia": 9.0, "busi_effnet": 5.0}, _scan("CR", "CHEST"))
    assert r.model == "cxr_pneumonia" and "DICOM header" in r.reason


def test_content_and_the_header_must_both_agree():
    """A file labelled as a chest radiograph that the chest model rejects is not scored as one; nor does the breast
    model take it, since its header names an acquisition (CR) that model never saw. A CT is nobody's."""
    r = _route({"cxr_pneumonia": 50.0, "busi_effnet": 5.0}, _scan("CR", "CHEST"))
    assert r.prediction.ood and r.model == "cxr_pneumonia"
    assert "the DICOM header says CR, which it does not read" in r.reason
    r = _route({"cxr_pneumonia": 5.0, "busi_effnet": 5.0}, _scan("CT"))
    assert r.prediction.ood and all(c.ruled_out for c in r.candidates)
    r = _route({"cxr_pneumonia": 50.0, "busi_effnet": 5.0}, _scan("OT"))  # secondary capture: content decides
    assert r.model == "busi_effnet" and not r.prediction.ood


def test_forcing_a_model_keeps_the_header_rule():
    assert forced("cxr_pneumonia", _pred("cxr_pneumonia", 1.0), _scan("CT")).prediction.ood
    assert not forced("cxr_pneumonia", _pred("cxr_pneumonia", 1.0), _scan("CR")).prediction.ood


def test_a_scan_every_model_rejects_stays_flagged():
    r = _route({"cxr_pneumonia": 25.0, "busi_effnet": 40.0})
    assert r.prediction.ood and r.model == "cxr_pneumonia"  # the least far, greyed out
    assert r.reason.startswith("No image model recognises this scan")
    r = _route({"cxr_pneumonia": 25.0, "busi_effnet": 40.0}, _scan("US"))
    assert r.prediction.ood and r.model == "busi_effnet" and "points to it" in r.reason


def test_header_hints():
    assert header_hints(_scan("cr", "chest")) == ("CR", "CHEST")
    assert header_hints(_scan()) == ("", "")


def test_forced_route_says_so_and_to_json():
    r = forced("busi_cnn", _pred("busi_cnn", 1.0))
    assert r.forced and "Chosen by you" in r.reason
    js = _route({"cxr_pneumonia": 4.0, "busi_effnet": 30.0}).to_json()
    assert js["model"] == "cxr_pneumonia" and js["candidates"]["busi_effnet"]["ood"] is True


def test_a_model_without_weights_is_left_out_and_named():
    from medai_core.errors import ModelError

    def predict_with(n: str) -> ImagePrediction:
        if n == "busi_effnet":
            raise ModelError("weights not found")
        return _pred(n, 3.0)

    r = choose(_scan(), predict_with, ["cxr_pneumonia", "busi_effnet"])
    assert r.model == "cxr_pneumonia" and "busi_effnet unavailable (weights not found)" in r.reason
    with pytest.raises(ModelError, match="No image model is available"):
        choose(_scan(), lambda n: (_ for _ in ()).throw(ModelError("gone")), ["cxr_pneumonia"])
