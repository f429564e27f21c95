"""The imaging pipeline the page and the CLI share: scan -> model input -> prediction/explanation."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from medai_core.errors import InputError
from medai_core.explain.base import Explanation, ProgressFn, explainer_for, inference_copy, thread_copy
from medai_core.explain.image import attention_from_grid, gradcam_from_grid
from medai_core.io.scan import Scan, render, to_gray
from medai_core.models.spec import ModelSpec
from medai_core.models.preprocess import to_model_input


@dataclass(frozen=True)
class ImagePrediction:
    """Calibrated class probabilities, the decision, and the out-of-distribution verdict."""

    model: str
    labels: tuple[str, ...]
    probabilities: dict[str, float]
    label: str
    positive_label: str
    threshold: float
    ood: bool
    ood_score: float
    ood_threshold: float
    seconds: float
    positive_group: tuple[str, ...] = ()  # the classes the threshold applies to, summed (pneumonia: bacterial + viral)
    # the attention head's (h, w) pooling weights from the same forward pass (attention-pooling models only)
    attention: np.ndarray | None = field(default=None, repr=False, compare=False)
    # the model's feature grid (C, h, w) from the same pass, kept only when asked (``keep_grid``): Grad-CAM from it
    grid: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def positive_probability(self) -> float:
        """P(positive label): the probability the threshold is compared with (a class, or a group's sum)."""
        group = self.positive_group or ((self.positive_label,) if self.positive_label in self.probabilities else ())
        return float(sum(self.probabilities[g] for g in group))

    @property
    def positive_text(self) -> str:
        """'pneumonia (bacterial + viral)' for a group, the label itself for one class."""
        if len(self.positive_group) > 1:
            return f"{self.positive_label} ({' + '.join(self.positive_group)})"
        return self.positive_label

    def to_json(self, file: str) -> dict[str, object]:
        out: dict[str, object] = {"file": file, "model": self.model, "label": self.label,
                                  "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
                                  "ood": self.ood, "ood_score": round(self.ood_score, 4)}
        if len(self.positive_group) > 1:  # e.g. {"label": "pneumonia", "probability": P(bacterial) + P(viral)}
            out["positive"] = {"label": self.positive_label, "probability": round(self.positive_probability, 6),
                               "threshold": round(self.threshold, 6)}
        return out


def model_view(scan: Scan, frame: int = 0) -> np.ndarray:
    """What the model sees: the frame in the file's default window, as luminance in [0, 1]."""
    return to_gray(render(scan, frame, None, use_voi_lut=scan.voi_lut is not None))


def prepare_input(scan: Scan, spec: ModelSpec, frame: int = 0) -> torch.Tensor:
    """(1, C, H, W) model input for one frame of a scan."""
    if not 0 <= frame < scan.n_frames:
        raise InputError(f"Frame {frame + 1} does not exist; the scan has {scan.n_frames} frame(s).")
    return to_model_input(model_view(scan, frame), spec)


def explainers_for(spec: ModelSpec) -> list[str]:
    """The image explainers that apply to this model (the attention map only where the head has attention)."""
    from medai_core.explain import EXPLAINERS

    return [n for n in EXPLAINERS.names(modalities="image") if (n != "attention" or spec.extra.get("attention"))
            and (n != "gradcam" or spec.gradcam_layer)]


def decide_indices(probs: np.ndarray, positive: int | Sequence[int], threshold: float) -> np.ndarray:
    """The decision rule on a batch (N, K). ``positive`` is one class (malignant) or a group of classes
    (pneumonia: bacterial + viral): when the group's summed probability reaches the threshold the likeliest
    class of the group is chosen, otherwise the likeliest other class. Used in training and at inference."""
    probs = np.asarray(probs, dtype=np.float64)
    pos = np.atleast_1d(np.asarray(positive, dtype=int))
    inside = pos[probs[:, pos].argmax(1)]
    other = probs.copy()
    other[:, pos] = -1.0
    return np.where(probs[:, pos].sum(1) >= threshold, inside, other.argmax(1))


def positive_group(spec: ModelSpec) -> tuple[str, ...]:
    """The classes the decision threshold applies to, summed: ``extra['positive_group']`` or the positive label."""
    return tuple(spec.extra.get("positive_group") or ((spec.positive_label,) if spec.positive_label else ()))


def decide(probs: np.ndarray, labels: tuple[str, ...], positive: str | Sequence[str], threshold: float) -> str:
    """The decision rule for one probability vector, as a label."""
    group = [positive] if isinstance(positive, str) else list(positive)
    idx = [labels.index(g) for g in group]
    return labels[int(decide_indices(np.asarray(probs)[None], idx, threshold)[0])]


def predict(model: nn.Module, spec: ModelSpec, x: torch.Tensor, *, keep_grid: bool = False) -> ImagePrediction:
    """Calibrated prediction with the OOD score, for a (1, C, H, W) input. ``keep_grid``: keep the feature grid
    (about 0.3 MB) on the prediction, so ``explain(..., "gradcam", prediction=...)`` needs no second pass."""
    return predict_batch(model, spec, x, keep_grid=keep_grid)[0]


def predict_batch(model: nn.Module, spec: ModelSpec, x: torch.Tensor, *, keep_grid: bool = False) -> list[ImagePrediction]:
    """``predict`` of each scan of an (N, C, H, W) batch, in one forward pass (``seconds``: the batch's share)."""
    t0 = time.perf_counter()
    net, grids, maps = inference_copy(model), None, None  # BatchNorm folded: 36 -> 22 ms per EfficientNet pass (issue 18)
    with torch.inference_mode():
        if callable(getattr(net, "forward_with_grid", None)):
            logits, feats, att, grid = net.forward_with_grid(x)
            grids = att.numpy().copy()
            maps = grid.contiguous().numpy().copy() if keep_grid else None
        else:
            logits, feats = net.forward_with_features(x)
        probs = torch.softmax(logits / model.temperature, 1).numpy().astype(np.float64)
        scores = model.ood_score(feats).reshape(-1).tolist()
    thr = float(model.decision_threshold)
    ood_thr = float(model.ood_threshold)
    group, seconds = positive_group(spec), (time.perf_counter() - t0) / max(len(x), 1)
    return [ImagePrediction(
        model=spec.name, labels=spec.labels,
        probabilities={lab: float(q) for lab, q in zip(spec.labels, p)},
        label=decide(p, spec.labels, group, thr), positive_label=spec.positive_label,
        threshold=thr, ood=bool(score > ood_thr), ood_score=float(score), ood_threshold=ood_thr,
        seconds=seconds, positive_group=group, attention=None if grids is None else grids[i],
        grid=None if maps is None else maps[i])
        for i, (p, score) in enumerate(zip(probs, scores))]


def attention_map(pred: ImagePrediction, x: torch.Tensor) -> Explanation | None:
    """The attention explainer's map for ``x`` from the prediction's own forward pass (None when the model has no
    attention head): what ``explain(..., "attention", ...)`` gives, without a second pass."""
    if pred.attention is None:
        return None
    return attention_from_grid(pred.attention, tuple(x.shape[-2:]), pred.labels[0], 0.0)


def explain(model: nn.Module, spec: ModelSpec, x: torch.Tensor, method: str, target: str,
            progress: ProgressFn | None = None, *, copy_model: bool = True, prediction: ImagePrediction | None = None,
            **params: object) -> Explanation:
    """Run the registered explainer ``method`` for class ``target`` (a label of the spec).

    Runs on this thread's private copy of ``model`` (see ``thread_copy``), so concurrent
    predictions on the shared model never meet Captum's hooks. ``copy_model=False`` explains on
    ``model`` itself: for callers that already hold a private copy (the trust checks' randomised copies).
    Explainers registered with ``hooks=False`` (the attention map: one forward pass without gradients) run on
    the process's one ``inference_copy`` of it: a copy per page-run thread was 5% of a loaded server's time
    (issue 18). ``prediction``: this model's prediction on this ``x`` made with ``keep_grid``; Grad-CAM on the
    layer whose output it kept is then computed from it (the head's gradient only, a few ms instead of a forward
    and backward pass of the whole network).
    """
    fn, meta = explainer_for(method, spec.modality)
    if target not in spec.labels:
        raise InputError(f"Unknown target class {target!r}; choose one of {', '.join(spec.labels)}.")
    if method == "gradcam":
        if not spec.gradcam_layer and "layer" not in params:
            raise InputError(spec.extra.get("gradcam_unavailable") or "This model names no layer for Grad-CAM.")
        params.setdefault("layer", spec.gradcam_layer)
    if (method == "gradcam" and prediction is not None and prediction.grid is not None and prediction.model == spec.name
            and params["layer"] == getattr(model, "grid_layer", None)):
        exp = gradcam_from_grid(inference_copy(model), prediction.grid, spec.labels.index(target), tuple(x.shape[-2:]),
                                str(params["layer"]), target)
        if progress is not None:
            progress(1.0)
        return exp
    net = model if not copy_model else thread_copy(model) if meta["hooks"] else inference_copy(model)
    exp = fn(net, x, spec.labels.index(target), progress=progress, **params)
    return Explanation(exp.method, target, exp.attributions, exp.diagnostics, exp.params, exp.seconds)
