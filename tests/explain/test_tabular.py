"""Tabular explainers: the batched Shapley value sampling against Captum's and against exact values."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import ShapleyValueSampling
from torch import nn

from medai_core.errors import InputError
from medai_core.explain.base import thread_copy
from medai_core.explain.tabular import _Risk, shapley_sampling


class _Additive(nn.Module):
    """risk = sum_f w_f * value_f + v_f * missing_f: its Shapley values are exact per feature."""

    def __init__(self, n_feat: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w = torch.randn(n_feat, generator=g)
        self.v = torch.randn(n_feat, generator=g)

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return (x[..., 0] * self.w + x[..., 1] * self.v).sum(-1)


@pytest.fixture(scope="module")
def ftt():
    from medai_core.models import load_model
    from medai_core.models.support_ftt import encode_records
    from medai_core.workspaces.records.pipeline import reference_record
    from medai_core.workspaces.records.samples import synthetic_records

    m = thread_copy(load_model("support_ftt"))
    return m, encode_records(synthetic_records(3, seed=5)), reference_record(m)


def _captum(model: nn.Module, x: torch.Tensor, ref: torch.Tensor, n: int, seed: int, per_eval: int) -> np.ndarray:
    mask = torch.arange(x.shape[1]).view(1, -1, 1).expand_as(x).contiguous()
    torch.manual_seed(seed)
    with torch.no_grad():
        a = ShapleyValueSampling(_Risk(model)).attribute(x, baselines=ref, target=0, feature_mask=mask, n_samples=n,
                                                        perturbations_per_eval=per_eval)
    return a[0, :, 0].double().numpy()


@pytest.mark.parametrize(("row", "n_samples", "seed", "batch"), [(0, 64, 0, None), (1, 7, 3, 5), (2, 1, 11, 1),
                                                                 (0, 20, 5, 1000)])
def test_shapley_equals_captums_on_the_trained_model(ftt, row, n_samples, seed, batch):
    """Same permutations (drawn as Captum draws them) and the same values, whatever the batching."""
    m, xs, ref = ftt
    x = xs[row:row + 1]
    ours = shapley_sampling(m, x, 1, reference=ref, n_samples=n_samples, seed=seed, batch=batch).attributions
    theirs = _captum(m, x, ref, n_samples, seed, per_eval=x.shape[1])
    assert np.abs(theirs).max() > 1e-3  # a record that differs from the reference
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    # another seed draws other orders: the test would see a wrong draw
    if n_samples > 1:
        other = _captum(m, x, ref, n_samples, seed + 1, per_eval=1)
        assert np.abs(other - theirs).max() > 1e-5


def test_shapley_is_exact_for_an_additive_model_and_adds_up():
    torch.manual_seed(0)
    model = _Additive(6)
    x, ref = torch.randn(1, 6, 2), torch.randn(1, 6, 2)
    exp = shapley_sampling(model, x, 1, reference=ref, n_samples=5, batch=4)
    exact = (model.w * (x[0, :, 0] - ref[0, :, 0]) + model.v * (x[0, :, 1] - ref[0, :, 1])).double().numpy()
    np.testing.assert_allclose(exp.attributions, exact, atol=1e-5)
    assert abs(exp.diagnostics["sum_minus_difference"]) < 1e-5
    assert exp.params == {"n_samples": 5}


def test_shapley_reports_progress_per_pass_and_refuses_no_permutations():
    model, x, ref = _Additive(4), torch.ones(1, 4, 2), torch.zeros(1, 4, 2)
    seen: list[float] = []
    shapley_sampling(model, x, 1, reference=ref, n_samples=3, batch=5, progress=seen.append)
    # 12 rows in passes of 5 (3 passes) plus the reference's pass
    assert len(seen) == 4 and seen == sorted(seen) and seen[-1] == 1.0
    with pytest.raises(InputError, match="at least 1 permutation"):
        shapley_sampling(model, x, 1, reference=ref, n_samples=0)


def test_features_equal_to_the_reference_are_not_scored_and_get_zero(ftt):
    """A feature the record shares with the reference changes no input when switched on: exactly zero, no
    rows scored for it, and the other features' values are still Captum's."""
    m, xs, ref = ftt
    x = xs[1:2].clone()
    same = torch.arange(x.shape[1]) % 3 == 0
    x[0, same] = ref[0, same]
    changed = int((x[0] != ref[0]).any(-1).sum())
    assert 0 < changed < x.shape[1]
    seen: list[float] = []
    exp = shapley_sampling(m, x, 1, reference=ref, n_samples=16, seed=2, batch=7, progress=seen.append)
    assert (exp.attributions[same.numpy()] == 0).all()
    np.testing.assert_allclose(exp.attributions, _captum(m, x, ref, 16, 2, per_eval=x.shape[1]), rtol=0, atol=1e-6)
    assert len(seen) == -(-16 * changed // 7) + 1  # passes over the changed features' steps, plus the reference
    # the pre-filled form's record is the reference itself: one pass, all zero, adds up
    seen.clear()
    exp = shapley_sampling(m, ref.clone(), 1, reference=ref, progress=seen.append)
    assert len(seen) == 1 and (exp.attributions == 0).all() and exp.diagnostics["sum_minus_difference"] == 0
