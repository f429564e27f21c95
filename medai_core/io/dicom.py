"""DICOM loading through pydicom, checked by content: ``DICM`` at byte 128 (a Part 10 file), or, for a
data set written without the preamble, a plausible run of data elements at byte 0. Only a file that
check recognised as preamble-less is read with ``force=True``.

Compressed transfer syntaxes (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE) decode
through pydicom's pylibjpeg plugins; the modality LUT (rescale slope/intercept, PS3.3 C.11.1) and
the VOI LUT / window (PS3.3 C.11.2) are applied as the standard says.
"""
from __future__ import annotations

import io
import logging
import struct
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


# Explicit VRs (PS3.5 6.2) and those with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2)
_VRS = frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR "
                 b"US UT UV".split())
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_UNDEFINED_LENGTH = 0xFFFFFFFF
_BARE_FIRST_GROUPS = (0x0002, 0x0008)  # file meta, or the data set's first group (Identifying)
_BARE_MIN_ELEMENTS = 3  # every image has more; three well-formed elements in a row do not happen by chance
NO_PREAMBLE = "DICOM (no preamble)"


def has_preamble(data: bytes) -> bool:
    """Part 10 files carry the magic ``DICM`` after a 128-byte preamble (PS3.10 7.1)."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def is_bare_dicom(data: bytes) -> bool:
    """Whether ``data`` is a DICOM data set written without the Part 10 preamble and ``DICM``.

    Older systems and some exports write the file meta group (0002) or the data set itself (group 0008
    first) straight from byte 0, as a data set is sent over the network (PS3.7, PS3.5 7.1). Recognised by
    content: the first element is a known tag of group 0002 or 0008, and it and the next ones (at least
    ``_BARE_MIN_ELEMENTS``) are well-formed little-endian elements with ascending tags, explicit VRs that
    exist or implicit-VR lengths, each fitting in the file. Random bytes, text and images fail this.
    """
    from pydicom.datadict import dictionary_has_tag, dictionary_VR

    if has_preamble(data) or len(data) < 8:
        return False
    pos, prev, n, explicit = 0, -1, 0, None
    while n < _BARE_MIN_ELEMENTS:
        if pos + 8 > len(data):
            return False
        group, elem = struct.unpack_from("<HH", data, pos)
        tag = group << 16 | elem
        if n == 0 and (group not in _BARE_FIRST_GROUPS or not (elem == 0 or dictionary_has_tag(tag))):
            return False
        if n and prev >> 16 == 0x0002 and group != 0x0002:
            return n >= 2  # the file meta ended (always explicit VR); the data set may be implicit
        if tag <= prev:
            return False
        vr = data[pos + 4:pos + 6]
        is_explicit = vr in _VRS
        if explicit is None:
            explicit = is_explicit
        elif is_explicit != explicit:
            return False
        if not explicit:
            length, head = struct.unpack_from("<I", data, pos + 4)[0], 8
        elif vr in _LONG_VRS:
            if pos + 12 > len(data) or data[pos + 6:pos + 8] != b"\0\0":
                return False
            length, head = struct.unpack_from("<I", data, pos + 8)[0], 12
        else:
            length, head = struct.unpack_from("<H", data, pos + 6)[0], 8
        n += 1
        if length == _UNDEFINED_LENGTH:  # a sequence (or encapsulated pixels): its end is not known here
            try:
                is_seq = vr in (b"SQ", b"UN", b"OB", b"OW") if explicit else dictionary_VR(tag) == "SQ"
            except KeyError:
                is_seq = False
            return is_seq and n >= 2
        pos += head + length
        if pos > len(data):
            return False
        prev = tag
    return True


def looks_like_dicom(data: bytes) -> bool:
    """A Part 10 file (``DICM`` at byte 128) or a data set without the preamble (``is_bare_dicom``)."""
    return has_preamble(data) or is_bare_dicom(data)


def load_dicom(data: bytes) -> Scan:
    """Decode a DICOM Part 10 file (or a data set without the preamble, ``is_bare_dicom``) held in memory.

    ``Scan.source`` starts "DICOM, " for a Part 10 file and "DICOM (no preamble), " for the other kind.

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

    A data set without the preamble (``is_bare_dicom``) is read with ``force=True`` (nothing else is), its
    ``preamble`` is None, and a missing transfer syntax is filled in from the encoding pydicom found.

    Raises:
        EmptyInput, TooLarge: empty or over the size limit.
        UnsupportedFormat: not a DICOM file.
        CorruptFile: truncated or damaged.
        UndecodablePixelData: compressed pixels in a file without preamble and file meta.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    # Validation warnings quote offending values (which may be identifiers) into logs: off.
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    check_size(len(data))
    bare = is_bare_dicom(data)
    if not bare and not has_preamble(data):
        raise UnsupportedFormat("This is not a DICOM file (no 'DICM' marker at byte 128, and no DICOM data element "
                                "at byte 0).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # force only for a file the content check above recognised as a data set without the preamble
            ds = pydicom.dcmread(io.BytesIO(data), force=bare)
            if bare:
                _complete_bare_meta(ds)
            return ds
    except InputError:
        raise
    except InvalidDicomError as exc:
        raise UnsupportedFormat(f"This is not a readable DICOM file ({exc}).") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on damaged files
        raise CorruptFile(f"The DICOM file is damaged or truncated and cannot be read ({type(exc).__name__}).") from None


def _complete_bare_meta(ds: Any) -> None:
    """A data set written without its file meta does not name its transfer syntax; pydicom found the
    encoding from the first element (implicit or explicit VR, little endian), and the pixel decoder and a
    re-export need it in the meta. Encapsulated (compressed) pixel data cannot be decoded without the
    transfer syntax that names its codec (PS3.5 A.4), so such a file is refused with a clear message."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    if ds.file_meta.get("TransferSyntaxUID") is None:
        pixels = ds.get_item(0x7FE00010)
        if pixels is not None and (getattr(pixels, "length", 0) == _UNDEFINED_LENGTH
                                   or getattr(pixels, "is_undefined_length", False)):
            raise UndecodablePixelData("This DICOM file has neither the standard preamble nor a file meta header, so it "
                                       "does not say how its compressed image is encoded.")
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else (
            ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


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
        source=f"{NO_PREAMBLE if ds.preamble is None else 'DICOM'}, {syntax}, {photometric}, {int(ds.get('BitsStored', ds.get('BitsAllocated', 8)) or 8)}-bit",
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
