"""De-identified DICOM export (PS3.15 Annex E basic profile): planted identifiers must be gone from the
bytes, UIDs remapped consistently, pixels and transfer syntax untouched, burned-in text refused."""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from medai_core.errors import BurnedInText, CorruptFile, EmptyInput, InputError, UnsupportedFormat
from medai_core.io import load_scan
from medai_core.io.deid import ADDED, REMOVED, UID_REMAPPED, _RESOLVE, deidentify_dicom, is_identifying
from medai_core.io.dicom_profile import profile_rule, profile_table
from tests.conftest import make_dicom, pydicom_file, speckle_image

SOP_CLASSES = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4", "US": "1.2.840.10008.5.1.4.1.1.6.1",
               "OT": "1.2.840.10008.5.1.4.1.1.7"}
PLANTED = ("Zzyzx", "Planted", "MRN-0001", "19700101", "Test Hospital", "ACC-778123", "1 Fake Street",
           "Dr^Plantedreferrer", "OTHER-ID-55", "PRIVATE-SECRET", "NESTED-ID-9", "Reviewerplanted", "20240229")


def _planted(burned_in: str | None = "NO", modality: str = "US") -> tuple[bytes, dict[str, str]]:
    """A DICOM with fake identifiers everywhere the profile must reach, and the UIDs it holds."""
    ds = pydicom.dcmread(io.BytesIO(make_dicom(speckle_image(1, 64), patient_name="Zzyzx^Planted", modality=modality)))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SOP_CLASSES[modality]
    ds.AccessionNumber = "ACC-778123"
    ds.InstitutionAddress = "1 Fake Street"
    ds.ReferringPhysicianName = "Dr^Plantedreferrer"
    ds.StudyDate, ds.StudyTime, ds.SeriesDate = "20240229", "101500", "20240229"
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    other = Dataset()
    other.PatientID = "OTHER-ID-55"
    ds.OtherPatientIDsSequence = [other]
    block = ds.private_block(0x0011, "ACME planted", create=True)
    block.add_new(0x01, "LO", "PRIVATE-SECRET Zzyzx")
    # references to this very instance and series, nested in sequences: must stay equal after remapping
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.ReferencedImageSequence = [ref]
    series_ref = Dataset()
    series_ref.SeriesInstanceUID = ds.SeriesInstanceUID
    deeper = Dataset()
    deeper.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    deeper.SecondaryReviewerName = "Reviewerplanted^Deep"  # a PN the table does not list
    deeper.PersonName = "Zzyzx^Nested"
    series_ref.ReferencedInstanceSequence = [deeper]
    ds.ReferencedSeriesSequence = [series_ref]
    region = Dataset()  # a sequence the table does not list, holding identifiers two levels down
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "T-04000", "SRT", "Breast"
    region.OtherPatientIDs = "NESTED-ID-9"
    inner = region.private_block(0x0013, "ACME nested", create=True)
    inner.add_new(0x02, "LO", "PRIVATE-SECRET nested")
    ds.AnatomicRegionSequence = [region]
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    uids = {"sop": ds.SOPInstanceUID, "study": ds.StudyInstanceUID, "series": ds.SeriesInstanceUID,
            "frame": ds.FrameOfReferenceUID}
    return buf.getvalue(), uids


def _read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def test_planted_identifiers_are_gone_from_the_bytes():
    data, uids = _planted()
    assert all(p.encode() in data for p in PLANTED)  # the test plants what it then looks for
    out = deidentify_dicom(data).data
    for p in PLANTED + tuple(uids.values()):
        assert p.encode() not in out, p
    ds = _read(out)
    assert not any(e.tag.is_private for e in ds.iterall())
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert ds.DeidentificationMethodCodeSequence[0].CodingSchemeDesignator == "DCM"
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert "PS3.15" in ds.DeidentificationMethod
    assert not ds.PatientName and not ds.StudyDate and "OtherPatientIDsSequence" not in ds
    assert ds.preamble == b"\0" * 128
    assert ds.Modality == "US" and ds.BurnedInAnnotation == "NO"  # non-identifying attributes kept


