"""De-identified export of a DICOM file with the Basic Application Level Confidentiality Profile
(DICOM PS3.15 Annex E): ``deidentify_dicom`` returns a new file (in memory) and what was done to it.

https://dicom.nema.org/medical/dicom/current/output/chtml/part15/chapter_E.html

The profile's table and the viewer's rule for which attributes identify a patient (``is_identifying``,
also importable from here) are in ``dicom_profile``; the file is read by ``dicom.read_dataset``.
"""
from __future__ import annotations

import hashlib
import io
import secrets
import uuid
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medai_core.errors import BurnedInText, CorruptFile, InputError
from medai_core.io.dicom import read_dataset, transfer_syntax_name
from medai_core.io.dicom_profile import NON_IDENTIFYING_UIDS, profile_rule
# explicit re-exports (``x as x``): they lived here, and callers still import them from here
from medai_core.io.dicom_profile import IDENTIFYING_KEYWORDS as IDENTIFYING_KEYWORDS
from medai_core.io.dicom_profile import is_identifying as is_identifying

if TYPE_CHECKING:
    from medai_core.io.scan import Scan

REMOVED, DUMMY, EMPTIED, UID_REMAPPED, KEPT, ADDED = (
    "removed", "replaced with dummy", "emptied", "UID remapped", "kept", "added")

# Modalities whose images often carry the patient's name, ID or date written into the pixels
# (ultrasound scanners, endoscopes, cameras, screenshots, scanned documents). When such a file does
# not say BurnedInAnnotation = NO, the export is refused like an explicit YES.
BURNED_IN_MODALITIES = frozenset({"US", "IVUS", "ES", "XC", "GM", "OT", "SC", "DOC"})
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"  # and its .1-.4 multi-frame variants
_WELL_KNOWN_UID = "1.2.840.10008."  # DICOM's own class, syntax and coding-scheme UIDs: identify nobody

# Combined codes leave the choice to the IOD's attribute type (PS3.15 E.3.1). Without the IOD's
# module tables we take the option every type accepts: a dummy satisfies Type 1, 2 and 3, a
# zero-length value Type 2 and 3; none of them carries the original value.
_RESOLVE = {"Z/D": "D", "X/D": "D", "X/Z/D": "D", "X/Z": "Z", "X/Z/U*": "U*"}

