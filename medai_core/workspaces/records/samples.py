"""A seeded generator of made-up day-3 records for demos and tests (no real patient)."""
from __future__ import annotations


def synthetic_records(n: int = 12, seed: int = 7) -> "pandas.DataFrame":  # noqa: F821
    """A seeded table of made-up day-3 records that follow the records schema, for demos and tests.

    Values are drawn around normal ranges with a sicker tail and some blank labs; they describe no
    real patient and are not SUPPORT2 rows (the training data is never shipped).
    """
    import numpy as np
    import pandas as pd

    from medai_core.io.records import SCHEMA

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
