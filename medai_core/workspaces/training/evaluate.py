"""Test-split evaluation of a model trained in the app: accuracy, per-class precision / recall / F1, the confusion
matrix, AUROC and calibration (ECE and the reliability curve of P(positive label))."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medai_core.trust.calibration import ReliabilityCurve, reliability_curve


@dataclass(frozen=True)
class Evaluation:
    """Results on the test split.

    Attributes:
        labels: class names; ``positive_label`` is one of them.
        y: (n,) true class index. probs: (n, K) calibrated probabilities.
        accuracy, balanced_accuracy: of the top class.
        per_class: one row per class: precision, recall, F1, support.
        confusion: (K, K) counts, rows = true class, columns = predicted class.
        auroc: P(positive) against "the true class is the positive label" (NaN if one side is empty).
        ece: expected calibration error of P(positive) (10 bins).
        reliability: the reliability curve of P(positive).
    """

    labels: tuple[str, ...]
    positive_label: str
    y: np.ndarray
    probs: np.ndarray
    accuracy: float
    balanced_accuracy: float
    per_class: pd.DataFrame
    confusion: np.ndarray
    auroc: float
    ece: float
    reliability: ReliabilityCurve

    def summary(self) -> dict[str, float]:
        return {"n": len(self.y), "accuracy": round(self.accuracy, 4),
                "balanced_accuracy": round(self.balanced_accuracy, 4), "auroc": round(self.auroc, 4),
                "ece": round(self.ece, 4), "macro_f1": round(float(self.per_class["F1"].mean()), 4)}


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the negative log-likelihood of softmax(logits / T) (Guo et al. 2017)."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = softmax(logits / np.exp(log_t))
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def evaluate(scaled_logits: np.ndarray, y: np.ndarray, labels: tuple[str, ...], positive_label: str) -> Evaluation:
    """Metrics of temperature-scaled logits against the true classes ``y``."""
    from sklearn.metrics import (
        balanced_accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    probs = softmax(scaled_logits)
    pred = probs.argmax(1)
    k = len(labels)
    p, r, f, n = precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
    table = pd.DataFrame({"class": labels, "precision": p, "recall": r, "F1": f, "images": n})
    pos = labels.index(positive_label)
    outcome = (y == pos).astype(int)
    auroc = float(roc_auc_score(outcome, probs[:, pos])) if 0 < outcome.sum() < len(outcome) else float("nan")
    curve = reliability_curve(probs[:, pos], outcome)
    return Evaluation(labels, positive_label, y, probs, float((pred == y).mean()),
                      float(balanced_accuracy_score(y, pred)), table,
                      confusion_matrix(y, pred, labels=list(range(k))), auroc, float(curve.ece), curve)
