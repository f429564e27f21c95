"""Train and evaluate the sepsis early warning on PhysioNet/CinC 2019 training set B; write weights and card.

Run: ``python -m medai_core vitals train --model sepsis_gru --data ../shared/data/physionet2019/training_setB``.

1. Every record -> hourly values (artefacts set aside), static columns and ``SepsisLabel`` (target only).
2. Split by patient (seeded, stratified by whether the patient becomes septic): 70/15/15.
3. ``SepsisGRU``: an ensemble of members trained from different seeds on every hour of every training stay
   (binary cross-entropy per hour, stays batched by length), each member's epoch with the best validation
   AUROC kept; the ensemble's logit is the members' mean.
4. Platt scaling of the logit on validation, then the alarm threshold that maximises the normalized utility
   on validation. Test scored once: utility, AUROC, AUPRC (hours), patient-level warning, calibration, with
   95% CIs bootstrapped over patients.
5. Baseline: gradient-boosted trees on per-hour features (``sepsis_baseline``), its threshold also on validation.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medai_core.models.catalog import SEPSIS_SPEC
from medai_core.models.sepsis import SEPSIS_HIDDEN, SEPSIS_MEMBERS, SepsisGRU, sepsis_features, transform_values
from medai_core.models.spec import sha256_file
from medai_core.train.sepsis_data import SEED, VAR_NAMES, load_cached, patient_slices, split_patients
from medai_core.train.sepsis_eval import evaluate_risk, fit_platt, operating_table
from medai_core.trust.utility import UtilityTable, best_threshold


def skewed_variables(values: np.ndarray, rows: np.ndarray, limit: float = 2.0) -> np.ndarray:
    """Variables whose training values are non-negative and skewed (skewness > ``limit``): read on a log scale."""
    flags = []
    for j in range(values.shape[1]):
        v = values[rows, j]
        v = v[~np.isnan(v)]
        sd = v.std() if len(v) > 2 else 0.0
        flags.append(bool(len(v) > 2 and v.min() >= 0 and sd > 0 and ((v - v.mean()) ** 3).mean() / sd ** 3 > limit))
    return np.array(flags)


def standardisation(values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-variable mean and SD over the training rows' measured values (SD 1 where undefined)."""
    v = values[rows]
    with np.errstate(invalid="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore", RuntimeWarning)
        mean = np.nan_to_num(np.nanmean(v, 0), nan=0.0).astype(np.float32)
        std = np.nan_to_num(np.nanstd(v, 0), nan=1.0).astype(np.float32)
    std[~(std > 1e-6)] = 1.0
    return mean, std


def stay_features(data: dict[str, Any], idx: np.ndarray, mean: np.ndarray, std: np.ndarray,
                  log_vars: np.ndarray | None = None) -> list[np.ndarray]:
    return [sepsis_features(data["values"][s], data["static"][s], mean, std, log_vars)
            for s in patient_slices(data["offsets"], idx)]


