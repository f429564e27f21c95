"""Captum explainers for the tabular (records) model, registered by name.

Each takes a model with ``predict_proba`` (e.g. ``SupportFTT``), one record ``x`` of shape (1, F, 2)
(see ``medai_core.models.support_ftt``) and a reference record of the same shape, and returns an
``Explanation`` with one signed attribution per feature, in probability points of calibrated risk.
The attributions add up to risk(record) - risk(reference) (exactly for Shapley sampling, up to the
convergence delta for Integrated Gradients).
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from captum.attr import LayerIntegratedGradients, ShapleyValueSampling
from torch import nn

from medai_core.explain.base import CountingForward, Explanation, ProgressFn, model_lock, register_explainer, seeded
from medai_core.explain.cost import Estimate, chunks, finish, register_plan, resolve_batch


class _Risk(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.predict_proba(x).unsqueeze(-1)


@register_explainer("shapley_sampling", modalities={"tabular"}, label="Shapley value sampling", signed=True,
                    passes="permutations x features forward passes (batched)", params={"n_samples": 64})
def shapley_sampling(model: nn.Module, x: torch.Tensor, target: int, *, reference: torch.Tensor,
                     n_samples: int = 64, seed: int = 0, progress: ProgressFn | None = None,
                     batch: int | None = None, memory_mb: float | None = None) -> Explanation:
    """Captum ``ShapleyValueSampling``: each feature (value and missing flag together) is swapped for the
    reference's in ``n_samples`` random orders. Exact additivity; discrete and missing values are
    handled without interpolation.

    Captum batches within one order only, so at most one pass per order: ``batch`` (default: from
    the memory budget, at most the number of features) perturbations per pass.
    """
    t0 = time.perf_counter()
    n_feat = x.shape[1]
    mask = torch.arange(n_feat).view(1, n_feat, 1).expand_as(x).contiguous()
    with model_lock(model):
        batch = resolve_batch(_Risk(model), x, False, n_feat, batch, memory_mb)
    fwd = CountingForward(_Risk(model), n_samples * math.ceil(n_feat / batch) + 1, progress)
    with model_lock(model), seeded(seed), torch.no_grad():
        attr = ShapleyValueSampling(fwd).attribute(x, baselines=reference, target=0, feature_mask=mask,
                                                   n_samples=n_samples, perturbations_per_eval=batch)
        risk = float(model.predict_proba(x)[0])
        ref = float(model.predict_proba(reference)[0])
    a = attr[0, :, 0].double().numpy()
    return Explanation("shapley_sampling", str(target), a,
                       {"risk": risk, "reference_risk": ref, "sum_minus_difference": float(a.sum() - (risk - ref))},
                       {"n_samples": n_samples}, time.perf_counter() - t0)


@register_explainer("integrated_gradients", modalities={"tabular"}, label="Integrated Gradients (feature tokens)",
                    signed=True, passes="steps forward + backward passes (batched)", params={"n_steps": 64})
def integrated_gradients_tabular(model: nn.Module, x: torch.Tensor, target: int, *, reference: torch.Tensor,
                                 n_steps: int = 64, progress: ProgressFn | None = None,
                                 batch: int | None = None, memory_mb: float | None = None) -> Explanation:
    """Captum ``LayerIntegratedGradients`` on the feature tokens (the tokenizer's output), from the
    reference record's tokens to this record's, summed over the token dimension; ``batch`` steps per
    pass (default: all of them if the memory budget allows)."""
    t0 = time.perf_counter()
    with model_lock(model):
        batch = resolve_batch(_Risk(model), x, True, n_steps, batch, memory_mb)
    fwd = CountingForward(_Risk(model), 4 + math.ceil(n_steps / batch), progress)
    with model_lock(model), torch.enable_grad():
        lig = LayerIntegratedGradients(fwd, model.tokenizer)
        attr, delta = lig.attribute(x, baselines=reference, target=0, n_steps=n_steps, method="gausslegendre",
                                    return_convergence_delta=True, internal_batch_size=batch)
    with torch.no_grad():
        risk = float(model.predict_proba(x)[0])
        ref = float(model.predict_proba(reference)[0])
    a = attr.detach()[0].sum(-1).double().numpy()
    diff = risk - ref
    d = float(delta.abs().max())
    return Explanation("integrated_gradients", str(target), a,
                       {"risk": risk, "reference_risk": ref, "convergence_delta": d,
                        "relative_delta": d / max(abs(diff), 1e-6)},
                       {"n_steps": n_steps}, time.perf_counter() - t0)


def finite(a: np.ndarray) -> bool:
    return bool(np.isfinite(a).all())


# ---- time estimates (explain.cost): the passes each method makes, with the batches it will use
@register_plan("tabular", "shapley_sampling")
def _plan_shapley(m: nn.Module, x: torch.Tensor, p: dict[str, Any], memory_mb: float | None) -> Estimate:
    module, args, n_feat = _Risk(m), (x,), x.shape[1]
    b = resolve_batch(module, args, False, n_feat, p.get("batch"), memory_mb)
    plan = chunks(n_feat, b, False, times=int(p["n_samples"])) + [(3, 1, False)]
    return finish(module, args, plan, None, b, f"{p['n_samples']} orders x {n_feat} features, batches of {b}")


@register_plan("tabular", "integrated_gradients")
def _plan_ig(m: nn.Module, x: torch.Tensor, p: dict[str, Any], memory_mb: float | None) -> Estimate:
    module, args, n = _Risk(m), (x,), int(p["n_steps"])
    b = resolve_batch(module, args, True, n, p.get("batch"), memory_mb)
    return finish(module, args, chunks(n, b, True) + [(6, 1, False)], None, b, f"steps in batches of {b}")
