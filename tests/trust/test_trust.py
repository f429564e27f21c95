"""Can I trust this heatmap? Cascading randomisation and deletion/insertion curves: exact checks on tiny
analytic models, the cache and thread safety, and every shipped model end to end."""
from __future__ import annotations

import gc
import json
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch import nn

from medai_core.trust import randomisation
from medai_core.trust.randomisation import rank_correlation
from medai_core.trust.randomisation import RANDOMISATION_FAIL, _ENTRIES, cascading_randomisation, layer_groups, randomisation_verdict, randomised_layers
from medai_core.trust.faithfulness import faithfulness_curves, faithfulness_verdict


# ---------------------------------------------------------------- tiny analytic models


class LinearScore(nn.Module):
    """f(x) = sum(w * x) over the last dimension: gradient x input is the exact contribution of each unit."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).sum(-1)


class Stacked(nn.Module):
    """Registered head first, called last: the cascade must follow the forward pass, not registration.
    Groups: head, inp, scale (own parameter), blocks.0, blocks.1."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.head = nn.Linear(8, 2)
        self.inp = nn.Linear(6, 8)
        self.scale = nn.Parameter(torch.rand(8, generator=g) + 0.5)
        self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])
        self.act = nn.Tanh()  # no parameters: not a group
        self.register_buffer("offset", torch.full((6,), 0.25))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x - self.offset) * self.scale
        for blk in self.blocks:
            h = self.act(blk(h))
        return self.head(h)


def _saliency(x: torch.Tensor, target: int = 0):
    """explain_fn: gradient x input of output ``target`` for one sample."""

    def fn(model: nn.Module) -> np.ndarray:
        inp = x.clone().requires_grad_(True)
        with torch.enable_grad():
            model(inp)[0, target].backward()
        return (inp.grad * inp).detach()[0].numpy()

    return fn


@pytest.fixture()
def stacked():
    torch.manual_seed(0)
    return Stacked().eval()


X6 = torch.linspace(-1, 1, 6).view(1, 6)
TOP_DOWN = ["head", "blocks.1", "blocks.0", "scale", "inp"]


def test_layer_groups_expand_containers_and_keep_own_parameters(stacked):
    assert [g.name for g in layer_groups(stacked)] == ["head", "scale", "inp", "blocks.0", "blocks.1"]
    own = [g for g in layer_groups(stacked) if g.own]
    assert len(own) == 1 and own[0].parameters == ("scale",)


def test_cascade_follows_the_forward_pass_and_leaves_the_model_untouched(stacked):
    before = {k: v.clone() for k, v in stacked.state_dict().items()}
    res = cascading_randomisation(stacked, _saliency(X6))
    assert [s.group for s in res.stages] == TOP_DOWN and res.order == "forward"
    assert len(res.stages) == len(layer_groups(stacked))
    assert [s.randomised for s in res.stages] == [tuple(TOP_DOWN[:i + 1]) for i in range(len(TOP_DOWN))]
    assert res.stages[1].name == "head + blocks.1"
    after = stacked.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bitwise
    np.testing.assert_allclose(res.trained, _saliency(X6)(stacked), rtol=1e-6)
    assert res.rank_correlation == res.stages[-1].rank_correlation
    assert all(-1 <= s.rank_correlation <= 1 and np.isfinite(s.pearson_abs) for s in res.stages)
    js = json.loads(json.dumps(res.to_json()))
    assert js["verdict"] == res.verdict and len(js["stages"]) == 5 and "trained" not in js
    assert len(json.loads(json.dumps(res.to_json(include_maps=True)))["trained"]) == 6


def test_each_stage_randomises_exactly_its_groups_and_keeps_buffers(stacked):
    trained = dict(stacked.named_parameters())
    for k in range(len(TOP_DOWN) + 1):
        copy = randomised_layers(stacked, TOP_DOWN[:k], seed=3)
        assert copy is not stacked and torch.equal(copy.offset, stacked.offset)
        for name, p in copy.named_parameters():
            group = "scale" if name == "scale" else name.rsplit(".", 1)[0]
            assert torch.equal(p, trained[name]) == (group not in TOP_DOWN[:k]), (k, name)
    # a group's new weights do not depend on which other groups are randomised with it
    a = randomised_layers(stacked, ["head"], seed=3)
    b = randomised_layers(stacked, ["head", "inp"], seed=3)
    assert torch.equal(a.head.weight, b.head.weight)
    with pytest.raises(KeyError, match="not a layer group"):
        randomised_layers(stacked, ["nope"])


