"""DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile: the profile's table, and which
attributes identify a patient (hidden in the viewer unless the user reveals them).

https://dicom.nema.org/medical/dicom/current/output/chtml/part15/chapter_E.html

The table (Table E.1-1, one action per attribute) is not copied here: it is read from the package
dicom-anonymizer (``dicomfields_2026c``), whose maintainers generate it from the standard's own XML.
Action codes (PS3.15 E.3.1): D replace with a dummy value, Z zero-length, X remove, K keep, U replace
the UID; combined codes (Z/D, X/Z, X/D, X/Z/D, X/Z/U*) leave the choice to the IOD's attribute type.

The viewer's rule (``is_identifying``) is deliberately wider than the table: every person name (PN),
every UID (UI) other than class/syntax UIDs, every date/time (DA, DT, TM), every private tag and every
keyword in ``IDENTIFYING_KEYWORDS`` or in the table is hidden. ``deid.py`` applies the table to a file.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType, ModuleType

IDENTIFYING_KEYWORDS = frozenset({
    "AccessionNumber", "AcquisitionComments", "AcquisitionDeviceProcessingDescription",
    "AdditionalPatientHistory", "AdmissionID", "AdmittingDiagnosesDescription", "Allergies",
    "Arbitrary", "AuthorObserverSequence", "BranchOfService", "CommentsOnThePerformedProcedureStep",
    "ContentCreatorName", "ContributionDescription", "CountryOfResidence", "CurrentPatientLocation",
    "CustodialOrganizationSequence", "DerivationDescription", "DetectorID", "DeviceSerialNumber",
    "DeviceUID", "DigitalSignaturesSequence", "DischargeDiagnosisDescription", "EthnicGroup",
    "FillerOrderNumberImagingServiceRequest", "FrameComments", "GantryID", "GeneratorID",
    "IconImageSequence", "IdentifyingComments", "ImageComments", "ImagePresentationComments",
    "ImagingServiceRequestComments", "InstitutionAddress", "InstitutionalDepartmentName",
    "InstitutionName", "InstitutionCodeSequence", "IssuerOfAdmissionID", "IssuerOfPatientID",
    "MedicalAlerts", "MedicalRecordLocator", "MilitaryRank", "ModifiedAttributesSequence",
    "NameOfPhysiciansReadingStudy", "Occupation", "OperatorsName", "OperatorIdentificationSequence",
    "OriginalAttributesSequence", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames",
    "PatientAddress", "PatientAge", "PatientBirthDate", "PatientBirthName", "PatientBirthTime",
    "PatientComments", "PatientID", "PatientInsurancePlanCodeSequence", "PatientMotherBirthName",
    "PatientName", "PatientPrimaryLanguageCodeSequence", "PatientReligiousPreference", "PatientSex",
    "PatientSexNeutered", "PatientSize", "PatientState", "PatientTelephoneNumbers",
    "PatientTelecomInformation", "PatientWeight", "PerformedLocation", "PerformedProcedureStepDescription",
    "PerformedProcedureStepID", "PerformingPhysicianIdentificationSequence", "PerformingPhysicianName",
    "PersonAddress", "PersonIdentificationCodeSequence", "PersonName", "PersonTelephoneNumbers",
    "PhysicianApprovingInterpretation", "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence",
    "PhysiciansReadingStudyIdentificationSequence", "PlacerOrderNumberImagingServiceRequest",
    "PlateID", "PreMedication", "PregnancyStatus", "ProtocolName", "ReasonForTheImagingServiceRequest",
    "ReferencedPatientSequence", "ReferencedStudySequence", "ReferringPhysicianAddress",
    "ReferringPhysicianIdentificationSequence", "ReferringPhysicianName",
    "ReferringPhysicianTelephoneNumbers", "RegionOfResidence", "RequestAttributesSequence",
    "RequestedProcedureDescription", "RequestedProcedureID", "RequestingPhysician", "RequestingService",
    "ResponsibleOrganization", "ResponsiblePerson", "ResultsInterpreterName", "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepDescription", "ScheduledProcedureStepID", "SmokingStatus", "SpecialNeeds",
    "StationName", "StudyDescription", "StudyID", "TextComments", "TextString", "VerifyingObserverName",
    "VisitComments", "SeriesDescription", "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID",
    "ClinicalTrialSponsorName", "ClinicalTrialSiteName", "ClinicalTrialProtocolName",
})

# UIDs that name a class or an encoding, not an instance: they identify nobody
NON_IDENTIFYING_UIDS = frozenset({
    "SOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID", "ImplementationClassUID",
    "ReferencedSOPClassUID", "SOPClassesInStudy", "RelatedGeneralSOPClassUID", "CodingSchemeUID",
})
_HIDDEN_VRS = frozenset({"PN", "DA", "DT", "TM"})

# dicom-anonymizer keeps one list of tags per action; the keys are its list names, the values the
# standard's action codes. Its ALL_TAGS is their union and adds nothing.
_ACTION_LISTS = {
    "D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D", "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*",
}
_HEX = re.compile(r"0x([0-9A-Fa-f]+)")
# the standard's footnote references ride along in a name ("Icon Image Sequence(see Note 11)"): not part of it
_NOTE = re.compile(r"\s*\(see Note \d+\)$")

# (group, group mask, element, element mask, action, attribute name): a tag (g, e) falls in the row
# when g & group mask == group and e & element mask == element (element mask 0: every element)
RepeatingGroup = tuple[int, int, int, int, str, str]


@dataclass(frozen=True)
class ProfileTable:
    """The basic profile's Table E.1-1.

    Attributes:
        attributes: tag (e.g. 0x00100010) -> (action code, attribute name), e.g. ("Z", "Patient's Name").
        repeating_groups: the rows for the repeating groups 50xx (curves) and 60xx (overlays).
    """

    attributes: Mapping[int, tuple[str, str]]
    repeating_groups: tuple[RepeatingGroup, ...]


@lru_cache(maxsize=1)
def profile_table() -> ProfileTable:
    """The profile's table, read from dicom-anonymizer on first use and kept for the process."""
    # imported here, not at the top: dicom-anonymizer imports pydicom, which the package loads only when
    # a DICOM file is handled
    from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as source

    names = _comment_names(source)
    attributes: dict[int, tuple[str, str]] = {}
    groups: list[RepeatingGroup] = []
    for list_name, action in _ACTION_LISTS.items():
        for entry in getattr(source, list_name):
            name = names.get(tuple(entry)) or _dictionary_name(entry[0] << 16 | entry[1])
            if len(entry) == 2:
                attributes[entry[0] << 16 | entry[1]] = (action, name)
            else:  # (group, element, group mask, element mask)
                group, element, group_mask, element_mask = entry
                groups.append((group & group_mask, group_mask, element & element_mask, element_mask, action, name))
    return ProfileTable(MappingProxyType(attributes), tuple(groups))


