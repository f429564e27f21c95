"""The sepsis early warning's model card (markdown) from the training results (``sepsis_gru.json``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from medai_core.models.catalog import SEPSIS_SPEC


def _ci(t: dict[str, Any], k: str) -> str:
    c = t.get("ci95", {}).get(k)
    return f" ({c[0]:.3f}-{c[1]:.3f})" if c else ""


def _row(name: str, t: dict[str, Any], thr: float) -> str:
    return (f"| {name} | **{t['utility']:.3f}**{_ci(t, 'utility')} | {t['auroc']:.3f}{_ci(t, 'auroc')} | "
            f"{t['auprc']:.3f}{_ci(t, 'auprc')} | {t['sensitivity_patients']:.1%} | {t['ppv_patients']:.1%} | "
            f"{t['alarm_episodes_per_patient_day']:.2f} | {t['median_warning_hours']:.0f} | {thr:.3f} |")


def _verdict(t: dict[str, Any], gb: dict[str, Any] | None) -> str:
    bars = t["utility"] >= 0.35 and t["auroc"] >= 0.84
    out = f" **The bars are {'met' if bars else 'not met'}"
    out += f"; the utility aim (0.40) is {'met' if t['utility'] >= 0.40 else 'not met'}."
    if gb:
        names = {"utility": "utility", "auroc": "AUROC", "auprc": "AUPRC"}
        better = [names[k] for k in names if gb[k] > t[k]]
        out += (f"** The trees score higher on {', '.join(better)}: the aim of beating them is not met" if better
                else "** It beats the trees on utility, AUROC and AUPRC")
        worse = [names[k] for k in names if gb[k] <= t[k]]
        out += f" (this model is higher on {', '.join(worse)})." if better and worse else "."
    else:
        out += "**"
    return out


def _development(r: dict[str, Any]) -> str:
    dev = r.get("development")
    if not dev:
        return ""
    rows = "\n".join(f"| {d['run']} | {d['config']} | {d['val_utility']:.3f} | {d['val_auroc']:.3f} |" for d in dev)
    return f"""## Development history (validation split only)
| run | configuration | val utility | val AUROC |
|---|---|---|---|
{rows}

"""


def card_markdown(r: dict[str, Any]) -> str:
    t, d, tr, v = r["test"], r["data"], r["training"], r["val"]
    gb = r.get("baselines", {}).get("gradient_boosting")
    rows = [_row("sepsis_gru (this model)", t, r["threshold"])]
    if gb:
        rows.append(_row("gradient-boosted trees (baseline)", gb["test"], gb["threshold"]))
    cal = t["calibration"]
    bins = "\n".join(f"| {b['mean_risk']:.2%} | {b['observed']:.2%} | {b['n']:,} |" for b in cal["bins"])
    aside = ", ".join(f"{k} {n}" for k, n in d["set_aside"].items()) or "none"
    return f"""# Model card: {SEPSIS_SPEC.name}

**Sepsis early warning: at every ICU hour, the risk that sepsis (Sepsis-3) will be clinically recognised within
the next 6 hours**, from the rows up to that hour only (the PhysioNet/Computing in Cardiology Challenge 2019
task). An ensemble of {tr['members']} causal GRUs with attention over the past 48 hours, trained from scratch in this
repository on CPU.
**Not a diagnosis**: decision support and demonstration only, not a medical device.

## Data
- Source: {d['source']}: {d['patients']:,} ICU patients of one hospital system, {d['hours']:,} hourly rows;
  PhysioNet open access (recalled as CC BY 4.0; confirm on the challenge page before redistributing).
- Target: `SepsisLabel`, 1 from 6 hours before the clinical onset of sepsis onwards ({d['positive_hours']:.2%} of
  hours). It is the target only, never an input.
- Split by patient (seed {d['seed']}, stratified by whether the patient becomes septic): train
  {d['split']['train']:,} ({d['septic']['train']} septic), validation {d['split']['val']:,} ({d['septic']['val']} septic), test
  {d['split']['test']:,} ({d['septic']['test']} septic) patients. Every choice (epoch, calibration, threshold, configuration)
  was made on validation; the test split was scored once for this card.
- Values outside each variable's plausible range were set aside as artefacts (treated as not measured):
  {aside}.

