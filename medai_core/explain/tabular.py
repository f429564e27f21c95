"""Explainers for the tabular (records) model, registered by name: Shapley value sampling (Captum's
algorithm and permutations, batched across orders here) and Captum's Integrated Gradients.

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
from captum.attr import LayerIntegratedGradients
from torch import nn

from medai_core.errors import InputError
from medai_core.explain.base import CountingForward, Explanation, ProgressFn, model_lock, register_explainer, seeded
from medai_core.explain.cost import Estimate, chunks, finish, register_plan, resolve_batch


class _Risk(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.predict_proba(x).unsqueeze(-1)


SHAPLEY_CAP = 256  # rows per pass: 128-256 were fastest for support_ftt at one thread (24 features, 1,536 rows)


def permutation_steps(n_feat: int, n_samples: int) -> torch.Tensor:
    """``n_samples`` random orders of the features, drawn as Captum's ``ShapleyValueSampling`` draws
    them (one ``torch.randperm`` per order from the global generator): (n_samples, n_feat)."""
    return torch.stack([torch.randperm(n_feat) for _ in range(n_samples)])


def changed_features(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(F,) bool: the features whose value or missing flag differs from the reference's (NaN counts as changed)."""
    return (x[0] != reference[0]).any(-1)


def shapley_from_orders(risk: nn.Module, x: torch.Tensor, reference: torch.Tensor, orders: torch.Tensor, batch: int,
                        ) -> torch.Tensor:
    """Shapley value sampling over the given feature ``orders`` (n, F), all orders batched together.

    Captum walks one order at a time (one pass per order, at most F rows); the inputs of every step
    of every order are known before any is scored, so here they are scored ``batch`` rows at a time
    across orders, and each step's gain (its risk minus the previous step's) is credited to the
    feature it switched on. Gains are added order by order, as Captum adds them.

    A feature equal to the reference's changes nothing when it is switched on: its step repeats the
    previous input, so its gain is exactly zero and the other features' gains are unchanged. Those
    steps are not scored (a record typed from the pre-filled form, the reference itself, costs one
    pass). ``risk`` maps (B, F, 2) records to (B, 1). Returns (F,) float32 attributions.
    """
    n, n_feat = orders.shape
    changed = changed_features(x, reference)
    total = torch.zeros(n_feat)
    base = risk(reference)[:, 0]
    c = int(changed.sum())
    if c == 0:
        return total
    orders = orders[changed[orders]].view(n, c)  # each order's changed features, in its order
    rank = torch.zeros(n, n_feat, dtype=torch.long).scatter_(1, orders, torch.arange(c).expand(n, c))
    # row (s, k): the record after step k of order s, i.e. the changed features ranked <= k take x's values
    on = (changed & (rank.unsqueeze(1) <= torch.arange(c).view(1, c, 1))).reshape(n * c, n_feat, 1)
    scores = torch.cat([risk(torch.where(on[i:i + batch], x[0], reference[0]))[:, 0]
                        for i in range(0, len(on), batch)]).view(n, c)
    gains = scores - torch.cat([base.expand(n, 1), scores[:, :-1]], 1)
    for s in range(n):
        step = torch.zeros(n_feat)
        step[orders[s]] = gains[s]
        total += step
    return total / n


@register_explainer("shapley_sampling", modalities={"tabular"}, label="Shapley value sampling", signed=True,
                    passes="permutations x changed features rows, batched across permutations", params={"n_samples": 64})
def shapley_sampling(model: nn.Module, x: torch.Tensor, target: int, *, reference: torch.Tensor,
                     n_samples: int = 64, seed: int = 0, progress: ProgressFn | None = None,
                     batch: int | None = None, memory_mb: float | None = None) -> Explanation:
    """Shapley value sampling: each feature (value and missing flag together) is swapped for the
    reference's in ``n_samples`` random orders. Exact additivity; discrete and missing values are
    handled without interpolation.

    The same orders and values as Captum's ``ShapleyValueSampling`` with the same seed (tested against
    it), but Captum makes one pass per order; here every step of every order is scored in passes of
    ``batch`` rows (default: from the memory budget, at most ``SHAPLEY_CAP``), about twice as fast
    (issue 18: this explanation was a fifth of a loaded server's time). Features equal to the reference's
    get exactly zero and are not scored (see ``shapley_from_orders``).
    """
    t0 = time.perf_counter()
    n_samples, n_feat = int(n_samples), x.shape[1]
    if n_samples < 1:
        raise InputError(f"Shapley value sampling needs at least 1 permutation, not {n_samples}.")
    rows = n_samples * int(changed_features(x, reference).sum())
    with model_lock(model):
        batch = resolve_batch(_Risk(model), x, False, max(1, min(SHAPLEY_CAP, rows)), batch, memory_mb)
    fwd = CountingForward(_Risk(model), math.ceil(rows / batch) + 1, progress)
    with seeded(seed):
        orders = permutation_steps(n_feat, n_samples)
    with model_lock(model), torch.no_grad():
        attr = shapley_from_orders(fwd, x, reference, orders, batch)
        risk = float(model.predict_proba(x)[0])
        ref = float(model.predict_proba(reference)[0])
    a = attr.double().numpy()
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
    """Features equal to the reference's are not scored: with ``reference`` in the parameters the estimate
    counts the changed ones, else all (an upper bound)."""
    module, args = _Risk(m), (x,)
    ref = p.get("reference")
    n_feat = int(changed_features(x, ref).sum()) if ref is not None else x.shape[1]
    rows = int(p["n_samples"]) * n_feat
    b = resolve_batch(module, args, False, max(1, min(SHAPLEY_CAP, rows)), p.get("batch"), memory_mb)
    plan = chunks(rows, b, False) + [(3, 1, False)]
    return finish(module, args, plan, None, b, f"{p['n_samples']} orders x {n_feat} changed features, "
                  f"{b} rows per batch")


@register_plan("tabular", "integrated_gradients")
def _plan_ig(m: nn.Module, x: torch.Tensor, p: dict[str, Any], memory_mb: float | None) -> Estimate:
    module, args, n = _Risk(m), (x,), int(p["n_steps"])
    b = resolve_batch(module, args, True, n, p.get("batch"), memory_mb)
    return finish(module, args, chunks(n, b, True) + [(6, 1, False)], None, b, f"steps in batches of {b}")
