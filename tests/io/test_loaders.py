"""Loaders: every supported encoding decodes to the right values; every bad input gets its error."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest

from medai_core.errors import (CorruptFile, EmptyInput, InputError, NoPixelData, TooLarge, UndecodablePixelData,
                               UnsupportedFormat)
from medai_core.io import load_scan, render
from medai_core.io.scan import apply_window, metadata_rows, window_presets
from tests.conftest import make_dicom, make_png, pydicom_file, speckle_image

RNG = np.random.default_rng(0)


def _bomb_png(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels (no real pixel data)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _bad_inputs():
    png = make_png(speckle_image())
    dcm = make_dicom(np.zeros((64, 64), np.uint16))
    yield "empty", b"", EmptyInput
    yield "random bytes", RNG.bytes(5000), UnsupportedFormat
    yield "text", b"patient,age\nA,3\n" * 20, UnsupportedFormat
    yield "truncated png", png[: len(png) // 2], CorruptFile
    yield "truncated dicom", dcm[: len(dcm) - 3000], (CorruptFile, NoPixelData)
    yield "dicom header only", dcm[:140], (CorruptFile, NoPixelData)
    yield "dicom without pixel data", make_dicom(np.zeros((4, 4), np.uint8), with_pixels=False), NoPixelData
    yield "gif", make_png(speckle_image()[:32, :32], fmt="GIF"), UnsupportedFormat
    yield "png bomb", _bomb_png(60_000, 60_000), TooLarge
    yield "dicom too many pixels", _huge_dicom(), TooLarge
    yield "undecodable syntax", _fake_compressed_dicom(), (UndecodablePixelData, CorruptFile)


def _huge_dicom() -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros((4, 4), np.uint8))))
    ds.Rows, ds.Columns = 40_000, 40_000
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def _fake_compressed_dicom() -> bytes:
    """JPEG 2000 transfer syntax whose fragments hold garbage."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000

    ds = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros((16, 16), np.uint8))))
    ds.file_meta.TransferSyntaxUID = JPEG2000
    ds.PixelData = encapsulate([RNG.bytes(200)])
    ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


@pytest.mark.parametrize("name,data,error", list(_bad_inputs()), ids=[c[0] for c in _bad_inputs()])
def test_bad_input_gets_clear_error(name, data, error):
    with pytest.raises(error) as exc:
        load_scan(data)
    assert isinstance(exc.value, InputError)
    msg = str(exc.value)
    assert len(msg) > 15 and "Traceback" not in msg


def test_png_renamed_dcm_is_read_by_content(tmp_path):
    p = tmp_path / "scan.dcm"
    p.write_bytes(make_png(speckle_image()))
    scan = load_scan(p)
    assert scan.source.startswith("PNG") and scan.shape == (256, 256)


def test_dicom_monochrome2_rescale_and_window():
    raw = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 2000
    scan = load_scan(make_dicom(raw, slope=2.0, intercept=-1024.0, window=(40, 400), modality="CT"))
    np.testing.assert_allclose(scan.frames[0], raw * 2.0 - 1024.0)
    assert scan.default_window == (40.0, 400.0)
    assert any(k.startswith("CT lung") for k in window_presets(scan))


def test_monochrome1_is_inverted_for_display():
    raw = np.tile(np.arange(256, dtype=np.uint8), (16, 1))
    m1 = render(load_scan(make_dicom(raw, photometric="MONOCHROME1")))
    m2 = render(load_scan(make_dicom(raw, photometric="MONOCHROME2")))
    np.testing.assert_allclose(m1, 1 - m2, atol=1e-6)
    assert m1[0, 0] > 0.99 and m2[0, 0] < 0.01


def test_rgb_and_multiframe_dicom():
    rgb = RNG.integers(0, 255, (2, 20, 30, 3), dtype=np.uint8)
    scan = load_scan(make_dicom(rgb, photometric="RGB"))
    assert scan.is_color and scan.frames.shape == (2, 20, 30, 3)
    np.testing.assert_array_equal(scan.frames[1], rgb[1])
    frames = RNG.integers(0, 4000, (5, 16, 16), dtype=np.uint16)
    scan = load_scan(make_dicom(frames))
    assert scan.n_frames == 5
    np.testing.assert_array_equal(scan.frames[3], frames[3])


