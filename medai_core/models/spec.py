"""Model specs and the model registry (timm style: builders registered with a spec)."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from medai_core.errors import ModelError
from medai_core.registry import Registry

if TYPE_CHECKING:
    from torch import nn

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
WEIGHTS_ENV = "MEDAI_ASSETS_DIR"


@dataclass(frozen=True)
class ModelSpec:
    """Everything callers need to know about a model, so nothing is hard-coded elsewhere.

    Attributes:
        name: registry name.
        modality: "image", "tabular", "text" or "series".
        labels: class names in output order.
        weights: file name of the state_dict inside the assets folder.
        card: file name of the model card (markdown); ``card_json`` holds its numbers.
        description: one line for the UI.
        positive_label: the class the decision threshold applies to ("" if none).
        input_size: images only: (height, width) the model takes; inputs are grayscale in [0, 1].
        in_channels: images only: channels the model takes.
        gradcam_layer: images only: dotted attribute path of the layer Grad-CAM explains.
        extra: modality-specific settings (e.g. a text model's maximum sequence length).
    """

    name: str
    modality: str
    labels: tuple[str, ...]
    weights: str
    card: str
    card_json: str
    description: str
    positive_label: str = ""
    input_size: tuple[int, int] = (0, 0)
    in_channels: int = 0
    gradcam_layer: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


MODELS: "Registry[Callable[[], nn.Module]]" = Registry("model")


def register_model(name: str, spec: ModelSpec) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """Register a builder returning an untrained module for ``spec``."""
    return MODELS.register(name, spec=spec, modality=spec.modality)


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model (raises ``UnknownName`` with suggestions)."""
    return MODELS.entry(name).meta["spec"]


def assets_dir() -> Path:
    """Where weights and cards live: ``$MEDAI_ASSETS_DIR`` or the package's ``assets/``."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env) if env else ASSETS_DIR


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_card(name: str) -> dict[str, Any]:
    """The model card's numbers (the JSON written by training)."""
    spec = get_spec(name)
    path = assets_dir() / spec.card_json
    if not path.exists():
        raise ModelError(f"Model card for {name!r} not found at {path}.")
    return json.loads(path.read_text())


_USER_DIGESTS: dict[tuple[str, int], str] = {}


def weights_digest(name: str) -> str:
    """The sha256 of ``name``'s shipped weights as its card records it (``load_model`` checks the file against
    it), or ``"unknown"`` when the card does not say. Cheap: no weights are read."""
    spec = get_spec(name)
    if spec.extra.get("user_model"):  # no card with a checksum: the file's own sha256, once per file version
        path = Path(spec.weights)
        try:
            key = (str(path), path.stat().st_mtime_ns)
        except OSError:
            return "unknown"
        if key not in _USER_DIGESTS:
            _USER_DIGESTS[key] = sha256_file(path)
        return _USER_DIGESTS[key]
    try:
        return str(read_card(name).get("weights_sha256") or "unknown")
    except ModelError:
        return "unknown"


def read_card_markdown(name: str) -> str:
    spec = get_spec(name)
    path = assets_dir() / spec.card
    if not spec.card or not path.is_file():
        raise ModelError(f"Model card for {name!r} not found at {path}.")
    return path.read_text()


def create_model(name: str) -> nn.Module:
    """An untrained module of the registered model ``name``."""
    return MODELS.get(name)()


_LOAD_LOCK = threading.Lock()
TRAIN_COMMAND = {"image": "image", "tabular": "records", "text": "notes"}


def card_headline(name: str) -> list[tuple[str, str]]:
    """The few test-split numbers the home page shows for a model, by modality (label, formatted value)."""
    card = read_card(name)
    if get_spec(name).extra.get("user_model"):  # its medai-model.json: no test split of ours
        return [("Kind", "user model"), ("Version", str(card.get("version", "-"))),
                ("Format", str(card.get("format", "-"))), ("Held-out data", "none supplied")]
    t = card["test"]
    modality = get_spec(name).modality
    if modality == "image" and "positive_auroc" in t:  # the pretrained models: 3-class and positive-vs-rest
        pos = get_spec(name).positive_label
        return [("3-class accuracy", f"{t['accuracy']:.1%}"), (f"{pos.capitalize()} AUROC", f"{t['positive_auroc']:.3f}"),
                (f"{pos.capitalize()} accuracy", f"{t['positive_accuracy']:.1%}"), ("Test images", str(t["n"]))]
    if modality == "image":
        return [("Test accuracy", f"{t['accuracy']:.1%}"), ("Malignant AUROC", f"{t['malignant_auroc']:.3f}"),
                ("ECE after calibration", f"{t['ece_after']:.3f}"), ("Test images", str(t["n"]))]
    if modality == "tabular":
        gb = card.get("baselines", {}).get("gradient_boosting", {}).get("auroc")
        return [("Test AUROC", f"{t['auroc']:.3f}"), ("Boosted trees AUROC", f"{gb:.3f}" if gb else "-"),
                ("ECE after calibration", f"{t['ece']:.3f}"), ("Test patients", str(t["n"]))]
    if modality == "text":
        b = card.get("baseline", {}).get("macro_f1")
        return [("Test macro-F1", f"{t['macro_f1']:.3f}"), ("TF-IDF baseline macro-F1", f"{b:.3f}" if b else "-"),
                ("Top-3 accuracy", f"{t['top3_accuracy']:.1%}"), ("Test notes", str(t["n"]))]
    if modality == "sepsis":
        gb = card.get("baselines", {}).get("gradient_boosting", {}).get("test", {}).get("utility")
        return [("Normalized utility", f"{t['utility']:.3f}"), ("Boosted trees' utility", f"{gb:.3f}" if gb else "-"),
                ("AUROC (hours)", f"{t['auroc']:.3f}"), ("Test patients", f"{t['patients']:,}")]
    if modality == "series" and "ratio_30" in t:
        return [("MAE / persistence, 30 min", f"{t['ratio_30']:.3f}"), ("MAE / persistence, 60 min", f"{t['ratio_60']:.3f}"),
                ("80% coverage, 30 min", f"{t['coverage80_30']:.3f}"), ("Test windows", f"{t['n']:,}")]
    if modality == "series" and "2019" in t:  # one model, evaluated per source
        both = lambda k: " / ".join(f"{t[s].get(k, float('nan')):.3f}" for s in ("2012", "2019"))  # noqa: E731
        return [("MAE / persistence, 2012 / 2019", both("mean_ratio_model")),
                ("Boosted trees, 2012 / 2019", both("mean_ratio_trees")),
                ("80% coverage, 2012 / 2019", both("mean_coverage80")), ("Test windows", f"{t['n']:,}")]
    if modality == "series":
        return [("MAE / persistence (mean)", f"{t['mean_ratio']:.3f}"),
                ("Statistical baseline", f"{t.get('mean_ridge_ratio', float('nan')):.3f}"),
                ("80% interval coverage", f"{t['mean_coverage80']:.3f}"), ("Test windows", f"{t['n']:,}")]
    return [("Test n", str(t.get("n", "-")))]


def load_model(name: str) -> nn.Module:
    """Build ``name`` and load its shipped weights (sha256 checked against the card), eval mode.

    Raises:
        ModelError: weights missing, corrupt, or not matching the card's checksum.
    """
    loader = MODELS.entry(name).meta.get("loader")
    if loader is not None:  # a user model (models.user): read from its own folder, checked there
        return loader()
    spec = get_spec(name)
    folder = assets_dir()
    path = folder / spec.weights
    if not path.exists():
        raise ModelError(
            f"Weights for {name!r} not found at {path}. Train them with "
            f"`python -m medai_core {TRAIN_COMMAND.get(spec.modality, 'image')} train --data PATH` or set {WEIGHTS_ENV}."
        )
    card = read_card(name)
    want = card.get("weights_sha256")
    have = sha256_file(path)
    if want and want != have:
        raise ModelError(f"Weights {path} do not match the model card's sha256 ({have[:12]} != {want[:12]}).")
    import torch

    with _LOAD_LOCK:
        model = create_model(name)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is a model error for the user
            raise ModelError(f"Could not load weights {path}: {exc}") from exc
    model.eval()
    return model
