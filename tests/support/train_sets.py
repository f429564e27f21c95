"""Small labelled image sets the training tests make themselves: class ``disc`` (a bright disc) and class
``stripes`` (vertical stripes), on speckle-like noise; separable, so a working trainer gets them right."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def image(kind: str, rng: np.random.Generator, side: int = 96) -> np.ndarray:
    """One (side, side) uint8 image of ``kind`` ("disc" or "stripes")."""
    a = rng.normal(0.3, 0.08, (side, side))
    yy, xx = np.mgrid[:side, :side]
    c = side // 2
    if kind == "disc":
        a[(yy - c + rng.integers(-side // 10, side // 10)) ** 2 + (xx - c) ** 2 < (side // 5) ** 2] += 0.5
    else:
        a += 0.3 * (np.sin(xx / (side / 32) + rng.uniform(0, 6)) > 0)
    return (np.clip(a, 0, 1) * 255).astype(np.uint8)


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def set_files(n_per_class: int = 20, seed: int = 0, root: str = "set") -> dict[str, bytes]:
    """Relative path -> PNG bytes, ``<root>/<class>/<i>.png``."""
    rng = np.random.default_rng(seed)
    return {f"{root}/{kind}/{i:03d}.png": png(image(kind, rng)) for kind in ("disc", "stripes")
            for i in range(n_per_class)}


def zip_set(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def write_set(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return folder
