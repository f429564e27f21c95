"""CSV export of an image explanation (see ``medai_core.report.csv`` for the conventions)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from medai_core.errors import InputError
from medai_core.explain.base import Explanation
from medai_core.report.csv import to_csv


def image_attributions_csv(exp: Explanation) -> bytes:
    """One row per pixel of the model's input: ``row, col, attribution`` (row-major).

    Args:
        exp: an image explanation; attributions are (H, W) at the model's input resolution (e.g.
            128 x 128 for busi_cnn), not the scan's.
    """
    a = np.asarray(exp.attributions, dtype=np.float64)
    if a.ndim != 2:
        raise InputError(f"Image attributions must be 2-D (height x width); got shape {a.shape}.")
    rows, cols = np.indices(a.shape)
    return to_csv(pd.DataFrame({"row": rows.ravel(), "col": cols.ravel(), "attribution": a.ravel()}))