def test_uids_are_remapped_consistently_and_deterministically_per_salt():
    data, uids = _planted()
    ds = _read(deidentify_dicom(data, salt="export-1").data)
    new_sop = ds.SOPInstanceUID
    assert new_sop != uids["sop"] and new_sop.startswith("2.25.")
    assert ds.StudyInstanceUID != uids["study"] and ds.FrameOfReferenceUID != uids["frame"]
    assert ds.file_meta.MediaStorageSOPInstanceUID == new_sop
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new_sop
    series = ds.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == ds.SeriesInstanceUID != uids["series"]
    assert series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == new_sop
    assert ds.SOPClassUID == ds.ReferencedImageSequence[0].ReferencedSOPClassUID == SOP_CLASSES["US"]
    again = _read(deidentify_dicom(data, salt="export-1").data)
    other = _read(deidentify_dicom(data, salt="export-2").data)
    assert again.SOPInstanceUID == new_sop and other.SOPInstanceUID != new_sop
    assert _read(deidentify_dicom(data).data).SOPInstanceUID != _read(deidentify_dicom(data).data).SOPInstanceUID


def test_nested_sequences_are_cleaned_item_by_item():
    data, _ = _planted()
    ds = _read(deidentify_dicom(data).data)
    deeper = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert str(deeper.SecondaryReviewerName) == "ANONYMOUS"  # precaution: every person name
    assert str(deeper.PersonName) == "ANONYMOUS"  # Annex E: D
    region = ds.AnatomicRegionSequence[0]
    assert region.CodeMeaning == "Breast" and "OtherPatientIDs" not in region
    assert not any(e.tag.is_private for e in region)


def test_actions_say_what_was_done_without_values():
    data, _ = _planted()
    res = deidentify_dicom(data)
    rows = res.rows()
    text = repr(rows)
    assert not any(p in text for p in PLANTED)
    by = {r["attribute"]: r for r in rows}
    assert by["Patient's Name"]["action"] == "emptied" and by["Patient's Name"]["rule"] == "Annex E: Z"
    assert by["Institution Address"]["action"] == REMOVED
    assert by["SOP Instance UID"]["action"] == UID_REMAPPED
    assert any(r["rule"] == "private tag" for r in rows)
    assert any(r["attribute"].startswith("Referenced Series Sequence[1] > ") for r in rows)
    assert by["Patient Identity Removed"]["action"] == ADDED
    counts = res.counts()
    assert sum(counts.values()) == len(rows) and counts[REMOVED] >= 4
    assert res.burned_in == "NO" and not res.keep_dates


def test_pixels_and_rendering_unchanged():
    data, _ = _planted()
    out = deidentify_dicom(data).data
    assert _read(out).PixelData == _read(data).PixelData
    a, b = load_scan(data), load_scan(out)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.default_window == b.default_window and b.source == a.source


def test_keep_dates_retains_dates_and_says_so():
    data, _ = _planted()
    res = deidentify_dicom(data, keep_dates=True)
    ds = _read(res.data)
    assert ds.StudyDate == "20240229" and ds.PatientBirthDate == "19700101"
    assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113106"]
    assert not ds.PatientName and b"Zzyzx" not in res.data
    assert any(r["action"] == "kept" for r in res.rows())


