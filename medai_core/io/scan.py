"""The ``Scan`` type every loader returns, limits, and display rendering (window/level)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_BYTES = 200 * 1024 * 1024  # matches server.maxUploadSize in .streamlit/config.toml
MAX_PIXELS = 50_000_000  # per frame (about 7,000 x 7,000)
MAX_FRAMES = 1_000
MAX_TOTAL_PIXELS = 400_000_000  # all frames and samples together (1.6 GB as float32)


@dataclass(frozen=True)
class MetaItem:
    """One metadata attribute as shown in the viewer."""

    tag: str  # "(0010,0010)"
    keyword: str
    name: str
    vr: str
    value: str
    identifying: bool


@dataclass(frozen=True)
class Scan:
    """A decoded scan.

    Attributes:
        frames: (F, H, W) grayscale values in modality units (Hounsfield units for CT after the
            rescale slope/intercept), or (F, H, W, 3) RGB; float32.
        source: human description of the format, e.g. "DICOM, JPEG 2000 Lossless".
        is_color: True when frames carry 3 channels.
        invert: MONOCHROME1, where low values are displayed white (PS3.3 C.7.6.3.1.2).
        default_window: (centre, width) from the file or the data's full range.
        windows: all (centre, width, explanation) presets the file itself declares.
        voi_lut: a non-linear VOI LUT per frame, already applied to a display copy, or None.
        modality: DICOM modality (CT, MR, US, ...) or "" for plain images.
        metadata: attributes for the metadata panel, identifying ones flagged.
    """

    frames: np.ndarray
    source: str
    is_color: bool
    invert: bool = False
    default_window: tuple[float, float] = (127.5, 256.0)
    windows: tuple[tuple[float, float, str], ...] = ()
    voi_lut: np.ndarray | None = None
    modality: str = ""
    metadata: tuple[MetaItem, ...] = field(default_factory=tuple)
    pixel_spacing: tuple[float, float] | None = None

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def value_range(self) -> tuple[float, float]:
        return float(np.nanmin(self.frames)), float(np.nanmax(self.frames))


def full_range_window(frames: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.nanmin(frames)), float(np.nanmax(frames))
    return (lo + hi) / 2.0, max(hi - lo, 1.0)


def apply_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Linear window (DICOM PS3.3 C.11.2.1.2.1) mapping to [0, 1]."""
    width = max(float(width), 1e-6)
    lo = center - 0.5 - (width - 1) / 2
    out = (values - lo) / max(width - 1, 1e-6)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def render(scan: Scan, frame: int = 0, window: tuple[float, float] | None = None,
           use_voi_lut: bool = False) -> np.ndarray:
    """Display image of one frame in [0, 1]: (H, W) or (H, W, 3).

    Args:
        scan: the scan.
        frame: frame index (clamped to the valid range).
        window: (centre, width) in modality units; None uses the file's default.
        use_voi_lut: use the file's own (non-linear) VOI LUT instead of a linear window.
    """
    frame = int(min(max(frame, 0), scan.n_frames - 1))
    if use_voi_lut and scan.voi_lut is not None:
        img = scan.voi_lut[frame]
    else:
        c, w = window if window is not None else scan.default_window
        img = apply_window(scan.frames[frame], c, w)
    if scan.invert and not scan.is_color:
        img = 1.0 - img
    return img


def to_gray(display: np.ndarray) -> np.ndarray:
    """Luminance (ITU-R BT.601) of a display image, or the image itself if already gray."""
    if display.ndim == 2:
        return display
    return (display[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)


def check_size(n_bytes: int) -> None:
    from medai_core.errors import EmptyInput, TooLarge

    if n_bytes == 0:
        raise EmptyInput("The file is empty (0 bytes).")
    if n_bytes > MAX_BYTES:
        raise TooLarge(f"The file is {n_bytes / 2**20:.0f} MB; the limit is {MAX_BYTES / 2**20:.0f} MB.")


def check_pixels(rows: int, cols: int, frames: int = 1, samples: int = 1) -> None:
    from medai_core.errors import CorruptFile, TooLarge

    if rows <= 0 or cols <= 0 or frames <= 0:
        raise CorruptFile(f"The image declares an impossible size ({rows} x {cols}, {frames} frame(s)).")
    if rows * cols > MAX_PIXELS:
        raise TooLarge(f"The image is {cols} x {rows} pixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels per frame.")
    if frames > MAX_FRAMES:
        raise TooLarge(f"The scan has {frames} frames; the limit is {MAX_FRAMES}.")
    if rows * cols * frames * samples > MAX_TOTAL_PIXELS:
        raise TooLarge(f"The scan holds {rows * cols * frames * samples / 1e6:.0f} million values; "
                       f"the limit is {MAX_TOTAL_PIXELS / 1e6:.0f} million.")


# (centre, width) presets radiologists use for CT, in Hounsfield units
CT_PRESETS: dict[str, tuple[float, float]] = {
    "CT soft tissue (40/400)": (40.0, 400.0),
    "CT lung (-600/1500)": (-600.0, 1500.0),
    "CT bone (400/1800)": (400.0, 1800.0),
    "CT brain (40/80)": (40.0, 80.0),
    "CT liver (60/160)": (60.0, 160.0),
}
VOI_LUT_PRESET = "File VOI LUT (non-linear)"


def window_presets(scan: Scan) -> dict[str, tuple[float, float] | None]:
    """Window presets for a scan: the file's own windows, full range, CT presets for CT.

    The value ``None`` marks the file's non-linear VOI LUT.
    """
    out: dict[str, tuple[float, float] | None] = {}
    if scan.voi_lut is not None:
        out[VOI_LUT_PRESET] = None
    for c, w, name in scan.windows:
        out[f"{name} ({c:g}/{w:g})"] = (c, w)
    out["Full range"] = full_range_window(scan.frames)
    if not scan.windows and "Full range" in out and scan.default_window != out["Full range"]:
        out["Default"] = scan.default_window
    if scan.modality == "CT":
        out.update(CT_PRESETS)
    return out


def metadata_rows(scan: Scan, reveal: bool = False) -> list[dict[str, str]]:
    """Rows for the metadata panel; identifying values are masked unless ``reveal``."""
    rows = []
    for m in scan.metadata:
        value = m.value if (reveal or not m.identifying) else "•••• hidden (identifier)"
        rows.append({"tag": m.tag, "attribute": m.name, "VR": m.vr, "value": value,
                     "identifier": "yes" if m.identifying else ""})
    return rows
