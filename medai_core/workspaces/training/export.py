"""The model folder of a model trained in the app, in the user model format (README, "Your own model"):
``model.pt2`` (``torch.export``, so Grad-CAM works), ``medai-model.json``, a generated card ``README.md``,
``heldout.csv`` (the test split's probabilities: the reliability panel), ``reference.npz`` (the OOD guard's
statistics) and ``training.json`` (settings, history, metrics).

Everything is built in memory (``build_files``); ``save_folder`` writes it to the user model folder and
``zip_folder`` makes the download.
"""
from __future__ import annotations

import io
import json
import os
import warnings
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from medai_core.errors import InputError
from medai_core.models.effnet import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from medai_core.workspaces.training.net import UserNet
    from medai_core.workspaces.training.settings import TrainResult

MODEL_FILE = "model.pt2"
GRADCAM_LAYER = "head"


def models_home() -> Path:
    """Where trained models are saved: the first folder of ``$MEDAI_MODEL_DIRS``, else ``~/.medai/models``
    (which discovery also reads when ``$MEDAI_MODEL_DIRS`` is unset)."""
    from medai_core.models.user import DIRS_ENV, default_models_home

    first = next((e for e in os.environ.get(DIRS_ENV, "").split(os.pathsep) if e.strip()), "")
    return Path(first).expanduser() if first else default_models_home()


def export_program(net: UserNet, size: int) -> bytes:
    """``torch.export`` of the network with a dynamic batch dimension, saved to bytes."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    x = torch.zeros(2, 3, size, size)
    with torch.no_grad():
        ep = torch.export.export(net.eval(), (x,), dynamic_shapes={"x": {0: batch}})
    buf = io.BytesIO()
    with warnings.catch_warnings():  # "No complete tensor found in the group": about GPU weights, ours are on CPU
        warnings.simplefilter("ignore", UserWarning)
        torch.export.save(ep, buf)
    return buf.getvalue()


def manifest(r: TrainResult) -> dict[str, Any]:
    s = r.settings
    return {"name": s.name, "version": datetime.now(UTC).strftime("%Y%m%d-%H%M%S"), "modality": "image",
            "labels": list(r.labels), "positive_label": r.positive_label, "format": "exported_program",
            "file": MODEL_FILE,
            "input": {"channels": 3, "size": [s.size, s.size], "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                      "resize": "stretch"},
            "gradcam_layer": GRADCAM_LAYER, "threshold": 0.5, "temperature": round(r.temperature, 6),
            "intended_use": s.intended_use, "card": "README.md"}


def heldout_csv(r: TrainResult) -> bytes:
    """The test split: the true label and each class's calibrated probability, one row per image."""
    ev = r.evaluation
    lines = [",".join(["label", *r.labels])]
    for yi, p in zip(ev.y, ev.probs):
        lines.append(",".join([r.labels[int(yi)], *(f"{v:.6f}" for v in p)]))
    return ("\n".join(lines) + "\n").encode()


def _npz(ref: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **ref)
    return buf.getvalue()


def build_files(net: UserNet, r: TrainResult, ref: dict[str, Any]) -> dict[str, bytes]:
    """Every file of the model folder, name -> bytes."""
    from medai_core.workspaces.training.card import card_markdown, training_record

    return {MODEL_FILE: export_program(net, r.settings.size),
            "medai-model.json": (json.dumps(manifest(r), indent=2) + "\n").encode(),
            "README.md": card_markdown(r).encode(), "heldout.csv": heldout_csv(r), "reference.npz": _npz(ref),
            "training.json": (json.dumps(training_record(r), indent=2) + "\n").encode()}


def zip_folder(files: dict[str, bytes], name: str) -> bytes:
    """The folder as a ZIP (one top folder named after the model), for download."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for fname, data in files.items():
            zf.writestr(f"{name}/{fname}", data)
    return buf.getvalue()


def save_folder(files: dict[str, bytes], folder: Path | str, *, overwrite: bool = False) -> Path:
    """Write the files into ``folder`` (created; written to a hidden sibling first, then renamed, so a reader
    never sees half a model). Raises ``InputError`` if the folder exists and ``overwrite`` is False."""
    import shutil
    import tempfile

    folder = Path(folder).expanduser().resolve()
    if folder.exists() and not overwrite:
        raise InputError(f"{folder} already exists; choose another model name.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for fname, data in files.items():
            (tmp / fname).write_bytes(data)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
