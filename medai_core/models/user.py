"""Bring your own model: a folder with ``medai-model.json``, registered beside the shipped models.

Torch-free on purpose (like ``catalog``): discovery reads manifests only. The module itself is loaded, probed
and wrapped by ``user_module`` on the first ``load_model(name)``; files are only ever read as TorchScript
(``torch.jit.load``) or as a ``torch.export`` program (``torch.export.load``), never unpickled.

Optional files beside the manifest: ``heldout.csv`` (held-out results, read by ``trust.heldout``) and
``reference.npz`` (OOD reference statistics, checked by ``user_module``; ``user_reference`` writes one).

Folders come from ``$MEDAI_MODEL_DIRS`` (``os.pathsep``-separated; each entry a model folder or a folder of
model folders), registered when ``medai_core.models`` is imported. A folder that cannot be used is skipped
and its error kept (``user_model_problems``), so one broken folder never breaks the app.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medai_core.errors import ModelError
from medai_core.models.spec import MODELS, ModelSpec

MANIFEST = "medai-model.json"
DIRS_ENV = "MEDAI_MODEL_DIRS"
FORMATS = {"torchscript": ".pt", "exported_program": ".pt2"}
REQUIRED = ("name", "version", "modality", "labels", "positive_label", "format", "file", "input", "intended_use")
OPTIONAL = ("gradcam_layer", "threshold", "temperature", "card")
INPUT_REQUIRED = ("channels", "size", "mean", "std")
INPUT_OPTIONAL = ("resize",)
NO_OOD = ("no reference statistics supplied: out-of-distribution inputs are not detected "
          "(OOD score 0, threshold infinite)")
REFERENCE = "reference.npz"
WITH_OOD = ("reference statistics supplied: {file} (the training images' reference features, checked when the model "
            "loads); a scan far from them is flagged as out of distribution, and the automatic model choice "
            "considers this model")
NO_GRADCAM_TORCHSCRIPT = ("Grad-CAM needs hooks on a layer, and TorchScript modules cannot be hooked; "
                          "export the model with torch.export (format 'exported_program') to get Grad-CAM, "
                          "or choose another explainer.")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class UserModelError(ModelError):
    """A user model folder that cannot be used (the message says which folder and why)."""


class ManifestError(UserModelError):
    """``medai-model.json`` is missing, not JSON, or has unknown, missing or mistyped fields."""


class ModelFileError(UserModelError):
    """The model file is missing or cannot be read in its declared format."""


class ModelCheckError(UserModelError):
    """The loaded model fails a check: output shape on a probe input, non-finite outputs, Grad-CAM layer."""


@dataclass(frozen=True)
class UserModelProblem:
    """A folder skipped by discovery, and why."""

    folder: str
    error: str


def _fail(folder: Path, msg: str) -> ManifestError:
    return ManifestError(f"Model folder {folder}: {msg}")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_type(folder: Path, key: str, v: Any, want: str) -> None:
    ok = {"str": isinstance(v, str) and v.strip() != "",
          "int": isinstance(v, int) and not isinstance(v, bool) and v > 0,
          "num": _is_num(v),
          "list[str]": isinstance(v, list) and len(v) > 0 and all(isinstance(s, str) and s for s in v),
          "list[num]": isinstance(v, list) and len(v) > 0 and all(_is_num(s) for s in v),
          "dict": isinstance(v, dict)}[want]
    if not ok:
        words = {"str": "a non-empty text", "int": "a positive whole number", "num": "a finite number",
                 "list[str]": "a non-empty list of texts", "list[num]": "a non-empty list of numbers",
                 "dict": "an object"}
        raise _fail(folder, f"field {key!r} must be {words[want]}, not {json.dumps(v)[:60]}.")


def read_manifest(folder: Path | str) -> dict[str, Any]:
    """The checked manifest of a model folder (torch-free: the model file is only checked to exist).

    Raises:
        ManifestError: missing folder or JSON, bad JSON, unknown/missing/mistyped fields.
        ModelFileError: the model file is missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(f"Model folder {folder} not found.")
    path = folder / MANIFEST
    if not path.is_file():
        raise _fail(folder, f"no {MANIFEST} in it; every model folder needs one (see README, 'Your own model').")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(folder, f"{MANIFEST} is not valid JSON ({exc}).") from None
    if not isinstance(m, dict):
        raise _fail(folder, f"{MANIFEST} must hold one JSON object.")
    unknown = sorted(set(m) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise _fail(folder, f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(REQUIRED + OPTIONAL)}.")
    missing = [k for k in REQUIRED if k not in m]
    if missing:
        raise _fail(folder, f"missing required field(s) {', '.join(map(repr, missing))}.")
    for k in ("name", "version", "modality", "positive_label", "format", "file", "intended_use"):
        _check_type(folder, k, m[k], "str")
    _check_type(folder, "labels", m["labels"], "list[str]")
    _check_type(folder, "input", m["input"], "dict")
    for k, want in (("gradcam_layer", "str"), ("threshold", "num"), ("temperature", "num"), ("card", "str")):
        if k in m:
            _check_type(folder, k, m[k], want)
    if not _NAME.match(m["name"]):
        raise _fail(folder, f"name {m['name']!r} must be letters, digits, '_', '.' or '-' (at most 64).")
    if m["modality"] != "image":
        raise _fail(folder, f"modality {m['modality']!r} is not supported yet; use 'image'.")
    if m["format"] not in FORMATS:
        raise _fail(folder, f"format {m['format']!r} is not one of {', '.join(FORMATS)}.")
    labels = m["labels"]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise _fail(folder, "labels must list at least two different class names.")
    if m["positive_label"] not in labels:
        raise _fail(folder, f"positive_label {m['positive_label']!r} is not one of the labels ({', '.join(labels)}).")
    if not 0.0 <= m.get("threshold", 0.5) <= 1.0:
        raise _fail(folder, f"threshold must be between 0 and 1, not {m['threshold']}.")
    if m.get("temperature", 1.0) <= 0:
        raise _fail(folder, f"temperature must be positive, not {m['temperature']}.")
    _check_input(folder, m["input"])
    file = folder / m["file"]
    if not file.is_file():
        raise ModelFileError(f"Model folder {folder}: model file {m['file']!r} not found.")
    if "card" in m and not (folder / m["card"]).is_file():
        raise ModelFileError(f"Model folder {folder}: card {m['card']!r} not found.")
    return m


def _check_input(folder: Path, inp: dict[str, Any]) -> None:
    unknown = sorted(set(inp) - set(INPUT_REQUIRED) - set(INPUT_OPTIONAL))
    if unknown:
        raise _fail(folder, f"unknown input field(s) {', '.join(map(repr, unknown))}; "
                            f"allowed: {', '.join(INPUT_REQUIRED + INPUT_OPTIONAL)}.")
    missing = [k for k in INPUT_REQUIRED if k not in inp]
    if missing:
        raise _fail(folder, f"missing input field(s) {', '.join(map(repr, missing))}.")
    _check_type(folder, "input.channels", inp["channels"], "int")
    if inp["channels"] not in (1, 3):
        raise _fail(folder, f"input.channels must be 1 (grayscale) or 3 (grayscale repeated), not {inp['channels']}.")
    size = inp["size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and not isinstance(s, bool)
                                                               and 8 <= s <= 2048 for s in size)):
        raise _fail(folder, f"input.size must be [height, width], whole numbers from 8 to 2048, not {json.dumps(size)[:60]}.")
    for k in ("mean", "std"):
        _check_type(folder, f"input.{k}", inp[k], "list[num]")
        if len(inp[k]) != inp["channels"]:
            raise _fail(folder, f"input.{k} must have one value per channel ({inp['channels']}).")
    if any(s <= 0 for s in inp["std"]):
        raise _fail(folder, "input.std values must be positive.")
    if inp.get("resize", "stretch") != "stretch":
        raise _fail(folder, f"input.resize {inp['resize']!r} is not supported; use 'stretch'.")


