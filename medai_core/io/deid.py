"""Which DICOM attributes identify a patient (DICOM PS3.15 Annex E, Basic Application Level
Confidentiality Profile), used to hide them in the viewer unless the user reveals them.

https://dicom.nema.org/medical/dicom/current/output/chtml/part15/chapter_E.html

The rule is deliberately wider than the table: every person name (PN), every UID (UI) other than
class/syntax UIDs, every date/time (DA, DT, TM), every private tag and every keyword in
``IDENTIFYING_KEYWORDS`` is hidden.
"""
from __future__ import annotations

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
_NON_IDENTIFYING_UIDS = frozenset({
    "SOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID", "ImplementationClassUID",
    "ReferencedSOPClassUID", "SOPClassesInStudy", "RelatedGeneralSOPClassUID", "CodingSchemeUID",
})
_HIDDEN_VRS = frozenset({"PN", "DA", "DT", "TM"})


def is_identifying(keyword: str, vr: str, is_private: bool) -> bool:
    """Whether an attribute may identify the patient (and is hidden by default)."""
    if is_private:
        return True
    if keyword in IDENTIFYING_KEYWORDS or vr in _HIDDEN_VRS:
        return True
    if vr == "UI":
        return keyword not in _NON_IDENTIFYING_UIDS
    return False
