"""Explanations are not decoration: exact checks on tiny analytic models, and the model-
randomisation sanity check (Adebayo et al. 2018) on the trained network."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medai_core.explain import EXPLAINERS, normalise_map, overlay
from medai_core.explain.image import gradcam, integrated_gradients
from medai_core.trust.randomisation import randomised_copy, rank_correlation
from medai_core.workspaces.imaging.pipeline import explain, prepare_input
from medai_core.io import load_scan
from tests.conftest import make_png, speckle_image


class Quadratic(nn.Module):
    """F_0(x) = sum(w * x^2) + sum(v * x), F_1 = -F_0: IG (Gauss-Legendre) is exact on polynomials."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(1, 1, 8, 8, generator=g))
        self.v = nn.Parameter(torch.randn(1, 1, 8, 8, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = (self.w * x**2 + self.v * x).flatten(1).sum(1)
        return torch.stack([f, -f], 1)


class PatchNet(nn.Module):
    """Conv (identity) -> global average pool -> linear: Grad-CAM must light the bright patch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)
        self.act = nn.ReLU()
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).mean((2, 3)))


@pytest.mark.parametrize("baseline", ["black", "mean", "noise"])
def test_ig_completeness_on_analytic_model(baseline):
    model = Quadratic().eval()
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    exp = integrated_gradients(model, x, 0, n_steps=16, baseline=baseline)
    # sum of attributions == F(x) - F(baseline)
    assert exp.attributions.sum() == pytest.approx(exp.diagnostics["output_difference"], rel=1e-4, abs=1e-4)
    assert exp.diagnostics["relative_delta"] < 1e-4


def test_gradcam_lights_the_known_region():
    model = PatchNet().eval()
    x = torch.zeros(1, 1, 32, 32)
    x[..., 20:28, 4:12] = 1.0
    cam = gradcam(model, x, 0, layer="conv").attributions
    assert cam.shape == (32, 32)
    inside, outside = cam[20:28, 4:12].mean(), np.delete(cam.flatten(), np.ravel_multi_index(
        np.mgrid[20:28, 4:12].reshape(2, -1), (32, 32))).mean()
    assert inside > 10 * max(outside, 1e-9)
    y, xx = np.unravel_index(cam.argmax(), cam.shape)
    assert 20 <= y < 28 and 4 <= xx < 12


@pytest.fixture(scope="module")
def scan_input(busi):
    _, spec = busi
    return prepare_input(load_scan(make_png(speckle_image(3))), spec)


@pytest.mark.parametrize("method", [m for m in EXPLAINERS.names(modalities="image") if m != "attention"])
def test_every_explainer_on_trained_model(busi, scan_input, method):
    """busi_cnn has no attention head (the attention map is tested on the pretrained models)."""
    model, spec = busi
    for target in spec.labels:
        exp = explain(model, spec, scan_input, method, target)
        assert exp.attributions.shape == spec.input_size
        assert np.isfinite(exp.attributions).all()
        assert exp.target == target
    heat = normalise_map(exp.attributions, signed=EXPLAINERS.entry(method).meta["signed"])
    assert heat.min() >= 0 and heat.max() <= 1
    ov = overlay(np.full((300, 400), 0.5, np.float32), heat, 0.5, "jet")
    assert ov.shape == (300, 400, 3) and ov.dtype == np.uint8


def test_ig_convergence_reported(busi, scan_input):
    model, spec = busi
    exp = explain(model, spec, scan_input, "integrated_gradients", "malignant", n_steps=64)
    d = exp.diagnostics
    assert abs(exp.attributions.sum() - d["output_difference"]) == pytest.approx(d["convergence_delta"], abs=1e-3)
    assert d["relative_delta"] < 0.05


@pytest.mark.parametrize("method", ["gradcam", "integrated_gradients"])
def test_model_randomisation_changes_the_map(busi, method):
    model, spec = busi
    rnd = randomised_copy(model)
    rhos = []
    for seed in range(3):
        x = prepare_input(load_scan(make_png(speckle_image(seed))), spec)
        target = "malignant"
        a = explain(model, spec, x, method, target).attributions.flatten()
        b = explain(rnd, spec, x, method, target).attributions.flatten()
        rhos.append(rank_correlation(a, b))
    # maps of the trained model must not be reproducible by an untrained one
    assert np.mean(np.abs(rhos)) < 0.5, rhos
    # and the trained model's map is stable (same input, same map), so the difference is real
    x = prepare_input(load_scan(make_png(speckle_image(0))), spec)
    a1 = explain(model, spec, x, method, "malignant").attributions
    a2 = explain(model, spec, x, method, "malignant").attributions
    np.testing.assert_allclose(a1, a2, atol=1e-5)


def test_randomised_copy_leaves_shared_model_untouched(busi):
    model, _ = busi
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rnd = randomised_copy(model)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(rnd.fc.weight, model.fc.weight)


def test_concurrent_explanations_match_sequential(busi):
    """Several sessions explaining and predicting at once on the shared model get the same maps
    as one at a time (Captum hooks live on per-thread copies)."""
    from concurrent.futures import ThreadPoolExecutor

    from medai_core.workspaces.imaging.pipeline import predict

    model, spec = busi
    inputs = [prepare_input(load_scan(make_png(speckle_image(s))), spec) for s in range(4)]
    jobs = [(x, m) for x in inputs for m in ("gradcam", "integrated_gradients", "smoothgrad")]
    sequential = [explain(model, spec, x, m, "malignant").attributions for x, m in jobs]
    preds = [predict(model, spec, x).probabilities for x in inputs]

    def work(i: int):
        x, m = jobs[i]
        p = predict(model, spec, x).probabilities
        return explain(model, spec, x, m, "malignant").attributions, p

    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(work, range(len(jobs))))
    for (attr, p), ref, (x, _) in zip(results, sequential, jobs):
        np.testing.assert_allclose(attr, ref, rtol=1e-4, atol=1e-6)
        k = next(i for i, xi in enumerate(inputs) if xi is x)
        assert p == pytest.approx(preds[k], abs=1e-6)


def test_attribution_copy_is_folded_and_gives_the_same_maps(busi, scan_input):
    """thread_copy folds busi_cnn's BatchNorms into its convolutions (channels-last) for speed: same logits and
    the same maps as the unfolded model, and the shared model keeps its BatchNorms."""
    import copy

    import torch

    from medai_core.explain.base import thread_copy
    from medai_core.explain.image import gradcam, integrated_gradients, occlusion

    model, _ = busi
    folded = thread_copy(model)
    assert thread_copy(folded) is not folded and copy.deepcopy(folded).prepare_for_attribution() is not None  # idempotent
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    plain = copy.deepcopy(model).eval()
    for p in plain.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        assert torch.allclose(plain(scan_input), folded(scan_input), atol=1e-5)
    for fn in (lambda m: gradcam(m, scan_input, 1), lambda m: occlusion(m, scan_input, 1),
               lambda m: integrated_gradients(m, scan_input, 1, n_steps=16, max_steps=16)):
        a, b = fn(plain).attributions, fn(folded).attributions
        assert np.abs(a - b).max() <= 1e-3 * np.abs(a).max()


def test_attention_map_needs_an_attention_head(busi):
    from medai_core.errors import InputError
    from medai_core.explain.image import attention

    model, spec = busi
    with pytest.raises(InputError, match="has no attention map"):
        attention(model, torch.rand(1, 1, *spec.input_size), 0)


def test_attention_map_is_the_pooling_weights_upsampled():
    from medai_core.explain import cost
    from medai_core.explain.image import attention
    from medai_core.models.effnet import EffNetClassifier

    torch.manual_seed(0)
    model = EffNetClassifier(3).eval()
    x = torch.rand(1, 1, 224, 224, generator=torch.Generator().manual_seed(5))
    exp = attention(model, x, 1)
    with torch.no_grad():
        grid = model.attention(x)[0]
    assert exp.attributions.shape == (224, 224) and (exp.attributions >= 0).all()
    assert exp.diagnostics["max_weight"] == pytest.approx(float(grid.max()))
    assert exp.diagnostics["uniform_weight"] == pytest.approx(1 / 49)
    # the map is class-independent: another target gives the same map
    np.testing.assert_allclose(attention(model, x, 2).attributions, exp.attributions)
    assert cost.estimate_seconds(model, "image", x, "attention", {}).seconds > 0


def test_only_explainers_without_hooks_run_on_the_shared_model(monkeypatch):
    """The attention map (registered ``hooks=False``: one forward pass, no gradients) reads the process's one
    inference copy of the shared model; every Captum explainer still runs on this thread's private copy."""
    from medai_core.explain import explainer_for
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.imaging import pipeline

    hooks = {n: explainer_for(n, "image")[1]["hooks"] for n in EXPLAINERS.names(modalities="image")}
    assert hooks.pop("attention") is False and hooks and all(hooks.values())
    spec = get_spec("busi_effnet")
    model, copied = load_model("busi_effnet"), []
    real = pipeline.thread_copy
    monkeypatch.setattr(pipeline, "thread_copy", lambda m: copied.append(m) or real(m))
    x = torch.rand(1, 1, *spec.input_size, generator=torch.Generator().manual_seed(1))
    att = explain(model, spec, x, "attention", spec.labels[0])
    assert copied == [] and att.attributions.shape == tuple(spec.input_size)
    explain(model, spec, x, "gradcam", spec.labels[0])
    assert copied == [model]
    # the inference copy's map is the unfolded model's (BatchNorm folding is exact up to rounding)
    own = explain(model, spec, x, "attention", spec.labels[0], copy_model=False)
    np.testing.assert_allclose(att.attributions, own.attributions, rtol=1e-4, atol=1e-7)


def test_inference_copy_is_shared_folded_and_follows_the_weights():
    """One folded copy per model for hook-free forward passes: the same object on every call and thread, with the
    model's outputs up to rounding, no gradients, and made again when the model's weights change in place."""
    import threading

    from medai_core.explain.base import inference_copy
    from medai_core.models.effnet import EffNetClassifier

    torch.manual_seed(0)
    model = EffNetClassifier(3).eval()
    with torch.no_grad():  # BatchNorm statistics that are not the identity, so folding changes the weights
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    x = torch.rand(2, 1, 224, 224, generator=torch.Generator().manual_seed(2))
    net = inference_copy(model)
    got: list = []
    t = threading.Thread(target=lambda: got.append(inference_copy(model)))
    t.start()
    t.join()
    assert net is not model and got == [net] and inference_copy(model) is net
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules()) and not any(p.requires_grad for p in net.parameters())
    with torch.inference_mode():
        (a, fa), (b, fb, att) = model.forward_with_features(x), net.forward_with_attention(x)
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(fb.numpy(), fa.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(att.numpy(), model.attention(x).numpy(), rtol=1e-4, atol=1e-7)
    with torch.no_grad():
        model.fc.weight.mul_(-1.0)  # an in-place change (load_state_dict writes in place too)
    fresh = inference_copy(model)
    assert fresh is not net
    with torch.inference_mode():
        np.testing.assert_allclose(fresh(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)
    plain = nn.Linear(2, 2)  # nothing to prepare: its own inference copy
    assert inference_copy(plain) is plain


def test_attribution_copies_pass_to_later_threads_never_to_two_at_once(busi):
    """Streamlit runs each page run on a new thread: a copy whose thread has ended is handed on (not made again),
    while threads running at the same time each hold their own."""
    import threading

    from medai_core.explain.base import thread_copy

    model, _ = busi
    got: dict[str, object] = {}

    def take(name: str, hold: threading.Event | None = None, ready: threading.Event | None = None) -> None:
        got[name] = thread_copy(model)
        if ready is not None:
            ready.set()
        if hold is not None:
            hold.wait(10)

    first = threading.Thread(target=take, args=("first",))
    first.start()
    first.join()
    later = threading.Thread(target=take, args=("later",))
    later.start()
    later.join()
    assert got["later"] is got["first"]  # reused: the first thread had ended
    hold, ready = threading.Event(), threading.Event()
    busy = threading.Thread(target=take, args=("busy", hold, ready))
    busy.start()
    ready.wait(10)
    other = threading.Thread(target=take, args=("other",))
    other.start()
    other.join()
    hold.set()
    busy.join()
    assert got["other"] is not got["busy"] and got["other"] is not model and got["busy"] is not model


@pytest.mark.parametrize("name", ["busi_effnet", "cxr_pneumonia"])
def test_gradcam_from_the_predictions_grid_equals_captums(name):
    """A prediction made with ``keep_grid`` carries the head's feature grid; Grad-CAM from it runs the classifier
    head's gradient only (no backbone pass) and gives Captum's LayerGradCam map on the full model, every class."""
    from medai_core.explain.base import inference_copy, thread_copy
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.imaging import predict

    model, spec = load_model(name), get_spec(name)
    x = prepare_input(load_scan(make_png(speckle_image(6))), spec)
    pred = predict(model, spec, x, keep_grid=True)
    assert pred.grid is not None and pred.grid.shape[0] == 1280 and "grid" not in pred.to_json("f")
    assert predict(model, spec, x).grid is None  # kept only when asked (batch scoring keeps none)
    calls: list[int] = []
    hooks = [m.stem.register_forward_hook(lambda *_: calls.append(1)) for m in (inference_copy(model), thread_copy(model))]
    try:
        fast = {t: explain(model, spec, x, "gradcam", t, prediction=pred) for t in spec.labels}
    finally:
        for h in hooks:
            h.remove()
    assert not calls
    for t in spec.labels:
        slow = explain(model, spec, x, "gradcam", t)
        assert fast[t].target == t and fast[t].params == slow.params and fast[t].attributions.shape == spec.input_size
        scale = float(np.abs(slow.attributions).max())
        np.testing.assert_allclose(fast[t].attributions, slow.attributions, rtol=1e-4, atol=1e-5 * max(scale, 1e-6))
    # another model's prediction is not used: the full pass runs
    other = predict(load_model("busi_cnn"), get_spec("busi_cnn"), prepare_input(load_scan(make_png(speckle_image(6))),
                                                                               get_spec("busi_cnn")), keep_grid=True)
    assert other.grid is None
    again = explain(model, spec, x, "gradcam", spec.labels[0], prediction=other)
    np.testing.assert_allclose(again.attributions, fast[spec.labels[0]].attributions, rtol=1e-4,
                               atol=1e-5 * max(float(np.abs(again.attributions).max()), 1e-6))
