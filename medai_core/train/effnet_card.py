"""Evaluation, linear-probe baseline, weights and model card of the EfficientNet-Lite0 classifiers.

CIs are 95% percentile bootstraps that resample *groups* (patients for the chest films, near-duplicate
groups for breast ultrasound), because images of one patient are not independent.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medai_core.models.effnet import EffNetClassifier
from medai_core.models.spec import ModelSpec
from medai_core.train.metrics import bootstrap_ci, expected_calibration_error, reliability_bins, softmax


def save_weights(model: EffNetClassifier, path: Path) -> tuple[str, int]:
    """fp16 state_dict (half the size; loading casts back to fp32). Returns (sha256, bytes)."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    raw = buf.getvalue()
    path.write_bytes(raw)
    # the shipped model is the fp16 one: round the live model too, so the card's numbers are the shipped model's
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return hashlib.sha256(raw).hexdigest(), len(raw)


@torch.no_grad()
def run_back(model: EffNetClassifier, h: torch.Tensor, start: int, bs: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Logits and pooled features from cached front outputs (eval mode)."""
    model.eval()
    lo, fe = [], []
    for i in range(0, len(h), bs):
        a, b = model.classify(model.back(h[i : i + bs].float(), start))
        lo.append(a)
        fe.append(b)
    return torch.cat(lo).numpy(), torch.cat(fe).numpy()


def positive_indices(spec: ModelSpec) -> list[int]:
    group = spec.extra.get("positive_group") or (spec.positive_label,)
    return [spec.labels.index(g) for g in group]


def positive_prob(p: np.ndarray, spec: ModelSpec) -> np.ndarray:
    return p[:, positive_indices(spec)].sum(1)


def choose_threshold(p: np.ndarray, y: np.ndarray, spec: ModelSpec) -> float:
    """The operating point on validation: for a class group (pneumonia) the threshold that maximises the
    group-vs-rest accuracy; for one class (malignant) the one that maximises 3-class accuracy of the
    decision rule. Ties go to the lowest (most sensitive) threshold; kept within [0.05, 0.95]."""
    from medai_core.workspaces.imaging.pipeline import decide_indices

    pos = positive_indices(spec)
    pp = positive_prob(p, spec)
    cands = np.unique(np.concatenate([pp, np.linspace(0.05, 0.95, 19)]))
    if len(pos) > 1:
        accs = [float(((pp >= t) == np.isin(y, pos)).mean()) for t in cands]
    else:
        accs = [float((decide_indices(p, pos, t) == y).mean()) for t in cands]
    return float(min(max(cands[int(np.argmax(accs))], 0.05), 0.95))


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def classification_metrics(p: np.ndarray, y: np.ndarray, groups: np.ndarray, spec: ModelSpec, threshold: float,
                           ci: bool = True) -> dict[str, Any]:
    """Everything the card reports for calibrated probabilities ``p`` (n, K) against labels ``y``."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    from medai_core.workspaces.imaging.pipeline import decide_indices

    pos = positive_indices(spec)
    k = len(spec.labels)
    pred = decide_indices(p, pos, threshold)
    pp = p[:, pos].sum(1)
    yb = np.isin(y, pos)
    acc = lambda yy, pr: float((yy == pr).mean())  # noqa: E731
    auc = lambda yy, ss: _auroc(np.isin(yy, pos), ss)  # noqa: E731
    bacc = lambda yy, pr: float((np.isin(yy, pos) == np.isin(pr, pos)).mean())  # noqa: E731
    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
    out: dict[str, Any] = {
        "n": int(len(y)), "groups": int(len(np.unique(groups))),
        "accuracy": acc(y, pred), "accuracy_argmax": float((p.argmax(1) == y).mean()),
        "positive_auroc": auc(y, pp), "positive_accuracy": bacc(y, pred),
        "sensitivity": float((np.isin(pred, pos) & yb).sum() / max(yb.sum(), 1)),
        "specificity": float((~np.isin(pred, pos) & ~yb).sum() / max((~yb).sum(), 1)),
        "per_class": {lab: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                            "support": int(sup[i])} for i, lab in enumerate(spec.labels)},
        "macro_f1": float(f1.mean()),
        "confusion": confusion_matrix(y, pred, labels=list(range(k))).tolist(),
    }
    if ci:
        out["accuracy_ci95"] = bootstrap_ci(acc, y, pred, groups=groups)
        out["positive_auroc_ci95"] = bootstrap_ci(auc, y, pp, groups=groups)
        out["positive_accuracy_ci95"] = bootstrap_ci(bacc, y, pred, groups=groups)
    if spec.positive_label == "malignant":  # the keys busi_cnn's card, the home page and heldout already read
        out["malignant_auroc"] = out["positive_auroc"]
        if ci:
            out["malignant_auroc_ci95"] = out["positive_auroc_ci95"]
    return out


