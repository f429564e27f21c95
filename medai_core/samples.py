"""Demo scans taken from files that dependencies ship (pydicom's test files and the
``pydicom-data`` package): real DICOMs, nothing downloaded at run time, no BUSI images."""
from __future__ import annotations

from pathlib import Path


def _pydicom_dirs() -> list[Path]:
    dirs = []
    try:
        import data_store  # the pydicom-data package

        dirs.append(Path(data_store.__file__).resolve().parent / "data")
    except ImportError:
        pass
    import pydicom

    dirs.append(Path(pydicom.__file__).resolve().parent / "data" / "test_files")
    return dirs


# label -> (file name, what it shows)
SAMPLES: dict[str, tuple[str, str]] = {
    "Ultrasound, RGB (US1)": ("US1_UNCR.dcm", "ultrasound, not breast: expect an out-of-distribution warning"),
    "Ultrasound, multi-frame JPEG (YBR)": ("examples_ybr_color.dcm", "30-frame ultrasound cine, JPEG baseline"),
    "Ultrasound, palette colour (OB)": ("OBXXXX1A.dcm", "obstetric ultrasound, PALETTE COLOR"),
    "CT, 16-bit (CT_small)": ("CT_small.dcm", "CT slice with rescale slope/intercept"),
    "MR, multi-frame (emri_small)": ("emri_small.dcm", "10-frame MR"),
    "MR, JPEG 2000 (MR2)": ("MR2_J2KR.dcm", "MR in JPEG 2000 lossless"),
    "Radiograph, MONOCHROME1 (RG3)": ("RG3_UNCR.dcm", "computed radiograph, inverted grey scale"),
    "MR, JPEG-LS (emri_small)": ("emri_small_jpeg_ls_lossless.dcm", "multi-frame MR, JPEG-LS lossless"),
    "Secondary capture, VOI LUT (vlut_04)": ("vlut_04.dcm", "non-linear VOI LUT"),
}


def sample_path(label: str) -> Path:
    """Path of a bundled demo scan (raises FileNotFoundError if its package is missing)."""
    name = SAMPLES[label][0]
    for d in _pydicom_dirs():
        p = d / name
        if p.exists():
            return p
    raise FileNotFoundError(f"demo scan {name} not found (is pydicom-data installed?)")


def available_samples() -> list[str]:
    out = []
    for label in SAMPLES:
        try:
            sample_path(label)
            out.append(label)
        except FileNotFoundError:
            pass
    return out


def reference_dicoms() -> list[Path]:
    """Every DICOM pydicom and pydicom-data ship (CT, MR, radiographs, NM, other ultrasound...),
    used to measure how often the OOD guard flags scans that are not breast ultrasound."""
    out = []
    for d in _pydicom_dirs():
        for p in sorted(d.glob("*.dcm")):
            out.append(p)
    return out


def synthetic_records(n: int = 12, seed: int = 7) -> "pandas.DataFrame":  # noqa: F821
    """A seeded table of made-up day-3 records that follow the records schema, for demos and tests.

    Values are drawn around normal ranges with a sicker tail and some blank labs; they describe no
    real patient and are not SUPPORT2 rows (the training data is never shipped).
    """
    import numpy as np
    import pandas as pd

    from .io.records import SCHEMA

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        sick = rng.random() < 0.4
        r: dict[str, object] = {"id": f"SYN-{i + 1:03d}"}
        for f in SCHEMA:
            if f.kind == "categorical":
                r[f.name] = f.categories[int(rng.integers(len(f.categories)))]
                continue
            if f.kind == "binary":
                r[f.name] = int(rng.random() < 0.2)
                continue
            lo, hi = f.normal if f.normal and f.normal[1] > f.normal[0] else f.plausible
            mid, half = (lo + hi) / 2, (hi - lo) / 2
            v = mid + half * rng.normal(0, 1.6 if sick else 0.8)
            if f.name in ("sps", "aps", "scoma"):
                v = {"sps": 24, "aps": 36, "scoma": 0}[f.name] + (rng.gamma(2, 8) if sick else rng.normal(0, 4))
            if f.name == "age":
                v = rng.normal(63, 14)
            if f.name == "num.co":
                v = rng.integers(0, 5)
            v = float(np.clip(v, *f.plausible))
            if not f.required and rng.random() < 0.3:
                r[f.name] = ""
            else:
                r[f.name] = round(v, 1) if f.name != "num.co" else int(v)
        rows.append(r)
    return pd.DataFrame(rows)


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


