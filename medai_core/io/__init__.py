"""Loaders: bytes in, typed ``Scan`` out; every failure is an ``InputError``."""
from __future__ import annotations

from pathlib import Path

from medai_core.errors import InputError
from medai_core.io.deid import DeidAction, DeidResult, deidentify_dicom
from medai_core.io.dicom import load_dicom, looks_like_dicom
from medai_core.io.images import load_image
from medai_core.io.scan import MetaItem, Scan, apply_window, render, to_gray


def load_scan(data: bytes | Path) -> Scan:
    """Load a DICOM or PNG/JPEG/BMP/TIFF scan, deciding by content, not by file name.

    DICOM is recognised by ``DICM`` at byte 128, or, for a file written without the preamble, by a run of
    well-formed data elements at byte 0 (``dicom.is_bare_dicom``).

    Args:
        data: the file's bytes, or a path to read.

    Raises:
        InputError: (a subclass) with a message a clinician understands.
    """
    if isinstance(data, (str, Path)):
        try:
            data = Path(data).read_bytes()
        except OSError as exc:
            raise InputError(f"The file cannot be read ({exc.strerror}).") from None
    if looks_like_dicom(data):
        return load_dicom(data)
    return load_image(data)


__all__ = ["DeidAction", "DeidResult", "MetaItem", "Scan", "deidentify_dicom", "apply_window", "load_dicom", "load_image", "load_scan", "render", "to_gray"]
