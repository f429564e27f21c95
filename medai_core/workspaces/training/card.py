"""The generated model card (``README.md``) and ``training.json`` of a model trained in the app."""
from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from medai_core.workspaces.training.settings import describe

if TYPE_CHECKING:
    from medai_core.workspaces.training.settings import TrainResult


def _f(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def training_record(r: TrainResult) -> dict[str, Any]:
    """Settings, split sizes, history, metrics and timings (no image names: they may carry identifiers)."""
    from dataclasses import asdict

    ev = r.evaluation
    return {"created": datetime.now(UTC).isoformat(timespec="seconds"), "settings": asdict(r.settings),
            "labels": list(r.labels), "positive_label": r.positive_label, "split_counts": r.split_counts,
            "best_epoch": r.best_epoch, "temperature": r.temperature, "history": r.history,
            "test": ev.summary() | {"confusion": ev.confusion.tolist(),
                                    "per_class": ev.per_class.round(4).to_dict(orient="records")},
            "ood_threshold": r.ood_threshold, "seconds": {k: round(v, 2) for k, v in r.seconds.items()},
            "set_aside": len(r.set_aside), "notes": r.notes}


def card_markdown(r: TrainResult) -> str:
    """The model card: data, protocol, metrics, calibration, intended use and limits."""
    s, ev = r.settings, r.evaluation
    counts = "\n".join(f"| {split} | " + " | ".join(str(r.split_counts[split][lab]) for lab in r.labels) + " |"
                       for split in ("train", "val", "test"))
    per_class = "\n".join(f"| {row['class']} | {row['precision']:.3f} | {row['recall']:.3f} | {row['F1']:.3f} | "
                          f"{int(row['images'])} |" for row in ev.per_class.to_dict(orient="records"))
    settings = "\n".join(f"- {k}: {v}" for k, v in describe(s).items())
    best = r.history[r.best_epoch - 1]
    return f"""# {s.name} (trained in MedAI)

A {len(r.labels)}-class image classifier ({', '.join(r.labels)}) trained in MedAI's Train page or
`python -m medai_core image train-user` on the user's own images. MedAI did not choose or check these images.

## Data
Images per class and split (train / validation / test = 70 / 15 / 15, stratified by class; images of one group
(patient) stay on one side when a manifest gives groups):

| split | {' | '.join(r.labels)} |
|---|{'---|' * len(r.labels)}
{counts}

{len(r.set_aside)} file(s) were set aside (unreadable or outside a class folder).
{' '.join(r.notes)}

## Training
{settings}

The frozen part of the backbone is computed once per image and view; the trained part learns with a
class-balanced cross-entropy and a cosine learning-rate schedule. The epoch with the lowest validation loss
is kept: epoch {r.best_epoch} of {s.epochs} (validation loss {best['val_loss']:.3f}, accuracy {best['val_acc']:.3f}).

## Test results ({len(ev.y)} images, touched once)
- Accuracy {_f(ev.accuracy)}, balanced accuracy {_f(ev.balanced_accuracy)}, macro F1 {_f(float(ev.per_class['F1'].mean()))}
- AUROC of P({r.positive_label}): {_f(ev.auroc)}

| class | precision | recall | F1 | images |
|---|---|---|---|---|
{per_class}

## Calibration
Temperature scaling fitted on the validation split: T = {r.temperature:.3f}. Expected calibration error of
P({r.positive_label}) on the test split: {_f(ev.ece)} (10 bins). `heldout.csv` holds the test split's
probabilities; MedAI's reliability panel draws them. Decision threshold 0.5 on P({r.positive_label}).

## Out of distribution
`reference.npz`: Mahalanobis distance of ImageNet EfficientNet-Lite0 features to the training images
(principal components: one per ten training images, at most 32); threshold {r.ood_threshold:.2f}, the 99th
percentile of the validation images' distances. With few validation images the threshold is rough: scans
flagged as unlike the training images deserve a look, and scans passed are not thereby safe.

## Intended use
{s.intended_use}

## Limits
- Small, single-source data chosen by the user; no external validation. The test split has {len(ev.y)}
  images, so every figure above carries wide uncertainty.
- Without a manifest, several images of one patient can fall on both sides of the split, which flatters the
  test results.
- Trained on 2-D grayscale views (the default window of a DICOM); colour is not used.
- A model trained on a small set readily learns shortcuts (burned-in markers, borders, patient position, the
  scanner): look at its explanations on the Imaging page before trusting a test figure. A model of 1,000 chest
  films trained this way in MedAI put its Grad-CAM on the neck and the film's top edge, not the lungs.
"""
