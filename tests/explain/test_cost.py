"""Attribution cost: the memory budget, batching that does not change attributions, the time
estimate's pass counts against the passes actually made, cancellation, and thread-safe caches."""
from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from medai_core.errors import Cancelled, ConfigError, InputError, MedAIError
from medai_core.explain import cost
from medai_core.explain.base import cancellable, explainer_for, thread_copy
from medai_core.explain.image import integrated_gradients, occlusion, smoothgrad
from tests.explain.test_explainers import Quadratic


class TinyCNN(nn.Module):
    """Small enough that every pass-count check runs in milliseconds."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.conv(x)).mean((2, 3)))


def _tiny() -> nn.Module:
    return thread_copy(TinyCNN().eval())


def _calls(module: nn.Module) -> tuple[list[tuple[int, bool]], object]:
    calls: list[tuple[int, bool]] = []
    handle = module.register_forward_pre_hook(lambda _m, a: calls.append((a[0].shape[0], torch.is_grad_enabled())))
    return calls, handle


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               for m in model.modules())


# ---- budget --------------------------------------------------------------------------------------

def test_budget_default_and_environment(monkeypatch):
    monkeypatch.delenv(cost.MEMORY_ENV, raising=False)
    assert cost.attribution_memory_mb() == cost.DEFAULT_MEMORY_MB
    monkeypatch.setenv(cost.MEMORY_ENV, " 256 ")
    assert cost.attribution_memory_mb() == 256.0
    monkeypatch.setenv(cost.MEMORY_ENV, "")
    assert cost.attribution_memory_mb() == cost.DEFAULT_MEMORY_MB


@pytest.mark.parametrize("raw", ["abc", "0", "-5", "nan", "inf", "512MB"])
def test_budget_rejects_bad_values(raw):
    with pytest.raises(ConfigError, match=cost.MEMORY_ENV):
        cost.attribution_memory_mb(raw)
    assert not issubclass(ConfigError, InputError)


def test_batch_grows_with_budget_and_respects_the_cap():
    m, x = _tiny(), torch.rand(1, 1, 32, 32)
    per_row = cost.activation_bytes(m, x)
    assert per_row > x.nelement() * 4  # conv output alone is 4 channels of 32 x 32 floats
    budgets = [0.001, 0.01, 0.1, 1, 10, 100, 1000]
    for backward in (False, True):
        sizes = [cost.batch_for_budget(m, x, b, backward, cap=10_000) for b in budgets]
        assert sizes == sorted(sizes) and sizes[0] == 1
        assert all(s == 10_000 or s & (s - 1) == 0 for s in sizes)  # powers of two below the cap
        assert cost.batch_for_budget(m, x, 1000, backward) == cost.MAX_BATCH
    # a backward pass is budgeted at BACKWARD_FACTOR times the forward's bytes
    fwd = cost.batch_for_budget(m, x, 1, False, cap=10_000)
    bwd = cost.batch_for_budget(m, x, 1, True, cap=10_000)
    assert bwd <= fwd / 2


def test_explicit_batch_wins_and_is_checked():
    m, x = _tiny(), torch.rand(1, 1, 16, 16)
    assert cost.resolve_batch(m, x, True, 64, batch=3) == 3
    with pytest.raises(InputError):
        cost.resolve_batch(m, x, True, 64, batch=0)


def test_environment_budget_reaches_the_explainer(monkeypatch):
    m, x = _tiny(), torch.rand(1, 1, 32, 32)
    calls, h = _calls(m)
    monkeypatch.setenv(cost.MEMORY_ENV, "0.0001")  # smaller than one row: one window per pass
    occlusion(m, x, 0, window=16, stride=16)
    h.remove()
    assert Counter(calls) == Counter({(1, False): 5})


# ---- batching does not change attributions -------------------------------------------------------

@pytest.mark.parametrize("batch", [1, 3, 16, 64])
def test_ig_is_the_same_for_every_batch_size_on_an_analytic_model(batch):
    model, x = thread_copy(Quadratic().eval()), torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    ref = integrated_gradients(model, x, 0, n_steps=16, max_steps=16, internal_batch_size=16).attributions
    got = integrated_gradients(model, x, 0, n_steps=16, max_steps=16, internal_batch_size=batch).attributions
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_batching_does_not_change_attributions_on_busi(busi):
    model, _ = busi
    m = thread_copy(model)
    x = torch.rand(1, 1, 128, 128, generator=torch.Generator().manual_seed(2))
    a = integrated_gradients(m, x, 0, n_steps=16, max_steps=16, internal_batch_size=16).attributions
    b = integrated_gradients(m, x, 0, n_steps=16, max_steps=16, internal_batch_size=5).attributions
    np.testing.assert_allclose(b, a, atol=1e-5 * np.abs(a).max())
    a = occlusion(m, x, 0, window=32, stride=32, batch=16).attributions
    b = occlusion(m, x, 0, window=32, stride=32, batch=3).attributions
    np.testing.assert_allclose(b, a, atol=1e-5 * np.abs(a).max())
    a = smoothgrad(m, x, 0, nt_samples=8, batch=8).attributions
    b = smoothgrad(m, x, 0, nt_samples=8, batch=2).attributions
    # noise is drawn per batch from one seeded generator, in the same order
    np.testing.assert_allclose(b, a, atol=1e-5 * np.abs(a).max())


def test_default_budget_batches_at_least_as_large_as_before_on_busi(busi):
    model, spec = busi
    m, x = thread_copy(model), torch.rand(1, 1, *spec.input_size)
    mb = cost.DEFAULT_MEMORY_MB
    assert cost.batch_for_budget(m, x, mb, True, cost.IMAGE_IG_CAP) >= 16  # IG and SmoothGrad used 16
    assert cost.batch_for_budget(m, x, mb, False, cost.IMAGE_CAP) >= 64  # occlusion used 64


# ---- the estimate counts the passes the explainer makes ------------------------------------------

IMAGE_CASES = [
    ("gradcam", {"layer": "conv"}),
    ("integrated_gradients", {"n_steps": 16, "max_steps": 16}),
    ("integrated_gradients", {"n_steps": 20, "max_steps": 20, "internal_batch_size": 8}),
    ("smoothgrad", {"nt_samples": 10, "batch": 4}),
    ("smoothgrad", {"nt_samples": 8}),
    ("occlusion", {"window": 8, "stride": 4}),
    ("occlusion", {"window": 8, "stride": 8, "batch": 5}),
]


@pytest.mark.parametrize(("method", "params"), IMAGE_CASES)
def test_image_estimate_counts_every_pass(method, params):
    m, x = _tiny(), torch.rand(1, 1, 32, 32)
    est = cost.estimate_seconds(m, "image", x, method, params)
    calls, h = _calls(m)
    explainer_for(method, "image")[0](m, x, 0, **params)
    h.remove()
    assert est.passes == len(calls)
    assert 0 < est.seconds <= est.seconds_max and est.pass_seconds > 0
    assert max(rows for rows, _ in calls) == min(est.batch, max(rows for rows, _ in calls))


def test_ig_estimate_worst_case_covers_every_doubling():
    m, x = _tiny(), torch.rand(1, 1, 32, 32)
    one = cost.estimate_seconds(m, "image", x, "integrated_gradients", {"n_steps": 16, "max_steps": 16})
    up = cost.estimate_seconds(m, "image", x, "integrated_gradients", {"n_steps": 16, "max_steps": 64})
    assert up.seconds == pytest.approx(one.seconds) and up.seconds_max > 2 * one.seconds


@pytest.fixture(scope="module")
def ftt():
    from medai_core.models import load_model
    from medai_core.models.support_ftt import encode_records
    from medai_core.workspaces.records.pipeline import reference_record
    from medai_core.workspaces.records.samples import synthetic_records

    m = thread_copy(load_model("support_ftt"))
    return m, encode_records(synthetic_records(1)), reference_record(m)


@pytest.mark.parametrize(("method", "params"), [("shapley_sampling", {"n_samples": 3}),
                                                ("shapley_sampling", {"n_samples": 2, "batch": 5}),
                                                ("integrated_gradients", {"n_steps": 8}),
                                                ("integrated_gradients", {"n_steps": 8, "batch": 3})])
def test_tabular_estimate_counts_every_pass(ftt, method, params):
    m, x, ref = ftt
    est = cost.estimate_seconds(m, "tabular", x, method, {**params, "reference": ref})
    calls, h = _calls(m)
    explainer_for(method, "tabular")[0](m, x, 1, reference=ref, **params)
    h.remove()
    assert est.passes == len(calls)


def test_text_estimate_counts_every_pass():
    from medai_core.models import get_spec, load_model
    from medai_core.workspaces.notes.pipeline import encode_note, load_vocab

    spec = get_spec("notes_tfm")
    m = thread_copy(load_model("notes_tfm"))
    ids = encode_note("chest pain and shortness of breath " * 8, load_vocab(spec), spec).ids
    for params in ({"n_steps": 4, "max_steps": 4}, {"n_steps": 4, "max_steps": 4, "batch": 2 * ids.shape[0]}):
        est = cost.estimate_seconds(m, "text", ids, "integrated_gradients", params)
        calls, h = _calls(m)
        explainer_for("integrated_gradients", "text")[0](m, ids, 0, **params)
        h.remove()
        assert est.passes == len(calls)


def test_series_estimate_counts_every_pass():
    from medai_core.io.vitals import to_series
    from medai_core.models import get_spec, load_model
    from medai_core.models.forecaster import ICU_SERIES
    from medai_core.workspaces.vitals.samples import synthetic_icu_case
    from medai_core.workspaces.vitals.pipeline import model_inputs

    spec = get_spec("icu_gru")
    m = thread_copy(load_model("icu_gru"))
    inputs = model_inputs(m, spec, to_series(synthetic_icu_case("stable").astype(str), ICU_SERIES))
    for method, params in [("integrated_gradients", {"n_steps": 8}), ("integrated_gradients", {"n_steps": 8, "batch": 3}),
                           ("occlusion", {}), ("occlusion", {"batch": 50})]:
        est = cost.estimate_seconds(m, "series", inputs, method, params)
        calls, h = _calls(m)
        explainer_for(method, "series")[0](m, inputs, 0, **params)
        h.remove()
        assert est.passes == len(calls), (method, params)


def test_no_estimate_is_an_input_error():
    with pytest.raises(InputError):
        cost.estimate_seconds(_tiny(), "tabular", torch.zeros(1, 3, 2), "gradcam", {})


# ---- cancel ------------------------------------------------------------------------------------

def test_cancel_stops_ig_within_one_batch_and_leaves_no_hooks():
    m, x = _tiny(), torch.rand(1, 1, 32, 32)
    stop = threading.Event()
    seen: list[float] = []

    def progress(f: float) -> None:
        seen.append(f)
        if len(seen) == 2:
            stop.set()  # the user presses Cancel while batch 3 runs

    calls, h = _calls(m)
    with pytest.raises(Cancelled):
        integrated_gradients(m, x, 0, n_steps=64, internal_batch_size=4, progress=cancellable(progress, stop))
    h.remove()
    assert len(calls) == 3 and len(seen) == 2  # 16 batches asked; stopped after the next one
    assert issubclass(Cancelled, MedAIError) and not issubclass(Cancelled, InputError)
    assert _no_hooks(m)


def test_cancel_removes_captum_layer_hooks(ftt):
    m, x, ref = ftt
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        explainer_for("integrated_gradients", "tabular")[0](m, x, 1, reference=ref, n_steps=8, batch=2,
                                                            progress=cancellable(None, stop))
    assert _no_hooks(m)
    exp = explainer_for("integrated_gradients", "tabular")[0](m, x, 1, reference=ref, n_steps=8)
    assert np.isfinite(exp.attributions).all()  # the model still explains after a cancel


# ---- thread-safe caches --------------------------------------------------------------------------

def test_caches_are_thread_safe():
    cost.clear_caches()
    shared, x = TinyCNN().eval(), torch.rand(1, 1, 24, 24)
    out: dict[str, tuple] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(name: str) -> None:
        try:
            start.wait()
            m = thread_copy(shared)  # each thread its own copy; cache keys are the architecture
            got = []
            for _ in range(20):
                got.append(cost.batch_for_budget(m, x, 0.5, True, cap=4096))
                got.append(cost.pass_seconds(m, x, 4, True, repeats=1) > 0)
            est = cost.estimate_seconds(shared, "image", x, "occlusion", {"window": 8, "stride": 8})
            out[name] = (tuple(got), est.passes, est.batch)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert out["a"] == out["b"]
    assert _no_hooks(shared)
