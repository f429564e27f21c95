"""PNG, JPEG, BMP and TIFF through Pillow: checked by content, 8/16-bit, multi-page, bomb-safe."""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from medai_core.errors import CorruptFile, TooLarge, UnsupportedFormat
from medai_core.io.scan import MAX_PIXELS, MAX_FRAMES, MetaItem, Scan, check_pixels, check_size, full_range_window

ALLOWED_FORMATS = {"PNG", "JPEG", "BMP", "TIFF", "MPO"}


def load_image(data: bytes) -> Scan:
    """Decode a PNG/JPEG/BMP/TIFF held in memory.

    Raises:
        UnsupportedFormat: not one of the supported image formats.
        CorruptFile: truncated or damaged.
        TooLarge: more pixels than allowed (decompression bomb guard) or too many pages.
    """
    check_size(len(data))
    with warnings.catch_warnings():
        # Pillow warns at MAX_IMAGE_PIXELS and errors at twice that; we refuse at our own limit
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise TooLarge(f"The image is too large to open safely ({exc}).") from None
        except Image.DecompressionBombWarning:
            raise TooLarge("The image has too many pixels to open safely.") from None
        except UnidentifiedImageError:
            raise UnsupportedFormat("This file is not a supported scan: expected DICOM, PNG, JPEG, BMP or TIFF.") from None
        except Exception as exc:  # noqa: BLE001 - damaged headers raise many kinds
            raise CorruptFile(f"The image file is damaged and cannot be opened ({type(exc).__name__}).") from None
        fmt = (im.format or "").upper()
        if fmt not in ALLOWED_FORMATS:
            raise UnsupportedFormat(f"{fmt or 'This'} images are not supported: use DICOM, PNG, JPEG, BMP or TIFF.")
        w, h = im.size
        try:
            n = int(getattr(im, "n_frames", 1) or 1)  # walks every page's header: damaged TIFFs fail here
        except Exception as exc:  # noqa: BLE001 - Pillow raises TypeError, KeyError, OSError...
            raise CorruptFile(f"The image file is damaged and cannot be opened ({type(exc).__name__}).") from None
        if w * h > MAX_PIXELS:
            raise TooLarge(f"The image is {w} x {h} pixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels.")
        if n > MAX_FRAMES:
            raise TooLarge(f"The image has {n} pages; the limit is {MAX_FRAMES}.")
        check_pixels(h, w, n, 3)
        frames, color, bits = [], False, 8
        try:
            for i in range(n):
                im.seek(i)
                arr, is_color, b = _to_array(im)
                color |= is_color
                bits = max(bits, b)
                frames.append(arr)
        except (TooLarge, UnsupportedFormat):
            raise
        except Exception as exc:  # noqa: BLE001 - truncated streams raise OSError and others
            raise CorruptFile(f"The image file is truncated or damaged ({type(exc).__name__}).") from None
    if color:
        frames = [f if f.ndim == 3 else np.repeat(f[..., None], 3, -1) for f in frames]
    if len({f.shape for f in frames}) > 1:
        frames = frames[:1]  # pages of different sizes: show the first
    stack = np.stack(frames).astype(np.float32)
    if color or bits == 8:
        default = (127.5, 256.0)
    else:
        default = full_range_window(stack)
    meta = (
        MetaItem("", "Format", "Format", "", fmt, False),
        MetaItem("", "Size", "Size", "", f"{w} x {h}", False),
        MetaItem("", "Mode", "Pixel mode", "", str(im.mode), False),
        MetaItem("", "Pages", "Pages", "", str(n), False),
    )
    return Scan(frames=stack, source=f"{fmt} image, {bits}-bit{' colour' if color else ''}", is_color=color,
                default_window=default, metadata=meta)


def _to_array(im: Image.Image) -> tuple[np.ndarray, bool, int]:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.float32), False, 16
    if mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float32)
        return arr, False, 16
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"), dtype=np.float32), False, 8
    if mode in ("LA", "La"):
        return np.asarray(im.convert("L"), dtype=np.float32), False, 8
    if mode == "P":
        rgb = im.convert("RGB")
        arr = np.asarray(rgb, dtype=np.float32)
        if np.allclose(arr[..., 0], arr[..., 1]) and np.allclose(arr[..., 1], arr[..., 2]):
            return arr[..., 0], False, 8
        return arr, True, 8
    arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
        return arr[..., 0], False, 8  # grey stored as RGB (common for ultrasound exports)
    return arr, True, 8