def synthetic_icu_case(kind: str = "stable", hours: int = 24, seed: int = 3) -> "pandas.DataFrame":  # noqa: F821
    """A made-up ICU stay in long form (``time,parameter,value``, elapsed HH:MM) for demos and tests.

    Kinds: "stable"; "deteriorating" (rising heart rate and respiratory rate, falling pressure, fever);
    "sparse" (vitals every 2-4 h, some hours missing). Seeded; describes no real patient.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = [("00:00", "Age", 67), ("00:00", "Gender", 1), ("00:00", "ICUType", 3)]
    trend = np.linspace(0, 1, hours) if kind == "deteriorating" else np.zeros(hours)
    t = 0
    while t < hours:
        minute = int(rng.integers(0, 50))
        hh = f"{t:02d}:{minute:02d}"
        hr = 82 + 30 * trend[t] + 4 * np.sin(t / 3) + rng.normal(0, 3)
        mapv = 80 - 18 * trend[t] + rng.normal(0, 4)
        sbp = 122 - 25 * trend[t] + rng.normal(0, 6)
        rr = 17 + 9 * trend[t] + rng.normal(0, 1.5)
        rows += [(hh, "HR", round(hr)), (hh, "NIMAP", round(mapv, 1)), (hh, "NISysABP", round(sbp)),
                 (hh, "RespRate", round(rr))]
        if t % 4 == 0:
            rows.append((hh, "Temp", round(37.0 + 1.6 * trend[t] + rng.normal(0, 0.15), 1)))
        if t % 8 == 0:
            rows.append((hh, "GCS", 15 if trend[t] < 0.6 else 13))
        t += int(rng.integers(2, 5)) if kind == "sparse" else 1
    return pd.DataFrame(rows, columns=["time", "parameter", "value"])


SYNTHETIC_ICU_CASES = {
    "Stable patient (synthetic)": "stable",
    "Deteriorating patient (synthetic)": "deteriorating",
    "Sparse charting (synthetic)": "sparse",
}


def synthetic_cgm_case(kind: str = "meal", hours: int = 4, seed: int = 5) -> "pandas.DataFrame":  # noqa: F821
    """Made-up continuous glucose readings every 5 minutes in wide form (``timestamp,Glucose``).

    Kinds: "meal" (a post-meal rise that peaks and falls) and "low" (a slow fall towards hypoglycaemia).
    Seeded; describes no real person.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = hours * 12
    t = np.arange(n)
    if kind == "low":
        g = 110 - 45 * t / n + rng.normal(0, 2, n)
    else:
        g = 100 + 70 * np.exp(-0.5 * ((t - 0.75 * n) / (0.12 * n)) ** 2) + rng.normal(0, 2.5, n)
    stamps = pd.date_range("2024-03-01 10:00", periods=n, freq="5min")
    return pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M"), "Glucose": np.round(g)})


SYNTHETIC_SERIES = {  # model -> demo case label -> (generator, kind)
    "icu_gru": {label: (synthetic_icu_case, kind) for label, kind in SYNTHETIC_ICU_CASES.items()},
    "cgm_gru": {"After a meal (synthetic)": (synthetic_cgm_case, "meal"),
                "Falling towards a low (synthetic)": (synthetic_cgm_case, "low")},
}


def synthetic_series_csv(model: str, label: str) -> bytes:
    """The demo case ``label`` of ``model`` as CSV bytes (long or wide form, as an upload would be)."""
    gen, kind = SYNTHETIC_SERIES[model][label]
    return gen(kind).to_csv(index=False).encode()
