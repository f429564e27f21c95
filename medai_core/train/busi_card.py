"""The busi_cnn model card: the OOD guard's reference report on scans that are not breast ultrasound,
and the card (``busi_cnn.json`` + ``busi_cnn.md``) written from the numbers ``train_busi`` recorded.

Run after training: ``python -m medai_core image train`` calls ``finalize_card``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medai_core.models.busi_cnn import BUSI_SPEC, BusiNet
from medai_core.models.spec import ModelSpec


def ood_reference_report(model: torch.nn.Module, spec: ModelSpec = BUSI_SPEC) -> dict[str, Any]:
    """How often the OOD guard flags scans that are not breast ultrasound (or not what ``spec`` reads).

    Uses every decodable image in pydicom's test files and the pydicom-data package (grouped by
    modality; ultrasound of other organs reported apart) and the photographs matplotlib ships.
    """
    from medai_core.workspaces.imaging.pipeline import prepare_input
    from medai_core.workspaces.imaging.samples import reference_scans

    rows = []
    seen: set[tuple[int, ...]] = set()
    for p, scan, is_photo in reference_scans():
        x = prepare_input(scan, spec, 0)
        key = tuple(np.round(x.flatten()[::97].numpy() * 255).astype(int).tolist())
        if key in seen:
            continue  # the same picture in another encoding counts once
        seen.add(key)
        with torch.no_grad():
            _, f = model.forward_with_features(x)
            s = float(model.ood_score(f)[0])
        kind = "photo" if is_photo else (scan.modality or "other")
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
