"""DICOM loading through pydicom, checked by content (``DICM`` at byte 128), never forced.

Compressed transfer syntaxes (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE) decode
through pydicom's pylibjpeg plugins; the modality LUT (rescale slope/intercept, PS3.3 C.11.1) and
the VOI LUT / window (PS3.3 C.11.2) are applied as the standard says.
"""
from __future__ import annotations

import io
import logging
import warnings
from typing import Any

import numpy as np

from medai_core.errors import CorruptFile, InputError, NoPixelData, UndecodablePixelData, UnsupportedFormat
from medai_core.io.dicom_profile import is_identifying
from medai_core.io.scan import MetaItem, Scan, check_pixels, check_size, full_range_window

# pydicom reports damaged elements on its "pydicom" logger as well as with warnings, and that logger passes
# records up to the root logger: a message that quotes an element's value (a name, an ID) would reach any
# log the host application configures. Uploads are never logged (a test plants identifiers and searches
# the server log), so the library's records stop here; problems reach the user as InputError messages.
logging.getLogger("pydicom").propagate = False
logging.getLogger("pydicom").addHandler(logging.NullHandler())

_MAX_VALUE_CHARS = 120


def looks_like_dicom(data: bytes) -> bool:
    """Part 10 files carry the magic ``DICM`` after a 128-byte preamble (PS3.10 7.1)."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def load_dicom(data: bytes) -> Scan:
    """Decode a DICOM Part 10 file held in memory.

    Raises:
        UnsupportedFormat: not a DICOM file.
        CorruptFile: truncated or damaged.
        NoPixelData: a DICOM object without an image.
        UndecodablePixelData: an image encoding we cannot decode.
        TooLarge: over the pixel/frame limits.
    """
    ds = read_dataset(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _decode(ds)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - header values that make no sense
        raise CorruptFile(f"The DICOM header is inconsistent and the image cannot be read ({type(exc).__name__}: "
                          f"{_clip(str(exc), 160)}).") from None


def read_dataset(data: bytes) -> Any:
    """Parse a DICOM Part 10 file held in memory into a pydicom ``Dataset`` (pixels not decoded).

    Raises:
        EmptyInput, TooLarge: empty or over the size limit.
        UnsupportedFormat: not a DICOM file.
        CorruptFile: truncated or damaged.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    # Validation warnings quote offending values (which may be identifiers) into logs: off.
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    check_size(len(data))
    if not looks_like_dicom(data):
        raise UnsupportedFormat("This is not a DICOM file (no 'DICM' marker at byte 128).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError as exc:
        raise UnsupportedFormat(f"This is not a readable DICOM file ({exc}).") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on damaged files
        raise CorruptFile(f"The DICOM file is damaged or truncated and cannot be read ({type(exc).__name__}).") from None


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def transfer_syntax_name(ds: Any) -> str:
    """The name of a file's transfer syntax, for messages and the export's summary.

    Args:
        ds: a pydicom ``Dataset`` read from a Part 10 file.

    Returns:
        e.g. "JPEG Baseline (Process 1)"; "unknown transfer syntax" when the file meta does not say.
    """
    try:
        return str(ds.file_meta.TransferSyntaxUID.name)
    except Exception:  # noqa: BLE001
        return "unknown transfer syntax"


def _decode(ds: Any) -> Scan:
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    syntax = transfer_syntax_name(ds)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise NoPixelData("This DICOM file holds no image (no Pixel Data), e.g. a report or a presentation state.")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    check_pixels(rows, cols, n_frames, samples)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except (MemoryError,) as exc:
        raise UndecodablePixelData("The image is too large to decode in memory.") from exc
    except Exception as exc:  # noqa: BLE001 - missing plugin, truncated fragment, bad length
        msg = str(exc)
        low = msg.lower()
        if "too short" in low or "truncat" in low or "less than expected" in low:
            raise CorruptFile(f"The image data is truncated ({syntax}).") from None
        raise UndecodablePixelData(f"The image data could not be decoded ({syntax}): {_clip(msg, 160)}") from None

    frames_axis = n_frames > 1
    if photometric == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        bits = 16 if arr.max() > 255 else 8
        arr = arr.astype(np.float32) / (257.0 if bits == 16 else 1.0)
        samples = 3
    is_color = samples == 3 or (arr.ndim >= 3 and arr.shape[-1] == 3 and not frames_axis) or (
        frames_axis and arr.ndim == 4)
    if not frames_axis:
        arr = arr[None]
    windows: list[tuple[float, float, str]] = []
    voi = None
    if is_color:
        frames = arr.astype(np.float32)
        top = float(2 ** int(ds.get("BitsStored", 8) or 8))
        default = (top / 2.0, top)
        invert = False
    else:
        modal = np.stack([np.asarray(apply_modality_lut(f, ds), dtype=np.float32) for f in arr])
        frames = modal
        invert = photometric == "MONOCHROME1"
        wc, ww = ds.get("WindowCenter"), ds.get("WindowWidth")
        if wc is not None and ww is not None:
            wcs = list(wc) if _is_multi(wc) else [wc]
            wws = list(ww) if _is_multi(ww) else [ww]
            expl = ds.get("WindowCenterWidthExplanation", [])
            expl = list(expl) if _is_multi(expl) else [expl]
            for i, (c, w) in enumerate(zip(wcs, wws)):
                if float(w) >= 1:
                    name = str(expl[i]) if i < len(expl) and str(expl[i]).strip() else f"DICOM window {i + 1}"
                    windows.append((float(c), float(w), name))
        default = (windows[0][0], windows[0][1]) if windows else full_range_window(frames)
        if "VOILUTSequence" in ds:
            try:
                raw = [np.asarray(apply_voi_lut(f, ds, index=0), dtype=np.float32) for f in arr]
                seq = ds.VOILUTSequence[0]
                bits_out = int(seq.LUTDescriptor[2]) if "LUTDescriptor" in seq else 16
                voi = np.clip(np.stack(raw) / float(2**bits_out - 1), 0, 1).astype(np.float32)
            except Exception:  # noqa: BLE001 - a broken VOI LUT falls back to the linear window
                voi = None
    if not np.isfinite(frames).any():
        raise CorruptFile("The image contains no finite pixel values.")
    spacing = ds.get("PixelSpacing")
    return Scan(
        frames=frames,
        source=f"DICOM, {syntax}, {photometric}, {int(ds.get('BitsStored', ds.get('BitsAllocated', 8)) or 8)}-bit",
        is_color=bool(is_color),
        invert=invert,
        default_window=default,
        windows=tuple(windows),
        voi_lut=voi,
        modality=str(ds.get("Modality", "")),
        metadata=tuple(_metadata(ds)),
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing is not None and len(spacing) == 2 else None,
    )


def _is_multi(v: Any) -> bool:
    from pydicom.multival import MultiValue

    return isinstance(v, (MultiValue, list, tuple))


def _metadata(ds: Any) -> list[MetaItem]:
    items = []
    elems = list(ds.file_meta) if getattr(ds, "file_meta", None) is not None else []
    elems += [e for e in ds if e.keyword not in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")]
    for e in elems:
        try:
            if e.VR == "SQ":
                value = f"<sequence of {len(e.value)} item(s)>"
            elif isinstance(e.value, (bytes, bytearray)):
                value = f"<{len(e.value)} bytes>"
            else:
                value = _clip(str(e.value), _MAX_VALUE_CHARS)
        except Exception:  # noqa: BLE001 - an undecodable value is shown as such
            value = "<unreadable value>"
        items.append(MetaItem(
            tag=f"({e.tag.group:04X},{e.tag.element:04X})",
            keyword=e.keyword or "",
            name=e.name,
            vr=str(e.VR),
            value=value,
            identifying=is_identifying(e.keyword or "", str(e.VR), e.tag.is_private),
        ))
    return items
