"""Train an image classifier on a user's labelled set: a pretrained backbone, frozen or partly fine-tuned, and a
linear head, with the optimiser, learning rate, epochs, augmentation and input size the user chose.

The frozen part of the backbone runs once per image (and per augmented view) and its output is cached; epochs
then train only the head (and the fine-tuned stages) on the cache. That is what makes a 1,000-image set train in
about a minute on two CPU cores (see README, "Train a model in the app", and benchmarks/bench_train_user.py).

Protocol: train / validation / test = 70 / 15 / 15, stratified by class, each group (patient) on one side.
Validation picks the epoch (the lowest validation loss) and fits the temperature; test is touched once, at the
end, for the metrics, the confusion matrix, the reliability diagram and the folder's ``heldout.csv``.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medai_core.errors import Cancelled, InputError
from medai_core.models.backbones import (
    FINE_TUNE_STARTS,
    EffNetFeatures,
    create_backbone,
    fit_reference,
    fused,
    reference_features,
)
from medai_core.models.effnet import STAGES
from medai_core.workspaces.training.data import ImageSet, load_image_set, split_set
from medai_core.workspaces.training.evaluate import evaluate, fit_temperature
from medai_core.workspaces.training.export import build_files
from medai_core.workspaces.training.net import TrainHead, UserNet, normalise
from medai_core.workspaces.training.settings import (
    VIEWS,
    Event,
    TrainResult,
    TrainSettings,
)

Emit = Callable[[Event], None]
FEATURE_BATCH = 4  # EfficientNet on these CPUs: 10 ms an image in 4s, 18 in 32s (channels-last, BN folded)


def _views(x: torch.Tensor, augment: str, gen: torch.Generator) -> list[torch.Tensor]:
    out = [x]
    if augment in ("flip", "flip_crop"):
        out.append(torch.flip(x, dims=(3,)))
    if augment == "flip_crop":
        s = x.shape[-1]
        for flip in (False, True):
            c = int(s * (0.9 + 0.1 * torch.rand(1, generator=gen).item()))
            i, j = (int(torch.randint(0, s - c + 1, (1,), generator=gen)) for _ in range(2))
            v = F.interpolate(x[..., i:i + c, j:j + c], size=(s, s), mode="bilinear", align_corners=False)
            out.append(torch.flip(v, dims=(3,)) if flip else v)
    return out


def _cache(front: EffNetFeatures, start: int | None, images: np.ndarray, augment: str, seed: int,
           tick: Callable[[int], None], cancel: Callable[[], bool]) -> list[torch.Tensor]:
    """The frozen front's output for each view of each image: a list (one tensor per view) of (n, ...)."""
    gen = torch.Generator().manual_seed(seed)
    per_view: list[list[torch.Tensor]] = [[] for _ in range(VIEWS[augment])]
    with torch.inference_mode():
        for a in range(0, len(images), FEATURE_BATCH):
            if cancel():
                raise Cancelled("Training cancelled while computing features.")
            x = normalise(images[a:a + FEATURE_BATCH])
            for v, xv in enumerate(_views(x, augment, gen)):
                h = front.front(xv, start)
                per_view[v].append(h.mean((2, 3)) if start is None else h.contiguous())
            tick(len(x) * VIEWS[augment])
    return [torch.cat(v) for v in per_view]


def _optimizer(s: TrainSettings, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, weight_decay=s.weight_decay)
    if s.optimizer == "momentum":
        return torch.optim.SGD(params, lr=s.lr, momentum=0.9, nesterov=True, weight_decay=s.weight_decay)
    if s.optimizer == "adam":
        return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
    return torch.optim.AdamW(params, lr=s.lr, weight_decay=max(s.weight_decay, 1e-2))


def _logits(head: TrainHead, h: torch.Tensor) -> torch.Tensor:
    head.eval()
    with torch.inference_mode():
        return torch.cat([head(h[a:a + 256]) for a in range(0, len(h), 256)])