def spec_for(folder: Path | str, m: dict[str, Any]) -> ModelSpec:
    """The ``ModelSpec`` of a checked manifest. Inputs reach the model as grayscale in [0, 1] at ``input.size``
    (the pipeline's own preprocessing); the wrapper repeats channels and normalises with ``mean``/``std``.
    A folder with ``reference.npz`` gets an OOD guard and ``extra["routing"]``: the router then weighs it beside
    the shipped models (without one its OOD score is 0 and it would accept every scan, so it is never routed)."""
    folder = Path(folder).resolve()
    ts = m["format"] == "torchscript"
    layer = m.get("gradcam_layer", "")
    extra = {"user_model": True, "folder": str(folder), "version": m["version"], "format": m["format"],
             "channels": m["input"]["channels"], "mean": tuple(m["input"]["mean"]), "std": tuple(m["input"]["std"]),
             "resize": m["input"].get("resize", "stretch"), "threshold": float(m.get("threshold", 0.5)),
             "temperature": float(m.get("temperature", 1.0)), "intended_use": m["intended_use"],
             "declared_gradcam_layer": layer, "ood": NO_OOD, "kind": "user model"}
    if (folder / REFERENCE).is_file():  # read and checked by user_module.load_checked (torch-free here)
        extra.update(ood=WITH_OOD.format(file=REFERENCE), reference=str(folder / REFERENCE),
                     routing={"modalities": (), "body_parts": ()})  # no DICOM hints: its OOD guard decides
    if not layer:
        extra["gradcam_unavailable"] = "This model's medai-model.json names no gradcam_layer; choose another explainer."
    elif ts:
        extra["gradcam_unavailable"] = NO_GRADCAM_TORCHSCRIPT
    return ModelSpec(
        name=m["name"], modality="image", labels=tuple(m["labels"]), weights=str(folder / m["file"]),
        card=str(folder / m["card"]) if "card" in m else "", card_json=str(folder / MANIFEST),
        description=f"{m['name']} v{m['version']} (user model): {m['intended_use'][:100]}",
        positive_label=m["positive_label"], input_size=(m["input"]["size"][0], m["input"]["size"][1]), in_channels=1,
        gradcam_layer=f"net.{layer}" if layer and not ts else "", extra=extra)


