"""Gradient-boosted trees on per-hour features: the baseline the sepsis model must beat.

Features at hour t (rows <= t only): every variable's last value (carried forward; missing before the first)
and hours since it was measured, how often it has been measured so far, the 6-hour maximum, minimum and mean
of the 8 vital signs and their change over 6 hours, and the static columns as recorded.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from medai_core.models.catalog import SEPSIS_STATIC, SEPSIS_VARIABLES
from medai_core.models.sepsis import carry_forward
from medai_core.train.sepsis_data import patient_slices
from medai_core.train.sepsis_eval import evaluate_risk
from medai_core.trust.utility import UtilityTable, best_threshold

N_VITALS = 8
WINDOW = 6


def hour_features(values: np.ndarray, static: np.ndarray) -> np.ndarray:
    """(T, 34) values with NaN and (T, 6) static -> (T, F) features, NaN where undefined (trees handle it)."""
    t = len(values)
    filled, obs, gap = carry_forward(values)
    counts = np.cumsum(obs, 0).astype(np.float32)
    v = values[:, :N_VITALS]
    pad = np.concatenate([np.full((WINDOW - 1, N_VITALS), np.nan, np.float32), v])
    win = np.lib.stride_tricks.sliding_window_view(pad, WINDOW, axis=0)  # (T, 8, 6)
    any_obs = (~np.isnan(win)).any(-1)
    safe = np.where(np.isnan(win), 0, win)
    n = np.maximum((~np.isnan(win)).sum(-1), 1)
    wmax = np.where(any_obs, np.where(np.isnan(win), -np.inf, win).max(-1), np.nan)
    wmin = np.where(any_obs, np.where(np.isnan(win), np.inf, win).min(-1), np.nan)
    wmean = np.where(any_obs, safe.sum(-1) / n, np.nan)
    back = np.concatenate([np.full((WINDOW, N_VITALS), np.nan, np.float32), filled[:, :N_VITALS]])[:t]
    delta = filled[:, :N_VITALS] - back
    return np.concatenate([filled, gap, counts, wmax, wmin, wmean, delta, static], 1).astype(np.float32)


FEATURE_NAMES = ([s.name for s in SEPSIS_VARIABLES] + [f"{s.name}_hours_since" for s in SEPSIS_VARIABLES]
                 + [f"{s.name}_count" for s in SEPSIS_VARIABLES]
                 + [f"{s.name}_{k}6h" for k in ("max", "min", "mean", "change") for s in SEPSIS_VARIABLES[:N_VITALS]]
                 + list(SEPSIS_STATIC))


def _matrix(data: dict[str, Any], idx: np.ndarray) -> np.ndarray:
    return np.concatenate([hour_features(data["values"][s], data["static"][s])
                           for s in patient_slices(data["offsets"], idx)])


def gbt_baseline(data: dict[str, Any], split: dict[str, np.ndarray], labels: dict[str, list[np.ndarray]],
                 log: Callable[[str], None] | None = print, max_iter: int = 400) -> dict[str, Any]:
    """Fit on training hours (early stopping on validation hours), threshold on validation, score test."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    log = log or (lambda _m: None)
    x = {k: _matrix(data, idx) for k, idx in split.items()}
    y = {k: np.concatenate(v).astype(int) for k, v in labels.items()}
    empty = np.isnan(x["train"]).all(0)  # never measured in training: a constant (the binner needs a value)
    for k in x:
        x[k][:, empty] = 0.0
    gbt = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=0.05, max_leaf_nodes=31, l2_regularization=1.0,
                                         early_stopping=True, n_iter_no_change=30, random_state=0)
    gbt.fit(x["train"], y["train"], X_val=x["val"], y_val=y["val"])
    log(f"trees: {gbt.n_iter_} iterations")

    def split_risk(k: str) -> list[np.ndarray]:
        r = gbt.predict_proba(x[k])[:, 1]
        return np.split(r, np.cumsum([len(v) for v in labels[k]])[:-1])

    val = split_risk("val")
    thr, val_util = best_threshold(UtilityTable(labels["val"]), np.concatenate(val))
    from sklearn.metrics import roc_auc_score

    val_auroc = float(roc_auc_score(y["val"], np.concatenate(val)))
    log(f"trees: validation utility {val_util:.4f}, AUROC {val_auroc:.4f}")
    test = evaluate_risk(labels["test"], split_risk("test"), thr)
    test.pop("calibration", None)
    return {"gradient_boosting": {"features": len(FEATURE_NAMES), "iterations": int(gbt.n_iter_), "threshold": thr,
                                  "val_utility": val_util, "val_auroc": val_auroc, "test": test}}