def _batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Stays grouped by length (little padding); the batch order shuffled when ``rng`` is given."""
    order = np.argsort(lengths, kind="stable")
    if rng is not None:  # jitter within similar lengths so batches differ between epochs
        order = np.argsort(lengths + rng.uniform(0, 3, len(lengths)), kind="stable")
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(chunks)
    return chunks


def _pad(feats: list[np.ndarray], labels: list[np.ndarray] | None, idx: np.ndarray
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    t = max(len(feats[i]) for i in idx)
    x = np.zeros((len(idx), t, feats[idx[0]].shape[1]), np.float32)
    mask = np.zeros((len(idx), t), np.float32)
    y = np.zeros((len(idx), t), np.float32) if labels is not None else None
    for j, i in enumerate(idx):
        n = len(feats[i])
        x[j, :n], mask[j, :n] = feats[i], 1.0
        if y is not None:
            y[j, :n] = labels[i]
    return torch.from_numpy(x), torch.from_numpy(mask), (torch.from_numpy(y) if y is not None else None)


@torch.no_grad()
def predict_logits(model: SepsisGRU | Sequence[nn.Module], feats: list[np.ndarray], batch_size: int = 64) -> list[np.ndarray]:
    """Per stay, the logit at every hour (uncalibrated); for a list of members, their mean logit."""
    nets = list(model) if isinstance(model, (list, tuple, nn.ModuleList)) else [model]
    for n in nets:
        n.eval()
    out: list[np.ndarray] = [np.zeros(0)] * len(feats)
    for idx in _batches(np.array([len(f) for f in feats]), batch_size, None):
        x, _, _ = _pad(feats, None, idx)
        logits = torch.stack([n.forward_with_attention(x)[0] for n in nets]).mean(0).numpy()
        for j, i in enumerate(idx):
            out[i] = logits[j, :len(feats[i])]
    return out


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _fit_member(member: nn.Module, feats: dict[str, list[np.ndarray]], labels: dict[str, list[np.ndarray]],
                rng: np.random.Generator, *, epochs: int, lr: float, weight_decay: float, batch_size: int,
                pos_weight: float, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Train one member on every training hour; keep its epoch with the best validation AUROC."""
    opt = torch.optim.AdamW(member.parameters(), lr=lr, weight_decay=weight_decay)
    lengths = np.array([len(f) for f in feats["train"]])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(_batches(lengths, batch_size, None)),
                                                pct_start=0.1)
    pw, yval = torch.tensor(pos_weight), np.concatenate(labels["val"])
    per_batch = batch_size * float(lengths.mean())  # every hour weighs alike, whatever its stay's length
    history, best, best_state = [], -np.inf, None
    for epoch in range(epochs):
        member.train()
        te, total, count = time.perf_counter(), 0.0, 0
        for idx in _batches(lengths, batch_size, rng):
            x, mask, y = _pad(feats["train"], labels["train"], idx)
            logits = member.forward_with_attention(x)[0]
            loss = (F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw, reduction="none") * mask).sum() / per_batch
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(member.parameters(), 1.0)
            opt.step()
            sched.step()
            total, count = total + float(loss.detach()) * per_batch, count + float(mask.sum())
        auc = _auroc(yval, np.concatenate(predict_logits([member], feats["val"])))
        history.append({"epoch": epoch + 1, "train_loss": total / count, "val_auroc": auc,
                        "seconds": round(time.perf_counter() - te, 1)})
        log(json.dumps(history[-1]))
        if auc > best:
            best, best_state = auc, {k: v.detach().clone() for k, v in member.state_dict().items()}
    member.load_state_dict(best_state)
    return history