def test_cache_returns_the_same_copy_is_bounded_and_weak(monkeypatch):
    model = Stacked().eval()
    first = randomised_layers(model, ["head"], seed=0)
    assert randomised_layers(model, ("head",), seed=0) is first
    assert randomised_layers(model, ["head"], seed=1) is not first
    res1 = cascading_randomisation(model, _saliency(X6))
    assert randomised_layers(model, TOP_DOWN, seed=0) is randomised_layers(model, TOP_DOWN, seed=0)
    res2 = cascading_randomisation(model, _saliency(X6))
    for s1, s2 in zip(res1.stages, res2.stages):
        np.testing.assert_array_equal(s1.attributions, s2.attributions)
    monkeypatch.setattr(randomisation, "CACHE_SIZE", 2)
    randomised_layers(model, ["inp"])
    randomised_layers(model, ["scale"])
    assert len(_ENTRIES[model].copies) == 2
    assert randomised_layers(model, ["head"], seed=0) is not first  # least recently used went out
    ref = weakref.ref(model)
    del model, first
    gc.collect()
    assert ref() is None  # the cache does not keep a dropped model alive


def test_map_that_ignores_the_model_fails():
    """An 'explainer' that returns the input itself (an edge detector would do the same) survives any
    randomisation: rank correlation 1, verdict fails; it never calls the model, so registration order."""
    model = Stacked().eval()
    res = cascading_randomisation(model, lambda m: X6[0].numpy() ** 3)
    assert res.rank_correlation == pytest.approx(1.0) and res.verdict == "fails"
    assert res.order == "registration" and "does not depend on what the model learned" in res.message


def test_gradient_map_of_a_randomised_network_changes():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)).eval()
    x = torch.randn(1, 32, generator=torch.Generator().manual_seed(2))
    res = cascading_randomisation(model, _saliency(x))
    assert [s.group for s in res.stages] == ["4", "2", "0"]
    assert rank_correlation(res.trained, res.trained) == 1.0
    assert abs(res.rank_correlation) < 0.9


@pytest.mark.parametrize("rho, abs_rho, verdict", [
    (0.0, None, "passes"), (0.3, None, "passes"), (-0.3, 0.1, "passes"), (0.31, None, "weak"), (-0.6, None, "weak"),
    (0.61, None, "fails"), (-0.95, None, "fails"), (0.1, 0.75, "passes")])
def test_randomisation_verdict(rho, abs_rho, verdict):
    v, msg = randomisation_verdict(rho, abs_rho)
    assert v == verdict and f"{rho:+.2f}" in msg
    assert ("sizes of the attributions stay correlated" in msg) == (abs_rho is not None and abs_rho > RANDOMISATION_FAIL)


@pytest.mark.parametrize("d, dr, i, ir, flat, verdict", [
    (0.2, 0.5, 0.8, 0.5, False, "faithful"), (0.2, 0.5, 0.4, 0.5, False, "partly faithful"),
    (0.6, 0.5, 0.8, 0.5, False, "partly faithful"), (0.6, 0.5, 0.4, 0.5, False, "not faithful"),
    (0.5, 0.5, 0.5, 0.5, True, "uninformative")])
def test_faithfulness_verdict(d, dr, i, ir, flat, verdict):
    assert faithfulness_verdict(d, dr, i, ir, flat=flat)[0] == verdict


W = torch.tensor([3.0, -1.0, 0.5, 2.0, -2.5, 1.0, 0.0, 4.0, -0.5, 1.5, 2.5, -3.0, 0.25, 1.25, -1.5, 0.75])
XL = torch.linspace(0.2, 1.0, 16)


