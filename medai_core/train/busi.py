"""Train, calibrate and evaluate the breast-ultrasound classifier on BUSI; write weights and card.

Run: ``python -m medai_core image train --data ../shared/data/busi [--out assets] [--epochs 150]``.

Steps (all seeded):
1. Read ``{benign,malignant,normal}/*.png`` as 8-bit grayscale, resized to the spec's input size.
2. Group near-duplicates by perceptual hash (pHash Hamming distance <= ``DUP_DISTANCE``, union-find)
   and split groups stratified by label (StratifiedGroupKFold): ~20% test, ~13% validation.
3. Train from scratch with augmentation (affine, flip, gain/gamma, speckle noise), label-smoothed
   cross-entropy, SGD (Nesterov) + one-cycle LR, and stochastic weight averaging of the last 40%
   of epochs. The defaults are the shipped configuration (about 18 minutes on one CPU thread).
4. Fit temperature, malignant threshold and the Mahalanobis OOD detector on train/validation only.
5. Report everything on the untouched test split, with a logistic-regression baseline.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from medai_core.models.busi_cnn import BUSI_LABELS, BUSI_SPEC, BusiNet
from medai_core.models.spec import ModelSpec, sha256_file
from medai_core.workspaces.imaging.pipeline import decide_indices
from medai_core.models.preprocess import to_model_input
from medai_core.train.metrics import (bootstrap_ci, expected_calibration_error, fit_temperature, reliability_bins,
                      softmax)

SEED = 20261123
DUP_DISTANCE = 6


@dataclass
class BusiData:
    x: torch.Tensor  # (N, 1, H, W) in [0, 1]
    y: np.ndarray  # (N,)
    paths: list[str]
    groups: np.ndarray  # near-duplicate group id per image


def load_busi(data_dir: Path, spec: ModelSpec = BUSI_SPEC) -> BusiData:
    """Read the BUSI folders; raises FileNotFoundError naming what is missing."""
    import imagehash

    data_dir = Path(data_dir)
    xs, ys, paths, hashes = [], [], [], []
    for li, label in enumerate(BUSI_LABELS):
        folder = data_dir / label
        files = sorted(p for p in folder.glob("*.png") if "_mask" not in p.name) if folder.is_dir() else []
        if not files:
            raise FileNotFoundError(f"no PNG images in {folder}")
        for p in files:
            img = Image.open(p).convert("L")
            hashes.append(imagehash.phash(img, hash_size=8))
            xs.append(to_model_input(np.asarray(img, dtype=np.float32) / 255.0, spec)[0])
            ys.append(li)
            paths.append(f"{label}/{p.name}")
    groups = _duplicate_groups(hashes, DUP_DISTANCE)
    return BusiData(torch.stack(xs), np.array(ys), paths, groups)


def _duplicate_groups(hashes: list[Any], max_distance: int) -> np.ndarray:
    n = len(hashes)
    bits = np.array([h.hash.flatten() for h in hashes], dtype=np.uint8)
    dist = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(dist <= max_distance, 1))):
        parent[find(i)] = find(j)
    return np.array([find(i) for i in range(n)])


def split_indices(y: np.ndarray, groups: np.ndarray, seed: int = SEED) -> dict[str, np.ndarray]:
    """Stratified, group-aware train/val/test split (near-duplicates never straddle splits)."""
    from sklearn.model_selection import StratifiedGroupKFold

    idx = np.arange(len(y))
    outer = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
    rest, test = next(outer.split(idx, y, groups))
    inner = StratifiedGroupKFold(n_splits=6, shuffle=True, random_state=seed + 1)
    tr, va = next(inner.split(rest, y[rest], groups[rest]))
    return {"train": rest[tr], "val": rest[va], "test": test}


def augment(x: torch.Tensor, gen: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """Random affine (scale, rotation, shift, h-flip), gain/gamma and speckle, batched."""
    n = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    ang = u(-12 * strength, 12 * strength) * math.pi / 180
    scale = u(1 - 0.15 * strength, 1 + 0.2 * strength)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * flip
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * flip
    theta[:, 1, 1] = cos
    theta[:, 0, 2] = u(-0.1 * strength, 0.1 * strength)
    theta[:, 1, 2] = u(-0.1 * strength, 0.1 * strength)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    gamma = u(1 - 0.3 * strength, 1 + 0.4 * strength).view(n, 1, 1, 1)
    gain = u(1 - 0.2 * strength, 1 + 0.2 * strength).view(n, 1, 1, 1)
    out = (out.clamp(0, 1) ** gamma) * gain
    speckle = 1 + 0.1 * strength * torch.randn(out.shape, generator=gen) * (torch.rand(n, 1, 1, 1, generator=gen) < 0.5)
    return (out * speckle).clamp(0, 1)


@torch.no_grad()
def _logits_feats(model: BusiNet, x: torch.Tensor, bs: int = 64) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    lo, fe = [], []
    for i in range(0, len(x), bs):
        a, b = model.forward_with_features(x[i : i + bs])
        lo.append(a)
        fe.append(b)
    return torch.cat(lo).numpy(), torch.cat(fe).numpy()


def _auroc(y_bin: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_bin, score))


def _val_score(logits: np.ndarray, y: np.ndarray) -> float:
    p = softmax(logits)
    mal = BUSI_LABELS.index("malignant")
    return 0.5 * float((p.argmax(1) == y).mean()) + 0.5 * _auroc(y == mal, p[:, mal])


def train_busi(data_dir: Path, out_dir: Path, epochs: int = 150, seed: int = SEED, batch_size: int = 32,
               lr: float = 0.05, swa_from: float = 0.6, width: int = 32, class_weight_power: float = 0.0,
               mixup: float = 0.0, aug_strength: float = 0.6, input_size: int | None = None,
               optimizer: str = "sgd", weight_decay: float = 5e-4,
               log=print) -> dict[str, Any]:
    """Train and write ``busi_cnn.pt``, ``busi_cnn.json`` and ``busi_cnn.md`` into ``out_dir``."""
    t0 = time.time()
    torch.manual_seed(seed)
    np.random.seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = BUSI_SPEC if input_size is None else dataclasses.replace(BUSI_SPEC, input_size=(input_size, input_size))
    data = load_busi(Path(data_dir), spec)
    split = split_indices(data.y, data.groups, seed)
    xtr, ytr = data.x[split["train"]], data.y[split["train"]]
    xva, yva = data.x[split["val"]], data.y[split["val"]]
    log(f"loaded {len(data.y)} images, {len(set(data.groups))} duplicate groups; "
        f"train {len(ytr)} val {len(yva)} test {len(split['test'])} ({time.time() - t0:.0f}s)")

    model = BusiNet(n_classes=len(BUSI_LABELS), width=width)
    model.pixel_mean.fill_(float(xtr.mean()))
    model.pixel_std.fill_(float(xtr.std()))
    counts = np.bincount(ytr, minlength=len(BUSI_LABELS))
    weights = torch.tensor((counts.sum() / counts) ** class_weight_power, dtype=torch.float32)
    weights = weights / weights.mean()
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(ytr) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.2)
    gen = torch.Generator().manual_seed(seed)
    ytr_t = torch.tensor(ytr)
    swa = torch.optim.swa_utils.AveragedModel(model)
    swa_start = int(swa_from * epochs)
    history = []
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        tot = 0.0
        for i in range(0, len(perm), batch_size):
            b = perm[i : i + batch_size]
            if len(b) < 2:
                continue
            xb = augment(xtr[b], gen, aug_strength)
            if mixup > 0:
                lam = float(torch.distributions.Beta(mixup, mixup).sample())
                perm_b = torch.randperm(len(b), generator=gen)
                out = model(lam * xb + (1 - lam) * xb[perm_b])
                loss = lam * F.cross_entropy(out, ytr_t[b], weight=weights, label_smoothing=0.05) + (1 - lam) * \
                    F.cross_entropy(out, ytr_t[b][perm_b], weight=weights, label_smoothing=0.05)
            else:
                loss = F.cross_entropy(model(xb), ytr_t[b], weight=weights, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(b)
        if ep >= swa_start:
            swa.update_parameters(model)
        lv, _ = _logits_feats(model, xva)
        score = _val_score(lv, yva)
        history.append({"epoch": ep + 1, "train_loss": tot / len(ytr), "val_score": score})
        log(f"epoch {ep + 1:3d} loss {tot / len(ytr):.4f} val(acc+auroc)/2 {score:.4f} ({time.time() - t0:.0f}s)")
    # stochastic weight averaging (Izmailov et al. 2018) over the last epochs instead of picking
    # one epoch on a small, noisy validation split; batch-norm statistics recomputed on train
    model.load_state_dict({k[len("module."):]: v for k, v in swa.state_dict().items() if k.startswith("module.")})
    model.train()
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None
    with torch.no_grad():
        for i in range(0, len(xtr), 64):
            model(xtr[i : i + 64])
    model.eval()
    lv, _ = _logits_feats(model, xva)
    val_score = _val_score(lv, yva)
    log(f"SWA model val(acc+auroc)/2 {val_score:.4f}")

    # calibration and operating point on validation only
    lv, _ = _logits_feats(model, xva)
    temperature = fit_temperature(lv, yva)
    mal = BUSI_LABELS.index("malignant")
    pv = softmax(lv, temperature)
    threshold = _accuracy_threshold(pv, yva, mal)
    model.temperature.fill_(temperature)
    model.decision_threshold.fill_(threshold)

    # OOD detector: class-agnostic Gaussian on training features (shrunk covariance)
    from sklearn.covariance import LedoitWolf

    _, ftr = _logits_feats(model, xtr)
    lw = LedoitWolf().fit(ftr)
    model.ood_mean.copy_(torch.tensor(lw.location_, dtype=torch.float32))
    model.ood_precision.copy_(torch.tensor(lw.precision_, dtype=torch.float32))
    _, fva = _logits_feats(model, xva)
    sva = model.ood_score(torch.tensor(fva)).numpy()
    model.ood_threshold.fill_(float(np.percentile(sva, 95)))

    weights_path = out_dir / BUSI_SPEC.weights
    torch.save(model.state_dict(), weights_path)
    results = evaluate_split(model, data, split)
    results.update({
        "model": BUSI_SPEC.name,
        "labels": list(BUSI_LABELS),
        "weights_sha256": sha256_file(weights_path),
        "weights_bytes": weights_path.stat().st_size,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "temperature": temperature,
        "decision_threshold": threshold,
        "ood_threshold": float(model.ood_threshold),
        "training": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "swa_from_epoch": swa_start + 1,
                     "width": width, "class_weight_power": class_weight_power, "mixup": mixup,
                     "aug_strength": aug_strength, "input_size": list(spec.input_size),
                     "optimizer": optimizer, "weight_decay": weight_decay,
                     "val_score": val_score, "seconds": round(time.time() - t0, 1),
                     "torch_threads": torch.get_num_threads(), "history": history},
        "split": {k: int(len(v)) for k, v in split.items()} | {
            "duplicate_groups": int(len(set(data.groups))), "images": int(len(data.y)),
            "dup_distance": DUP_DISTANCE,
            "class_counts": {s: np.bincount(data.y[v], minlength=3).tolist() for s, v in split.items()}},
        "test_files": [data.paths[i] for i in split["test"]],
    })
    results["baseline"] = logistic_baseline(data, split)
    (out_dir / BUSI_SPEC.card_json).write_text(json.dumps(results, indent=1))
    log(f"done in {time.time() - t0:.0f}s: test acc {results['test']['accuracy']:.3f} "
        f"malignant AUROC {results['test']['malignant_auroc']:.3f}")
    return results


def _accuracy_threshold(probs: np.ndarray, y: np.ndarray, positive: int) -> float:
    """Malignant threshold maximising validation 3-class accuracy of the decision rule; among equal
    accuracies the lowest (most sensitive) threshold wins."""
    cands = np.unique(np.concatenate([probs[:, positive], np.linspace(0.05, 0.95, 19)]))
    accs = [float((decide_indices(probs, positive, t) == y).mean()) for t in cands]
    best = max(accs)
    return float(min(max(cands[accs.index(best)], 0.05), 0.95))


def evaluate_split(model: BusiNet, data: BusiData, split: dict[str, np.ndarray]) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    mal = BUSI_LABELS.index("malignant")
    out: dict[str, Any] = {}
    for name in ("val", "test"):
        idx = split[name]
        lg, fe = _logits_feats(model, data.x[idx])
        y = data.y[idx]
        p_raw = softmax(lg)
        p = softmax(lg, float(model.temperature))
        pred = decide_indices(p, mal, float(model.decision_threshold))
        prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=[0, 1, 2], zero_division=0)
        ood = model.ood_score(torch.tensor(fe)).numpy()
        acc_fn = lambda yy, pp: float((yy == pp).mean())  # noqa: E731
        auc_fn = lambda yy, ss: _auroc(yy == mal, ss)  # noqa: E731
        out[name] = {
            "n": int(len(y)),
            "accuracy": acc_fn(y, pred),
            "accuracy_ci95": bootstrap_ci(acc_fn, y, pred),
            "accuracy_argmax": float((p.argmax(1) == y).mean()),
            "malignant_auroc": auc_fn(y, p[:, mal]),
            "malignant_auroc_ci95": bootstrap_ci(auc_fn, y, p[:, mal]),
            "per_class": {lab: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                                "support": int(sup[i])} for i, lab in enumerate(BUSI_LABELS)},
            "macro_f1": float(f1.mean()),
            "confusion": confusion_matrix(y, pred, labels=[0, 1, 2]).tolist(),
            "ece_before": expected_calibration_error(p_raw, y),
            "ece_after": expected_calibration_error(p, y),
            "reliability": reliability_bins(p, y),
            "ood_flag_rate": float((ood > float(model.ood_threshold)).mean()),
        }
    return out


def _handcrafted(x: torch.Tensor) -> np.ndarray:
    thumbs = F.adaptive_avg_pool2d(x, 16).flatten(1).numpy()
    hist = np.stack([np.histogram(im.numpy(), bins=16, range=(0, 1))[0] / im.numel() for im in x])
    return np.concatenate([thumbs, hist], 1)


def logistic_baseline(data: BusiData, split: dict[str, np.ndarray]) -> dict[str, Any]:
    """Logistic regression on 16x16 thumbnails + intensity histogram, C chosen on validation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    feats = _handcrafted(data.x)
    mal = BUSI_LABELS.index("malignant")
    best = None
    for c in (0.001, 0.01, 0.1, 1.0):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, class_weight="balanced"))
        clf.fit(feats[split["train"]], data.y[split["train"]])
        acc = clf.score(feats[split["val"]], data.y[split["val"]])
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    _, c, clf = best
    te = split["test"]
    p = clf.predict_proba(feats[te])
    return {"name": "logistic regression on 16x16 thumbnail + 16-bin histogram", "C": c,
            "test_accuracy": float((p.argmax(1) == data.y[te]).mean()),
            "test_malignant_auroc": _auroc(data.y[te] == mal, p[:, mal])}