def train_sepsis(folder: Path, out_dir: Path, *, epochs: int = 8, seed: int = SEED, hidden: int = SEPSIS_HIDDEN,
                 members: int = SEPSIS_MEMBERS, lr: float = 2e-3, weight_decay: float = 1e-4, dropout: float = 0.3, batch_size: int = 32,
                 pos_weight: float = 1.0, log_skewed: bool = True, cache: Path | None = None, baseline: bool = True,
                 log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Train ``sepsis_gru``; writes ``sepsis_gru.pt`` and ``sepsis_gru.json`` (``write_card`` writes the card)."""
    t0 = time.perf_counter()
    log = log or (lambda _m: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_cached(Path(folder), cache, log)
    split = split_patients(data["ids"], data["labels"], data["offsets"], seed)
    train_rows = np.concatenate([np.arange(s.start, s.stop) for s in patient_slices(data["offsets"], split["train"])])
    log_vars = skewed_variables(data["values"], train_rows) if log_skewed else np.zeros(data["values"].shape[1], bool)
    mean, std = standardisation(transform_values(data["values"], log_vars), train_rows)
    feats = {k: stay_features(data, idx, mean, std, log_vars) for k, idx in split.items()}
    labels = {k: [data["labels"][s].astype(np.float32) for s in patient_slices(data["offsets"], idx)]
              for k, idx in split.items()}
    tables = {k: UtilityTable(v) for k, v in labels.items()}
    log(f"features ready in {time.perf_counter() - t0:.0f} s")

    model = SepsisGRU(members, hidden, dropout)
    model.mean.copy_(torch.from_numpy(mean))
    model.std.copy_(torch.from_numpy(std))
    model.log_vars.copy_(torch.from_numpy(log_vars.astype(np.float32)))
    history: list[dict[str, Any]] = []
    for k, member in enumerate(model.members):
        torch.manual_seed(seed + k)
        h = _fit_member(member, feats, labels, np.random.default_rng(seed + k), epochs=epochs, lr=lr,
                        weight_decay=weight_decay, batch_size=batch_size, pos_weight=pos_weight, log=log)
        history += [{"member": k, **e} for e in h]
        yv = np.concatenate(labels["val"])
        vl = np.concatenate(predict_logits(model.members[: k + 1], feats["val"]))
        log(f"ensemble of {k + 1}: val AUROC {_auroc(yv, vl):.4f}, utility {best_threshold(tables['val'], vl)[1]:.4f}")
    best_epoch = [max((e for e in history if e["member"] == k), key=lambda e: e["val_auroc"])["epoch"]
                  for k in range(members)]
    yval = np.concatenate(labels["val"])

    vlog = predict_logits(model, feats["val"])
    a, b = fit_platt(np.concatenate(vlog), yval)
    model.calibration.copy_(torch.tensor([a, b], dtype=torch.float32))
    risk = {"val": [1 / (1 + np.exp(-(a * v + b))) for v in vlog]}
    thr, val_util = best_threshold(tables["val"], np.concatenate(risk["val"]))
    model.threshold.fill_(thr)
    risk["test"] = [1 / (1 + np.exp(-(a * v + b))) for v in predict_logits(model, feats["test"])]
    results: dict[str, Any] = {
        "model": SEPSIS_SPEC.name,
        "data": _data_section(data, split, seed),
        "log_scale": [n for n, f in zip(VAR_NAMES, log_vars) if f],
        "training": {"members": members, "hidden": hidden, "lr": lr, "weight_decay": weight_decay, "dropout": dropout,
                     "batch_size": batch_size, "pos_weight": pos_weight, "epochs_run": epochs,
                     "best_epoch": best_epoch, "seconds": round(time.perf_counter() - t0, 1),
                     "threads": torch.get_num_threads()},
        "history": history,
        "calibration": {"platt_a": a, "platt_b": b},
        "threshold": thr,
        "val": evaluate_risk(labels["val"], risk["val"], thr, ci=False),
        "test": evaluate_risk(labels["test"], risk["test"], thr),
        "operating": operating_table(labels["test"], risk["test"]),
    }
    results["val"]["utility_at_threshold"] = val_util
    if baseline:
        from medai_core.train.sepsis_baseline import gbt_baseline

        results["baselines"] = gbt_baseline(data, split, labels, log=log)
    torch.save(model.state_dict(), out_dir / SEPSIS_SPEC.weights)
    results["weights_sha256"] = sha256_file(out_dir / SEPSIS_SPEC.weights)
    (out_dir / SEPSIS_SPEC.card_json).write_text(json.dumps(results, indent=1))
    return results


def _data_section(data: dict[str, Any], split: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    off = data["offsets"]
    septic = np.array([data["labels"][a:b].any() for a, b in zip(off[:-1], off[1:])])
    from medai_core.models.catalog import SEPSIS_VARIABLES

    return {"source": "PhysioNet/Computing in Cardiology Challenge 2019, training set B (Reyna et al. 2020)",
            "patients": int(len(data["ids"])), "hours": int(len(data["labels"])), "seed": seed,
            "split": {k: int(len(v)) for k, v in split.items()},
            "septic": {k: int(septic[v].sum()) for k, v in split.items()},
            "positive_hours": float(data["labels"].mean()),
            "set_aside": {s.name: int(n) for s, n in zip(SEPSIS_VARIABLES, data["set_aside"]) if n},
            "test_ids": data["ids"][split["test"]].tolist()}