def round_weights(model: EffNetClassifier) -> None:
    """Round the floating-point state to fp16 and back, in place: the model becomes the one that ships."""
    model.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()})


@torch.no_grad()
def full_pass(model: EffNetClassifier, x_u8: torch.Tensor, bs: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Logits and pooled features of the whole network (eval mode) on uint8 images, as the app runs it."""
    model.eval()
    lo, fe = [], []
    for i in range(0, len(x_u8), bs):
        a, b = model.forward_with_features(x_u8[i : i + bs].float() / 255.0)
        lo.append(a)
        fe.append(b)
    return torch.cat(lo).numpy(), torch.cat(fe).numpy()


def evaluate(model: EffNetClassifier, spec: ModelSpec, data: Any, split: dict[str, np.ndarray],
             outputs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Validation and test metrics of the finished model from its full-network (logits, features)."""
    out: dict[str, Any] = {}
    for name in ("val", "test"):
        idx = split[name]
        lg, fe = outputs[name]
        y = data.y[idx]
        p = softmax(lg, float(model.temperature))
        m = classification_metrics(p, y, data.groups[idx], spec, float(model.decision_threshold))
        m["ece_before"] = expected_calibration_error(softmax(lg), y)
        m["ece_after"] = expected_calibration_error(p, y)
        m["reliability"] = reliability_bins(p, y)
        m["ood_flag_rate"] = float((model.ood_score(torch.tensor(fe)).numpy() > float(model.ood_threshold)).mean())
        m["headline"] = (f"3-class accuracy {m['accuracy']:.3f}, {spec.positive_label}-vs-rest AUROC "
                         f"{m['positive_auroc']:.3f}, accuracy {m['positive_accuracy']:.3f}")
        out[name] = m
    return out


@torch.no_grad()
def pooled_imagenet_features(pretrained: EffNetClassifier, h: torch.Tensor, start: int, bs: int = 128) -> np.ndarray:
    """Average-pooled 1280-d features of the frozen ImageNet network from cached front outputs."""
    pretrained.eval()
    return torch.cat([pretrained.back(h[i : i + bs].float(), start).mean((2, 3))
                      for i in range(0, len(h), bs)]).numpy()


def linear_probe(pretrained: EffNetClassifier, cached: dict[str, torch.Tensor], start: int, data: Any,
                 split: dict[str, np.ndarray], spec: ModelSpec) -> dict[str, Any]:
    """Logistic regression on the frozen ImageNet features (C and the threshold chosen on validation)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    feats = {s: pooled_imagenet_features(pretrained, cached[s], start) for s in ("train", "val", "test")}
    y = {s: data.y[split[s]] for s in feats}
    best = None
    for c in (0.003, 0.01, 0.03, 0.1, 0.3, 1.0):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        clf.fit(feats["train"], y["train"])
        pv = clf.predict_proba(feats["val"])
        s = 0.5 * float((pv.argmax(1) == y["val"]).mean()) + 0.5 * _auroc(
            np.isin(y["val"], [spec.labels.index(g) for g in (spec.extra.get("positive_group") or (spec.positive_label,))]),
            positive_prob(pv, spec))
        if best is None or s > best[0]:
            best = (s, c, clf, pv)
    _, c, clf, pv = best
    thr = choose_threshold(pv, y["val"], spec)
    pt = clf.predict_proba(feats["test"])
    m = classification_metrics(pt, y["test"], data.groups[split["test"]], spec, thr)
    return {"name": "linear probe: logistic regression on the average-pooled features of the frozen ImageNet "
                    "EfficientNet-Lite0 (224 px)", "C": c, "threshold": thr, "test": m}


def write_card(results: dict[str, Any], spec: ModelSpec, out_dir: Path, extra_md: str = "") -> Path:
    """The card's JSON (numbers) and markdown (for people)."""
    from medai_core.train.effnet_md import card_markdown

    out_dir = Path(out_dir)
    (out_dir / spec.card_json).write_text(json.dumps(results, indent=1))
    path = out_dir / spec.card
    path.write_text(card_markdown(results, spec) + extra_md)
    return path
