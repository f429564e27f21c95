"""Captum explainers for the sepsis early warning, registered by name for modality ``"sepsis"``.

Each takes the model, its input ``(x,)`` (batch 1, the hours up to the explained one, see
``medai_core.models.sepsis``) and the hour's index as target, and returns an ``Explanation`` whose
attributions are (hours, variables): how much each past value of each variable moved that hour's risk
logit. Only the values are attributed; what was measured, and when, is kept (as the forecasters' IG).
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
from medai_core.models.sepsis import N_VARS


class _Logit(nn.Module):
    """(values z (N, T, 34), the rest of the features (N, T, F - 34)) -> logits (N, T)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([z, rest.expand(len(z), -1, -1)], -1))


def _split(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    x = inputs[0]
    return x[..., :N_VARS], x[..., N_VARS:]


@register_explainer("integrated_gradients", modalities={"sepsis"}, label="Integrated Gradients (past values)",
                    signed=True, passes="steps forward + backward passes (batched)", params={"n_steps": 64})
def integrated_gradients_sepsis(model: nn.Module, inputs: tuple[torch.Tensor, ...], target: int, *,
                                n_steps: int = 64, progress: ProgressFn | None = None,
                                batch: int | None = None, memory_mb: float | None = None) -> Explanation:
    """Captum ``IntegratedGradients`` on the standardised values from a baseline where every value is the
    training mean (the measurement pattern kept), for the risk logit of hour ``target``."""
    t0 = time.perf_counter()
    z, rest = _split(inputs)
    module = _Logit(model)
    with model_lock(model):
        batch = resolve_batch(module, (z, rest), True, n_steps, batch, memory_mb)
    fwd = CountingForward(module, 2 + math.ceil(n_steps / batch), progress)
    with model_lock(model), torch.enable_grad():
        attr, delta = IntegratedGradients(fwd).attribute(
            z, baselines=torch.zeros_like(z), target=target, additional_forward_args=(rest,), n_steps=n_steps,
            method="gausslegendre", return_convergence_delta=True, internal_batch_size=batch)
    with torch.no_grad():
        diff = float(module(z, rest)[0, target] - module(torch.zeros_like(z), rest)[0, target])
    d = float(delta.abs().max())
    return Explanation("integrated_gradients", str(target), attr.detach()[0].double().numpy(),
                       {"convergence_delta": d, "relative_delta": d / max(abs(diff), 1e-6), "output_difference": diff},
                       {"n_steps": n_steps}, time.perf_counter() - t0)


@register_explainer("occlusion", modalities={"sepsis"}, label="Occlusion (one past value at a time)",
                    signed=True, passes="hours x variables forward passes (batched)", params={})
def ablation_sepsis(model: nn.Module, inputs: tuple[torch.Tensor, ...], target: int, *,
                    progress: ProgressFn | None = None, batch: int | None = None,
                    memory_mb: float | None = None) -> Explanation:
    """Captum ``FeatureAblation``: each (hour, variable) value replaced by the training mean, alone."""
    t0 = time.perf_counter()
    z, rest = _split(inputs)
    module = _Logit(model)
    n = z.shape[1] * z.shape[2]
    with model_lock(model):
        batch = resolve_batch(module, (z, rest), False, SERIES_CAP, batch, memory_mb)
    fwd = CountingForward(module, math.ceil(n / batch) + 1, progress)
    with model_lock(model), torch.no_grad():
        attr = FeatureAblation(fwd).attribute(z, baselines=0.0, target=target, additional_forward_args=(rest,),
                                              perturbations_per_eval=batch)
    return Explanation("occlusion", str(target), attr[0].double().numpy(), {}, {}, time.perf_counter() - t0)


@register_plan("sepsis", "integrated_gradients")
def _plan_ig(m: nn.Module, x: Any, p: dict[str, Any], memory_mb: float | None) -> Estimate:
    module, args, n = _Logit(m), _split(tuple(x)), int(p["n_steps"])
    b = resolve_batch(module, args, True, n, p.get("batch"), memory_mb)
    return finish(module, args, chunks(n, b, True) + [(4, 1, False)], None, b, f"steps in batches of {b}")


@register_plan("sepsis", "occlusion")
def _plan_occlusion(m: nn.Module, x: Any, p: dict[str, Any], memory_mb: float | None) -> Estimate:
    module, args = _Logit(m), _split(tuple(x))
    b = resolve_batch(module, args, False, SERIES_CAP, p.get("batch"), memory_mb)
    n = args[0].shape[1] * args[0].shape[2]
    return finish(module, args, chunks(n, b, False) + [(1, 1, False)], None, b, f"{n} values in batches of {b}")
