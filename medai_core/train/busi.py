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

from ..models.busi_cnn import BUSI_LABELS, BUSI_SPEC, BusiNet
from ..models.spec import ModelSpec, sha256_file
from ..imaging import decide_indices
from ..preprocess import to_model_input
from .metrics import (bootstrap_ci, expected_calibration_error, fit_temperature, reliability_bins,
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


def ood_reference_report(model: BusiNet) -> dict[str, Any]:
    """How often the OOD guard flags scans that are not breast ultrasound.

    Uses every decodable image in pydicom's test files and the pydicom-data package (grouped by
    modality; ultrasound of other organs reported apart) and the photographs matplotlib ships.
    """
    import matplotlib

    from ..imaging import prepare_input
    from ..io import load_scan
    from ..samples import reference_dicoms

    rows = []
    seen: set[tuple[int, ...]] = set()
    paths = reference_dicoms()
    sample_dir = Path(matplotlib.get_data_path()) / "sample_data"
    photos = [sample_dir / "grace_hopper.jpg", sample_dir / "Minduka_Present_Blue_Pack.png"]
    for p in paths + photos:
        try:
            scan = load_scan(p)
        except Exception:  # noqa: BLE001 - unreadable test files are not part of this report
            continue
        if min(scan.shape) < 32:
            continue  # tiny synthetic test patterns, not scans
        x = prepare_input(scan, BUSI_SPEC, 0)
        key = tuple(np.round(x.flatten()[::97].numpy() * 255).astype(int).tolist())
        if key in seen:
            continue  # the same picture in another encoding counts once
        seen.add(key)
        with torch.no_grad():
            _, f = model.forward_with_features(x)
            s = float(model.ood_score(f)[0])
        kind = "photo" if p in photos else (scan.modality or "other")
        rows.append({"file": p.name, "modality": kind, "score": s, "flagged": s > float(model.ood_threshold)})
    by: dict[str, dict[str, int]] = {}
    for r in rows:
        g = "US (not breast)" if r["modality"] == "US" else r["modality"]
        d = by.setdefault(g, {"n": 0, "flagged": 0})
        d["n"] += 1
        d["flagged"] += int(r["flagged"])
    non_us = [r for r in rows if r["modality"] not in ("US",)]
    return {"by_modality": by, "non_ultrasound_n": len(non_us),
            "non_ultrasound_flagged": int(sum(r["flagged"] for r in non_us)),
            "non_ultrasound_catch_rate": float(np.mean([r["flagged"] for r in non_us])) if non_us else float("nan"),
            "files": rows}


def finalize_card(out_dir: Path, development: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Add the OOD reference report to ``busi_cnn.json`` and write ``busi_cnn.md``.

    Args:
        out_dir: folder holding the weights and the JSON written by ``train_busi``.
        development: optional list of earlier configurations with their validation and test
            numbers, shown in the card so readers can judge selection effects.
    """
    out_dir = Path(out_dir)
    results = json.loads((out_dir / BUSI_SPEC.card_json).read_text())
    if development is not None:
        results["development"] = development
    state = torch.load(out_dir / BUSI_SPEC.weights, weights_only=True)
    model = BusiNet(width=int(state["stem.0.weight"].shape[0]))
    model.load_state_dict(state)
    model.eval()
    results["ood_reference"] = ood_reference_report(model)
    (out_dir / BUSI_SPEC.card_json).write_text(json.dumps(results, indent=1))
    (out_dir / BUSI_SPEC.card).write_text(card_markdown(results))
    return results


def _development_section(r: dict[str, Any]) -> str:
    dev = r.get("development")
    if not dev:
        return ""
    rows = "\n".join(f"| {d['run']} | {d['config']} | {d['val_accuracy']:.3f} | {d['test_accuracy']:.3f} | "
                     f"{d['test_malignant_auroc']:.3f} |" for d in dev)
    return f"""## Development history and selection effects
Other configurations trained on the same split. Their test numbers were looked at, and the
shipped configuration was chosen after seeing them, so the test figures above are **optimistically
biased**; the spread below shows how much they move between reasonable configurations.

| run | configuration | val accuracy | test accuracy | test malignant AUROC |
|---|---|---|---|---|
{rows}

{r.get("selection_note", "")}
"""


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def card_markdown(r: dict[str, Any]) -> str:
    """The human model card, generated from the numbers so the two never disagree."""
    t, v = r["test"], r["val"]
    cls = "\n".join(
        f"| {lab} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for lab, m in t["per_class"].items())
    cm = "\n".join(f"| **{lab}** | " + " | ".join(str(c) for c in row) + " |"
                   for lab, row in zip(r["labels"], t["confusion"]))
    rel = "\n".join(f"| {b['lo']:.1f}-{b['hi']:.1f} | {b['n']} | {b['confidence']:.3f} | {b['accuracy']:.3f} |"
                    for b in t["reliability"])
    ood = r.get("ood_reference", {})
    ood_rows = "\n".join(f"| {k} | {d['n']} | {d['flagged']} |" for k, d in sorted(ood.get("by_modality", {}).items()))
    b = r["baseline"]
    sp = r["split"]
    tr = r["training"]
    return f"""# Model card: busi_cnn (breast ultrasound, benign / malignant / normal)

**Intended use.** Decision support and demonstration only; not a diagnosis and not a medical device.
It classifies a single 2-D breast-ultrasound image into benign lesion, malignant lesion or normal
tissue and shows why (Grad-CAM, Integrated Gradients, SmoothGrad, occlusion). A clinician reviews
the image and the explanation; the output must never be acted on alone.

## Data and licence
- BUSI: Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. *Dataset of breast ultrasound images.*
  Data in Brief 28 (2020) 104863. Baheya Hospital, Cairo, women aged 25-75, 2018. Published as
  public (CC0 on its common mirror). Obtain it from the publisher; it is not shipped here.
- Used here: {sp['images']} images (benign {sum(c[0] for c in sp['class_counts'].values())},
  malignant {sum(c[1] for c in sp['class_counts'].values())}, normal {sum(c[2] for c in sp['class_counts'].values())}), 256 x 256, no masks.
- Split (seed {r['training']['seed']}): near-duplicates grouped by perceptual hash (pHash, Hamming
  distance <= {sp['dup_distance']}; {sp['duplicate_groups']} groups for {sp['images']} images) and kept on one side;
  groups split stratified by label (StratifiedGroupKFold): train {sp['train']}, validation {sp['val']},
  test {sp['test']}. Class counts (benign, malignant, normal): {sp['class_counts']}.

## Model and training
- Residual CNN from scratch (no pretrained weights), {r['parameters']:,} parameters, weights
  {r['weights_bytes'] / 1024:.0f} KiB, sha256 `{r['weights_sha256'][:16]}…`.
- Preprocessing: luminance of the scan in its default window, 8-bit, resized to
  {tr['input_size'][0]} x {tr['input_size'][1]} (bilinear, aspect ratio not kept), normalised by the training mean/std.
- Augmentation (strength {tr['aug_strength']}): random affine (rotation up to ±{12 * tr['aug_strength']:.0f}°, scale,
  shift, horizontal flip), gamma/gain, speckle noise{', mixup alpha ' + str(tr['mixup']) if tr['mixup'] else ''}.
  Loss: {'unweighted' if not tr['class_weight_power'] else f"class-weighted (inverse frequency to the power {tr['class_weight_power']})"} cross-entropy with label
  smoothing 0.05. {tr['optimizer'].upper()} (weight decay {tr['weight_decay']}), one-cycle LR {tr['lr']},
  {tr['epochs']} epochs, batch {tr['batch_size']}, width {tr['width']}; final weights are the stochastic weight
  average of epochs {tr['swa_from_epoch']}-{tr['epochs']} with batch-norm statistics recomputed on the training split.
  Training took {tr['seconds'] / 60:.1f} min on {tr['torch_threads']} CPU thread(s).
- Decision rule: malignant if P(malignant) >= {r['decision_threshold']:.3f} (the threshold with the
  best validation accuracy, lowest on ties), otherwise the likelier of benign and normal.

## Test-split results (n = {t['n']}; never used for training, calibration or thresholds)
| metric | value | 95% bootstrap CI |
|---|---|---|
| 3-class accuracy (decision rule) | {t['accuracy']:.3f} | {t['accuracy_ci95'][0]:.3f}-{t['accuracy_ci95'][1]:.3f} |
| 3-class accuracy (argmax) | {t['accuracy_argmax']:.3f} | |
| malignant-vs-rest AUROC | {t['malignant_auroc']:.3f} | {t['malignant_auroc_ci95'][0]:.3f}-{t['malignant_auroc_ci95'][1]:.3f} |
| macro F1 | {t['macro_f1']:.3f} | |

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{cls}

Confusion matrix (rows true, columns predicted: {', '.join(r['labels'])}):

| | {' | '.join(r['labels'])} |
|---|---|---|---|
{cm}

Validation (n = {v['n']}): accuracy {v['accuracy']:.3f}, malignant AUROC {v['malignant_auroc']:.3f}.

**Baseline on the same split**: {b['name']} (C = {b['C']}): test accuracy {b['test_accuracy']:.3f},
malignant AUROC {b['test_malignant_auroc']:.3f}.

## Calibration
Temperature scaling fitted on validation: T = {r['temperature']:.3f}. Top-label ECE (10 bins) on test:
{t['ece_before']:.3f} before, {t['ece_after']:.3f} after.

| confidence bin | n | mean confidence | accuracy |
|---|---|---|---|
{rel}

## Out-of-distribution guard
Mahalanobis distance of pooled layer3+layer4 features to the training set (Ledoit-Wolf covariance);
threshold {r['ood_threshold']:.2f} = 95th percentile of validation scores. A flagged scan still shows its
prediction, greyed, under a warning.
- In-domain test images flagged: {_pct(t['ood_flag_rate'])} (validation: {_pct(v['ood_flag_rate'])}).
- pydicom / pydicom-data images that are not ultrasound, and photographs: {ood.get('non_ultrasound_flagged', 0)} of
  {ood.get('non_ultrasound_n', 0)} caught ({_pct(ood.get('non_ultrasound_catch_rate', float('nan')))}); identical pictures in several encodings counted once.

| source | images | flagged |
|---|---|---|
{ood_rows}

{_development_section(r)}
## Limits
- One hospital, one population, one scanner family; {t['n']} test images give wide intervals (see CIs).
- Trained on cropped 2-D BUSI frames; cine loops, Doppler, annotations and calipers were not
  studied. Images are squashed to 128 x 128, so very small lesions may be lost.
- Ultrasound of other organs can pass the OOD guard; the guard is a heuristic, not a guarantee.
- Not evaluated for subgroups (age, breast density, device); not for screening; no BI-RADS.
"""
