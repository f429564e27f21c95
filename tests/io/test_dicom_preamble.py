"""DICOM written without the 128-byte preamble and 'DICM' (older systems, some PACS exports): recognised by
content (a run of well-formed data elements of group 0002 or 0008 at byte 0), read with the same pixels,
and de-identified into a proper Part 10 file. Anything else is still refused."""
from __future__ import annotations

import io
import struct

import numpy as np
import pydicom
import pytest

from medai_core.errors import CorruptFile, InputError, NoPixelData, UndecodablePixelData, UnsupportedFormat
from medai_core.io import deidentify_dicom, load_scan
from medai_core.io.dicom import is_bare_dicom, load_dicom, looks_like_dicom, read_dataset
from tests.conftest import make_dicom, pydicom_file, speckle_image


def _without_preamble(data: bytes) -> bytes:
    """Drop the preamble and 'DICM': the file starts with the file meta group (0002)."""
    assert data[128:132] == b"DICM"
    return data[132:]


def _without_meta(data: bytes) -> bytes:
    """Drop the preamble, 'DICM' and the whole file meta group: the file starts with the data set (0008)."""
    length = struct.unpack_from("<I", data, 132 + 8)[0]  # (0002,0000) UL: the meta group's length after it
    return data[132 + 12 + length:]


CASES = [("CT_small.dcm", _without_preamble), ("CT_small.dcm", _without_meta),
         ("MR_small_implicit.dcm", _without_preamble), ("MR_small_implicit.dcm", _without_meta),
         ("MR_small.dcm", _without_meta), ("emri_small.dcm", _without_meta)]


@pytest.mark.parametrize("name,strip", CASES, ids=[f"{n}-{s.__name__}" for n, s in CASES])
def test_preamble_less_dicom_loads_with_the_same_pixels(name, strip):
    original = pydicom_file(name).read_bytes()
    bare = strip(original)
    assert bare[:2] in (b"\x02\x00", b"\x08\x00") and is_bare_dicom(bare) and looks_like_dicom(bare)
    ref, scan = load_scan(original), load_scan(bare)
    np.testing.assert_array_equal(scan.frames, ref.frames)
    assert scan.default_window == ref.default_window and scan.modality == ref.modality
    assert ref.source.startswith("DICOM, ")  # normal files: unchanged
    assert scan.source == ref.source.replace("DICOM", "DICOM (no preamble)", 1)


def test_implicit_vr_without_meta_names_its_guessed_syntax():
    bare = _without_meta(pydicom_file("MR_small_implicit.dcm").read_bytes())
    assert bare[4:6] not in (b"CS", b"UI")  # implicit VR: a 4-byte length follows the tag
    ds = read_dataset(bare)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian and ds.preamble is None
    assert "Implicit VR Little Endian" in load_dicom(bare).source


def test_made_dicom_without_preamble():
    data = make_dicom(speckle_image(3))
    np.testing.assert_array_equal(load_scan(data[132:]).frames, load_scan(data).frames)


@pytest.mark.parametrize("name,strip", [("CT_small.dcm", _without_preamble), ("CT_small.dcm", _without_meta),
                                        ("MR_small_implicit.dcm", _without_meta)])
def test_deidentify_writes_a_proper_part10_file_from_a_preamble_less_one(name, strip):
    original = pydicom_file(name).read_bytes()
    bare = strip(original)
    src = pydicom.dcmread(io.BytesIO(original))
    res = deidentify_dicom(bare, allow_burned_in=True)  # its own read-back check ran on the output
    assert res.data[:128] == b"\0" * 128 and res.data[128:132] == b"DICM"
    ds = pydicom.dcmread(io.BytesIO(res.data))  # no force: a standard file
    assert ds.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID and ds.PixelData == src.PixelData
    assert ds.PatientIdentityRemoved == "YES" and not any(e.tag.is_private for e in ds.iterall())
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID != src.SOPInstanceUID
    np.testing.assert_array_equal(load_scan(res.data).frames, load_scan(original).frames)
    assert load_scan(res.data).source == load_scan(original).source


def _not_dicom() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(7)
    cases = [(f"random after {p.hex()}", p + rng.bytes(n)) for p in (b"\x02\x00", b"\x08\x00", b"\x08\x00\x05\x00",
                                                                     b"\x02\x00\x00\x00UL\x04\x00")
             for n in (6, 64, 4096)]
    cases += [("zeros after 0800", b"\x08\x00" + bytes(500)), ("zeros after 0200", b"\x02\x00" + bytes(500)),
              ("one element only", b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100"),
              ("an element then garbage", b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" + rng.bytes(300)),
              ("a length past the end", b"\x08\x00\x05\x00CS\xff\x00ISO_IR 100\x08\x00\x08\x00CS\x00\x00"),
              ("descending tags", b"\x08\x00\x08\x00CS\x00\x00\x08\x00\x05\x00CS\x00\x00\x08\x00\x16\x00UI\x00\x00"),
              ("text", b"id,text\n1,knee pain\n"), ("png", b"\x89PNG\r\n\x1a\n" + bytes(300)),
              ("random", rng.bytes(4096)), ("zeros", bytes(4096))]
    return cases


@pytest.mark.parametrize("name,data", _not_dicom(), ids=[n for n, _ in _not_dicom()])
def test_what_is_not_dicom_is_still_refused(name, data):
    assert not looks_like_dicom(data)
    with pytest.raises(UnsupportedFormat, match="not a DICOM file"):
        read_dataset(data)
    with pytest.raises(InputError):
        load_scan(data)
    with pytest.raises(UnsupportedFormat):
        deidentify_dicom(data)


def test_compressed_pixels_without_file_meta_are_a_clear_error():
    """Encapsulated pixel data does not say its codec without the meta's transfer syntax."""
    bare = _without_meta(pydicom_file("JPEG2000.dcm").read_bytes())
    assert is_bare_dicom(bare)
    with pytest.raises(UndecodablePixelData, match="compressed image"):
        load_scan(bare)
    np.testing.assert_array_equal(load_scan(_without_preamble(pydicom_file("JPEG2000.dcm").read_bytes())).frames,
                                  load_scan(pydicom_file("JPEG2000.dcm")).frames)


def test_a_truncated_preamble_less_file_is_an_input_error():
    bare = _without_meta(pydicom_file("CT_small.dcm").read_bytes())
    with pytest.raises((CorruptFile, NoPixelData)):
        load_scan(bare[: len(bare) // 2])
