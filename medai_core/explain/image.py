"""Captum explainers for image classifiers, registered by name.

Each takes a model, a (1, C, H, W) input in [0, 1] and a target class index and returns an
``Explanation`` whose attributions are (H, W) at the model's input resolution.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import (IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Occlusion,
                         Saliency)
from torch import nn

from medai_core.errors import InputError
from medai_core.explain.base import CountingForward, Explanation, ProgressFn, model_lock, refine_steps, register_explainer, seeded
from medai_core.explain.cost import (IMAGE_CAP, IMAGE_IG_CAP, Estimate, chunks, doublings, finish, image_windows,
                                     register_plan, resolve_batch)

IG_BASELINES = ("black", "blurred", "mean", "noise")


def _layer(model: nn.Module, dotted: str) -> nn.Module:
    mod = model
    for part in dotted.split("."):
        mod = getattr(mod, part)
    return mod


def _sum_channels(a: torch.Tensor) -> np.ndarray:
    return a.detach().sum(1)[0].float().numpy()


@register_explainer("gradcam", modalities={"image"}, label="Grad-CAM", signed=False, passes="1 forward + 1 backward",
                    params={"layer": None})
def gradcam(model: nn.Module, x: torch.Tensor, target: int, *, layer: str = "layer4",
            progress: ProgressFn | None = None) -> Explanation:
    """LayerGradCam on ``layer`` (ReLU of gradient-weighted activations), upsampled bilinearly."""
    t0 = time.perf_counter()
    fwd = CountingForward(model, 1, progress)
    with model_lock(model), torch.enable_grad():
        inp = x.clone().requires_grad_(True)
        cam = LayerGradCam(fwd, _layer(model, layer)).attribute(inp, target=target, relu_attributions=True)
        up = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return Explanation("gradcam", str(target), up.detach()[0, 0].numpy(), {}, {"layer": layer},
                       time.perf_counter() - t0)


def ig_baseline(x: torch.Tensor, kind: str, model: nn.Module | None = None) -> torch.Tensor:
    """IG reference input: black, blurred copy, training-mean grey, or seeded uniform noise."""
    if kind == "black":
        return torch.zeros_like(x)
    if kind == "mean":
        mean = float(getattr(model, "pixel_mean", 0.5)) if model is not None else 0.5
        return torch.full_like(x, mean)
    if kind == "blurred":
        k = 21
        sigma = x.shape[-1] / 16
        g = torch.exp(-((torch.arange(k) - k // 2) ** 2) / (2 * sigma**2))
        g = (g / g.sum()).to(x.dtype)
        c = x.shape[1]
        y = F.conv2d(F.pad(x, (k // 2, k // 2, 0, 0), mode="reflect"), g.view(1, 1, 1, k).repeat(c, 1, 1, 1), groups=c)
        return F.conv2d(F.pad(y, (0, 0, k // 2, k // 2), mode="reflect"), g.view(1, 1, k, 1).repeat(c, 1, 1, 1), groups=c)
    if kind == "noise":
        gen = torch.Generator().manual_seed(0)
        return torch.rand(x.shape, generator=gen, dtype=x.dtype)
    raise InputError(f"Unknown baseline {kind!r}; choose one of {', '.join(IG_BASELINES)}.")


@register_explainer("integrated_gradients", modalities={"image"}, label="Integrated Gradients", signed=True,
                    passes="n_steps forward + backward (doubled until delta <= 1%)", params={"n_steps": 64, "baseline": "black"})
def integrated_gradients(model: nn.Module, x: torch.Tensor, target: int, *, n_steps: int = 64,
                         baseline: str = "black", progress: ProgressFn | None = None,
                         internal_batch_size: int | None = None, max_relative_delta: float = 0.01,
                         max_steps: int = 128, memory_mb: float | None = None) -> Explanation:
    """Integrated Gradients (Gauss-Legendre) with its convergence delta.

    ``delta`` = sum(attributions) - (F(x) - F(baseline)); ``relative_delta`` divides by
    |F(x) - F(baseline)|, the completeness error as a fraction of what is being explained. Starts at
    ``n_steps`` and doubles them (up to ``max_steps``) while that error exceeds ``max_relative_delta``.
    Steps are evaluated ``internal_batch_size`` at a time, by default as many as the memory budget
    allows (``memory_mb``, else ``MEDAI_ATTRIBUTION_MEMORY_MB``; see ``explain.cost``).
    """
    with model_lock(model):
        batch = resolve_batch(model, x, True, IMAGE_IG_CAP, internal_batch_size, memory_mb)
    return refine_steps(lambda n: _ig_image(model, x, target, n, baseline, progress, batch),
                        n_steps, max_relative_delta, max_steps)


def _ig_image(model: nn.Module, x: torch.Tensor, target: int, n_steps: int, baseline: str,
              progress: ProgressFn | None, internal_batch_size: int) -> Explanation:
    t0 = time.perf_counter()
    base = ig_baseline(x, baseline, model)
    fwd = CountingForward(model, math.ceil(n_steps / internal_batch_size), progress)
    with model_lock(model), torch.enable_grad():
        attr, delta = IntegratedGradients(fwd).attribute(
            x, baselines=base, target=target, n_steps=n_steps, internal_batch_size=internal_batch_size,
            return_convergence_delta=True)
        with torch.no_grad():
            diff = float(model(x)[0, target] - model(base)[0, target])
    d = float(delta.abs().sum())
    return Explanation("integrated_gradients", str(target), _sum_channels(attr),
                       {"convergence_delta": d, "output_difference": diff,
                        "relative_delta": d / max(abs(diff), 1e-8)},
                       {"n_steps": n_steps, "baseline": baseline}, time.perf_counter() - t0)


@register_explainer("smoothgrad", modalities={"image"}, label="Saliency + SmoothGrad", signed=False,
                    passes="nt_samples forward + backward", params={"nt_samples": 16, "stdev": 0.1})
def smoothgrad(model: nn.Module, x: torch.Tensor, target: int, *, nt_samples: int = 16, stdev: float = 0.1,
               progress: ProgressFn | None = None, batch: int | None = None,
               memory_mb: float | None = None) -> Explanation:
    """Absolute input gradients averaged over noisy copies (NoiseTunnel, smoothgrad), ``batch`` copies
    per pass (default: from the memory budget)."""
    t0 = time.perf_counter()
    with model_lock(model):
        batch = min(nt_samples, resolve_batch(model, x, True, IMAGE_CAP, batch, memory_mb))
    fwd = CountingForward(model, math.ceil(nt_samples / batch), progress)
    with model_lock(model), seeded(0), torch.enable_grad():  # the noise draws: same input, same map
        attr = NoiseTunnel(Saliency(fwd)).attribute(
            x, target=target, nt_type="smoothgrad", nt_samples=nt_samples, stdevs=stdev,
            nt_samples_batch_size=batch)
    return Explanation("smoothgrad", str(target), _sum_channels(attr), {},
                       {"nt_samples": nt_samples, "stdev": stdev}, time.perf_counter() - t0)


@register_explainer("occlusion", modalities={"image"}, label="Occlusion", signed=True,
                    passes="one forward per window position", params={"window": 16, "stride": 8})
def occlusion(model: nn.Module, x: torch.Tensor, target: int, *, window: int = 16, stride: int = 8,
              progress: ProgressFn | None = None, batch: int | None = None,
              memory_mb: float | None = None) -> Explanation:
    """Drop in the target logit when a window is replaced by the training-mean grey; ``batch`` windows
    per pass (default: from the memory budget)."""
    t0 = time.perf_counter()
    n = image_windows(x.shape[-2], x.shape[-1], window, stride)
    with model_lock(model):
        batch = resolve_batch(model, x, False, IMAGE_CAP, batch, memory_mb)
    fwd = CountingForward(model, math.ceil(n / batch) + 1, progress)
    fill = float(getattr(model, "pixel_mean", 0.5))
    with model_lock(model), torch.no_grad():
        attr = Occlusion(fwd).attribute(x, sliding_window_shapes=(x.shape[1], window, window),
                                        strides=(x.shape[1], stride, stride), target=target,
                                        baselines=fill, perturbations_per_eval=batch)
    return Explanation("occlusion", str(target), _sum_channels(attr), {},
                       {"window": window, "stride": stride}, time.perf_counter() - t0)


@register_explainer("attention", modalities={"image"}, label="Attention map", signed=False, passes="1 forward pass",
                    hooks=False)
def attention(model: nn.Module, x: torch.Tensor, target: int, *, progress: ProgressFn | None = None) -> Explanation:
    """The weights the attention-pooling head gave each cell of its feature grid, upsampled bilinearly.

    The same for every class (it is where the model pooled from, not which way the evidence pushed); models
    that pool without attention have none."""
    if not callable(getattr(model, "attention", None)):
        raise InputError("This model pools its features without attention, so it has no attention map; "
                         "choose Grad-CAM or another explainer.")
    t0 = time.perf_counter()
    fwd = CountingForward(model.attention, 1, progress)
    with model_lock(model), torch.no_grad():
        grid = fwd(x)
    return attention_from_grid(grid[0], tuple(x.shape[-2:]), str(target), time.perf_counter() - t0)


def attention_from_grid(grid: torch.Tensor | np.ndarray, size: tuple[int, int], target: str = "",
                        seconds: float = 0.0) -> Explanation:
    """The attention explainer's map from an (h, w) grid of pooling weights already computed (a prediction's
    ``forward_with_attention``), upsampled to ``size`` as the explainer does."""
    g = torch.as_tensor(grid, dtype=torch.float32)
    with torch.no_grad():
        up = F.interpolate(g[None, None], size=size, mode="bilinear", align_corners=False)
    return Explanation("attention", target, up[0, 0].numpy(),
                       {"max_weight": float(g.max()), "uniform_weight": 1.0 / g.numel()},
                       {"grid": f"{g.shape[0]}x{g.shape[1]}"}, seconds)


def gradcam_from_grid(model: nn.Module, grid: torch.Tensor | np.ndarray, target: int, size: tuple[int, int],
                      layer: str, label: str = "") -> Explanation:
    """Grad-CAM from the output of ``layer`` already computed (a prediction's forward pass kept it): the gradient
    of the target logit through the model's ``classify`` above that layer only, then Captum's ``LayerGradCam``
    arithmetic (channel weights = spatial mean of the gradient; ReLU of the weighted sum of channels), upsampled
    bilinearly as ``gradcam`` does. The same map as ``gradcam`` on that layer without the full forward and
    backward pass (tested against it). ``torch.autograd.grad`` leaves the model's parameters' ``.grad`` alone, so
    the shared model may be used."""
    t0 = time.perf_counter()
    g = torch.as_tensor(grid, dtype=torch.float32)
    g = (g[None] if g.dim() == 3 else g).detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model.classify(g)[0]
        (grad,) = torch.autograd.grad(logits[0, target], g)
    with torch.no_grad():
        cam = F.relu((grad.mean(dim=(2, 3), keepdim=True) * g).sum(1, keepdim=True))
        up = LayerAttribution.interpolate(cam, tuple(size), interpolate_mode="bilinear")
    return Explanation("gradcam", label or str(target), up[0, 0].numpy(), {}, {"layer": layer},
                       time.perf_counter() - t0)


# ---- time estimates (explain.cost): the passes each method makes, with the batches it will use
@register_plan("image", "gradcam")
def _plan_gradcam(m: nn.Module, x: torch.Tensor, p: dict[str, Any], memory_mb: float | None) -> Estimate:
    return finish(m, (x,), [(1, 1, True)], None, 1, "1 forward + backward pass")


@register_plan("image", "integrated_gradients")
def _plan_ig(m: nn.Module, x: torch.Tensor, p: dict[str, Any], memory_mb: float | None) -> Estimate:
    b = resolve_batch(m, (x,), True, IMAGE_IG_CAP, p.get("internal_batch_size"), memory_mb)
    plans = [chunks(n, b, True) + [(4, 1, False)] for n in doublings(int(p["n_steps"]), int(p["max_steps"]))]
    return finish(m, (x,), plans[0], plans, b, f"steps in batches of {b}")


@register_plan("image", "smoothgrad")
def _plan_smoothgrad(m: nn.Module, x: torch.Tensor, p: dict[str, Any], memory_mb: float | None) -> Estimate:
    b = min(int(p["nt_samples"]), resolve_batch(m, (x,), True, IMAGE_CAP, p.get("batch"), memory_mb))
    return finish(m, (x,), chunks(int(p["nt_samples"]), b, True), None, b, f"noisy copies in batches of {b}")


@register_plan("image", "occlusion")
def _plan_occlusion(m: nn.Module, x: torch.Tensor, p: dict[str, Any], memory_mb: float | None) -> Estimate:
    b = resolve_batch(m, (x,), False, IMAGE_CAP, p.get("batch"), memory_mb)
    n = image_windows(x.shape[-2], x.shape[-1], int(p["window"]), int(p["stride"]))
    return finish(m, (x,), chunks(n, b, False) + [(1, 1, False)], None, b, f"{n} windows in batches of {b}")


@register_plan("image", "attention")
def _plan_attention(m: nn.Module, x: torch.Tensor, p: dict[str, Any], memory_mb: float | None) -> Estimate:
    return finish(m, (x,), [(1, 1, False)], None, 1, "1 forward pass")