## Inputs
At each hour, for each of the 34 hourly variables (8 vital signs, 26 labs): the last value (standardised,
carried forward), whether it was measured that hour, the hours since it was last measured, and how often it
has been measured so far; and age, sex, unit (medical / surgical / unknown), hours from hospital to ICU
admission, hours in the ICU. Missing values are never imputed silently: the mask and the time since the last
measurement say what was carried forward.

## Metric
The challenge's **normalized utility** (Reyna et al., Crit Care Med 2020), implemented from the paper in
`medai_core/trust/utility.py` and tested on hand-worked patients: each hourly alarm earns up to +1 when it comes
6-12 hours before onset, less when later, -0.05 when the patient never becomes septic; a missed septic hour
costs down to -2 at 3 hours after onset; normalised so that no alarms score 0 and the optimal alarms 1.
Always alarming scores {t['always_alarm_utility']:.2f} on this test split. AUROC and AUPRC are over hours (positive: `SepsisLabel` 1).
Patient-level: **warned** = a septic patient with an alarm at some hour up to 3 hours after onset; hours
of warning = onset minus the first such alarm; **PPV** = share of patients with any alarm who become septic;
**alarms per patient-day** = alarm episodes (an alarming hour after a quiet one) per 24 hours of stay.

## Test results ({t['patients']:,} patients, {t['hours']:,} hours; 95% CIs bootstrapped over patients)
| model | normalized utility | AUROC | AUPRC | septic patients warned | PPV (patients) | alarms / patient-day | median hours of warning | threshold |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Bars: utility >= 0.35 and AUROC >= 0.84 (aim: utility >= 0.40, beating the trees). Validation: utility
{v['utility_at_threshold']:.3f}, AUROC {v['auroc']:.3f}.{_verdict(t, gb['test'] if gb else None)}

## Calibration
Platt scaling of the logit on validation (risk = sigmoid({r['calibration']['platt_a']:.3f} x logit +
{r['calibration']['platt_b']:.3f})). The alarm threshold ({r['threshold']:.3f}) maximises utility on validation. Test
calibration by risk decile (ECE {cal['ece']:.4f}):

| mean risk | observed share | hours |
|---|---|---|
{bins}

{_development(r)}## Model
{tr['members']} members, each: inputs plus the 6-hour maximum, minimum, mean and change of the 8 vital signs (computed
inside the network, so attributions to a value include its trends) -> linear layer (GELU) -> GRU (hidden
{tr['hidden']}, forward only) -> attention of each hour over the past 48 hours (never forward) -> head on [state, attention
context, input embedding]. The ensemble's logit is the members' mean (the attention shown: their mean).
Each member: seed {d['seed']} + k, binary cross-entropy on every hour (positive weight {tr['pos_weight']:g}), AdamW (lr
{tr['lr']}, one-cycle over {tr['epochs_run']} epochs), batch {tr['batch_size']} stays grouped by length, the epoch with the best
validation AUROC kept (epochs {', '.join(str(e) for e in tr['best_epoch'])}). {tr['seconds'] / 60:.1f} minutes on
{tr['threads']} CPU thread(s) up to the evaluation (the trees baseline takes about 3 more).

## Explanations
The attention of the chosen hour over the past hours, and Integrated Gradients (or occlusion) over (hour x
variable) for the chosen hour's risk logit: the contribution of each past value, against a baseline where
every value is the training mean and the pattern of measurements is kept.

## Intended use and limits
- Demonstration of an early-warning score and what drove it; **not a diagnosis**, not for triage or treatment
  decisions, and no substitute for clinical assessment.
- One hospital system (challenge training set B); the challenge showed that scores drop at a hospital whose
  data no model was trained on. Sepsis-3 onset in the labels is itself an estimate from charted data.
- The utility rewards alarms 6-12 hours before onset; most alarms are false (see PPV): a real deployment
  would need local validation and an alarm-fatigue review.
- PhysioNet 2012 stays can be scored, but they lack several of the variables; their risks are untested.
"""


def write_card(out_dir: Path, r: dict[str, Any]) -> None:
    (Path(out_dir) / SEPSIS_SPEC.card).write_text(card_markdown(r))
