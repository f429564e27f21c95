"""A user model's OOD reference statistics: ``reference.npz`` in its folder (README, "Your own model").

The arrays of ``backbones.fit_reference``, saved with ``np.savez`` and read with ``np.load(allow_pickle=False)``:
``extractor`` (0-d text, ``REFERENCE_EXTRACTOR``), ``center`` (1280,), ``components`` (k, 1280), ``precision``
(k, k), ``threshold`` (0-d, finite, > 0) and optionally ``quantile`` (0-d). ``read_reference`` checks a file
(``user_module.load_checked`` calls it); ``write_reference`` computes one from in-distribution images.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medai_core.errors import InputError
from medai_core.models.backbones import (
    REFERENCE_EXTRACTOR,
    fit_reference,
    reference_features,
)
from medai_core.models.effnet import HEAD_DIM
from medai_core.models.user import (
    REFERENCE,
    ModelCheckError,
    ModelFileError,
    read_manifest,
    spec_for,
)

ARRAYS = ("extractor", "center", "components", "precision", "threshold")
MIN_IMAGES = 4  # fit_reference's minimum
CALIBRATE_FROM = 20  # from this many images on, 20% are held out to set the threshold
_BATCH = 32


def read_reference(path: Path | str) -> dict[str, np.ndarray]:
    """The checked arrays of a ``reference.npz``.

    Raises:
        ModelFileError: the file cannot be read as an ``np.savez`` archive without unpickling.
        ModelCheckError: an array is missing, or has the wrong extractor, shape or values.
    """
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise TypeError("it holds a single .npy array, not an archive of arrays")
        with z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any read failure (zip, pickled data, object arrays) is the user's file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelFileError(f"{path} could not be read as reference statistics (save them with "
                             f"np.savez(path, **fit_reference(...)); MedAI never unpickles): {first}") from None

    def bad(msg: str) -> ModelCheckError:
        return ModelCheckError(f"{path}: {msg}")

    missing = [k for k in ARRAYS if k not in arrays]
    if missing:
        raise bad(f"missing array(s) {', '.join(map(repr, missing))}; a reference.npz holds {', '.join(ARRAYS)}.")
    ext = arrays["extractor"]
    if ext.ndim != 0 or ext.dtype.kind != "U" or str(ext.item()) != REFERENCE_EXTRACTOR:
        got = str(ext.item()) if ext.ndim == 0 else f"an array of shape {ext.shape}"
        raise bad(f"extractor is {got[:60]!r}; MedAI computes reference features with {REFERENCE_EXTRACTOR!r} "
                  "(recompute the statistics with MedAI's reference features).")
    num = {k: v for k, v in arrays.items() if k in ("center", "components", "precision", "threshold", "quantile")}
    for k, v in num.items():
        if v.dtype.kind not in "fiu":
            raise bad(f"{k} must be numbers, not {v.dtype}.")
    comp = num["components"]
    if comp.ndim != 2 or comp.shape[0] < 1 or comp.shape[1] != HEAD_DIM:
        raise bad(f"components has shape {comp.shape}; it must be (k, {HEAD_DIM}) with k >= 1.")
    k = comp.shape[0]
    for name, want in (("center", (HEAD_DIM,)), ("precision", (k, k))):
        if num[name].shape != want:
            raise bad(f"{name} has shape {num[name].shape}; it must be {want} (k = {k} components).")
    for key in ("threshold", "quantile"):
        if key in num and num[key].ndim != 0:
            raise bad(f"{key} must be a single number, not an array of shape {num[key].shape}.")
    for key, v in num.items():
        if not np.isfinite(v).all():
            raise bad(f"{key} holds non-finite values (NaN or infinity).")
    if float(num["threshold"]) <= 0:
        raise bad(f"threshold must be positive, not {float(num['threshold'])}.")
    if "quantile" in num and not 0 < float(num["quantile"]) <= 1:
        raise bad(f"quantile must be in (0, 1], not {float(num['quantile'])}.")
    out = {"extractor": ext, **{key: v.astype(np.float32) for key, v in num.items()}}
    for v in out.values():
        v.setflags(write=False)  # shared by the model and its copies
    return out


def _as_gray(i: int, img: np.ndarray | torch.Tensor) -> np.ndarray:
    a = img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
    a = a.astype(np.float64).squeeze()
    if a.ndim != 2:
        raise InputError(f"Reference image {i + 1} has shape {tuple(np.shape(img))}; each must be one 2-D "
                         "grayscale image (H, W).")
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise InputError(f"Reference image {i + 1} must hold finite values in [0, 1].")
    return a


def write_reference(folder: Path | str, images: Sequence[np.ndarray | torch.Tensor], *, k: int = 32,
                    quantile: float = 0.99, seed: int = 0) -> dict[str, Any]:
    """Compute the OOD reference statistics of a model folder from in-distribution images and write
    ``reference.npz`` into the folder (replacing one that is there).

    Each image is resized to the manifest's input size as the pipeline does (stretch, ``to_model_input``), then
    described by ``reference_features``. With at least ``CALIBRATE_FROM`` images a random 20% (``seed``) is held
    out and the threshold set on it (the fitted images' own distances are too small); with fewer, on all.

    Args:
        folder: a model folder with a valid ``medai-model.json``.
        images: (H, W) grayscale images in [0, 1] (numpy arrays or tensors), at least ``MIN_IMAGES``.
        k: principal components kept (at most the number of fitted images - 1).
        quantile: the share of in-distribution images the threshold accepts.

    Returns:
        {"file": path written, "n": images, "n_fit": fitted, "n_calibrate": held out for the threshold,
        "k": components, "threshold": float, "quantile": float}.

    Raises:
        UserModelError: the folder's manifest is unusable. InputError: too few images, or one not (H, W) in [0, 1].
    """
    from medai_core.models.preprocess import to_model_input

    folder = Path(folder)
    spec = spec_for(folder, read_manifest(folder))
    if len(images) < MIN_IMAGES:
        raise InputError(f"Reference statistics need at least {MIN_IMAGES} images, not {len(images)}.")
    x = torch.cat([to_model_input(_as_gray(i, im), spec) for i, im in enumerate(images)])
    feats = torch.cat([reference_features(x[i : i + _BATCH]) for i in range(0, len(x), _BATCH)]).numpy()
    n = len(feats)
    if n >= CALIBRATE_FROM:
        order = np.random.default_rng(seed).permutation(n)
        cut = n - n // 5
        fit, cal = feats[order[:cut]], feats[order[cut:]]
    else:
        fit, cal = feats, None
    ref = fit_reference(fit, cal, k=k, quantile=quantile)
    path = folder / REFERENCE
    np.savez(path, **ref)
    return {"file": str(path), "n": n, "n_fit": len(fit), "n_calibrate": 0 if cal is None else len(cal),
            "k": int(ref["components"].shape[0]), "threshold": float(ref["threshold"]), "quantile": float(quantile)}
