"""The model catalogue: every shipped model's spec, registered with a lazy builder.

Torch-free on purpose: the home page, the navigation and the CLI's help list models, read their cards and
validate inputs without importing torch (about 2 s of a cold start). The network classes live in the
model modules (``busi_cnn``, ``support_ftt``, ``notes_tfm``, ``forecaster``), imported on the first
``create_model`` / ``load_model``.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from medai_core.io.series_spec import SeriesSpec, Signal
from medai_core.models.spec import ModelSpec, register_model


def _lazy(module: str, builder: str) -> Callable[[], Any]:
    def build() -> Any:
        return getattr(importlib.import_module(f"{__package__}.{module}"), builder)()

    build.__qualname__ = build.__name__ = builder
    return build


# ---------------------------------------------------------------- breast ultrasound (BUSI)
BUSI_LABELS = ("benign", "malignant", "normal")
BUSI_SPEC = ModelSpec(
    name="busi_cnn",
    modality="image",
    labels=BUSI_LABELS,
    input_size=(128, 128),
    in_channels=1,
    weights="busi_cnn.pt",
    card="busi_cnn.md",
    card_json="busi_cnn.json",
    gradcam_layer="layer4",
    positive_label="malignant",
    description="Breast ultrasound: benign / malignant / normal (BUSI, residual CNN from scratch)",
    extra={"kind": "breast ultrasound"},
)
register_model("busi_cnn", BUSI_SPEC)(_lazy("busi_cnn", "build_busi_cnn"))

# successor: the same task on an ImageNet-pretrained EfficientNet-Lite0, fine-tuned (see effnet.py)
BUSI_EFFNET_SPEC = ModelSpec(
    name="busi_effnet",
    modality="image",
    labels=BUSI_LABELS,
    input_size=(224, 224),
    in_channels=1,
    weights="busi_effnet.pt",
    card="busi_effnet.md",
    card_json="busi_effnet.json",
    gradcam_layer="head",
    positive_label="malignant",
    description="Breast ultrasound: benign / malignant / normal (BUSI, pretrained EfficientNet-Lite0, attention head)",
    extra={"attention": True, "kind": "breast ultrasound",
           "routing": {"modalities": ("US",), "body_parts": ("BREAST",)}},
)
register_model("busi_effnet", BUSI_EFFNET_SPEC)(_lazy("effnet", "build_busi_effnet"))


# ---------------------------------------------------------------- paediatric chest X-rays (Kermany et al. 2018)
CXR_LABELS = ("normal", "bacterial", "viral")
CXR_SPEC = ModelSpec(
    name="cxr_pneumonia",
    modality="image",
    labels=CXR_LABELS,
    input_size=(224, 224),
    in_channels=1,
    weights="cxr_pneumonia.pt",
    card="cxr_pneumonia.md",
    card_json="cxr_pneumonia.json",
    gradcam_layer="head",
    positive_label="pneumonia",
    description="Paediatric chest X-ray: normal / bacterial / viral pneumonia (pretrained EfficientNet-Lite0, attention head)",
    extra={"attention": True, "kind": "chest X-ray", "positive_group": ("bacterial", "viral"),
           "routing": {"modalities": ("CR", "DX"), "body_parts": ("CHEST",)}},
)
register_model("cxr_pneumonia", CXR_SPEC)(_lazy("effnet", "build_cxr_pneumonia"))


# ---------------------------------------------------------------- SUPPORT2 records
SUPPORT_SPEC = ModelSpec(
    name="support_ftt",
    modality="tabular",
    labels=("low risk", "high risk"),
    weights="support_ftt.pt",
    card="support_ftt.md",
    card_json="support_ftt.json",
    positive_label="high risk",
    description="In-hospital mortality from day-3 records (SUPPORT2, FT-Transformer)",
    extra={"risk_of": "in-hospital death"},
)
register_model("support_ftt", SUPPORT_SPEC)(_lazy("support_ftt", "build_support_ftt"))


# ---------------------------------------------------------------- MTSamples notes
# Real specialties with at least 40 distinct notes after de-duplication (see the model card for the rule).
NOTES_LABELS = (
    "Cardiovascular / Pulmonary", "Gastroenterology", "General Medicine", "Hematology - Oncology",
    "Nephrology", "Neurology", "Obstetrics / Gynecology", "Ophthalmology", "Orthopedic", "ENT - Otolaryngology",
    "Pain Management", "Radiology", "Surgery", "Urology",
)
MAX_TOKENS = 512  # per window, without the CLS token

NOTES_SPEC = ModelSpec(
    name="notes_tfm",
    modality="text",
    labels=NOTES_LABELS,
    weights="notes_tfm.pt",
    card="notes_tfm.md",
    card_json="notes_tfm.json",
    description="Specialty of a clinical note (MTSamples, 14 specialties, small Transformer)",
    extra={"vocab": "notes_tfm.vocab.json", "max_tokens": MAX_TOKENS},
)
register_model("notes_tfm", NOTES_SPEC)(_lazy("notes_tfm", "build_notes_tfm"))


# ---------------------------------------------------------------- vital-sign forecasters
QUANTILES = (0.1, 0.5, 0.9)

# sources: PhysioNet 2012 parameters, then PhysioNet 2019 columns of the same quantity and unit (SBP, DBP,
# Resp; HR, MAP, Temp in degrees C, SaO2 and FiO2 as a fraction share their 2012 names). 2019's O2Sat is pulse
# oximetry (SpO2), not arterial SaO2, so it is not read.
ICU_SIGNALS = (
    Signal("HR", "Heart rate", "/min", ("HR",), (1, 300), (60, 100), (40, 130)),
    Signal("MAP", "Mean arterial pressure", "mmHg", ("MAP", "NIMAP"), (1, 300), (70, 105), (65, None)),
    Signal("SysABP", "Systolic pressure", "mmHg", ("SysABP", "NISysABP", "SBP"), (1, 300), (90, 140), (90, 180)),
    Signal("RespRate", "Respiratory rate", "/min", ("RespRate", "Resp"), (1, 80), (12, 20), (8, 30)),
    Signal("Temp", "Temperature", "°C", ("Temp",), (25, 45), (36.1, 37.8), (35.0, 38.5)),
    Signal("SaO2", "Arterial O2 saturation", "%", ("SaO2",), (20, 100), (94, 100), None),
    Signal("GCS", "Glasgow coma scale", "", ("GCS",), (3, 15), (15, 15), None),
    Signal("DiasABP", "Diastolic pressure", "mmHg", ("DiasABP", "NIDiasABP", "DBP"), (1, 250), (60, 90), None),
    Signal("FiO2", "Inspired O2 fraction", "", ("FiO2",), (0.21, 1.0), None, None),
    Signal("MechVent", "Mechanical ventilation", "", ("MechVent",), (0, 1), None, None),
)
ICU_SERIES = SeriesSpec(ICU_SIGNALS, static=("Age", "Gender", "ICUType"), step_minutes=60, min_history_steps=3,
                        ignore=("Height", "Weight", "Urine", "pH", "PaCO2",
                                "PaO2", "HCT", "K", "Platelets", "Creatinine", "BUN", "Mg", "HCO3", "Na", "Glucose",
                                "WBC", "Lactate", "Bilirubin", "AST", "ALT", "ALP", "Albumin", "TroponinT",
                                "TroponinI", "Cholesterol"))
ICU_TARGETS = 5
ICU_HISTORY = 24
ICU_HORIZON = 6

ICU_SPEC = ModelSpec(
    name="icu_gru",
    modality="series",
    labels=tuple(s.name for s in ICU_SIGNALS[:ICU_TARGETS]),
    weights="icu_gru.pt",
    card="icu_gru.md",
    card_json="icu_gru.json",
    description="ICU vitals, next 6 h with 10/50/90% quantiles (PhysioNet 2012, GRU + temporal attention)",
    extra={"series": ICU_SERIES, "history": ICU_HISTORY, "horizon": ICU_HORIZON, "n_targets": ICU_TARGETS,
           "quantiles": QUANTILES},
)
register_model("icu_gru", ICU_SPEC)(_lazy("forecaster", "build_icu_gru"))

# one forecaster for PhysioNet 2012 stays and 2019 records (issue 15): the same five targets, then every input
# either source records (2019's pulse oximetry and end-tidal CO2; 2012's GCS and ventilation), masks where absent
ICU_POOL_SIGNALS = ICU_SIGNALS[:ICU_TARGETS] + (
    Signal("SpO2", "Pulse oximetry O2 saturation", "%", ("O2Sat", "SpO2"), (20, 100), (94, 100), None),
    ICU_SIGNALS[7], ICU_SIGNALS[8], ICU_SIGNALS[5],
    Signal("EtCO2", "End-tidal CO2", "mmHg", ("EtCO2",), (1, 100), (35, 45), None),
    ICU_SIGNALS[6], ICU_SIGNALS[9])
ICU_POOL_SERIES = SeriesSpec(ICU_POOL_SIGNALS, static=ICU_SERIES.static, step_minutes=60, min_history_steps=3,
                             ignore=ICU_SERIES.ignore)
ICU_POOL_HIDDEN = 64
ICU_POOL_SPEC = ModelSpec(
    name="icu_pool_gru",
    modality="series",
    labels=tuple(s.name for s in ICU_POOL_SIGNALS[:ICU_TARGETS]),
    weights="icu_pool_gru.pt",
    card="icu_pool_gru.md",
    card_json="icu_pool_gru.json",
    description="ICU vitals, next 6 h with 10/50/90% quantiles (PhysioNet 2012 + 2019, GRU + attention + window features)",
    extra={"series": ICU_POOL_SERIES, "history": ICU_HISTORY, "horizon": ICU_HORIZON, "n_targets": ICU_TARGETS,
           "quantiles": QUANTILES, "icu_static": True, "time_cap": 96},
)
register_model("icu_pool_gru", ICU_POOL_SPEC)(_lazy("forecaster", "build_icu_pool_gru"))

CGM_SIGNALS = (Signal("Glucose", "Glucose", "mg/dL", ("Glucose", "gl", "glucose"), (20, 600), (70, 180), (70, 250)),)
CGM_SERIES = SeriesSpec(CGM_SIGNALS, static=(), step_minutes=5, min_history_steps=6)
CGM_HISTORY = 24  # 2 h of 5-minute readings
CGM_HORIZON = 12  # 60 min

CGM_SPEC = ModelSpec(
    name="cgm_gru",
    modality="series",
    labels=("Glucose",),
    weights="cgm_gru.pt",
    card="cgm_gru.md",
    card_json="cgm_gru.json",
    description="CGM glucose, next 60 min in 5-min steps with 10/50/90% quantiles (Hall et al. 2018, GRU + temporal attention)",
    extra={"series": CGM_SERIES, "history": CGM_HISTORY, "horizon": CGM_HORIZON, "n_targets": 1, "quantiles": QUANTILES},
)
register_model("cgm_gru", CGM_SPEC)(_lazy("forecaster", "build_cgm_gru"))

# ---------------------------------------------------------------- sepsis early warning (PhysioNet 2019)
# the 34 hourly variables of a PhysioNet/CinC 2019 record, in file order, with units and the range outside
# which a value is an artefact (set aside, listed, never scored)
SEPSIS_VARIABLES = (
    Signal("HR", "Heart rate", "/min", ("HR",), (1, 300), (60, 100)),
    Signal("O2Sat", "Pulse oximetry", "%", ("O2Sat",), (20, 100), (94, 100)),
    Signal("Temp", "Temperature", "°C", ("Temp",), (25, 45), (36.1, 37.8)),
    Signal("SBP", "Systolic pressure", "mmHg", ("SBP",), (1, 300), (90, 140)),
    Signal("MAP", "Mean arterial pressure", "mmHg", ("MAP",), (1, 300), (70, 105)),
    Signal("DBP", "Diastolic pressure", "mmHg", ("DBP",), (1, 250), (60, 90)),
    Signal("Resp", "Respiratory rate", "/min", ("Resp",), (1, 80), (12, 20)),
    Signal("EtCO2", "End-tidal CO2", "mmHg", ("EtCO2",), (1, 100), (35, 45)),
    Signal("BaseExcess", "Base excess", "mmol/L", ("BaseExcess",), (-40, 40), (-2, 2)),
    Signal("HCO3", "Bicarbonate", "mmol/L", ("HCO3",), (1, 60), (22, 28)),
    Signal("FiO2", "Inspired O2 fraction", "", ("FiO2",), (0.21, 1.0)),
    Signal("pH", "pH", "", ("pH",), (6.5, 8.0), (7.35, 7.45)),
    Signal("PaCO2", "Arterial CO2", "mmHg", ("PaCO2",), (5, 150), (35, 45)),
    Signal("SaO2", "Arterial O2 saturation", "%", ("SaO2",), (20, 100), (94, 100)),
    Signal("AST", "AST", "IU/L", ("AST",), (1, 20000), (10, 40)),
    Signal("BUN", "Urea nitrogen", "mg/dL", ("BUN",), (1, 300), (7, 20)),
    Signal("Alkalinephos", "Alkaline phosphatase", "IU/L", ("Alkalinephos",), (1, 5000), (44, 147)),
    Signal("Calcium", "Calcium", "mg/dL", ("Calcium",), (1, 20), (8.5, 10.5)),
    Signal("Chloride", "Chloride", "mmol/L", ("Chloride",), (50, 160), (96, 106)),
    Signal("Creatinine", "Creatinine", "mg/dL", ("Creatinine",), (0.1, 30), (0.6, 1.2)),
    Signal("Bilirubin_direct", "Direct bilirubin", "mg/dL", ("Bilirubin_direct",), (0, 60), (0, 0.3)),
    Signal("Glucose", "Glucose", "mg/dL", ("Glucose",), (10, 2000), (70, 180)),
    Signal("Lactate", "Lactate", "mmol/L", ("Lactate",), (0.1, 40), (0.5, 2)),
    Signal("Magnesium", "Magnesium", "mmol/dL", ("Magnesium",), (0.2, 10), (1.7, 2.2)),
    Signal("Phosphate", "Phosphate", "mg/dL", ("Phosphate",), (0.2, 20), (2.5, 4.5)),
    Signal("Potassium", "Potassium", "mmol/L", ("Potassium",), (1, 12), (3.5, 5.0)),
    Signal("Bilirubin_total", "Total bilirubin", "mg/dL", ("Bilirubin_total",), (0, 80), (0.1, 1.2)),
    Signal("TroponinI", "Troponin I", "ng/mL", ("TroponinI",), (0, 500), (0, 0.04)),
    Signal("Hct", "Haematocrit", "%", ("Hct",), (5, 75), (36, 50)),
    Signal("Hgb", "Haemoglobin", "g/dL", ("Hgb",), (1, 25), (12, 17)),
    Signal("PTT", "Partial thromboplastin time", "s", ("PTT",), (5, 250), (25, 35)),
    Signal("WBC", "White cells", "10^3/µL", ("WBC",), (0.05, 500), (4, 11)),
    Signal("Fibrinogen", "Fibrinogen", "mg/dL", ("Fibrinogen",), (20, 2000), (200, 400)),
    Signal("Platelets", "Platelets", "10^3/µL", ("Platelets",), (1, 3000), (150, 400)),
)
SEPSIS_STATIC = ("Age", "Gender", "Unit1", "Unit2", "HospAdmTime", "ICULOS")
SEPSIS_HORIZON_HOURS = 6

SEPSIS_SPEC = ModelSpec(
    name="sepsis_gru",
    modality="sepsis",
    labels=("no sepsis within 6 h", "sepsis within 6 h"),
    weights="sepsis_gru.pt",
    card="sepsis_gru.md",
    card_json="sepsis_gru.json",
    positive_label="sepsis within 6 h",
    description="Sepsis early warning, hourly risk of sepsis within 6 h (PhysioNet/CinC 2019, causal GRU + attention)",
    extra={"variables": SEPSIS_VARIABLES, "static": SEPSIS_STATIC, "horizon_hours": SEPSIS_HORIZON_HOURS},
)
register_model("sepsis_gru", SEPSIS_SPEC)(_lazy("sepsis", "build_sepsis_gru"))
