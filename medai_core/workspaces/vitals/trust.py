"""Can I trust this map? The generic checks (``medai_core.trust``) run on the forecast pipeline."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from medai_core.explain.base import Explanation, ProgressFn
from medai_core.trust.checks import TrustReport, split_progress
from medai_core.trust.faithfulness import N_RANDOM, N_STEPS, FaithfulnessCurves, faithfulness_curves
from medai_core.trust.randomisation import CascadeResult, cascading_randomisation

if TYPE_CHECKING:
    from medai_core.models.spec import ModelSpec
    from medai_core.io.vitals import VitalSeries


def sanity_check_forecast(model: nn.Module, spec: ModelSpec, series: VitalSeries, signal: str, step_ahead: int,
                          method: str = "integrated_gradients", *, seed: int = 0, progress: ProgressFn | None = None,
                          **params: Any) -> CascadeResult:
    """Cascading randomisation of ``vitals.explain_forecast(...)``; maps (history steps, signals)."""
    from medai_core.workspaces.vitals.pipeline import explain_forecast

    return cascading_randomisation(
        model, lambda m: explain_forecast(m, spec, series, signal, step_ahead, method, copy_model=False,
                                          **params).attributions,
        seed=seed, progress=progress)


def faithfulness_forecast(model: nn.Module, spec: ModelSpec, series: VitalSeries, signal: str, step_ahead: int,
                          attributions: np.ndarray, *, n_steps: int = N_STEPS, n_random: int = N_RANDOM,
                          seed: int = 0, order: str = "positive",
                          progress: ProgressFn | None = None) -> FaithfulnessCurves:
    """Deletion/insertion of (step, signal) cells of the input window (steps before the record starts
    excluded), a removed value set to the training mean with the measurement mask kept (as series IG).
    Score: the median forecast of ``signal`` ``step_ahead`` steps on, in its units."""
    from medai_core.workspaces.vitals.pipeline import forecast_target, model_inputs

    t = forecast_target(spec, series, signal, step_ahead)
    x, m, pad, st = model_inputs(model, spec, series)
    a = np.asarray(attributions, dtype=np.float64)
    if a.shape != tuple(x.shape[1:]):
        raise ValueError(f"attributions {a.shape} do not match the input window {tuple(x.shape[1:])}")
    valid = ~pad[0]
    units = torch.full(x.shape[1:], -1, dtype=torch.long)
    units[valid] = torch.arange(int(valid.sum()) * x.shape[2]).view(-1, x.shape[2])
    sig = next((s for s in spec.extra["series"].signals if s.name == signal), None)
    unit_name = f" ({sig.unit})" if sig is not None and sig.unit else ""

    def score(b: torch.Tensor) -> torch.Tensor:
        n = len(b)
        out = model(b, m.expand(n, -1, -1), pad.expand(n, -1), st.expand(n, -1))
        return out[..., 1].flatten(1)[:, t]

    return faithfulness_curves(score, x[0], torch.zeros_like(x[0]), units, a[valid.numpy()].ravel(),
                               n_steps=n_steps, n_random=n_random, seed=seed, order=order, batch_size=256,
                               score=f"median forecast of {signal}{unit_name}, {step_ahead} step(s) ahead",
                               unit="(step, signal) values", reference_name="training mean, measurement pattern kept",
                               progress=progress)


def trust_forecast(model: nn.Module, spec: ModelSpec, series: VitalSeries, signal: str, step_ahead: int, method: str,
                   exp: Explanation, progress: ProgressFn | None = None) -> TrustReport:
    """Sanity check and faithfulness curves of the (step x signal) map ``exp`` of one forecast."""
    p1, p2 = split_progress(progress)
    cascade = sanity_check_forecast(model, spec, series, signal, step_ahead, method, progress=p1)
    curves = faithfulness_forecast(model, spec, series, signal, step_ahead, exp.attributions, progress=p2)
    return TrustReport(method, f"{signal} +{step_ahead}", cascade, curves)
