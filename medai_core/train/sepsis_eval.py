"""Scoring an hourly sepsis risk against ``SepsisLabel``: the challenge utility, AUROC/AUPRC over hours,
patient-level warning time, alarm burden and calibration, with 95% CIs bootstrapped over patients."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from medai_core.trust.utility import DT_LATE, UtilityTable, onset_hour, optimal_alarms, row_utilities

BOOTSTRAP = 500


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Logistic regression of the label on the logit: risk = sigmoid(a * logit + b)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e4, max_iter=1000).fit(logits.reshape(-1, 1), y.astype(int))
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def warning_stats(labels: Sequence[np.ndarray], alarms: Sequence[np.ndarray]) -> dict[str, Any]:
    """Patient-level view of 0/1 hourly alarms.

    - detected: septic patients with an alarm at some hour up to 3 h after onset (the utility's late limit);
    - hours of warning: onset hour minus the first such alarm (positive = before onset), median and IQR;
    - alarm episodes (an hour alarming after one that did not) and alarm hours per patient-day;
    - patient PPV: share of patients with any alarm who are septic.
    """
    detected, lead, episodes, hours, alarmed, alarmed_septic = 0, [], 0, 0, 0, 0
    n_septic = 0
    for lab, al in zip(labels, alarms):
        al = np.asarray(al, bool)
        hours += len(al)
        episodes += int(al[0]) + int((al[1:] & ~al[:-1]).sum()) if len(al) else 0
        ts = onset_hour(lab)
        if al.any():
            alarmed += 1
            alarmed_septic += int(np.isfinite(ts))
        if np.isfinite(ts):
            n_septic += 1
            hit = np.flatnonzero(al[: int(ts) + DT_LATE + 1])
            if len(hit):
                detected += 1
                lead.append(ts - hit[0])
    days = hours / 24.0
    return {"septic_patients": n_septic, "detected": detected,
            "sensitivity_patients": detected / n_septic if n_septic else float("nan"),
            "median_warning_hours": float(np.median(lead)) if lead else float("nan"),
            "warning_hours_iqr": [float(np.percentile(lead, 25)), float(np.percentile(lead, 75))] if lead else [],
            "alarm_episodes_per_patient_day": episodes / days if days else float("nan"),
            "alarm_hours_per_patient_day": float(sum(np.sum(a) for a in alarms)) / days if days else float("nan"),
            "ppv_patients": alarmed_septic / alarmed if alarmed else float("nan")}


def _hour_metrics(y: np.ndarray, risk: np.ndarray, alarm: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    tp = float((alarm & (y > 0)).sum())
    return {"auroc": float(roc_auc_score(y, risk)), "auprc": float(average_precision_score(y, risk)),
            "sensitivity_hours": tp / max(float((y > 0).sum()), 1.0),
            "specificity_hours": float((~alarm & (y == 0)).sum()) / max(float((y == 0).sum()), 1.0),
            "ppv_hours": tp / max(float(alarm.sum()), 1.0), "prevalence_hours": float(y.mean())}


def calibration_bins(y: np.ndarray, risk: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Reliability by risk deciles (equal-count bins: the risk is skewed towards 0) and the ECE."""
    edges = np.unique(np.quantile(risk, np.linspace(0, 1, n_bins + 1)))
    b = np.clip(np.searchsorted(edges, risk, side="right") - 1, 0, len(edges) - 2)
    rows = [{"mean_risk": float(risk[b == k].mean()), "observed": float(y[b == k].mean()), "n": int((b == k).sum())}
            for k in range(len(edges) - 1) if (b == k).any()]
    ece = sum(r["n"] * abs(r["mean_risk"] - r["observed"]) for r in rows) / len(y)
    return {"bins": rows, "ece": float(ece)}


def _per_patient_utility(labels: Sequence[np.ndarray], alarms: Sequence[np.ndarray]) -> np.ndarray:
    """(P, 3): utility of the alarms, of no alarms and of the optimal alarms, per patient."""
    out = np.zeros((len(labels), 3))
    for i, (lab, al) in enumerate(zip(labels, alarms)):
        a, q = row_utilities(lab)
        out[i] = [np.where(al, a, q).sum(), q.sum(), np.where(optimal_alarms(lab), a, q).sum()]
    return out


def evaluate_risk(labels: Sequence[np.ndarray], risk: Sequence[np.ndarray], threshold: float, *, ci: bool = True,
                  seed: int = 0) -> dict[str, Any]:
    """Every metric of one risk on one split at ``threshold``, with bootstrap CIs over patients."""
    y, r = np.concatenate(labels), np.concatenate(risk)
    alarms = [np.asarray(x) >= threshold for x in risk]
    res: dict[str, Any] = {"patients": len(labels), "n": len(labels), "hours": int(len(y)),
                           "utility": UtilityTable(labels).normalized(r >= threshold)}
    res.update(_hour_metrics(y, r, r >= threshold))
    res.update(warning_stats(labels, alarms))
    res["calibration"] = calibration_bins(y, r)
    res["always_alarm_utility"] = UtilityTable(labels).normalized(np.ones(len(y), bool))
    if ci:
        rng = np.random.default_rng(seed)
        pu = _per_patient_utility(labels, alarms)
        starts = np.concatenate([[0], np.cumsum([len(x) for x in labels])])
        boot: dict[str, list[float]] = {"utility": [], "auroc": [], "auprc": []}
        from sklearn.metrics import average_precision_score, roc_auc_score

        for k in range(BOOTSTRAP):
            idx = rng.integers(0, len(labels), len(labels))
            s = pu[idx].sum(0)
            if s[2] > s[1]:  # a draw without a septic patient has no normalized utility
                boot["utility"].append((s[0] - s[1]) / (s[2] - s[1]))
            if k < 200:  # the hour-level AUCs are slower; 200 draws
                rows = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in idx])
                if y[rows].any():
                    boot["auroc"].append(float(roc_auc_score(y[rows], r[rows])))
                    boot["auprc"].append(float(average_precision_score(y[rows], r[rows])))
        res["ci95"] = {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in boot.items() if v}
    return res


def operating_table(labels: Sequence[np.ndarray], risk: Sequence[np.ndarray], n: int = 25) -> list[dict[str, float]]:
    """The same metrics along a range of thresholds (risk quantiles), for the page's threshold view."""
    r = np.concatenate(risk)
    table = UtilityTable(labels)
    rows = []
    for t in np.unique(np.round(np.quantile(r, np.linspace(0.80, 0.995, n)), 4)):
        al = [np.asarray(x) >= t for x in risk]
        w = warning_stats(labels, al)
        rows.append({"threshold": float(t), "utility": table.normalized(r >= t),
                     "sensitivity_patients": w["sensitivity_patients"], "ppv_patients": w["ppv_patients"],
                     "alarm_episodes_per_patient_day": w["alarm_episodes_per_patient_day"],
                     "median_warning_hours": w["median_warning_hours"]})
    return rows