def _fit(head: TrainHead, train: list[torch.Tensor], y_train: torch.Tensor, val: torch.Tensor, y_val: torch.Tensor,
         s: TrainSettings, emit: Emit, cancel: Callable[[], bool]) -> tuple[list[dict[str, float]], int]:
    gen = torch.Generator().manual_seed(s.seed)
    torch.manual_seed(s.seed)
    h_all = torch.cat(train)
    y_all = y_train.repeat(len(train))
    counts = torch.bincount(y_train, minlength=head.fc.out_features).float().clamp(min=1)
    weight = counts.sum() / (len(counts) * counts)  # balanced loss: a rare class counts as much as a common one
    params = [p for p in head.parameters() if p.requires_grad]
    opt = _optimizer(s, params)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.epochs)
    history: list[dict[str, float]] = []
    emit(Event("train", 0, s.epochs))
    best, best_state = math.inf, copy.deepcopy(head.state_dict())
    for epoch in range(1, s.epochs + 1):
        t0 = time.perf_counter()
        head.train()
        order = torch.randperm(len(h_all), generator=gen)
        loss_sum, correct = 0.0, 0
        for a in range(0, len(order), s.batch_size):
            if cancel():
                raise Cancelled(f"Training cancelled in epoch {epoch}.")
            idx = order[a:a + s.batch_size]
            out = head(h_all[idx])
            loss = F.cross_entropy(out, y_all[idx], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int((out.argmax(1) == y_all[idx]).sum())
        sched.step()
        vl = _logits(head, val)
        val_loss = float(F.cross_entropy(vl, y_val, weight=weight))
        rec = {"epoch": epoch, "train_loss": loss_sum / len(order), "train_acc": correct / len(order),
               "val_loss": val_loss, "val_acc": float((vl.argmax(1) == y_val).float().mean()),
               "seconds": time.perf_counter() - t0}
        if not math.isfinite(rec["train_loss"]):
            raise InputError(f"Training diverged in epoch {epoch} (the loss is not finite): lower the learning rate.")
        history.append(rec)
        if val_loss < best:
            best, best_state = val_loss, copy.deepcopy(head.state_dict())
        emit(Event("train", epoch, s.epochs, rec))
    head.load_state_dict(best_state)
    return history, min(history, key=lambda r: r["val_loss"])["epoch"]


def train_user_model(source: bytes | str, settings: TrainSettings, *, manifest: bytes | None = None,
                     emit: Emit | None = None, cancel: Callable[[], bool] | None = None,
                     data: ImageSet | None = None) -> TrainResult:
    """Read the set, train, evaluate on the test split, and build the model folder's files.

    Args:
        source: a ZIP's bytes or a folder on the server (ignored when ``data`` is given).
        settings: the user's choices (checked here).
        manifest: an optional manifest CSV (``path``, ``group``[, ``label``]).
        emit: receives progress ``Event``s (from this thread).
        cancel: returns True to stop; raises ``Cancelled`` at the next batch.

    Raises:
        InputError: a bad set or bad settings. Cancelled: cancelled.
    """
    s = settings.check()
    emit = emit or (lambda e: None)
    cancel = cancel or (lambda: False)
    torch.manual_seed(s.seed)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    if data is None:
        data = load_image_set(source, s.size, manifest=manifest, progress=lambda i, n: emit(Event("read", i, n)),
                              cancel=cancel)
    seconds["read"] = time.perf_counter() - t
    positive = s.positive_label or (data.labels[-1] if len(data.labels) == 2 else data.labels[0])
    if positive not in data.labels:
        raise InputError(f"Positive label {positive!r} is not one of the classes ({', '.join(data.labels)}).")
    s = replace(s, positive_label=positive)
    split = split_set(data.y, data.groups, s.seed)

    t = time.perf_counter()
    backbone = create_backbone(s.backbone)
    start = FINE_TUNE_STARTS[s.fine_tune]
    front = fused(backbone)
    total = len(split["train"]) * VIEWS[s.augment] + len(split["val"]) + len(split["test"])
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        emit(Event("features", done[0], total))

    emit(Event("features", 0, total))  # the phase starts now (its rate, hence the time left, counts from here)
    cache = {k: _cache(front, start, data.images[idx], s.augment if k == "train" else "none", s.seed, tick, cancel)
             for k, idx in split.items()}
    seconds["features"] = time.perf_counter() - t

    t = time.perf_counter()
    y = {k: torch.from_numpy(data.y[idx]) for k, idx in split.items()}
    head = TrainHead(backbone, start, len(data.labels))
    history, best_epoch = _fit(head, cache["train"], y["train"], cache["val"][0], y["val"], s, emit, cancel)
    seconds["train"] = time.perf_counter() - t

    temperature = fit_temperature(_logits(head, cache["val"][0]).numpy(), y["val"].numpy())
    test_logits = _logits(head, cache["test"][0]).numpy()
    ev = evaluate(test_logits / temperature, y["test"].numpy(), data.labels, positive)

    t = time.perf_counter()
    reuse = s.backbone == "efficientnet_lite0_imagenet" and s.size == 224 and start is None
    ref_train, ref_val = _reference_features(data, split, cache if reuse else None, emit, cancel)
    ref = fit_reference(ref_train, ref_val, k=min(32, max(2, len(ref_train) // 10)))  # few images: few components
    seconds["reference"] = time.perf_counter() - t

    t = time.perf_counter()
    emit(Event("export", 0, 1))
    result = TrainResult(s, data.labels, positive, {k: _counts(data.y[idx], data.labels) for k, idx in split.items()},
                         history, best_epoch, temperature, ev, float(ref["threshold"]), seconds, data.set_aside,
                         data.notes)
    result.files = build_files(_network(backbone, head), result, ref)
    seconds["export"] = time.perf_counter() - t
    emit(Event("export", 1, 1))
    return result


def _counts(y: np.ndarray, labels: tuple[str, ...]) -> dict[str, int]:
    return {lab: int((y == k).sum()) for k, lab in enumerate(labels)}


def _reference_features(data: ImageSet, split: dict[str, np.ndarray], cache: dict[str, list[torch.Tensor]] | None,
                        emit: Emit, cancel: Callable[[], bool]) -> tuple[np.ndarray, np.ndarray]:
    """Reference features (the OOD guard's) of the training and validation images: the cached ones when the
    backbone is the reference extractor itself, else computed (at most 500 training images)."""
    if cache is not None:
        return cache["train"][0].numpy(), cache["val"][0].numpy()
    rng = np.random.default_rng(0)
    tr = split["train"] if len(split["train"]) <= 500 else np.sort(rng.choice(split["train"], 500, replace=False))
    idx = np.concatenate([tr, split["val"]])
    feats = []
    for a in range(0, len(idx), FEATURE_BATCH):
        if cancel():
            raise Cancelled("Training cancelled while computing reference statistics.")
        x = torch.from_numpy(data.images[idx[a:a + FEATURE_BATCH]]).float().div_(255.0)[:, None]
        feats.append(reference_features(x).numpy())
        emit(Event("reference", min(a + FEATURE_BATCH, len(idx)), len(idx)))
    f = np.concatenate(feats)
    return f[:len(tr)], f[len(tr):]


def _network(backbone: EffNetFeatures, head: TrainHead) -> UserNet:
    """The whole trained network (fine-tuned stages swapped in), BatchNorm folded, eval mode."""
    feats = copy.deepcopy(backbone)
    if head.head is not None:
        first = len(STAGES) - len(head.stages)
        for i, stage in enumerate(head.stages):
            feats.stages[first + i] = copy.deepcopy(stage)
        feats.head = copy.deepcopy(head.head)
    net = UserNet(fused(feats.eval()), copy.deepcopy(head.fc))
    return net.eval()


_RATES: dict[tuple[str, int, int], dict[str, float]] = {}


def _rates(s: TrainSettings) -> dict[str, float]:
    """Seconds per image of the frozen front, and of one training step (forward and backward) of the trained
    part, measured once per (backbone, size, fine-tuning) on 8 random images."""
    key = (s.backbone, s.size, s.fine_tune)
    if key not in _RATES:
        backbone = create_backbone(s.backbone)
        start = FINE_TUNE_STARTS[s.fine_tune]
        front = fused(backbone)
        x = normalise(np.random.default_rng(0).integers(0, 255, (8, s.size, s.size), dtype=np.uint8))
        with torch.inference_mode():
            front.front(x[:FEATURE_BATCH], start)  # warm-up
            t = time.perf_counter()
            h = torch.cat([front.front(x[a:a + FEATURE_BATCH], start) for a in range(0, 8, FEATURE_BATCH)])
            feat = (time.perf_counter() - t) / 8
        head = TrainHead(backbone, start, 2).train()
        h = (h.mean((2, 3)) if start is None else h).clone()
        head(h).sum().backward()  # warm-up
        t = time.perf_counter()
        for _ in range(2):
            head(h).sum().backward()
        step = (time.perf_counter() - t) / 16
        _RATES[key] = {"feature": feat, "step": step}
    return _RATES[key]


def estimate_seconds(s: TrainSettings, n_images: int) -> dict[str, float]:
    """The time each phase should take for ``n_images`` images on this machine (measured rates, not guesses):
    read, features, train, reference, export. Shown before a run starts; the page's estimate of the time left
    replaces it phase by phase with the rates measured in the run."""
    r = _rates(s.check())
    n_train = int(n_images * 0.7)
    views = n_train * VIEWS[s.augment] + (n_images - n_train)
    reuse = s.backbone == "efficientnet_lite0_imagenet" and s.size == 224 and s.fine_tune == 0
    ref = 0.0 if reuse else (min(n_train, 500) + int(n_images * 0.15)) * _rates(replace(s, backbone="efficientnet_lite0_imagenet", size=224,
                                                               fine_tune=0))["feature"]
    return {"read": 0.005 * n_images, "features": views * r["feature"],
            "train": s.epochs * (n_train * VIEWS[s.augment] * r["step"] + 0.02),
            "reference": ref, "export": 3.0 + 0.5 * s.fine_tune}