def test_linear_model_curves_are_exact_and_beat_random():
    model = LinearScore(W).eval()
    contrib = (W * XL).numpy().astype(np.float64)  # exact attributions (gradient x input, reference 0)
    f = faithfulness_curves(model, XL, torch.zeros(16), torch.arange(16), contrib, n_steps=16, n_random=5)
    top = np.sort(contrib)[::-1]  # signed evidence first
    np.testing.assert_allclose(f.fractions, np.arange(17) / 16)
    np.testing.assert_allclose(f.deletion, np.concatenate([[contrib.sum()], contrib.sum() - np.cumsum(top)]), atol=1e-5)
    np.testing.assert_allclose(f.insertion, np.concatenate([[0.0], np.cumsum(top)]), atol=1e-5)
    assert f.deletion_auc < f.deletion_auc_random and f.insertion_auc > f.insertion_auc_random
    assert f.verdict == "faithful" and f.score_input == pytest.approx(contrib.sum(), abs=1e-5)
    assert f.score_reference == pytest.approx(0.0) and f.n_units == 16 and f.n_random == 5
    # the reversed map is the worst possible order: below random on insertion, above on deletion
    r = faithfulness_curves(model, XL, torch.zeros(16), torch.arange(16), -contrib, n_steps=16)
    assert r.verdict == "not faithful" and r.deletion_auc > r.deletion_auc_random
    # the random baseline does not depend on the map
    assert r.deletion_auc_random == pytest.approx(f.deletion_auc_random)
    js = json.loads(json.dumps(f.to_json()))
    assert len(js["deletion"]) == 17 and js["verdict"] == "faithful"


def test_absolute_order_ranks_by_size():
    model = LinearScore(W).eval()
    contrib = (W * XL).numpy().astype(np.float64)
    f = faithfulness_curves(model, XL, torch.zeros(16), torch.arange(16), contrib, n_steps=16, order="absolute")
    first = int(np.argmax(np.abs(contrib)))
    assert f.deletion[1] == pytest.approx(contrib.sum() - contrib[first], abs=1e-5)
    with pytest.raises(ValueError):
        faithfulness_curves(model, XL, torch.zeros(16), torch.arange(16), contrib, order="largest")


def test_constant_model_gives_flat_curves_and_equal_areas():
    def constant(b: torch.Tensor) -> torch.Tensor:
        return torch.full((len(b),), 0.7)

    f = faithfulness_curves(constant, XL, torch.zeros(16), torch.arange(16), np.arange(16.0), n_steps=8)
    for c in (f.deletion, f.insertion, f.deletion_random, f.insertion_random):
        np.testing.assert_allclose(c, 0.7)
    assert f.deletion_auc == pytest.approx(f.deletion_auc_random) == pytest.approx(0.7)
    assert f.insertion_auc == pytest.approx(f.insertion_auc_random)
    assert f.verdict == "uninformative"


def test_units_group_elements_and_minus_one_is_never_changed():
    """Two-element units and a frozen element: the score sees whole units replaced, the frozen one never."""
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0])
    units = torch.tensor([0, 0, 1, 1, -1])
    f = faithfulness_curves(lambda b: b.sum(-1), x, torch.zeros(5), units, np.array([1.0, 5.0]), n_steps=2)
    np.testing.assert_allclose(f.deletion, [110, 103, 100])
    np.testing.assert_allclose(f.insertion, [100, 107, 110])
    with pytest.raises(ValueError, match="units"):
        faithfulness_curves(lambda b: b.sum(-1), x, torch.zeros(5), units, np.array([1.0]))


def test_two_threads_match_sequential():
    def run(model):
        c = cascading_randomisation(model, _saliency(X6), seed=5)
        lin = LinearScore(W).eval()
        f = faithfulness_curves(lin, XL, torch.zeros(16), torch.arange(16), (W * XL).numpy(), n_steps=8, seed=2)
        return [s.attributions for s in c.stages] + [f.deletion, f.insertion, f.deletion_random]

    torch.manual_seed(3)
    sequential = run(Stacked().eval())
    torch.manual_seed(3)
    shared = Stacked().eval()  # same weights, a fresh cache both threads fill at once
    with ThreadPoolExecutor(2) as ex:
        results = list(ex.map(lambda _: run(shared), range(2)))
    for res in results:
        for a, b in zip(res, sequential):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
