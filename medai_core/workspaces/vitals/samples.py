"""Seeded synthetic ICU stays and CGM traces for demos and tests (no real patient)."""
from __future__ import annotations


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
    "icu_pool_gru": {label: (synthetic_icu_case, kind) for label, kind in SYNTHETIC_ICU_CASES.items()},
    "cgm_gru": {"After a meal (synthetic)": (synthetic_cgm_case, "meal"),
                "Falling towards a low (synthetic)": (synthetic_cgm_case, "low")},
}


def synthetic_series_csv(model: str, label: str) -> bytes:
    """The demo case ``label`` of ``model`` as CSV bytes (long or wide form, as an upload would be)."""
    gen, kind = SYNTHETIC_SERIES[model][label]
    return gen(kind).to_csv(index=False).encode()


def synthetic_sepsis_record(kind: str = "deteriorating", hours: int = 36, seed: int = 11) -> bytes:
    """A made-up PhysioNet 2019 ``.psv`` record (every column, one row per hour) for demos and tests.

    Kinds: "stable"; "deteriorating" (from hour ~16: rising heart and respiratory rate, fever, falling
    pressure, then lactate and white cells up at the labs). Seeded; describes no real patient, and has no
    SepsisLabel onset (its column is all 0: a demo, not a labelled case).
    """
    import numpy as np
    import pandas as pd

    from medai_core.io.vitals import PHYSIONET_2019_COLUMNS

    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    trend = np.clip((t - 16) / 14, 0, 1) if kind == "deteriorating" else np.zeros(hours)
    df = pd.DataFrame(np.nan, index=t, columns=list(PHYSIONET_2019_COLUMNS))
    df["HR"] = np.round(84 + 34 * trend + rng.normal(0, 3, hours))
    df["O2Sat"] = np.round(np.clip(97 - 5 * trend + rng.normal(0, 1, hours), 80, 100))
    df["SBP"] = np.round(124 - 30 * trend + rng.normal(0, 5, hours))
    df["MAP"] = np.round(82 - 20 * trend + rng.normal(0, 3, hours))
    df["DBP"] = np.round(62 - 14 * trend + rng.normal(0, 3, hours))
    df["Resp"] = np.round(17 + 10 * trend + rng.normal(0, 1.5, hours))
    temp = np.round(37.0 + 1.8 * trend + rng.normal(0, 0.15, hours), 1)
    df["Temp"] = np.where(t % 4 == 0, temp, np.nan)
    labs = t % 12 == 2
    df.loc[labs, "WBC"] = np.round(9 + 9 * trend[labs] + rng.normal(0, 0.5, labs.sum()), 1)
    df.loc[labs, "Lactate"] = np.round(1.3 + 2.8 * trend[labs] + rng.normal(0, 0.1, labs.sum()), 1)
    df.loc[labs, "Creatinine"] = np.round(0.9 + 1.0 * trend[labs], 2)
    df.loc[labs, "Platelets"] = np.round(240 - 90 * trend[labs])
    df.loc[labs, "Glucose"] = np.round(130 + 30 * trend[labs])
    df.loc[labs, "BUN"] = np.round(18 + 10 * trend[labs])
    df.loc[labs, "Hgb"] = 11.5
    df.loc[labs, "Potassium"] = 4.1
    df["Age"], df["Gender"], df["Unit1"], df["Unit2"], df["HospAdmTime"] = 68.0, 1.0, 1.0, 0.0, -6.5
    df["ICULOS"] = t + 1
    df["SepsisLabel"] = 0
    return df.to_csv(sep="|", index=False, na_rep="NaN").encode()


SYNTHETIC_SEPSIS = {"Deteriorating patient (synthetic)": "deteriorating", "Stable patient (synthetic)": "stable"}