REFERENCE = "MR_small.dcm"


@pytest.mark.parametrize("name", [
    "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm"])
def test_lossless_encodings_decode_identically(name):
    ref = load_scan(pydicom_file(REFERENCE)).frames
    np.testing.assert_array_equal(load_scan(pydicom_file(name)).frames, ref)


@pytest.mark.parametrize("name,ref,tol", [
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb.dcm", 0),  # JPEG lossless
    ("SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_rgb.dcm", 12),  # JPEG baseline, YBR_FULL
    ("SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb.dcm", 12),  # JPEG baseline, YBR_FULL_422
    ("SC_ybr_full_uncompressed.dcm", "SC_rgb.dcm", 2),  # uncompressed YBR_FULL
    ("SC_rgb_rle.dcm", "SC_rgb.dcm", 0),
])
def test_colour_encodings_match_rgb(name, ref, tol):
    a = load_scan(pydicom_file(name)).frames.astype(float)
    b = load_scan(pydicom_file(ref)).frames.astype(float)
    assert np.abs(a - b).mean() <= max(tol, 0.5)


def test_16bit_ct_rescale_from_pydicom_file():
    import pydicom

    scan = load_scan(pydicom_file("CT_small.dcm"))
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(scan.frames[0], expected)
    assert scan.modality == "CT"


def test_voi_lut_sequence_offered():
    scan = load_scan(pydicom_file("vlut_04.dcm"))
    assert scan.voi_lut is not None
    img = render(scan, 0, use_voi_lut=True)
    assert img.min() >= 0 and img.max() <= 1 and img.std() > 0


def test_images_8_16_bit_and_multipage_tiff():
    g8 = speckle_image()
    s = load_scan(make_png(g8))
    assert not s.is_color and s.frames.max() <= 255
    g16 = (g8.astype(np.uint16) * 200)
    s16 = load_scan(make_png(g16))
    assert s16.frames.max() > 255 and "16-bit" in s16.source
    assert load_scan(make_png(np.dstack([g8, g8 // 2, g8 // 3]), fmt="JPEG")).is_color
    assert load_scan(make_png(g8, fmt="BMP")).shape == (256, 256)
    from PIL import Image

    buf = io.BytesIO()
    pages = [Image.fromarray(g8), Image.fromarray(255 - g8)]
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    t = load_scan(buf.getvalue())
    assert t.n_frames == 2


def test_window_is_linear_and_clipped():
    v = np.array([-1000.0, 40.0, 1000.0])
    out = apply_window(v, 40, 400)
    assert out[0] == 0 and out[2] == 1 and 0.45 < out[1] < 0.55


def test_identifiers_hidden_unless_revealed():
    scan = load_scan(make_dicom(np.zeros((8, 8), np.uint8), patient_name="Fakename^Planted"))
    hidden = metadata_rows(scan)
    assert not any("Fakename" in r["value"] for r in hidden)
    assert not any("MRN-0001" in r["value"] or "19700101" in r["value"] for r in hidden)
    assert not any("Test Hospital" in r["value"] for r in hidden)
    shown = metadata_rows(scan, reveal=True)
    assert any("Fakename" in r["value"] for r in shown)
    # non-identifying attributes stay visible
    assert any(r["attribute"] == "Modality" and r["value"] == "US" for r in hidden)


def test_pydicom_log_records_never_reach_the_root_logger():
    """pydicom logs damaged elements (possibly quoting values) on its own logger; nothing may propagate to the
    application's logs (a handler on the root logger, as a host application would add, sees nothing)."""
    import logging

    import medai_core.io.dicom  # noqa: F401  (configures the logger)

    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    root = logging.getLogger()
    handler, level = Collect(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        logging.getLogger("pydicom").warning("value Zzyzx^Planted")
        logging.getLogger("medai-test").warning("control")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert seen == ["control"]