_DUMMY_TEXT = "ANONYMOUS"
_DUMMY = {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000Y", "DS": "0", "IS": "0"}
_NUMERIC_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"})
_BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
_DATE_VRS = frozenset({"DA", "DT", "TM"})

# File meta attributes that name the sending site's devices or carry private data (PS3.10 7.1).
_META_REMOVE = {
    0x00020016: "Source Application Entity Title", 0x00020017: "Sending Application Entity Title",
    0x00020018: "Receiving Application Entity Title", 0x00020026: "Source Presentation Address",
    0x00020027: "Sending Presentation Address", 0x00020028: "Receiving Presentation Address",
    0x00020100: "Private Information Creator UID", 0x00020102: "Private Information",
}

# CID 7050 "De-identification Method": the basic profile and the option used for dates
PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
FULL_DATES_CODE = ("113106", "Retain Longitudinal Temporal Information Full Dates Option")


@dataclass(frozen=True)
class DeidAction:
    """What the export did to one attribute (never its value).

    Attributes:
        path: where it sits, e.g. "Referenced Image Sequence[1] > Referenced SOP Instance UID".
        tag: "(0008,1155)".
        action: one of "removed", "replaced with dummy", "emptied", "UID remapped", "kept", "added".
        rule: why, e.g. "Annex E: U", "private tag", "precaution: person name not in the table".
    """

    path: str
    tag: str
    action: str
    rule: str


@dataclass(frozen=True)
class DeidResult:
    """A de-identified DICOM file (bytes, never written to disk) and what was done to make it.

    Attributes:
        data: the new Part 10 file; same transfer syntax, pixel data byte for byte.
        actions: one entry per attribute changed (or kept by the date option), in file order.
        transfer_syntax: the (unchanged) transfer syntax's name.
        burned_in: "NO", "YES" or "not stated": what the file says about burned-in annotation.
        keep_dates: whether dates and times were retained (Full Dates option).
    """

    data: bytes
    actions: tuple[DeidAction, ...]
    transfer_syntax: str
    burned_in: str
    keep_dates: bool

    def counts(self) -> dict[str, int]:
        """Number of attributes per action, e.g. {"removed": 31, "UID remapped": 4, ...}."""
        out: dict[str, int] = {}
        for a in self.actions:
            out[a.action] = out.get(a.action, 0) + 1
        return out

    def rows(self) -> list[dict[str, str]]:
        """The actions as table rows (attribute, tag, action, rule) for a report or a data frame."""
        return [{"attribute": a.path, "tag": a.tag, "action": a.action, "rule": a.rule} for a in self.actions]


class _Export:
    """State of one export: the options, the salt and the UID map (consistent within the export)."""

    def __init__(self, keep_dates: bool, salt: str) -> None:
        self.keep_dates = keep_dates
        self.salt = salt
        self.namespace = uuid.UUID(bytes=hashlib.sha256(salt.encode()).digest()[:16])
        self.uids: dict[str, str] = {}
        self.actions: list[DeidAction] = []

    def new_uid(self, uid: str) -> str:
        uid = str(uid).strip().rstrip("\x00")
        if not uid or uid.startswith(_WELL_KNOWN_UID):
            return uid
        if uid not in self.uids:
            # A name-based UUID (RFC 4122 v5) in the salt's namespace, as a "2.25." UID (PS3.5 B.2):
            # deterministic in (uid, salt), so equal UIDs stay equal and references keep their targets,
            # and not traceable to the original without the salt. (pydicom's generate_uid ignores its
            # entropy sources when prefix=None and returns a random UUID.)
            self.uids[uid] = f"2.25.{uuid.uuid5(self.namespace, uid).int}"
        return self.uids[uid]

    def record(self, path: str, tag: int, action: str, rule: str) -> None:
        self.actions.append(DeidAction(path, f"({tag >> 16:04X},{tag & 0xFFFF:04X})", action, rule))


def _dummy(vr: str) -> Any:
    if vr in _DUMMY:
        return _DUMMY[vr]
    if vr in _NUMERIC_VRS:
        return 0
    return _DUMMY_TEXT


def _remap(elem: Any, ex: _Export) -> bool:
    """Give each UID of ``elem`` its new UID; whether anything changed (DICOM's own UIDs stay)."""
    from pydicom.multival import MultiValue

    old = [str(v) for v in elem.value] if isinstance(elem.value, (MultiValue, list, tuple)) else [str(elem.value or "")]
    new = [ex.new_uid(v) for v in old]
    if new == old:
        return False
    elem.value = new if len(new) > 1 else new[0]
    return True


def _clean(ds: Any, ex: _Export, prefix: str) -> None:
    """Apply the profile to every element of ``ds`` in place, recursing into sequence items."""
    for tag in list(ds.keys()):
        tag = int(tag)
        try:
            elem = ds[tag]  # decodes a raw element; a value pydicom cannot decode is dropped below
            name = elem.name
        except Exception:  # noqa: BLE001 - undecodable: we cannot tell what it holds, so it goes
            del ds[tag]
            ex.record(f"{prefix}({tag >> 16:04X},{tag & 0xFFFF:04X})", tag, REMOVED, "precaution: undecodable value")
            continue
        rule = profile_rule(tag)
        path = prefix + (rule[1] if rule else name)
        vr = str(elem.VR)
        if elem.tag.is_private:
            del ds[tag]
            ex.record(path, tag, REMOVED, "private tag")
            continue
        if tag & 0xFFFF == 0:  # group length: its value is wrong once elements go (retired, PS3.5 7.2)
            del ds[tag]
            continue
        if rule is not None:
            code, why = _RESOLVE.get(rule[0], rule[0]), f"Annex E: {rule[0]}"
        elif vr == "SQ":
            code, why = "U*", ""  # not listed: clean its items
        elif vr == "PN":
            code, why = "D", "precaution: person name not in the table"
        elif vr in _DATE_VRS:
            code, why = "Z", "precaution: date/time not in the table"
        elif vr == "UI" and elem.keyword not in NON_IDENTIFYING_UIDS:
            code, why = "U", "precaution: instance UID not in the table"
        else:
            continue
        if ex.keep_dates and vr in _DATE_VRS and code != "K":
            ex.record(path, tag, KEPT, "Retain Longitudinal Temporal Information Full Dates Option")
            continue
        _apply(ds, tag, elem, vr, code, why, path, ex)


def _apply(ds: Any, tag: int, elem: Any, vr: str, code: str, why: str, path: str, ex: _Export) -> None:
    if code == "K":
        return
    if code == "X":
        del ds[tag]
        ex.record(path, tag, REMOVED, why)
    elif vr == "SQ":
        if code == "Z":
            elem.value = []
            ex.record(path, tag, EMPTIED, why)
        else:  # D, U, U* on a sequence: keep its structure, clean what its items hold
            for i, item in enumerate(elem.value):
                _clean(item, ex, f"{path}[{i + 1}] > ")
    elif code == "Z" or vr in _BINARY_VRS:
        if elem.is_empty:
            return
        elem.value = b"" if vr in _BINARY_VRS else None
        ex.record(path, tag, EMPTIED, why)
    elif vr == "UI":  # U, U*, or a dummy asked of a UID: a consistent new UID
        if _remap(elem, ex):
            ex.record(path, tag, UID_REMAPPED, why)
    else:  # D
        elem.value = _dummy(vr)
        ex.record(path, tag, DUMMY, why)


def _check_pixel_length(ds: Any) -> None:
    """pydicom reads a file cut short without complaint; native pixel data shorter than its header
    declares means the copy would be damaged too (encapsulated data is copied as it is)."""
    from pydicom.pixels.utils import get_expected_length

    if "PixelData" not in ds or ds.file_meta.get("TransferSyntaxUID") is None or ds.file_meta.TransferSyntaxUID.is_compressed:
        return
    try:
        expected = int(get_expected_length(ds, "bytes"))
    except Exception:  # noqa: BLE001 - a header without the size attributes: nothing to compare
        return
    if len(ds.PixelData) < expected:
        raise CorruptFile(f"The image data is truncated ({len(ds.PixelData):,} of {expected:,} bytes); the file is "
                          "damaged and was not exported.")


def burned_in_risk(ds: Any) -> str | None:
    """Why the pixels of a pydicom dataset may show identifiers, or None: BurnedInAnnotation YES, or not
    stated for a modality (or a secondary capture) that usually carries burned-in text."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return None
    return _burned_in_reason(ds.get("BurnedInAnnotation", ""), ds.get("Modality", ""), ds.get("SOPClassUID", ""))


def scan_burned_in_risk(scan: Scan) -> str | None:
    """``burned_in_risk`` for a loaded scan (from its metadata); None for plain images (PNG, JPEG...),
    which carry no flag: the report tells the reader to check any image before sharing it."""
    meta = {m.keyword: m.value for m in scan.metadata}
    if "SOPClassUID" not in meta and "Modality" not in meta:
        return None
    return _burned_in_reason(meta.get("BurnedInAnnotation", ""), scan.modality, meta.get("SOPClassUID", ""))


def _burned_in_reason(flag: object, modality: object, sop_class: object) -> str | None:
    flag = str(flag or "").strip().upper()
    if flag == "YES":
        return "The file states that its image has text burned into the pixels (Burned In Annotation = YES)."
    if flag == "NO":
        return None
    modality = str(modality or "").strip().upper()
    sop = str(sop_class or "")
    # the viewer's metadata shows a class by name ("Secondary Capture Image Storage"), pydicom by UID
    if modality in BURNED_IN_MODALITIES or sop.startswith(_SECONDARY_CAPTURE) or "Secondary Capture" in sop:
        kind = f"{modality} images" if modality in BURNED_IN_MODALITIES else "Secondary captures (screenshots)"
        return (f"The file does not say whether text is burned into its image, and {kind} often show the "
                "patient's name, ID or date in the pixels.")
    return None


def deidentify_dicom(data: bytes, *, keep_dates: bool = False, allow_burned_in: bool = False,
                     salt: str | None = None) -> DeidResult:
    """De-identify a DICOM file with the Basic Application Level Confidentiality Profile (PS3.15 E.1).

    Every attribute in the profile's table (``dicom_profile.profile_table``) gets its action: D a dummy,
    Z zero-length, X removed, U a new UID; combined codes take the option every IOD accepts (D, or Z
    for X/Z). As precautions beyond the table, person names, dates/times and instance UIDs it does not
    list are treated like their listed kin. All private tags go, sequences are cleaned item by item,
    overlays and curves are removed, the 128-byte preamble is zeroed (it can hold a TIFF header), and
    the file meta's AE titles go. PatientIdentityRemoved = YES, DeidentificationMethod(+CodeSequence,
    CID 7050 113100) and LongitudinalTemporalInformationModified are set. Pixel data and the transfer
    syntax are kept byte for byte, compressed or not; nothing is written to disk.

    Args:
        data: the DICOM Part 10 file.
        keep_dates: retain dates and times (Retain Longitudinal Temporal Information Full Dates
            Option, CID 7050 113106); otherwise they are emptied or given dummy values.
        allow_burned_in: export even if the pixels may show identifiers (the user has checked the image).
        salt: secret mixed into the new UIDs; pass the same salt to keep UIDs consistent across the
            files of one study. Default: a fresh random salt per call.

    Returns:
        The new file and a list of what was done per attribute (no values).

    Raises:
        BurnedInText: the pixels may show identifiers (see ``burned_in_risk``) and ``allow_burned_in`` is False.
        InputError: (a subclass) the bytes are not a readable DICOM file.
    """
    try:
        result = _deidentify(data, keep_dates, allow_burned_in, salt)
        problem = _verify_export(result.data)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom parses lazily: a damaged element fails where it is read
        # the type only: pydicom's messages can quote values (identifiers)
        raise CorruptFile(f"The DICOM header is damaged ({type(exc).__name__}), so a de-identified copy cannot be "
                          "written.") from None
    if problem:
        raise CorruptFile(f"The DICOM file's structure is damaged: read back, the de-identified copy {problem}, "
                          "so it is not offered.")
    return result


def _verify_export(data: bytes) -> str | None:
    """Read the export back as any receiver would and check the profile held; a reason if not, else None.

    A damaged input (found by fuzzing: a mutated length) can be written out cleanly yet parse differently,
    e.g. trailing bytes re-read as a private element; the only safe check is on the bytes that leave."""
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data))
        if str(ds.get("PatientIdentityRemoved", "")).strip().upper() != "YES":
            return "does not state that the patient identity was removed"
        for elem in ds.iterall():
            if elem.tag.is_private:
                return "still holds private attributes"
    return None


def _deidentify(data: bytes, keep_dates: bool, allow_burned_in: bool, salt: str | None) -> DeidResult:
    ds = read_dataset(data)
    if not ds.get("SOPClassUID") and not ds.file_meta.get("MediaStorageSOPClassUID"):
        raise CorruptFile("The DICOM file does not say what kind of object it is (no SOP Class UID), so a valid "
                          "de-identified copy cannot be written.")
    _check_pixel_length(ds)
    risk = burned_in_risk(ds)
    if risk and not allow_burned_in:
        raise BurnedInText(f"{risk} De-identification cleans the header only (the basic profile without the "
                           "Clean Pixel Data option), so the export was stopped. Look at the image: export it only "
                           "if it shows no name, ID, date or other identifier.")
    flag = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    ex = _Export(keep_dates, salt if salt is not None else secrets.token_hex(16))
    with warnings.catch_warnings():  # pydicom's warnings can quote values (identifiers): never into logs
        warnings.simplefilter("ignore")
        return _export(ds, ex, flag, keep_dates)


def _export(ds: Any, ex: _Export, flag: str, keep_dates: bool) -> DeidResult:
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    from medai_core import __version__

    try:
        _clean(ds, ex, "")
    except RecursionError:  # a pathological nesting of sequences
        raise CorruptFile("The DICOM file nests sequences too deeply to be de-identified.") from None
    meta = ds.file_meta
    for tag, name in _META_REMOVE.items():
        if tag in meta:
            del meta[tag]
            ex.record(name, tag, REMOVED, "file meta: names the sending site")
    # PS3.10 7.1: the meta's SOP Class/Instance UIDs must match the dataset's; a few files in the wild
    # lack them (or the transfer syntax), which pydicom reads but will not write back
    if ds.get("SOPInstanceUID"):
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    elif meta.get("MediaStorageSOPInstanceUID"):
        meta.MediaStorageSOPInstanceUID = ex.new_uid(meta.MediaStorageSOPInstanceUID)
    else:
        meta.MediaStorageSOPInstanceUID = ex.new_uid(f"missing-sop-instance-uid-{ex.salt}")
    ex.record("Media Storage SOP Instance UID", 0x00020003, UID_REMAPPED, "Annex E: U")
    if ds.get("SOPClassUID") and not meta.get("MediaStorageSOPClassUID"):
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if not meta.get("TransferSyntaxUID"):
        from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else (
            ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID  # the implementation that wrote this file
    meta.ImplementationVersionName = f"PYDICOM {pydicom.__version__}"[:16]

    ds.PatientIdentityRemoved = "YES"
    method = f"MedAI {__version__} PS3.15 Basic Profile" + (", full dates" if keep_dates else "")
    ds.DeidentificationMethod = method[:64]
    codes = [PROFILE_CODE] + ([FULL_DATES_CODE] if keep_dates else [])
    seq = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        seq.append(item)
    ds.DeidentificationMethodCodeSequence = seq
    ds.LongitudinalTemporalInformationModified = "UNMODIFIED" if keep_dates else "REMOVED"
    for name, tag in (("Patient Identity Removed", 0x00120062), ("De-identification Method", 0x00120063),
                      ("De-identification Method Code Sequence", 0x00120064),
                      ("Longitudinal Temporal Information Modified", 0x00280303)):
        ex.record(name, tag, ADDED, "profile: records what was done")
    ds.preamble = b"\0" * 128

    buf = io.BytesIO()
    try:
        ds.save_as(buf, enforce_file_format=True)
    except Exception as exc:  # noqa: BLE001 - a header pydicom read but cannot write back
        raise CorruptFile(f"The de-identified file could not be written ({type(exc).__name__}).") from None
    return DeidResult(buf.getvalue(), tuple(ex.actions), transfer_syntax_name(ds),
                      flag if flag in ("YES", "NO") else "not stated", keep_dates)
