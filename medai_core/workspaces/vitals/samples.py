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
    "cgm_gru": {"After a meal (synthetic)": (synthetic_cgm_case, "meal"),
                "Falling towards a low (synthetic)": (synthetic_cgm_case, "low")},
}


def synthetic_series_csv(model: str, label: str) -> bytes:
    """The demo case ``label`` of ``model`` as CSV bytes (long or wide form, as an upload would be)."""
    gen, kind = SYNTHETIC_SERIES[model][label]
    return gen(kind).to_csv(index=False).encode()