def _comment_names(source: ModuleType) -> dict[tuple[int, ...], str]:
    """The attribute names, which dicom-anonymizer keeps only as comments: ``(0x0010, 0x0010),  # Patient's
    Name``. They are the standard's; pydicom 3.0.2's dictionary lacks some newer attributes (25 of the
    table's) and spells 3 others differently, and the export's list of actions shows these names."""
    try:
        text = inspect.getsource(source)
    except (OSError, TypeError):  # installed without its sources: pydicom's names instead
        return {}
    names: dict[tuple[int, ...], str] = {}
    for line in text.splitlines():
        code, hash_sign, comment = line.partition("#")
        numbers = tuple(int(h, 16) for h in _HEX.findall(code))
        if hash_sign and len(numbers) in (2, 4) and comment.strip():
            names[numbers] = _NOTE.sub("", comment.strip())
    return names


def _dictionary_name(tag: int) -> str:
    from pydicom.datadict import dictionary_description

    try:
        return str(dictionary_description(tag))
    except KeyError:
        return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def profile_rule(tag: int) -> tuple[str, str] | None:
    """The profile's row for one attribute.

    Args:
        tag: the attribute's tag as one integer, e.g. 0x00100010.

    Returns:
        (action code, attribute name), e.g. ("Z", "Patient's Name"), or None when the table does not
        list the tag; a tag listed on its own wins over a repeating group's row.
    """
    table = profile_table()
    hit = table.attributes.get(tag)
    if hit is not None:
        return hit
    group, element = tag >> 16, tag & 0xFFFF
    for group_value, group_mask, element_value, element_mask, action, name in table.repeating_groups:
        if group & group_mask == group_value and element & element_mask == element_value:
            return action, name
    return None


@lru_cache(maxsize=1)
def _profile_keywords() -> frozenset[str]:
    """Keywords of every attribute the profile's table does not keep (pydicom only on first use)."""
    from pydicom.datadict import keyword_for_tag

    return frozenset(kw for tag, (code, _) in profile_table().attributes.items()
                     if code != "K" and (kw := keyword_for_tag(tag)))


def is_identifying(keyword: str, vr: str, is_private: bool) -> bool:
    """Whether an attribute may identify the patient (and is hidden by default).

    Args:
        keyword: the attribute's keyword, e.g. "PatientName" ("" for one pydicom does not know).
        vr: its value representation, e.g. "PN".
        is_private: whether it is a private tag (odd group).

    Returns:
        True for private tags, person names, dates and times, instance UIDs, and every attribute in
        ``IDENTIFYING_KEYWORDS`` or in the profile's table with an action other than K (keep).
    """
    if is_private:
        return True
    if keyword in IDENTIFYING_KEYWORDS or vr in _HIDDEN_VRS or keyword in _profile_keywords():
        return True
    if vr == "UI":
        return keyword not in NON_IDENTIFYING_UIDS
    return False