def load_user_model(folder: Path | str) -> Any:
    """Read, load, probe and wrap the model in ``folder`` (eval mode). Raises ``UserModelError``."""
    m = read_manifest(folder)
    return importlib.import_module(f"{__package__}.user_module").load_checked(spec_for(folder, m))


def register_folder(folder: Path | str, *, load: bool = False) -> str:
    """Register one model folder (``load=True``: also load and probe it now); returns its name.

    Raises:
        UserModelError: the folder cannot be used, or its name is taken by another model.
    """
    folder = Path(folder).resolve()
    m = read_manifest(folder)
    spec = spec_for(folder, m)
    if spec.name in MODELS:
        other = MODELS.entry(spec.name).meta
        if other.get("folder") != str(folder):
            where = f"the user model in {other['folder']}" if other.get("folder") else "a shipped model"
            raise ManifestError(f"Model folder {folder}: the name {spec.name!r} is already used by {where}; rename it.")
    if load:
        load_user_model(folder)
    if spec.name not in MODELS:
        MODELS.register(spec.name, spec=spec, modality="image", user_model=True, folder=str(folder),
                        loader=lambda: load_user_model(folder))(lambda: load_user_model(folder))
    return spec.name


def model_folders(dirs: str | None = None) -> tuple[list[Path], list[UserModelProblem]]:
    """The model folders ``dirs`` (default ``$MEDAI_MODEL_DIRS``; when that is unset, ``~/.medai/models`` if it
    exists: where the Train page saves) lists, and entries that are not folders."""
    raw = os.environ.get(DIRS_ENV) if dirs is None else dirs
    if raw is None:
        home = default_models_home()
        raw = str(home) if home.is_dir() else ""
    found, problems = [], []
    for entry in (e for e in raw.split(os.pathsep) if e.strip()):
        p = Path(entry).expanduser()
        if (p / MANIFEST).exists():
            found.append(p)
        elif p.is_dir():
            found += sorted(q for q in p.iterdir() if q.is_dir() and (q / MANIFEST).exists())
        else:
            problems.append(UserModelProblem(str(p), f"{DIRS_ENV} lists {p}, which is not a folder."))
    return found, problems


def default_models_home() -> Path:
    """``~/.medai/models``: where trained models are saved and found when ``$MEDAI_MODEL_DIRS`` is unset."""
    return Path.home() / ".medai" / "models"


_PROBLEMS: list[UserModelProblem] = []


def register_user_models(dirs: str | None = None) -> list[str]:
    """Register every usable folder of ``dirs`` (default ``$MEDAI_MODEL_DIRS``); returns their names. Folders
    that cannot be used are skipped; ``user_model_problems()`` lists them."""
    folders, problems = model_folders(dirs)
    names = []
    for folder in folders:
        try:
            names.append(register_folder(folder))
        except UserModelError as exc:
            problems.append(UserModelProblem(str(folder), str(exc)))
    _PROBLEMS[:] = problems
    return names


def user_model_problems() -> list[UserModelProblem]:
    """The folders the last discovery skipped, each with its error."""
    return list(_PROBLEMS)


def user_model_names() -> list[str]:
    """Names of the registered user models."""
    return MODELS.names(user_model=True)


def forget_user_models() -> None:
    """Unregister every user model (tests; a re-scan after the folders changed)."""
    for name in user_model_names():
        MODELS.unregister(name)
    _PROBLEMS.clear()
