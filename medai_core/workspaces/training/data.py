"""A labelled image set for training in the app: a ZIP (held in memory) or a folder on the server, one folder per
class, an optional manifest with a ``group`` column (patient), and a split that keeps each group on one side.

Layout: every image's class is the first folder below the set's root (the deepest folder all files share), so
``set.zip/normal/a.png`` and ``set.zip/data/normal/scans/a.png`` are both class ``normal``. Files that are not
images (a manifest, ``.DS_Store``, ``__MACOSX/``) are skipped; an image that cannot be decoded is set aside and
listed with the reason, and the rest is used. Images are decoded by MedAI's loaders (PNG, JPEG, BMP, TIFF,
DICOM, checked by content), shown as the model sees them (default window, luminance in [0, 1]) and resized to
the training size at once, so a set of 1,000 images at 224 x 224 holds 50 MB of uint8 in memory.

Manifest (``manifest.csv`` in the set's root, or passed separately): a ``path`` column (relative to the root)
and a ``group`` column; an optional ``label`` column overrides the folder. Images the manifest does not list
form a group of their own each (listed in ``notes``).
"""
from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from medai_core.errors import Cancelled, EmptyInput, InputError, TooLarge
from medai_core.io import load_scan, render, to_gray
from medai_core.io.scan import MAX_BYTES
from medai_core.models.preprocess import resize_gray

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom", ""}
MANIFEST_NAME = "manifest.csv"
MAX_FILES = 20_000
MAX_UNCOMPRESSED = 8 * 2**30  # a ZIP that would expand to more is refused before anything is read
MIN_PER_CLASS = 8
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SetAside:
    """A file not used for training, and why."""

    path: str
    reason: str


@dataclass
class ImageSet:
    """Decoded training images.

    Attributes:
        images: (n, size, size) uint8, as the model sees them (stretch-resized).
        y: (n,) class index into ``labels``.
        groups: (n,) group (patient) of each image; an unlisted image is its own group.
        paths: (n,) path of each image relative to the set's root (shown to the user only).
        labels: class names, sorted.
        set_aside: files not used, with the reason.
        notes: what was assumed or changed, in words (shown on screen and in the card).
    """

    images: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    paths: list[str]
    labels: tuple[str, ...]
    set_aside: list[SetAside] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {lab: int((self.y == k).sum()) for k, lab in enumerate(self.labels)}


def _skippable(rel: PurePosixPath) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in rel.parts) or rel.suffix.lower() not in IMAGE_SUFFIXES


def _zip_files(data: bytes) -> tuple[dict[str, Callable[[], bytes]], dict[str, bytes]]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"The upload is not a readable ZIP file ({exc}). Upload a ZIP of one folder per class.") from None
    if len(infos) > MAX_FILES:
        raise TooLarge(f"The ZIP holds {len(infos):,} files; the limit is {MAX_FILES:,}.")
    if sum(i.file_size for i in infos) > MAX_UNCOMPRESSED:
        raise TooLarge(f"The ZIP would expand to more than {MAX_UNCOMPRESSED / 2**30:.0f} GB; the limit is that.")
    files, extra = {}, {}
    for info in infos:
        name = info.filename.replace("\\", "/")
        if PurePosixPath(name).name.lower() == MANIFEST_NAME:
            extra[name] = zf.read(info) if info.file_size < 50 * 2**20 else b""
            continue

        def read(info: zipfile.ZipInfo = info) -> bytes:
            if info.file_size > MAX_BYTES:
                raise TooLarge(f"the file is {info.file_size / 2**20:.0f} MB; the limit is {MAX_BYTES / 2**20:.0f} MB")
            return zf.read(info)
        files[name] = read
    return files, extra


def _folder_files(root: Path) -> tuple[dict[str, Callable[[], bytes]], dict[str, bytes]]:
    if not root.is_dir():
        raise InputError(f"{root} is not a folder on this server.")
    files, extra = {}, {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        if p.name.lower() == MANIFEST_NAME:
            extra[rel] = p.read_bytes()
        else:
            files[rel] = p.read_bytes
        if len(files) > MAX_FILES:
            raise TooLarge(f"The folder holds more than {MAX_FILES:,} files; the limit is that.")
    return files, extra


def _common_root(names: list[str]) -> PurePosixPath:
    parts = [PurePosixPath(n).parent.parts for n in names]
    root: list[str] = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        root.append(level[0])
    # the root is above the class folders: if every file sits in one folder, that folder is the class
    if root and all(len(p) == len(root) for p in parts):
        root.pop()
    return PurePosixPath(*root) if root else PurePosixPath(".")


def count_images(source: bytes | Path | str) -> int:
    """How many files of the set look like images by name (before decoding): for the time estimate."""
    files, _ = _zip_files(source) if isinstance(source, bytes) else _folder_files(Path(source))
    return sum(1 for n in files if not _skippable(PurePosixPath(n)))


def read_manifest(data: bytes) -> pd.DataFrame:
    """The manifest's ``path``, ``group`` and optional ``label`` columns, as text. Raises ``InputError``."""
    try:
        df = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"The manifest is not a readable CSV ({str(exc)[:120]}).") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in ("path", "group") if c not in df.columns]
    if missing:
        raise InputError(f"The manifest needs the columns path and group; missing: {', '.join(missing)} "
                         f"(it has: {', '.join(df.columns[:8])}).")
    cols = ["path", "group"] + (["label"] if "label" in df.columns else [])
    return df[cols].apply(lambda s: s.str.strip())


