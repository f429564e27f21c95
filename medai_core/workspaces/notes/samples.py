"""Made-up clinical notes for demos and tests (written for MedAI; not MTSamples text)."""
from __future__ import annotations

# Short made-up notes in the style of transcriptions (written for MedAI; not MTSamples text).
SYNTHETIC_NOTES: dict[str, str] = {
    "Knee arthroscopy (synthetic)": (
        "PREOPERATIVE DIAGNOSIS: Medial meniscus tear, right knee.\n"
        "PROCEDURE: Right knee arthroscopy with partial medial meniscectomy.\n"
        "ANESTHESIA: General.\n"
        "DESCRIPTION: The patient was placed supine and the right lower extremity was prepped and draped. "
        "Standard anteromedial and anterolateral portals were made. The suprapatellar pouch and patellofemoral "
        "joint were normal. A complex tear of the posterior horn of the medial meniscus was debrided with a shaver "
        "back to a stable rim. The anterior cruciate ligament was intact. The lateral compartment was normal. "
        "The knee was irrigated, portals closed with nylon, and a sterile dressing applied. The patient tolerated "
        "the procedure well and will begin physical therapy and weight bearing as tolerated."),
    "Chest pain consult (synthetic)": (
        "HISTORY OF PRESENT ILLNESS: A 67-year-old man with hypertension and hyperlipidemia presents with "
        "substernal chest pressure on exertion for two weeks, relieved by rest. He denies syncope. "
        "EKG shows sinus rhythm with 1 mm ST depression in the lateral leads. Troponin is negative. "
        "Echocardiogram shows preserved ejection fraction with mild left ventricular hypertrophy.\n"
        "ASSESSMENT: Unstable angina, rule out coronary artery disease.\n"
        "PLAN: Aspirin, beta-blocker and statin. Cardiac catheterization tomorrow to evaluate the coronary "
        "arteries; continue heparin drip overnight on telemetry."),
    "Cataract surgery (synthetic)": (
        "PREOPERATIVE DIAGNOSIS: Visually significant nuclear sclerotic cataract, left eye.\n"
        "PROCEDURE: Phacoemulsification with posterior chamber intraocular lens implantation, left eye.\n"
        "DESCRIPTION: After topical anesthesia the eye was prepped. A clear corneal incision was made and the "
        "anterior chamber filled with viscoelastic. A continuous curvilinear capsulorrhexis was performed, the "
        "nucleus was removed by phacoemulsification and the cortex by irrigation and aspiration. A foldable lens "
        "was placed in the capsular bag. The wound was hydrated and found watertight. The patient will use "
        "antibiotic and steroid drops and return tomorrow for follow-up of visual acuity and intraocular pressure."),
}
