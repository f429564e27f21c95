"""Captum explainers for quantile forecasters, registered by name.

Each takes a forecaster, its inputs ``(x, m, pad, static)`` (batch 1, see
``medai_core.models.forecaster``) and a target index ``h * n_targets + t`` (step ahead h, 0-based, and
target signal t), and returns an ``Explanation`` whose attributions are (history steps, signals): how
much each past value moved that median forecast.
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch
from captum.attr import FeatureAblation, IntegratedGradients
from torch import nn

from medai_core.explain.base import CountingForward, Explanation, ProgressFn, model_lock, register_explainer
from medai_core.explain.cost import SERIES_CAP, Estimate, chunks, finish, register_plan, resolve_batch


class _Median(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x, m, pad, static):  # noqa: ANN001, ANN201 - tensors
        return self.model(x, m, pad, static)[..., 1].flatten(1)


@register_explainer("integrated_gradients", modalities={"series"}, label="Integrated Gradients (past values)",
                    signed=True, passes="steps forward + backward passes (batched)", params={"n_steps": 64})
def integrated_gradients_series(model: nn.Module, inputs: tuple[torch.Tensor, ...], target: int, *,
                                n_steps: int = 64, progress: ProgressFn | None = None,
                                batch: int | None = None, memory_mb: float | None = None) -> Explanation:
    """Captum ``IntegratedGradients`` on the standardised past values, from a baseline where every value is
    the training mean (what was measured, and when, is kept), in the forecast's own units; ``batch``
    steps per pass (default: all of them if the memory budget allows)."""
    t0 = time.perf_counter()
    x, m, pad, static = inputs
    with model_lock(model):
        batch = resolve_batch(_Median(model), inputs, True, n_steps, batch, memory_mb)
    fwd = CountingForward(_Median(model), 2 + math.ceil(n_steps / batch), progress)
    with model_lock(model), torch.enable_grad():
        attr, delta = IntegratedGradients(fwd).attribute(
            x, baselines=torch.zeros_like(x), target=target, additional_forward_args=(m, pad, static),
            n_steps=n_steps, method="gausslegendre", return_convergence_delta=True, internal_batch_size=batch)
    with torch.no_grad():
        diff = float(_Median(model)(x, m, pad, static)[0, target] - _Median(model)(torch.zeros_like(x), m, pad, static)[0, target])
    d = float(delta.abs().max())
    return Explanation("integrated_gradients", str(target), attr.detach()[0].double().numpy(),
                       {"convergence_delta": d, "relative_delta": d / max(abs(diff), 1e-6), "output_difference": diff},
                       {"n_steps": n_steps}, time.perf_counter() - t0)


@register_explainer("occlusion", modalities={"series"}, label="Occlusion (one past value at a time)",
                    signed=True, passes="steps x signals forward passes (batched)", params={})
def ablation_series(model: nn.Module, inputs: tuple[torch.Tensor, ...], target: int, *,
                    progress: ProgressFn | None = None, batch: int | None = None,
                    memory_mb: float | None = None) -> Explanation:
    """Captum ``FeatureAblation``: each (step, signal) value replaced by the training mean, alone;
    ``batch`` values per pass (default: from the memory budget)."""
    t0 = time.perf_counter()
    x, m, pad, static = inputs
    n = x.shape[1] * x.shape[2]
    with model_lock(model):
        batch = resolve_batch(_Median(model), inputs, False, SERIES_CAP, batch, memory_mb)
    fwd = CountingForward(_Median(model), math.ceil(n / batch) + 1, progress)
    with model_lock(model), torch.no_grad():
        attr = FeatureAblation(fwd).attribute(x, baselines=0.0, target=target, additional_forward_args=(m, pad, static),
                                              perturbations_per_eval=batch)
    return Explanation("occlusion", str(target), attr[0].double().numpy(), {}, {}, time.perf_counter() - t0)


# ---- time estimates (explain.cost): the passes each method makes, with the batches it will use
@register_plan("series", "integrated_gradients")
def _plan_ig(m: nn.Module, x: Any, p: dict[str, Any], memory_mb: float | None) -> Estimate:
    module, args, n = _Median(m), tuple(x), int(p["n_steps"])
    b = resolve_batch(module, args, True, n, p.get("batch"), memory_mb)
    return finish(module, args, chunks(n, b, True) + [(4, 1, False)], None, b, f"steps in batches of {b}")


@register_plan("series", "occlusion")
def _plan_occlusion(m: nn.Module, x: Any, p: dict[str, Any], memory_mb: float | None) -> Estimate:
    module, args = _Median(m), tuple(x)
    b = resolve_batch(module, args, False, SERIES_CAP, p.get("batch"), memory_mb)
    n = x[0].shape[1] * x[0].shape[2]
    return finish(module, args, chunks(n, b, False) + [(1, 1, False)], None, b, f"{n} values in batches of {b}")