def _entries(files: dict[str, Callable[[], bytes]], manifest: pd.DataFrame | None,
             aside: list[SetAside], notes: list[str]) -> Iterator[tuple[str, str, str, Callable[[], bytes]]]:
    names = [n for n in files if not _skippable(PurePosixPath(n))]
    skipped = len(files) - len(names)
    if skipped:
        notes.append(f"{skipped} file(s) skipped: not images by their name (hidden files, __MACOSX, other types).")
    if not names:
        raise EmptyInput("No image files found. Put the images in one folder per class (e.g. normal/, abnormal/).")
    root = _common_root(names)
    by_path: dict[str, tuple[str, str]] = {}
    if manifest is not None:
        for row in manifest.itertuples(index=False):
            by_path[str(PurePosixPath(row.path))] = (row.group, getattr(row, "label", ""))
    unlisted = 0
    for name in sorted(names):
        rel = PurePosixPath(name).relative_to(root) if str(root) != "." else PurePosixPath(name)
        if len(rel.parts) < 2:
            aside.append(SetAside(str(rel), "not inside a class folder"))
            continue
        group, label = by_path.pop(str(rel), (None, ""))
        if manifest is not None and group is None:
            unlisted += 1
        yield str(rel), label or rel.parts[0], group or f"image:{rel}", files[name]
    if unlisted:
        notes.append(f"{unlisted} image(s) are not in the manifest: each is its own group in the split.")
    for path in list(by_path)[:50]:
        aside.append(SetAside(path, "listed in the manifest, but no such image in the set"))


def load_image_set(source: bytes | Path | str, size: int, *, manifest: bytes | None = None,
                   progress: Progress | None = None, cancel: Callable[[], bool] | None = None) -> ImageSet:
    """Read and decode a labelled image set.

    Args:
        source: a ZIP's bytes, or a folder on the server.
        size: side of the square training input; images are stretch-resized to it as they are read.
        manifest: a manifest CSV's bytes (else ``manifest.csv`` in the set's root, if there is one).
        progress: called with (images read, images in all).
        cancel: returns True to stop (raises ``Cancelled``).

    Raises:
        InputError: not a ZIP or folder, no images, a bad manifest, fewer than two classes or too few images.
    """
    files, extra = _zip_files(source) if isinstance(source, bytes) else _folder_files(Path(source))
    aside: list[SetAside] = []
    notes: list[str] = []
    if manifest is None and extra:
        manifest = extra[min(extra, key=len)]
        notes.append(f"Groups (patients) read from {min(extra, key=len)}.")
    table = read_manifest(manifest) if manifest is not None else None
    entries = list(_entries(files, table, aside, notes))
    images, labels, groups, paths = [], [], [], []
    for i, (rel, label, group, read) in enumerate(entries):
        if cancel is not None and cancel():
            raise Cancelled("Training cancelled while reading images.")
        try:
            scan = load_scan(read())
            gray = to_gray(render(scan, 0, None, use_voi_lut=scan.voi_lut is not None))
            images.append(resize_gray(gray, (size, size)))
            labels.append(label)
            groups.append(group)
            paths.append(rel)
        except (InputError, OSError, ValueError) as exc:
            aside.append(SetAside(rel, str(exc)[:200]))
        if progress is not None:
            progress(i + 1, len(entries))
    return _checked(images, labels, groups, paths, aside, notes)


def _checked(images: list[np.ndarray], labels: list[str], groups: list[str], paths: list[str],
             aside: list[SetAside], notes: list[str]) -> ImageSet:
    classes = tuple(sorted(set(labels)))
    if len(classes) < 2:
        found = f"only the class {classes[0]!r}" if classes else "no readable images"
        raise InputError(f"Training needs at least two classes (one folder each); found {found}.")
    y = np.array([classes.index(lab) for lab in labels], dtype=np.int64)
    small = {c: int((y == k).sum()) for k, c in enumerate(classes) if (y == k).sum() < MIN_PER_CLASS}
    if small:
        raise InputError(f"Each class needs at least {MIN_PER_CLASS} readable images (training, validation and "
                         f"test each need some); too few in: {', '.join(f'{c} ({n})' for c, n in small.items())}.")
    return ImageSet(np.stack(images), y, np.array(groups, dtype=object), paths, classes, aside, notes)


def split_set(y: np.ndarray, groups: np.ndarray, seed: int = 0, val: float = 0.15,
              test: float = 0.15) -> dict[str, np.ndarray]:
    """Indices of train / validation / test, stratified by class, each group (patient) on one side only.

    Raises:
        InputError: a split would miss a class (too few groups in it).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    n_folds = max(3, round(1 / min(val, test)))
    folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    parts = [idx for _, idx in folds.split(np.zeros(len(y)), y, groups)]
    out = {"test": np.sort(parts[0]), "val": np.sort(parts[1]),
           "train": np.sort(np.concatenate(parts[2:]))}
    for name, idx in out.items():
        missing = sorted(set(range(int(y.max()) + 1)) - set(y[idx].tolist()))
        if missing:
            raise InputError(f"The {name} split has no image of class index {missing}: too few groups (patients) "
                             "in that class to split them. Add images, or give each image its own group.")
    return out