@pytest.mark.parametrize("name", [
    "MR2_J2KR.dcm",  # JPEG 2000 lossless
    "emri_small_jpeg_ls_lossless.dcm",  # JPEG-LS, multi-frame
    "OBXXXX1A_rle.dcm",  # RLE, palette colour, private tags
    "CT_small.dcm",  # 179 private tags
    "JPEG2000.dcm",  # NM with sequences and private tags
    "MR_small_bigendian.dcm",  # explicit VR big endian
    "examples_ybr_color.dcm",  # JPEG baseline ultrasound cine
])
def test_shipped_files_keep_pixels_and_syntax(name):
    data = pydicom_file(name).read_bytes()
    src = _read(data)
    res = deidentify_dicom(data, allow_burned_in=True)
    ds = _read(res.data)
    assert ds.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID
    assert ds.PixelData == src.PixelData
    assert not any(e.tag.is_private for e in ds.iterall())
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID != src.SOPInstanceUID
    name_bytes = str(src.get("PatientName", "")).encode()
    if len(name_bytes) > 3:
        assert name_bytes not in res.data
    np.testing.assert_array_equal(load_scan(data).frames, load_scan(res.data).frames)


def test_burned_in_annotation_yes_is_refused_unless_allowed():
    data, _ = _planted(burned_in="YES", modality="CT")
    with pytest.raises(BurnedInText, match="burned into the pixels") as err:
        deidentify_dicom(data)
    assert "Clean Pixel Data" in str(err.value)
    assert isinstance(err.value, InputError)
    res = deidentify_dicom(data, allow_burned_in=True)
    assert res.burned_in == "YES" and _read(res.data).PatientIdentityRemoved == "YES"


@pytest.mark.parametrize("modality,flag,refused", [
    ("US", None, True),  # ultrasound that does not say: refused
    ("US", "NO", False),
    ("OT", None, True),
    ("CT", None, False),  # CT rarely carries burned-in text
    ("MR", "YES", True),
])
def test_burned_in_rule_by_modality(modality, flag, refused):
    data, _ = _planted(burned_in=flag, modality=modality)
    if refused:
        with pytest.raises(BurnedInText):
            deidentify_dicom(data)
    else:
        assert deidentify_dicom(data).burned_in == (flag or "not stated")


def test_shipped_ultrasound_without_flag_is_refused():
    with pytest.raises(BurnedInText, match="US images often show"):
        deidentify_dicom(pydicom_file("US1_UNCR.dcm").read_bytes())


@pytest.mark.parametrize("data,error", [
    (b"", EmptyInput),
    (b"\x89PNG\r\n\x1a\n" + bytes(300), UnsupportedFormat),
    (np.random.default_rng(0).bytes(4096), UnsupportedFormat),
])
def test_bad_bytes_raise_input_errors(data, error):
    with pytest.raises(error):
        deidentify_dicom(data)


def test_truncated_dicom_is_an_input_error():
    data, _ = _planted()
    with pytest.raises(CorruptFile, match="truncated"):
        deidentify_dicom(data[:-50])  # pydicom itself reads a file cut inside the pixels without complaint


def test_viewer_hides_what_the_export_changes():
    assert is_identifying("ContrastBolusAgent", "LO", False)  # Annex E Z/D, newly hidden
    assert is_identifying("PatientName", "PN", False) and is_identifying("Anything", "LO", True)
    assert not is_identifying("Modality", "CS", False) and not is_identifying("SOPClassUID", "UI", False)


def test_profile_table_read_from_dicom_anonymizer_has_every_action_the_export_knows():
    # the table comes from a pinned package: a new release must not slip in an action _apply cannot do,
    # nor lose rows (652 attributes and 3 repeating groups in the 2026c edition)
    table = profile_table()
    assert len(table.attributes) == 652 and len(table.repeating_groups) == 3
    known = {"D", "Z", "X", "K", "U"} | set(_RESOLVE)
    assert {code for code, _ in table.attributes.values()} <= known
    assert {group[4] for group in table.repeating_groups} <= known
    assert profile_rule(0x00100010) == ("Z", "Patient's Name")
    assert profile_rule(0x00880200) == ("X", "Icon Image Sequence")  # the table's "(see Note 11)" is not in the name
    assert profile_rule(0x60023000) == ("X", "Overlay Data") and profile_rule(0x501E0042) == ("X", "Curve Data")
    assert profile_rule(0x60020010) is None  # overlay rows/columns are not identifying
