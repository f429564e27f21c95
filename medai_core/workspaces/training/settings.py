"""What a training run is given and gives back: the user's settings (checked), progress events, the result.
Torch-free, so the page can show the choices without loading a network."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from medai_core.errors import InputError
from medai_core.models.backbones import BACKBONES, available_backbones
from medai_core.workspaces.training.data import SetAside
from medai_core.workspaces.training.evaluate import Evaluation

OPTIMIZERS = {"sgd": "SGD", "momentum": "SGD with momentum 0.9", "adam": "Adam", "adamw": "AdamW"}
AUGMENTS = {"none": "none", "flip": "horizontal flip", "flip_crop": "horizontal flip and random crops (90-100%)"}
VIEWS = {"none": 1, "flip": 2, "flip_crop": 4}
SIZES = (128, 160, 192, 224, 256)
FINE_TUNE = {0: "frozen backbone: train the head only", 1: "fine-tune the last stage and the head",
             2: "fine-tune the last two stages and the head"}


@dataclass(frozen=True)
class TrainSettings:
    """What the user chose. ``check()`` raises ``InputError`` for values out of range."""

    name: str = "my_model"
    backbone: str = "efficientnet_lite0_imagenet"
    optimizer: str = "adam"
    lr: float = 1e-3
    epochs: int = 30
    batch_size: int = 32
    augment: str = "flip"
    size: int = 224
    fine_tune: int = 0
    weight_decay: float = 1e-4
    positive_label: str = ""
    intended_use: str = "Research and teaching: a model trained in MedAI on the user's own images; not for clinical use."
    seed: int = 0

    def check(self) -> TrainSettings:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", self.name):
            raise InputError(f"Model name {self.name!r}: use letters, digits, '_', '.' or '-' (at most 64).")
        if self.backbone not in available_backbones():
            raise InputError(f"Backbone {self.backbone!r} is not installed here; choose one of "
                             f"{', '.join(available_backbones())}.")
        for key, allowed in (("optimizer", OPTIMIZERS), ("augment", AUGMENTS), ("fine_tune", FINE_TUNE)):
            if getattr(self, key) not in allowed:
                raise InputError(f"{key} {getattr(self, key)!r} is not one of {', '.join(map(str, allowed))}.")
        if not (1e-6 <= self.lr <= 1.0):
            raise InputError(f"Learning rate {self.lr} is outside 1e-6 to 1.")
        if not 1 <= self.epochs <= 500 or not 1 <= self.batch_size <= 1024:
            raise InputError("Epochs must be 1 to 500 and the batch size 1 to 1,024.")
        if self.size not in SIZES:
            raise InputError(f"Input size {self.size} is not one of {', '.join(map(str, SIZES))}.")
        return self


@dataclass(frozen=True)
class Event:
    """Progress: ``phase`` (read, features, train, reference, export), ``done`` of ``total`` steps, and for
    ``train`` one epoch's record (epoch, train_loss, train_acc, val_loss, val_acc, seconds)."""

    phase: str
    done: int
    total: int
    epoch: dict[str, float] | None = None


@dataclass
class TrainResult:
    """A finished training run: what the page shows, and the model folder's files (name -> bytes)."""

    settings: TrainSettings
    labels: tuple[str, ...]
    positive_label: str
    split_counts: dict[str, dict[str, int]]
    history: list[dict[str, float]]
    best_epoch: int
    temperature: float
    evaluation: Evaluation
    ood_threshold: float
    seconds: dict[str, float]
    set_aside: list[SetAside]
    notes: list[str]
    files: dict[str, bytes] = field(default_factory=dict)


def backbone_choices() -> dict[str, str]:
    """Installed backbones and their labels, for the page and the CLI's help."""
    return {n: BACKBONES.entry(n).meta["label"] for n in available_backbones()}


def describe(s: TrainSettings) -> dict[str, Any]:
    """The settings in words (the card and the page)."""
    return {"backbone": backbone_choices().get(s.backbone, s.backbone), "fine-tuning": FINE_TUNE[s.fine_tune],
            "optimiser": OPTIMIZERS[s.optimizer], "learning rate": s.lr, "epochs": s.epochs,
            "batch size": s.batch_size, "augmentation": AUGMENTS[s.augment], "input size": f"{s.size} x {s.size}",
            "weight decay": max(s.weight_decay, 1e-2) if s.optimizer == "adamw" else s.weight_decay,
            "seed": s.seed}
